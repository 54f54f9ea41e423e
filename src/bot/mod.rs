//! The bot: sources feed signal lines into the loop, which decides each one
//! (engine), records the decision (journal) and beats the heartbeat on every
//! iteration. The daemon only knows [`Bot::init`] and [`Bot::run`].

mod decided;
pub mod engine;
pub mod journal;
mod metrics;
mod run;
pub mod signal;
mod snapshot;
pub mod source;

/// Niceness of every thread that does the bot's work (its runtime, the file
/// reader). The health server and the judge keep the default, so when the
/// bot saturates the CPU the scheduler still runs them at once: a busy bot
/// must not make `/health` slow, nor the watchdog late. A bot starved by
/// this is a bot not making progress, which the heartbeat then tells.
const BOT_NICENESS: i32 = 10;

/// Lowers the calling thread's priority to [`BOT_NICENESS`]. Raising
/// niceness needs no privilege; a failure (a seccomp filter, say) only
/// costs isolation, so it is logged and ignored.
pub fn yield_cpu_to_health() {
    let thread = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(thread), BOT_NICENESS) {
        tracing::debug!(%error, "cannot lower the bot thread's priority");
    }
}

pub use engine::RiskLimits;
pub use journal::FsyncPolicy;
pub use run::{Bot, BotError};
pub use source::SourceSpec;
