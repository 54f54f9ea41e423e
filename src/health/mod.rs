//! The health model: the bot beats, the judge pings and keeps the file, the
//! HTTP server answers. See DESIGN.md ("The health model").

pub mod api;
pub mod file;
pub mod judge;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod settings;
pub mod state;

pub use state::{Component, HealthState, Heartbeat, Status};
