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
mod symbols;

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
pub fn yield_cpu_to_health() {
    if let Err(error) = set_fair_slice(BOT_NICENESS, BOT_SLICE_NS) {
        tracing::debug!(%error, "cannot shorten the bot thread's slice; setting its niceness only");
        let thread = rustix::thread::gettid();
        if let Err(error) = rustix::process::setpriority_process(Some(thread), BOT_NICENESS) {
            tracing::debug!(%error, "cannot lower the bot thread's priority");
        }
    }
}

/// `sched_setattr(2)` for the calling thread: normal policy, `nice`, and a
/// slice of `slice_ns` (its `sched_runtime`). Neither rustix nor libc wrap
/// it.
fn set_fair_slice(nice: i32, slice_ns: u64) -> std::io::Result<()> {
    /// `struct sched_attr`, first version (48 bytes).
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        policy: u32,
        flags: u64,
        nice: i32,
        priority: u32,
        runtime: u64,
        deadline: u64,
        period: u64,
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: libc::SCHED_OTHER as u32,
        flags: 0,
        nice,
        priority: 0,
        runtime: slice_ns,
        deadline: 0,
        period: 0,
    };
    // SAFETY: `attr` is a valid, initialized sched_attr of the size it
    // declares, alive for the call; pid 0 is the calling thread.
    let result = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if result == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub use engine::RiskLimits;
pub use journal::FsyncPolicy;
pub use run::{Bot, BotError};
pub use source::SourceSpec;
pub use symbols::SymbolSettings;
pub(crate) use symbols::{DEFAULT_MAX_SYMBOLS, DEFAULT_METRICS_MAX_SYMBOLS};
