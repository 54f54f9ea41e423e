//! The bot: sources feed signal lines into the loop, which decides each one
//! (engine), records the decision (journal) and beats the heartbeat on every
//! iteration. The daemon only knows [`Bot::init`] and [`Bot::run`].

pub mod engine;
pub mod journal;
mod metrics;
mod run;
pub mod signal;
mod snapshot;
pub mod source;

pub use engine::RiskLimits;
pub use journal::FsyncPolicy;
pub use run::{Bot, BotError};
pub use source::SourceSpec;
