//! One reconnect backoff for everything that retries a remote end: an exec
//! feed that exited, a feed socket that closed or went silent, a poller
//! refused, a dashboard's stream. Exponential, capped, with jitter over the
//! whole range from the first wait to the ceiling (so many bots cut off
//! together do not reconnect in step, and no remote end that closes at
//! once sees more than one attempt per first wait), started over once a
//! connection proved stable; never given up.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

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
}
