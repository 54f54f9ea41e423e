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
/// and exits with the daemon's status, never returning.
///
/// Must be called before any thread starts (fork copies only the caller).
pub fn init_if_pid1() -> io::Result<()> {
    if std::process::id() != 1 {
        return Ok(());
    }
    // SAFETY: plain libc calls on local, initialised signal sets, made while
    // the process has a single thread (the caller's promise), so fork()
    // leaves the child in a consistent state.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        for signal in FORWARDED {
            libc::sigaddset(&mut set, signal);
        }
        let mut previous: libc::sigset_t = std::mem::zeroed();
        // Blocked before the fork: a signal arriving in between stays pending
        // in the init rather than being lost.
        if libc::sigprocmask(libc::SIG_BLOCK, &set, &mut previous) != 0 {
            return Err(io::Error::last_os_error());
        }
        match libc::fork() {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                libc::sigprocmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
                Ok(())
            }
            daemon => supervise(daemon, &set),
        }
    }
}

/// The init's whole life: forward signals, reap, exit as the daemon did.
unsafe fn supervise(daemon: libc::pid_t, set: &libc::sigset_t) -> ! {
    loop {
        let signal = libc::sigwaitinfo(set, std::ptr::null_mut());
        if signal == libc::SIGCHLD {
            if let Some(code) = reap(daemon) {
                std::process::exit(code);
            }
        } else if signal > 0 {
            libc::kill(daemon, signal);
        }
    }
}

/// Reaps every child that has exited; the daemon's exit code once it is
/// among them (128 + signal when a signal ended it, as shells report it).
unsafe fn reap(daemon: libc::pid_t) -> Option<i32> {
    let mut daemon_code = None;
    loop {
        let mut status = 0;
        let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
        if pid <= 0 {
            return daemon_code;
        }
        if pid == daemon {
            daemon_code = Some(if libc::WIFSIGNALED(status) {
                128 + libc::WTERMSIG(status)
            } else {
                libc::WEXITSTATUS(status)
            });
        }
    }
}
