//! When the daemon is PID 1 (a container started without `--init`), it
//! splits in two before anything else starts: PID 1 stays a minimal init that
//! forwards stop and reload signals and reaps every orphan the kernel hands
//! it, and the daemon runs as its child.
//!
//! Reaping in the daemon itself is not an option: a `waitpid(-1)` there
//! would steal the exit statuses of the feed processes tokio waits for.
//! PID 1 also ignores every signal it has no handler for, so an init that
//! did nothing but wait would make `docker stop` wait for its SIGKILL.

use std::io;

use rustix::process::{Pid, Signal, WaitOptions};

use crate::sys::{self, Forked, SignalSet};

/// Signals PID 1 passes on to the daemon.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Returns at once unless this process is PID 1. As PID 1 it forks: the
/// child returns and goes on to be the daemon; this process stays the init
/// and exits with the daemon's status, never returning. Call it before
/// anything starts a thread: [`sys::fork`] refuses a process with more.
pub(crate) fn init_if_pid1() -> io::Result<()> {
    if std::process::id() != 1 {
        return Ok(());
    }
    let mut handled = FORWARDED.to_vec();
    handled.push(libc::SIGCHLD);
    let handled = SignalSet::of(&handled);
    // Blocked before the fork: a signal arriving in between stays pending
    // in the init rather than being lost.
    let previous = sys::block_signals(&handled)?;
    match sys::fork()? {
        Forked::Child => {
            sys::restore_signal_mask(&previous);
            Ok(())
        }
        Forked::Parent(daemon) => supervise(daemon, &handled),
    }
}

/// The init's whole life: forward signals, reap, exit as the daemon did.
fn supervise(daemon: Pid, handled: &SignalSet) -> ! {
    loop {
        match sys::wait_for_signal(handled) {
            Some(libc::SIGCHLD) => {
                if let Some(code) = reap(daemon) {
                    // Not the daemon's exit path: this is the init, passing
                    // on the status the daemon chose.
                    std::process::exit(code);
                }
            }
            Some(signal) => {
                if let Some(signal) = Signal::from_named_raw(signal) {
                    let _ = rustix::process::kill_process(daemon, signal);
                }
            }
            None => {}
        }
    }
}

/// Reaps every child that has exited; the daemon's exit code once it is
/// among them (128 + signal when a signal ended it, as shells report it).
fn reap(daemon: Pid) -> Option<i32> {
    let mut daemon_code = None;
    while let Ok(Some((pid, status))) = rustix::process::wait(WaitOptions::NOHANG) {
        if pid == daemon {
            daemon_code = Some(match (status.terminating_signal(), status.exit_status()) {
                (Some(signal), _) => 128 + signal,
                (None, Some(code)) => code,
                (None, None) => 1,
            });
        }
    }
    daemon_code
}
