//! The bot's figures. The loop owns a plain [`Figures`] and publishes a
//! copy once per iteration; scrapes read the copy, so the HTTP thread never
//! waits on the loop and the loop takes no lock per signal.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::account::{Position, Summary};
use super::engine::{Book, Engine};
use super::signal::{Reason, Side};
use super::symbols::SymbolSettings;
use crate::metrics::{Kind, MetricsSource, Published, Sample};

/// Upper bounds of the fsync latency buckets, in seconds.
const FSYNC_BUCKETS: [f64; 10] = [
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0,
];

#[derive(Clone, Default)]
pub(crate) struct Histogram {
    buckets: [u64; FSYNC_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    pub(crate) fn observe(&mut self, duration: Duration) {
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
    pub(crate) fn quantile(&self, q: f64) -> Option<f64> {
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

/// What became of a valid signal, as the per-source counters count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tally {
    Filled,
    Rejected,
    Duplicate,
}

impl Tally {
    const ALL: [Tally; 3] = [Tally::Filled, Tally::Rejected, Tally::Duplicate];

    fn label(self) -> &'static str {
        match self {
            Tally::Filled => "filled",
            Tally::Rejected => "rejected",
            Tally::Duplicate => "duplicate",
        }
    }
}

/// Counters indexed, not keyed, where the loop bumps them per signal.
#[derive(Clone, Default)]
pub(crate) struct Figures {
    /// Per configured source (by index): its kind label and a count per [`Tally`].
    pub(crate) signals: Vec<(&'static str, [u64; 3])>,
    /// Per symbol, bounded: see [`SymbolSeries`].
    pub(crate) symbols: SymbolTally,
    /// Every position the engine holds (at most `MAX_SYMBOLS`), exact,
    /// with its mark (`Position::unrealized_pnl` is what closing it there
    /// would realize), for the read API: rebuilt only after an iteration
    /// that filled or moved a mark, and shared, so publishing the figures
    /// copies a pointer, not the map.
    pub(crate) positions: Arc<BTreeMap<String, Position>>,
    /// The account over those positions (cash, equity, realized and
    /// unrealized PnL, fees, the starting balance): computed with them.
    pub(crate) account: Summary,
    /// Price updates that moved a mark.
    pub(crate) price_updates: u64,
    pub(crate) rejects: [u64; Reason::ALL.len()],
    pub(crate) duplicates: u64,
    pub(crate) last_signal: Option<(Instant, SystemTime)>,
    pub(crate) iterations: u64,
    pub(crate) fsync: Histogram,
}

impl Figures {
    pub(crate) fn new(source_kinds: impl IntoIterator<Item = &'static str>) -> Self {
        Figures {
            signals: source_kinds
                .into_iter()
                .map(|kind| (kind, [0; 3]))
                .collect(),
            ..Figures::default()
        }
    }

    pub(crate) fn count(&mut self, source: usize, result: Tally) {
        if let Some((_, counts)) = self.signals.get_mut(source) {
            counts[result as usize] += 1;
        }
    }

    pub(crate) fn total(&self, result: Option<Tally>) -> u64 {
        self.signals
            .iter()
            .flat_map(|(_, counts)| {
                Tally::ALL
                    .into_iter()
                    .filter(move |counted| result.is_none_or(|result| result == *counted))
                    .map(move |counted| counts[counted as usize])
            })
            .sum()
    }
}

/// The label of the series every symbol without one of its own is summed
/// under. A symbol of that name never gets a series of its own (two series
/// with one label set would make the exposition invalid): it is summed
/// there too.
const OTHER: &str = "other";

/// Which symbols have series of their own (`symbol="BTC"`), at most
/// `METRICS_MAX_SYMBOLS` of them; every other symbol is summed under
/// `symbol="other"`. So `/metrics` has at most 5 × (`METRICS_MAX_SYMBOLS`
/// + 1) per-symbol series however many symbols the feed brings.
///
/// The slots go to the `SYMBOLS` allowlist first (in its order), then,
/// while any are free, to the symbols with the most fills (the journal's
/// included, so a restart picks the busiest of its history), as they
/// trade. A symbol keeps its slot for the life of the process: were the
/// set to change, a symbol moving into `other` would make that counter
/// jump and one moving out would make it go backwards, which Prometheus
/// reads as a reset.
pub(crate) struct SymbolSeries {
    max: usize,
    slots: HashMap<Arc<str>, usize>,
    names: Vec<Arc<str>>,
}

/// The per-symbol figures as published: one row per symbol with a series
/// of its own that the engine holds, and the sum of the rest.
#[derive(Clone, Default)]
pub(crate) struct SymbolTally {
    named: Vec<(Arc<str>, Row)>,
    other: Option<Row>,
}

/// A Prometheus sample is a float (the format's): the exact figures are
/// the read API's.
#[derive(Clone, Copy, Default)]
struct Row {
    /// This process's fills by side (buy, sell): counters start at zero.
    fills: [u64; 2],
    qty: f64,
    realized_pnl: f64,
    unrealized_pnl: f64,
}

impl Row {
    fn add(&mut self, book: &Book) {
        let position = &book.position;
        self.fills[0] += book.fills[0];
        self.fills[1] += book.fills[1];
        self.qty += position.qty.to_f64();
        self.realized_pnl += position.realized_pnl.to_f64();
        self.unrealized_pnl += position.unrealized_pnl().map_or(0.0, |pnl| pnl.to_f64());
    }
}

impl SymbolSeries {
    pub(crate) fn new(settings: &SymbolSettings) -> Self {
        let mut series = SymbolSeries {
            max: settings.metrics_max_symbols,
            slots: HashMap::new(),
            names: Vec::new(),
        };
        for symbol in settings.allowlist.iter().flatten() {
            series.assign(symbol);
        }
        series
    }

    fn assign(&mut self, symbol: &str) {
        if self.names.len() < self.max && symbol != OTHER && !self.slots.contains_key(symbol) {
            let name: Arc<str> = Arc::from(symbol);
            self.slots.insert(Arc::clone(&name), self.names.len());
            self.names.push(name);
        }
    }

    /// The engine's symbols, each in its own row or summed under `other`.
    /// A walk over every symbol held (at most `MAX_SYMBOLS`), after each
    /// iteration that filled something or moved a mark.
    pub(crate) fn tally(&mut self, engine: &Engine) -> SymbolTally {
        if self.names.len() < self.max {
            let mut candidates: Vec<(&str, u64)> = engine
                .books()
                .filter(|(symbol, _)| !self.slots.contains_key(*symbol))
                .map(|(symbol, book)| (symbol, book.filled))
                .collect();
            candidates.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            for (symbol, _) in candidates {
                self.assign(symbol);
            }
        }
        let mut rows: Vec<Option<Row>> = vec![None; self.names.len()];
        let mut other: Option<Row> = None;
        for (symbol, book) in engine.books() {
            let row = match self.slots.get(symbol).and_then(|slot| rows.get_mut(*slot)) {
                Some(row) => row,
                None => &mut other,
            };
            row.get_or_insert_with(Row::default).add(book);
        }
        SymbolTally {
            named: self
                .names
                .iter()
                .zip(rows)
                .filter_map(|(name, row)| Some((Arc::clone(name), row?)))
                .collect(),
            other,
        }
    }
}

impl SymbolTally {
    /// Every series' label and row, named ones by name, `other` last.
    fn rows(&self) -> Vec<(&str, Row)> {
        let mut rows: Vec<(&str, Row)> = self
            .named
            .iter()
            .map(|(name, row)| (&**name, *row))
            .collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(b.0));
        rows.extend(self.other.map(|row| (OTHER, row)));
        rows
    }
}

/// The figures as last published, once per loop iteration.
#[derive(Default)]
pub(crate) struct BotMetrics(Published<Figures>);

impl BotMetrics {
    pub(crate) fn new() -> Arc<Self> {
        Arc::default()
    }

    pub(crate) fn publish(&self, figures: &Figures) {
        self.0.publish(figures.clone());
    }

    /// The figures last published (for the read API).
    pub(crate) fn get(&self) -> Arc<Figures> {
        self.0.get()
    }
}

impl MetricsSource for BotMetrics {
    fn samples(&self, out: &mut Vec<Sample>) {
        let figures = self.get();
        // Two sources of one kind share a series: labels must not repeat.
        let mut by_kind: BTreeMap<(&'static str, &'static str), u64> = BTreeMap::new();
        for (kind, counts) in &figures.signals {
            for result in Tally::ALL {
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
        let symbols = figures.symbols.rows();
        for (symbol, row) in &symbols {
            for side in [Side::Buy, Side::Sell] {
                out.push(
                    Sample::new(
                        "fills_total",
                        Kind::Counter,
                        "Paper fills.",
                        row.fills[side as usize] as f64,
                    )
                    .label("symbol", *symbol)
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
        for (symbol, row) in &symbols {
            out.push(
                Sample::new(
                    "position",
                    Kind::Gauge,
                    "Position (negative: short).",
                    row.qty,
                )
                .label("symbol", *symbol),
            );
        }
        for (symbol, row) in &symbols {
            out.push(
                Sample::new(
                    "realized_pnl",
                    Kind::Gauge,
                    "Realized profit and loss (before fees).",
                    row.realized_pnl,
                )
                .label("symbol", *symbol),
            );
        }
        for (symbol, row) in &symbols {
            out.push(
                Sample::new(
                    "unrealized_pnl",
                    Kind::Gauge,
                    "What closing the position at its mark would realize (before fees).",
                    row.unrealized_pnl,
                )
                .label("symbol", *symbol),
            );
        }
        let account = &figures.account;
        out.push(Sample::new(
            "cash",
            Kind::Gauge,
            "Paper cash: PAPER_BALANCE (or 0) and every fill's cash flow and fee.",
            account.cash.to_f64(),
        ));
        out.push(Sample::new(
            "equity",
            Kind::Gauge,
            "Cash plus every position at its mark.",
            account.equity.to_f64(),
        ));
        out.push(Sample::new(
            "fees_total",
            Kind::Counter,
            "Fees charged on fills (FEE_BPS), the journal's included.",
            account.fees.to_f64(),
        ));
        out.push(Sample::new(
            "price_updates_total",
            Kind::Counter,
            "Price updates that moved a symbol's mark (not journaled).",
            figures.price_updates as f64,
        ));
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
        let figures = self.get();
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
            figures.total(Some(Tally::Filled)),
            figures.total(Some(Tally::Rejected)),
        ))
    }

    fn health_fields(&self, out: &mut Vec<(&'static str, Option<f64>)>) {
        let age = self
            .get()
            .last_signal
            .map(|(at, _)| (at.elapsed().as_secs_f64() * 1000.0).round() / 1000.0);
        out.push(("last_signal_age_seconds", age));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::account::Terms;
    use crate::bot::engine::PaperExecution;
    use crate::bot::money::{Price, Quantity};
    use crate::bot::signal::Signal;

    fn engine(max_symbols: u32) -> Engine {
        Engine::new(Terms::default(), Box::new(PaperExecution))
            .with_symbols(&SymbolSettings::new(&[], max_symbols, 0).unwrap())
    }

    fn fill(engine: &mut Engine, id: usize, symbol: &str) {
        let signal = Signal {
            id: id.to_string().into(),
            ts_ms: 0,
            symbol: symbol.into(),
            side: if id % 3 == 0 { Side::Sell } else { Side::Buy },
            qty: Quantity::from_int(1).unwrap(),
            price: Some(Price::from_int(10 + (id % 7) as i64).unwrap()),
            source: None,
        };
        engine.decide(&signal, 0).unwrap();
    }

    fn series(metrics_max_symbols: u32, allowlist: &[&str]) -> SymbolSeries {
        let list: Vec<String> = allowlist
            .iter()
            .map(|symbol| (*symbol).to_owned())
            .collect();
        SymbolSeries::new(&SymbolSettings::new(&list, 100_000, metrics_max_symbols).unwrap())
    }

    fn labels(tally: &SymbolTally) -> Vec<String> {
        tally
            .rows()
            .into_iter()
            .map(|(label, _)| label.to_owned())
            .collect()
    }

    #[test]
    fn series_are_bounded_and_other_carries_the_rest() {
        let mut engine = engine(100_000);
        let mut series = series(100, &[]);
        for id in 0..100_000 {
            fill(&mut engine, id, &format!("SYM{id}"));
        }
        let figures = Figures {
            symbols: series.tally(&engine),
            ..Figures::new(["file"])
        };
        let metrics = BotMetrics::new();
        metrics.publish(&figures);
        let mut samples = Vec::new();
        metrics.samples(&mut samples);
        let by_symbol: Vec<&Sample> = samples
            .iter()
            .filter(|sample| sample.labels.iter().any(|(name, _)| *name == "symbol"))
            .collect();
        assert_eq!(by_symbol.len(), 5 * 101);
        // Every fill is in exactly one series.
        let fills: f64 = by_symbol
            .iter()
            .filter(|sample| sample.family == "fills_total")
            .map(|sample| sample.value)
            .sum();
        assert_eq!(fills, 100_000.0);
        let positions: f64 = by_symbol
            .iter()
            .filter(|sample| sample.family == "position")
            .map(|sample| sample.value)
            .sum();
        let held: f64 = engine
            .positions()
            .values()
            .map(|position| position.qty.to_f64())
            .sum();
        assert_eq!(positions, held);
    }

    #[test]
    fn the_busiest_get_slots_and_keep_them() {
        let mut engine = engine(1_000);
        for (id, symbol) in ["A", "B", "B", "C", "C", "C"].into_iter().enumerate() {
            fill(&mut engine, id, symbol);
        }
        let mut series = series(2, &[]);
        assert_eq!(labels(&series.tally(&engine)), ["B", "C", "other"]);
        // A overtakes both, but the slots stay where they are: a counter
        // must never move out of (or into) `other`.
        for id in 10..20 {
            fill(&mut engine, id, "A");
        }
        let tally = series.tally(&engine);
        assert_eq!(labels(&tally), ["B", "C", "other"]);
        assert_eq!(tally.other.unwrap().fills.iter().sum::<u64>(), 11);
    }

    #[test]
    fn the_allowlist_comes_first_and_other_is_never_a_symbol_of_its_own() {
        let mut engine = engine(1_000);
        for (id, symbol) in ["other", "Z", "Z", "A"].into_iter().enumerate() {
            fill(&mut engine, id, symbol);
        }
        let mut series = series(2, &["A", "other", "B"]);
        let tally = series.tally(&engine);
        // A and B are listed first (B without a book yet, so without a row);
        // Z found no slot free.
        assert_eq!(labels(&tally), ["A", "other"]);
        assert_eq!(tally.other.unwrap().fills.iter().sum::<u64>(), 3);
    }
}
