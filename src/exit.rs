//! How the process ends, in one place (ARCHITECTURE.md, "Design rules": exit codes).
//!
//! Two ways out and no third: `main` returns the [`Exit`] of a run that
//! finished (or failed before the judge started), and the judge calls
//! [`terminate`] when the process must end while the bot is still running
//! (a stall past `STALL_EXIT_AFTER`, a forced stop, a dead health server).

/// Every exit status the daemon uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// A clean stop: intake stopped, drained, committed.
    Clean,
    /// A runtime failure.
    Failure,
    /// A usage or configuration error: the operator must change something.
    Usage,
    /// Stalled past `STALL_EXIT_AFTER`, so any restart policy recovers it.
    Stalled,
    /// Another instance holds the lock.
    Locked,
    /// The stop was forced (a second stop signal, or the drain deadline)
    /// before the drain finished.
    Forced,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Clean => 0,
            Exit::Failure | Exit::Forced => 1,
            Exit::Usage => 2,
            Exit::Stalled => 70,
            Exit::Locked => 75,
        }
    }
}

/// Ends the process now, without unwinding or running destructors: the
/// caller has already said why (logs, sd_notify, the health file).
pub(crate) fn terminate(exit: Exit) -> ! {
    std::process::exit(i32::from(exit.code()))
}
