//! The ledger's settings, validated once by `cli`; plain values.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// A segment is rolled once it holds this many bytes.
    pub(crate) segment_size: u64,
    /// Ids decided within this window (by their signal's `ts`) are
    /// remembered; older signals are refused (`too_old`).
    pub(crate) dedupe_window: Duration,
    /// A signal whose `ts` is further ahead than this is refused (`ts_in_future`).
    pub(crate) max_clock_skew: Duration,
    /// Closed segments older than this, and covered by every kept
    /// snapshot, are deleted; `None` keeps everything.
    pub(crate) retention: Option<Duration>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            segment_size: 64 << 20,
            dedupe_window: Duration::from_secs(7 * 24 * 3600),
            max_clock_skew: Duration::from_secs(5 * 60),
            retention: None,
        }
    }
}

/// Milliseconds, saturating: a window of centuries is allowed.
pub(crate) fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
