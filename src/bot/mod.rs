//! The bot: sources feed signals into the loop, which beats the heartbeat on
//! every iteration. The daemon only knows [`Bot::init`] and [`Bot::run`].

mod run;
pub mod source;

pub use run::{Bot, BotError};
pub use source::SourceSpec;
