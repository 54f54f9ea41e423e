//! The health model: the bot beats, the judge pings and keeps the file, the
//! HTTP server answers. See ARCHITECTURE.md ("Design rules": truthful health).

pub(crate) mod file;
pub(crate) mod judge;
pub(crate) mod notify;
pub(crate) mod probe;
pub(crate) mod report;
pub(crate) mod settings;
pub mod state;

pub use state::{Component, HealthState, Heartbeat, Status};
