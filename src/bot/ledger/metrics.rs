//! The ledger's figures: what it keeps on disk and in memory, how fresh
//! its snapshot is, and what the last recovery cost. Published once per
//! loop iteration as a value of its own (the HTTP thread never waits on
//! the loop).

use std::sync::Arc;
use std::time::SystemTime;

use crate::metrics::{Kind, MetricsSource, Published, Sample};

#[derive(Clone, Debug, Default)]
pub(crate) struct Figures {
    pub(crate) segments: u64,
    pub(crate) segment_bytes: u64,
    pub(crate) window_ids: u64,
    pub(crate) last_seq: u64,
    /// When the newest snapshot (written, or recovered from) was taken.
    pub(crate) snapshot_at: Option<SystemTime>,
    pub(crate) snapshot_bytes: u64,
    pub(crate) snapshot_failures: u64,
    pub(crate) fsync_failures: u64,
    pub(crate) recovery_seconds: f64,
    pub(crate) recovery_records: u64,
}

#[derive(Default)]
pub(crate) struct LedgerMetrics(Published<Figures>);

impl LedgerMetrics {
    pub(crate) fn publish(&self, figures: &Figures) {
        self.0.publish(figures.clone());
    }

    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }
}

impl MetricsSource for LedgerMetrics {
    fn samples(&self, out: &mut Vec<Sample>) {
        let figures = self.0.get();
        let gauge = |name, help, value: u64| Sample::new(name, Kind::Gauge, help, value as f64);
        out.push(gauge(
            "journal_segments",
            "Journal segment files on disk.",
            figures.segments,
        ));
        out.push(gauge(
            "journal_bytes",
            "Bytes of the journal segments on disk.",
            figures.segment_bytes,
        ));
        out.push(gauge(
            "journal_last_seq",
            "Sequence number of the last journal record.",
            figures.last_seq,
        ));
        out.push(Sample::new(
            "journal_fsync_failures_total",
            Kind::Counter,
            "Failed journal fsyncs (each followed by a cut and a rewrite).",
            figures.fsync_failures as f64,
        ));
        out.push(gauge(
            "dedupe_window_ids",
            "Signal ids in the exactly-once window.",
            figures.window_ids,
        ));
        if let Some(at) = figures.snapshot_at {
            let age = SystemTime::now()
                .duration_since(at)
                .map_or(0.0, |age| age.as_secs_f64());
            out.push(Sample::new(
                "snapshot_age_seconds",
                Kind::Gauge,
                "Age of the newest snapshot (written, or recovered from).",
                age,
            ));
        }
        out.push(gauge(
            "snapshot_bytes",
            "Size of the newest snapshot written by this process.",
            figures.snapshot_bytes,
        ));
        out.push(Sample::new(
            "snapshot_failures_total",
            Kind::Counter,
            "Snapshots that could not be written.",
            figures.snapshot_failures as f64,
        ));
        out.push(Sample::new(
            "recovery_seconds",
            Kind::Gauge,
            "How long the last start took to recover the ledger.",
            figures.recovery_seconds,
        ));
        out.push(gauge(
            "recovery_records",
            "Journal records the last start replayed.",
            figures.recovery_records,
        ));
    }
}
