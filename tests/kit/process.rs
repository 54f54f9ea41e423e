//! Processes from outside: signals, resource limits, `/proc` figures, and
//! the guarantee that what a test spawns dies with the test binary.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::time::Duration;

pub const SIGHUP: i32 = libc::SIGHUP;
pub const SIGINT: i32 = libc::SIGINT;
pub const SIGKILL: i32 = libc::SIGKILL;
pub const SIGTERM: i32 = libc::SIGTERM;
pub const SIGCONT: i32 = libc::SIGCONT;
pub const SIGSTOP: i32 = libc::SIGSTOP;

/// Sends `signal` to `pid`.
pub fn kill(pid: i32, signal: i32) -> std::io::Result<()> {
    // SAFETY: kill(2) touches no memory of ours.
    if unsafe { libc::kill(pid, signal) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Blocks until the process `pid` (a child of ours, not yet reaped) ends
/// or `timeout` passes, whichever comes first: a pidfd becomes readable
/// the moment the process ends. Returns whether it ended.
pub fn await_exit(pid: i32, timeout: Duration) -> bool {
    // SAFETY: pidfd_open(2) takes two integers and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        // No pidfd (a kernel before 5.3): the caller polls.
        std::thread::sleep(timeout.min(Duration::from_millis(1)));
        return false;
    }
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: poll(2) on one pollfd we own; close(2) of the descriptor we opened.
    let ready = unsafe {
        let ready = libc::poll(&mut pollfd, 1, millis);
        libc::close(fd);
        ready
    };
    ready > 0
}

/// Makes the kernel send `signal` to the child when the thread that spawns
/// it dies, so that a test binary that aborts (or is killed) leaves no
/// daemon behind. The kernel ties this to the spawning *thread*: spawn from
/// the test's own thread, never from a helper thread that ends first.
pub fn die_with_parent(command: &mut Command, signal: i32) {
    // SAFETY: getpid(2) cannot fail.
    let parent = unsafe { libc::getpid() };
    // SAFETY: prctl(2) and getppid(2) are async-signal-safe and touch only
    // the child; nothing is allocated between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, signal as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl: nobody would signal us.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "the test binary died during the spawn",
                ));
            }
            Ok(())
        });
    }
}

/// Caps the child's open descriptors (RLIMIT_NOFILE), to provoke EMFILE.
pub fn limit_open_files(command: &mut Command, limit: u64) {
    let rlimit = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: setrlimit(2) is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}

/// A numeric field of `/proc/PID/status` (`VmRSS:` in KiB, `Threads:`, ...).
pub fn proc_status(pid: i32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The children of `pid` right now, from every one of its threads.
pub fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| {
            children
                .split_whitespace()
                .filter_map(|child| child.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Every descendant of `pid` right now, children first.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut found = children(pid);
    let mut next = 0;
    while next < found.len() {
        let grandchildren = children(found[next]);
        found.extend(grandchildren);
        next += 1;
    }
    found
}

/// Runs `command`; panics with its output unless it exits 0. Returns stdout.
pub fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"))
}
