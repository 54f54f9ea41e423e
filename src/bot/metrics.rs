//! The bot's figures. The loop owns a plain [`Figures`] and publishes a
//! copy once per iteration; scrapes read the copy, so the HTTP thread never
//! waits on the loop and the loop takes no lock per signal.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::engine::Position;
use super::signal::{Reason, Side};
use crate::health::metrics::{Kind, MetricsSource, Sample};

/// Upper bounds of the fsync latency buckets, in seconds.
const FSYNC_BUCKETS: [f64; 10] = [
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

#[derive(Clone, Default)]
pub struct Histogram {
    buckets: [u64; FSYNC_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn observe(&mut self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        for (bucket, bound) in self.buckets.iter_mut().zip(FSYNC_BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    /// The `q` quantile (0 to 1) as Prometheus' `histogram_quantile` reads
    /// it: linear within the bucket it falls in. `None` before any.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let rank = q * self.count as f64;
        let mut below = (0, 0.0);
        for (count, bound) in self.buckets.iter().zip(FSYNC_BUCKETS) {
            if *count as f64 >= rank && *count > 0 {
                let (count_below, bound_below) = below;
                let within = (rank - count_below as f64) / (*count - count_below) as f64;
                return Some(bound_below + (bound - bound_below) * within.clamp(0.0, 1.0));
            }
            below = (*count, bound);
        }
        // Past the last bucket: its bound is the most that can be said.
        (self.count > 0).then_some(below.1)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Result {
    Filled,
    Rejected,
    Duplicate,
}

impl Result {
    const ALL: [Result; 3] = [Result::Filled, Result::Rejected, Result::Duplicate];

    fn label(self) -> &'static str {
        match self {
            Result::Filled => "filled",
            Result::Rejected => "rejected",
            Result::Duplicate => "duplicate",
        }
    }
}

/// Counters indexed, not keyed, where the loop bumps them per signal.
#[derive(Clone, Default)]
pub struct Figures {
    /// Per configured source (by index): its kind label and a count per [`Result`].
    pub signals: Vec<(&'static str, [u64; 3])>,
    /// Per symbol: fills by side (buy, sell).
    pub fills: BTreeMap<String, [u64; 2]>,
    pub rejects: [u64; Reason::ALL.len()],
    pub duplicates: u64,
    pub positions: BTreeMap<String, Position>,
    pub last_signal: Option<(Instant, SystemTime)>,
    pub iterations: u64,
    pub fsync: Histogram,
}

impl Figures {
    pub fn new(source_kinds: impl IntoIterator<Item = &'static str>) -> Self {
        Figures {
            signals: source_kinds
                .into_iter()
                .map(|kind| (kind, [0; 3]))
                .collect(),
            ..Figures::default()
        }
    }

    pub fn count(&mut self, source: usize, result: Result) {
        if let Some((_, counts)) = self.signals.get_mut(source) {
            counts[result as usize] += 1;
        }
    }

    pub fn total(&self, result: Option<Result>) -> u64 {
        self.signals
            .iter()
            .flat_map(|(_, counts)| {
                Result::ALL
                    .into_iter()
                    .filter(move |counted| result.is_none_or(|result| result == *counted))
                    .map(move |counted| counts[counted as usize])
            })
            .sum()
    }
}

#[derive(Default)]
pub struct BotMetrics {
    published: Mutex<Figures>,
}

impl BotMetrics {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    pub fn publish(&self, figures: &Figures) {
        *self.lock() = figures.clone();
    }

    /// The figures last published (for the read API).
    pub(crate) fn snapshot(&self) -> Figures {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Figures> {
        self.published
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl MetricsSource for BotMetrics {
    fn samples(&self, out: &mut Vec<Sample>) {
        let figures = self.lock().clone();
        // Two sources of one kind share a series: labels must not repeat.
        let mut by_kind: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        for (kind, counts) in &figures.signals {
            for result in Result::ALL {
                *by_kind.entry((kind, result.label())).or_default() += counts[result as usize];
            }
        }
        for ((kind, result), count) in by_kind {
            out.push(
                Sample::new(
                    "signals_total",
                    Kind::Counter,
                    "Signal lines handled, by source and result.",
                    count as f64,
                )
                .label("source", kind)
                .label("result", result),
            );
        }
        for (symbol, counts) in &figures.fills {
            for side in [Side::Buy, Side::Sell] {
                out.push(
                    Sample::new(
                        "fills_total",
                        Kind::Counter,
                        "Paper fills.",
                        counts[side as usize] as f64,
                    )
                    .label("symbol", symbol.clone())
                    .label("side", side.as_str()),
                );
            }
        }
        for reason in Reason::ALL {
            out.push(
                Sample::new(
                    "rejects_total",
                    Kind::Counter,
                    "Rejected lines and signals, by reason.",
                    figures.rejects[reason.index()] as f64,
                )
                .label("reason", reason.label()),
            );
        }
        out.push(Sample::new(
            "duplicates_total",
            Kind::Counter,
            "Signals whose id was already decided (not executed again).",
            figures.duplicates as f64,
        ));
        for (symbol, position) in &figures.positions {
            out.push(
                Sample::new(
                    "position",
                    Kind::Gauge,
                    "Position (negative: short).",
                    position.qty,
                )
                .label("symbol", symbol.clone()),
            );
        }
        for (symbol, position) in &figures.positions {
            out.push(
                Sample::new(
                    "realized_pnl",
                    Kind::Gauge,
                    "Realized profit and loss.",
                    position.realized_pnl,
                )
                .label("symbol", symbol.clone()),
            );
        }
        out.push(Sample::new(
            "last_signal_timestamp_seconds",
            Kind::Gauge,
            "Unix time of the last signal line handled (0: none yet).",
            figures.last_signal.map_or(0.0, |(_, at)| {
                at.duration_since(UNIX_EPOCH)
                    .map_or(0.0, |since| since.as_secs_f64())
            }),
        ));
        out.push(Sample::new(
            "loop_iterations_total",
            Kind::Counter,
            "Completed bot loop iterations.",
            figures.iterations as f64,
        ));
        let fsync = |value: f64| {
            Sample::new(
                "journal_fsync_seconds",
                Kind::Histogram,
                "Journal fsync latency.",
                value,
            )
        };
        for (count, bound) in figures.fsync.buckets.iter().zip(FSYNC_BUCKETS) {
            out.push(
                fsync(*count as f64)
                    .suffix("_bucket")
                    .label("le", bound.to_string()),
            );
        }
        let total = figures.fsync.count as f64;
        out.push(fsync(total).suffix("_bucket").label("le", "+Inf"));
        out.push(fsync(figures.fsync.sum).suffix("_sum"));
        out.push(fsync(total).suffix("_count"));
    }

    fn summary(&self) -> Option<String> {
        let figures = self.lock();
        let last = figures.last_signal.map_or_else(
            || "no signal yet".to_owned(),
            |(at, _)| format!("last signal {}s ago", at.elapsed().as_secs()),
        );
        let duplicates = match figures.duplicates {
            0 => String::new(),
            count => format!(", {count} duplicates"),
        };
        Some(format!(
            "{} signals, {} fills, {} rejected{duplicates}, {last}",
            figures.total(None),
            figures.total(Some(Result::Filled)),
            figures.total(Some(Result::Rejected)),
        ))
    }

    fn health_fields(&self, out: &mut Vec<(&'static str, Option<f64>)>) {
        let age = self
            .lock()
            .last_signal
            .map(|(at, _)| (at.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        out.push(("last_signal_age_seconds", age));
    }
}
