//! The notifier's figures, listed for `/metrics` like every other part's.
//! A destination appears by its label only (`discord#1`), never its URL.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::metrics::{Kind, MetricsSource, Sample};

/// Upper bounds of the delivery latency buckets, in seconds: a webhook
/// answers in tens to hundreds of milliseconds; NOTIFY_TIMEOUT is 10 s.
const LATENCY_BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Outcome {
    Delivered,
    /// An attempt failed and another follows.
    Retried,
    /// Given up: refused, or out of attempts.
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Retried => "retried",
            Outcome::Failed => "failed",
        }
    }
}

#[derive(Default)]
struct Latency {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

pub(crate) struct DestinationMetrics {
    label: String,
    /// Messages by event (a kind's name, or "batch") and outcome. Updated
    /// once per attempt, so a lock costs nothing that matters.
    counts: Mutex<BTreeMap<(&'static str, Outcome), u64>>,
    dropped: AtomicU64,
    latency: Mutex<Latency>,
}

impl DestinationMetrics {
    pub(crate) fn new(label: String) -> Self {
        DestinationMetrics {
            label,
            counts: Mutex::default(),
            dropped: AtomicU64::new(0),
            latency: Mutex::default(),
        }
    }

    pub(crate) fn count(&self, event: &'static str, outcome: Outcome) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry((event, outcome))
            .or_default() += 1;
    }

    pub(crate) fn dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn dropped_total(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn observe_latency(&self, latency: Duration) {
        let seconds = latency.as_secs_f64();
        let mut histogram = self
            .latency
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (bucket, bound) in histogram.buckets.iter_mut().zip(LATENCY_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }
}

/// Every destination's figures, as one [`MetricsSource`].
pub(crate) struct AlertMetrics {
    pub(crate) destinations: Vec<Arc<DestinationMetrics>>,
}

impl MetricsSource for AlertMetrics {
    fn samples(&self, out: &mut Vec<Sample>) {
        for destination in &self.destinations {
            let counts = destination
                .counts
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone();
            for ((event, outcome), count) in counts {
                out.push(
                    Sample::new(
                        "notifications_total",
                        Kind::Counter,
                        "Alert messages by destination, event and result (delivered, retried: an attempt failed and another follows, failed: given up).",
                        count as f64,
                    )
                    .label("destination", destination.label.clone())
                    .label("event", event)
                    .label("result", outcome.label()),
                );
            }
        }
        for destination in &self.destinations {
            out.push(
                Sample::new(
                    "notifications_dropped_total",
                    Kind::Counter,
                    "Alert events dropped because a destination's queue was full.",
                    destination.dropped.load(Ordering::Relaxed) as f64,
                )
                .label("destination", destination.label.clone()),
            );
        }
        let sample = |value: f64| {
            Sample::new(
                "notification_delivery_seconds",
                Kind::Histogram,
                "Time of one delivery attempt, answer or timeout.",
                value,
            )
        };
        for destination in &self.destinations {
            let histogram = destination
                .latency
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let label = || destination.label.clone();
            for (count, bound) in histogram.buckets.iter().zip(LATENCY_BUCKETS) {
                out.push(
                    sample(*count as f64)
                        .suffix("_bucket")
                        .label("destination", label())
                        .label("le", bound.to_string()),
                );
            }
            let total = histogram.count as f64;
            out.push(
                sample(total)
                    .suffix("_bucket")
                    .label("destination", label())
                    .label("le", "+Inf"),
            );
            out.push(
                sample(histogram.sum)
                    .suffix("_sum")
                    .label("destination", label()),
            );
            out.push(sample(total).suffix("_count").label("destination", label()));
        }
    }
}
