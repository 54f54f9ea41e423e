//! One reconnect backoff for everything that retries a remote end: an exec
//! feed that exited, a feed socket that closed or went silent, a poller
//! refused, a dashboard's stream. Exponential, capped, with jitter over the
//! whole range from the first wait to the ceiling (so many bots cut off
//! together do not reconnect in step, and no remote end that closes at
//! once sees more than one attempt per first wait), started over once a
//! connection proved stable; never given up. And the wait a remote end
//! asks for itself (`Retry-After`).

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant, SystemTime};

#[derive(Clone, Debug)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
    /// The ceiling of the next wait.
    ceiling: Duration,
}

impl Backoff {
    /// Waits start at most `first` and double up to `max`.
    pub(crate) fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max: max.max(first),
            ceiling: first,
        }
    }

    /// The ceiling of the next wait, for a message ("retrying within 4s").
    pub(crate) fn ceiling(&self) -> Duration {
        self.ceiling
    }

    /// The wait before the next attempt, between the first wait and the
    /// ceiling; then the ceiling doubles.
    pub(crate) fn next_wait(&mut self) -> Duration {
        let wait = self.first + (self.ceiling - self.first).mul_f64(random_fraction());
        self.ceiling = self.ceiling.saturating_mul(2).min(self.max);
        wait
    }

    /// After an attempt that stayed up for `lasted`: one that lasted
    /// `stable` or more was healthy, and the next failure starts over.
    pub(crate) fn settle(&mut self, lasted: Duration, stable: Duration) {
        if lasted >= stable {
            self.ceiling = self.first;
        }
    }
}

/// A number in [0, 1) that differs between processes and calls: std's
/// hasher keys are random per process, and the clock moves.
pub(crate) fn random_fraction() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// How long a remote end asks to be left alone (`Retry-After`):
/// delay-seconds, or an HTTP date (a date passed is no wait).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    parse_seconds(value).or_else(|| {
        let at = httpdate_to_system_time(value)?;
        Some(at.duration_since(SystemTime::now()).unwrap_or_default())
    })
}

/// A number of seconds, fractions allowed (`1.25`).
pub(crate) fn parse_seconds(value: &str) -> Option<Duration> {
    Duration::try_from_secs_f64(value.trim().parse::<f64>().ok()?).ok()
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
fn httpdate_to_system_time(value: &str) -> Option<SystemTime> {
    let rest = value.trim().split_once(", ")?.1;
    let mut parts = rest.split(' ');
    let (day, month, year, clock) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let month = MONTHS.iter().position(|name| *name == month)? + 1;
    let text = format!("{year}-{month:02}-{day:0>2}T{clock}Z");
    humantime::parse_rfc3339(&text).ok()
}

/// `at` as an IMF-fixdate, for tests of `Retry-After`.
#[cfg(test)]
pub(crate) fn http_date(at: SystemTime) -> String {
    // humantime renders RFC 3339; rebuild the IMF-fixdate from it.
    let text = humantime::format_rfc3339_seconds(at).to_string();
    let (date, clock) = text.trim_end_matches('Z').split_once('T').unwrap();
    let mut parts = date.split('-');
    let (year, month, day) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let month = MONTHS[month.parse::<usize>().unwrap() - 1];
    format!("Mon, {day} {month} {year} {clock} GMT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_jitter_under_a_doubling_ceiling_and_start_over_once_stable() {
        let second = Duration::from_secs(1);
        let mut backoff = Backoff::new(second, Duration::from_secs(60));
        let mut ceilings = Vec::new();
        for _ in 0..9 {
            let ceiling = backoff.ceiling();
            ceilings.push(ceiling.as_secs());
            let wait = backoff.next_wait();
            assert!(
                wait >= second && wait <= ceiling,
                "{wait:?} under {ceiling:?}"
            );
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        backoff.settle(Duration::from_secs(9), Duration::from_secs(10));
        assert_eq!(backoff.ceiling().as_secs(), 60, "not stable yet");
        backoff.settle(Duration::from_secs(10), Duration::from_secs(10));
        assert_eq!(backoff.ceiling(), second);
    }

    #[test]
    fn the_jitter_spreads() {
        let waits: Vec<f64> = (0..200).map(|_| random_fraction()).collect();
        assert!(waits.iter().all(|wait| (0.0..1.0).contains(wait)));
        assert!(waits.iter().any(|wait| *wait < 0.25) && waits.iter().any(|wait| *wait > 0.75));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("1.25"),
            Some(Duration::from_millis(1_250))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = SystemTime::now() + Duration::from_secs(120);
        let date = http_date(later);
        let wait = parse_retry_after(&date).unwrap();
        assert!(
            wait > Duration::from_secs(100) && wait <= Duration::from_secs(120),
            "{date}: {wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
