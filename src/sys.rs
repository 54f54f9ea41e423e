//! Every call into the kernel that Rust cannot check, each behind a safe
//! function that keeps the call's contract itself (the only module where
//! `unsafe` is allowed: `#![deny(unsafe_code)]` in `lib.rs`). Where rustix
//! has a safe wrapper, it is used instead.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `sched_setattr(2)` for the calling thread: normal policy, `nice`, and a
/// time slice of `slice_ns` (its `sched_runtime`; Linux 6.12+ EEVDF).
/// Neither rustix nor libc wrap it.
pub(crate) fn set_fair_slice(nice: i32, slice_ns: u64) -> io::Result<()> {
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
        Err(io::Error::last_os_error())
    }
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`: starts writeback of a range
/// without waiting for it. It makes nothing durable; only fsync does.
pub(crate) fn start_writeback(file: BorrowedFd<'_>, offset: u64, length: u64) -> io::Result<()> {
    let (Ok(offset), Ok(length)) = (
        libc::off64_t::try_from(offset),
        libc::off64_t::try_from(length),
    ) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: a plain system call on a descriptor the borrow keeps open;
    // no memory is passed.
    let result = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset,
            length,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes the child of `command` receive SIGTERM when the thread that
/// spawned it dies (with the daemon, SIGKILL included), so a feed process
/// is never left behind for a restarted daemon to run twice.
pub(crate) fn terminate_with_parent(command: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the child between fork and exec; prctl(2)
    // is async-signal-safe, allocates nothing and touches no memory of the
    // parent.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
                .map_err(io::Error::from)
        });
    }
}

/// A set of signals, for [`block_signals`] and [`wait_for_signal`].
pub(crate) struct SignalSet(libc::sigset_t);

impl SignalSet {
    pub(crate) fn of(signals: &[libc::c_int]) -> Self {
        // SAFETY: sigemptyset initializes the zeroed set; sigaddset only
        // writes into it, and fails (ignored) only for an invalid number.
        unsafe {
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            for &signal in signals {
                libc::sigaddset(&mut set, signal);
            }
            SignalSet(set)
        }
    }
}

/// Blocks `set` for the calling thread and returns the mask it replaced.
pub(crate) fn block_signals(set: &SignalSet) -> io::Result<SignalSet> {
    // SAFETY: both sets are valid for the call; zeroed is a valid sigset_t
    // for the kernel to overwrite.
    unsafe {
        let mut previous: libc::sigset_t = std::mem::zeroed();
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set.0, &mut previous) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(SignalSet(previous))
    }
}

/// Sets the calling thread's signal mask to `mask`.
pub(crate) fn restore_signal_mask(mask: &SignalSet) {
    // SAFETY: the set is valid for the call; setting a mask cannot fail
    // with a valid `how`.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, &mask.0, std::ptr::null_mut());
    }
}

/// Waits for one of the (blocked) signals in `set`; `None` if interrupted.
pub(crate) fn wait_for_signal(set: &SignalSet) -> Option<libc::c_int> {
    // SAFETY: the set is valid for the call; a null siginfo is allowed.
    let signal = unsafe { libc::sigwaitinfo(&set.0, std::ptr::null_mut()) };
    (signal > 0).then_some(signal)
}

/// What [`fork`] returned in this process.
pub(crate) enum Forked {
    Child,
    Parent(rustix::process::Pid),
}

/// `fork(2)`, refused unless this process has exactly one thread: the
/// child gets only the caller's, and a lock another thread held (the
/// allocator's, say) would stay locked in it for good.
pub(crate) fn fork() -> io::Result<Forked> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(io::Error::other(format!(
            "fork refused: the process has {threads} threads, and only one may fork"
        )));
    }
    // SAFETY: the one thread counted above is this one, busy here, so no
    // other can have started since.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(
            rustix::process::Pid::from_raw(pid).ok_or_else(|| io::Error::other("fork: bad pid"))?,
        )),
    }
}

/// This process's threads, as the kernel lists them.
fn thread_count() -> io::Result<usize> {
    let tasks = std::fs::read_dir("/proc/self/task").map_err(|error| {
        io::Error::new(
            error.kind(),
            format!("cannot count this process's threads in /proc/self/task: {error}"),
        )
    })?;
    Ok(tasks.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_is_refused_while_another_thread_runs() {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || stopped.recv());
        let refused = fork().err().expect("fork refused with two threads");
        assert!(refused.to_string().contains("threads"), "{refused}");
        drop(stop);
        let _ = other.join();
    }
}
