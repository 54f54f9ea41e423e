//! tradingbot: a signal-driven paper-trading bot loop run as a Linux service
//! whose health signal tells the truth. See DESIGN.md for the map.

pub mod alerts;
pub mod bot;
mod cli;
pub mod config;
pub mod daemon;
pub mod error;
pub mod health;
pub mod lock;
pub mod logging;
pub mod reaper;
pub mod signals;

pub use error::Error;
