//! The bot: sources feed signal lines into the loop, which decides each one
//! (engine), records the decision (journal) and beats the heartbeat on every
//! iteration. The daemon only knows [`Bot::init`] and [`Bot::run`].

pub mod account;
pub(crate) mod decide;
pub mod engine;
pub(crate) mod events;
pub(crate) mod figures;
pub mod intake;
mod json_text;
pub mod ledger;
pub mod money;
pub(crate) mod report;
mod run;
pub mod settings;
pub mod signal;
pub(crate) mod symbols;

/// Niceness of every thread that does the bot's work (its runtime, the file
/// reader). The health server and the judge keep the default, so when the
/// bot saturates the CPU the scheduler still runs them at once: a busy bot
/// must not make `/health` slow, nor the watchdog late. A bot starved by
/// this is a bot not making progress, which the heartbeat then tells.
const BOT_NICENESS: i32 = 10;

/// The time slice the bot's threads ask for (Linux 6.12+ EEVDF). Niceness
/// sets a share of the CPU, not how long a thread that woke up waits for
/// a busy core: with the default slice a bot thread keeps its core for up
/// to a few milliseconds before a woken `/health` (or a prober's) thread
/// runs. A short slice ends that sooner; the bot loses nothing when no one
/// else wants the core. Measured in BENCHMARKS.md ("loop saturated").
const BOT_SLICE_NS: u64 = 100_000;

/// Lowers the calling thread's priority to [`BOT_NICENESS`] and shortens
/// its slice to [`BOT_SLICE_NS`]. Neither needs privilege. A kernel
/// without custom slices still gets the niceness; a failure (a seccomp
/// filter, say) only costs isolation, so it is logged and ignored.
pub(crate) fn yield_cpu_to_health() {
    if let Err(error) = crate::sys::set_fair_slice(BOT_NICENESS, BOT_SLICE_NS) {
        tracing::debug!(%error, "cannot shorten the bot thread's slice; setting its niceness only");
        let thread = rustix::thread::gettid();
        if let Err(error) = rustix::process::setpriority_process(Some(thread), BOT_NICENESS) {
            tracing::debug!(%error, "cannot lower the bot thread's priority");
        }
    }
}

pub(crate) use run::{Bot, BotError};
