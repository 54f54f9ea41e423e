//! What the packaging tests share (the `heavy` target): whether this
//! machine can run them, where the shipped files are, running a command that
//! must succeed, and the things they start outside the test binary (podman
//! containers and images, nspawn machines), each removed on every exit path.
//!
//! Everything they start carries the name of its owner, this test binary
//! (see [`owner`]): a container or image the label `tradingbot-test=1` and
//! `tradingbot-test.owner=OWNER`, a machine the name `tbtest-OWNER-...`. A
//! resource whose owner is gone is a leftover, whoever finds it (the next
//! run's sweep, `.ci/run`'s final check); one whose owner lives is in use.

pub mod machine;
pub mod podman;

use std::process::Command;

pub use crate::kit::needs::can_run;
pub use crate::kit::process::{ok, run};
pub use crate::kit::shipped::shipped;

/// `systemd-analyze security --offline` of the shipped `systemd/UNIT`: its
/// overall exposure level, and the report (for a failure's message).
pub fn exposure(unit: &str) -> (f64, String) {
    let report = ok(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(shipped(&format!("systemd/{unit}"))));
    let prefix = format!("Overall exposure level for {unit}: ");
    let score = report
        .lines()
        .find_map(|line| line.split_once(prefix.as_str()))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no overall exposure level in:\n{report}"));
    (score, report)
}

/// This test binary, as `PID-STARTTIME` (its start in clock ticks since
/// boot): unlike a pid alone, never mistaken for a later process.
pub fn owner() -> String {
    let pid = std::process::id() as i32;
    format!("{pid}-{}", start_time(pid).expect("our own /proc/PID/stat"))
}

/// Whether the owner named by [`owner`] is still running.
pub fn owner_alive(owner: &str) -> bool {
    let Some((pid, start)) = owner.split_once('-') else {
        return false;
    };
    pid.parse()
        .ok()
        .and_then(start_time)
        .is_some_and(|started| started.to_string() == start)
}

/// Field 22 of `/proc/PID/stat`, counted after the command name (which may
/// hold spaces).
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// The command name of `pid` (`/proc/PID/comm`), empty once it is gone.
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}
