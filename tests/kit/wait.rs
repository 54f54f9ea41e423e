//! Awaiting what has no event to wait on (an HTTP status, a file, a figure).

use std::time::{Duration, Instant};

/// Generous bound for anything that should happen "soon" on a loaded 2-core machine.
pub const SOON: Duration = Duration::from_secs(15);

/// Polls `condition` every 20 ms until it holds (`true`) or `timeout`
/// passes (`false`). Used only where the thing awaited has no event to
/// wait on; the daemon's log lines and notify datagrams are awaited directly.
pub fn wait_until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    wait_every(Duration::from_millis(20), timeout, condition)
}

/// [`wait_until`] with a chosen polling period, for measuring when a
/// condition began to hold.
pub fn wait_every(every: Duration, timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(every);
    }
}
