//! `tradingbot journal`: questions about the journal of a state directory,
//! answered read-only and without its lock, so safe while the daemon runs
//! (a last line still being written is not read). Tables for people,
//! `--json` for one JSON object a line.
//!
//! The replays here are the daemon's: the same [`State::apply`] and the
//! same engine arithmetic, from the first record or, when retention has
//! deleted the start of the journal, from the oldest snapshot that checks.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::json;
use time::format_description::well_known::Rfc3339;

use super::journal::JournalError;
use super::reader::{Mode, Scan};
use super::record::Record;
use super::snapshot::{self, Header};
use super::window::{self, Window};
use super::{fill_of, restore_engine, segments, settings, took_id, State};
use crate::bot::account::{Position, Terms};
use crate::bot::engine::{Engine, Held, PaperExecution};
use crate::bot::money::{Amount, Overflow, Price, Quantity, Ratio, Rounding};
use crate::bot::report::{self, Report, RoundTrip, Summary};
use crate::bot::signal::{now_ms, Side};

/// What `tradingbot journal` was asked, validated by `cli`.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) state_dir: PathBuf,
    pub(crate) json: bool,
    pub(crate) query: Query,
}

#[derive(Debug, Clone)]
pub(crate) enum Query {
    /// Fills whose `at` is in `[since, until)`, of one symbol or all.
    Fills {
        since: Option<i64>,
        until: Option<i64>,
        symbol: Option<String>,
    },
    Rejects {
        since: Option<i64>,
        until: Option<i64>,
        reason: Option<String>,
    },
    Positions,
    Pnl {
        by_day: bool,
    },
    /// The trade report over the round trips that closed in the window.
    Report(report::Window),
    Verify {
        /// The window of the records no snapshot records one for.
        dedupe_window: Option<Duration>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot write the answer: {0}")]
    Output(#[from] io::Error),
    #[error("the fill at seq {seq} takes the figures past what a value holds")]
    Beyond { seq: u64 },
}

/// Answers `request` on `out`. False when it found a problem (`verify`, or
/// positions that differ from the snapshot), which it names on `out`.
pub(crate) fn run(request: &Request, out: &mut dyn Write) -> Result<bool, QueryError> {
    let mut out = io::BufWriter::new(out);
    let answer = match &request.query {
        Query::Fills {
            since,
            until,
            symbol,
        } => fills(request, *since, *until, symbol.as_deref(), &mut out).map(|()| true),
        Query::Rejects {
            since,
            until,
            reason,
        } => rejects(request, *since, *until, reason.as_deref(), &mut out).map(|()| true),
        Query::Positions => positions(request, &mut out),
        Query::Pnl { by_day } => pnl(request, *by_day, &mut out).map(|()| true),
        Query::Report(window) => trade_report(request, window, &mut out).map(|()| true),
        Query::Verify { dedupe_window } => verify(request, *dedupe_window, &mut out),
    };
    let flushed = out.flush().map_err(QueryError::from);
    answer.and_then(|ok| flushed.map(|()| ok))
}

fn list_error(state_dir: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        what: "cannot list the journal in",
        path: state_dir.to_owned(),
        source,
    }
}

/// Every record from the first one kept, for the listings.
fn each_record(
    state_dir: &Path,
    mut visit: impl FnMut(u64, &Record<'_>) -> io::Result<()>,
) -> Result<(), QueryError> {
    let segments = segments::list(state_dir).map_err(list_error(state_dir))?;
    let mut scan = Scan::new(segments, Mode::Lenient);
    while let Some((seq, record)) = scan.record()? {
        visit(seq, &record)?;
    }
    Ok(())
}

/// What [`instant`] takes, for the errors of those who call it.
pub(crate) const INSTANT_FORMS: &str =
    "an RFC 3339 time, epoch milliseconds, or a duration ago like 2h";

/// An instant as epoch milliseconds: RFC 3339, epoch ms, or a duration
/// ago (`2h`, `7d`), as `--since` and the read API's `?since=` take it.
pub(crate) fn instant(text: &str) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok((at.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let ago = humantime::parse_duration(text).map_err(|_| format!("expected {INSTANT_FORMS}"))?;
    Ok(now_ms().saturating_sub(settings::millis(ago)).max(0))
}

fn within(at: i64, since: Option<i64>, until: Option<i64>) -> bool {
    since.is_none_or(|since| at >= since) && until.is_none_or(|until| at < until)
}

fn time(ms: i64) -> String {
    super::format_ms(ms)
}

/// A fill record as every JSON output shows it: the read API's items, the
/// stream's messages (with `type`), `tradingbot journal fills --json`.
/// Amounts are exact decimals as strings; `asked` and `fee` are always
/// there (the journal leaves them out when equal to `price` and zero).
#[derive(Serialize)]
pub(crate) struct FillItem<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<&'static str>,
    seq: u64,
    id: &'a str,
    /// The signal's own time, epoch milliseconds.
    ts: i64,
    /// When it filled, epoch milliseconds.
    at: i64,
    symbol: &'a str,
    side: Side,
    qty: Quantity,
    /// What it filled at: `asked`, slipped.
    price: Price,
    asked: Price,
    fee: Amount,
    src: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
}

impl<'a> FillItem<'a> {
    /// The item of record `seq`, if it is a fill.
    pub(crate) fn of(seq: u64, record: &'a Record<'_>) -> Option<FillItem<'a>> {
        let (id, symbol, fill) = fill_of(record)?;
        let Record::Fill {
            src, ts, source, ..
        } = record
        else {
            return None;
        };
        Some(FillItem {
            kind: None,
            seq,
            id,
            ts: *ts,
            at: fill.at_ms,
            symbol,
            side: fill.side,
            qty: fill.qty,
            price: fill.price,
            asked: fill.asked,
            fee: fill.fee,
            src,
            source: source.as_deref(),
        })
    }
}

fn fills(
    request: &Request,
    since: Option<i64>,
    until: Option<i64>,
    wanted: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    if !request.json {
        writeln!(
            out,
            "{:>8}  {:<24}  {:<24}  {:<10}  {:<4}  {:>12}  {:>14}  {:>12}  SRC",
            "SEQ", "AT (UTC)", "ID", "SYMBOL", "SIDE", "QTY", "PRICE", "FEE"
        )?;
    }
    each_record(&request.state_dir, |seq, record| {
        let Some(fill) = FillItem::of(seq, record) else {
            return Ok(());
        };
        if !within(fill.at, since, until) || wanted.is_some_and(|wanted| wanted != fill.symbol) {
            return Ok(());
        }
        if request.json {
            let line = serde_json::to_string(&fill).map_err(io::Error::other)?;
            writeln!(out, "{line}")
        } else {
            writeln!(
                out,
                "{seq:>8}  {:<24}  {:<24}  {:<10}  {:<4}  {:>12}  {:>14}  {:>12}  {}",
                time(fill.at),
                fill.id,
                fill.symbol,
                fill.side.as_str(),
                fill.qty,
                fill.price,
                fill.fee,
                fill.src
            )
        }
    })
}

fn rejects(
    request: &Request,
    since: Option<i64>,
    until: Option<i64>,
    wanted: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    if !request.json {
        writeln!(
            out,
            "{:>8}  {:<24}  {:<24}  {:<22}  DETAIL",
            "SEQ", "AT (UTC)", "ID", "REASON"
        )?;
    }
    each_record(&request.state_dir, |seq, record| {
        let Record::Reject {
            id,
            src,
            ts,
            at,
            reason,
            detail,
            line,
        } = record
        else {
            return Ok(());
        };
        if !within(*at, since, until) || wanted.is_some_and(|wanted| wanted != reason) {
            return Ok(());
        }
        if request.json {
            let mut item = json!({
                "seq": seq, "id": id, "at": at, "reason": reason, "detail": detail,
                "src": src, "line": line,
            });
            if let Some(ts) = ts {
                item["ts"] = json!(ts);
            }
            writeln!(out, "{item}")
        } else {
            writeln!(
                out,
                "{seq:>8}  {:<24}  {:<24}  {reason:<22}  {detail}",
                time(*at),
                id.as_deref().unwrap_or("-")
            )
        }
    })
}

/// A replay of the journal: the daemon's state record by record.
struct Replay {
    state: State,
    engine: Engine,
    /// The snapshot it started from, when the journal's start is gone.
    from: Option<Header>,
}

impl Replay {
    fn new(dedupe_window: Duration) -> Replay {
        Replay {
            state: State::new(dedupe_window),
            engine: Engine::new(Terms::default(), Box::new(PaperExecution)),
            from: None,
        }
    }

    fn apply(&mut self, record: &Record<'_>) {
        super::replay(record, &mut self.state, &mut self.engine);
    }

    /// Takes the state of `loaded`.
    fn restore(&mut self, loaded: &snapshot::Loaded) -> Result<(), String> {
        self.state.restore(loaded, i64::MIN)?;
        restore_engine(&loaded.header, &mut self.engine)?;
        self.from = Some(loaded.header.clone());
        Ok(())
    }

    /// Takes the window of `loaded`, and the DEDUPE_WINDOW it records.
    fn take_window(&mut self, loaded: &snapshot::Loaded, span: Duration) -> Result<(), String> {
        let mut window = Window::new(settings::millis(span));
        window.load(
            &loaded.window,
            loaded.header.window_ids,
            loaded.header.clock,
        )?;
        self.state.window = window;
        Ok(())
    }

    /// How the replayed positions differ from what `header` holds.
    fn position_differences(&self, header: &Header) -> Vec<String> {
        let mut found = Vec::new();
        let positions = self.engine.positions();
        for symbol in positions.keys().chain(header.positions.keys()) {
            let (replayed, held) = (positions.get(symbol), header.positions.get(symbol));
            if replayed != held && !found.iter().any(|line: &String| line.contains(symbol)) {
                found.push(format!(
                    "{symbol}: replayed {} but the snapshot has {}",
                    describe(replayed),
                    describe(held)
                ));
            }
        }
        found
    }

    /// How the rest of the replayed state but the window differs.
    fn state_differences(&self, header: &Header) -> Vec<String> {
        let mut found = Vec::new();
        if self.engine.symbol_fills() != header.symbol_fills {
            found.push("the fill counts by symbol differ".into());
        }
        if self.state.checkpoints != header.checkpoints {
            found.push("the sources' checkpoints differ".into());
        }
        if self.state.totals != header.totals {
            found.push(format!(
                "the totals differ: replayed {:?}, snapshot {:?}",
                self.state.totals, header.totals
            ));
        }
        found
    }

    /// How the replayed window differs from a snapshot's (`header` and
    /// its records).
    fn window_difference(&self, header: &Header, window: &[u8]) -> Option<String> {
        let mut replayed = Vec::new();
        let view = self.state.window.view();
        let _ = view.write_to(&mut replayed);
        (replayed != window || view.clock_ms != header.clock).then(|| {
            format!(
                "the exactly-once window differs: replayed {} ids, the snapshot {}",
                view.ids, header.window_ids
            )
        })
    }
}

fn describe(position: Option<&Position>) -> String {
    position.map_or_else(
        || "nothing".into(),
        |position| {
            format!(
                "qty {} avg {} realized {} cost {}",
                position.qty,
                position.avg_price(),
                position.realized_pnl,
                position.cost
            )
        },
    )
}

/// The newest snapshot's header and window, if one passes its checks.
fn newest_snapshot(state_dir: &Path) -> Option<snapshot::Loaded> {
    snapshot::list(state_dir)
        .ok()?
        .iter()
        .find_map(|(_, path)| checked(state_dir, path).ok())
}

fn checked(state_dir: &Path, path: &Path) -> Result<snapshot::Loaded, String> {
    let loaded = snapshot::read(path)?;
    snapshot::matches_journal(state_dir, &loaded.header)?;
    Ok(loaded)
}

/// A replay from the first record, or from the oldest snapshot that checks
/// when the journal's first segments are gone; and a scan from there.
fn start(state_dir: &Path, dedupe_window: Duration) -> Result<(Replay, Scan), QueryError> {
    let segments = segments::list(state_dir).map_err(list_error(state_dir))?;
    let mut replay = Replay::new(dedupe_window);
    let Some(first) = segments.first().filter(|first| first.first_seq > 1) else {
        return Ok((replay, Scan::new(segments, Mode::Lenient)));
    };
    let mut snapshots = snapshot::list(state_dir).map_err(list_error(state_dir))?;
    snapshots.reverse();
    let loaded = snapshots
        .iter()
        .find_map(|(_, path)| checked(state_dir, path).ok())
        .ok_or_else(|| JournalError::Corrupt {
            path: first.path.clone(),
            line: 0,
            detail: format!(
                "the journal starts at seq {} and no snapshot checks, so nothing can be replayed",
                first.first_seq
            ),
        })?;
    replay
        .restore(&loaded)
        .map_err(|detail| JournalError::Corrupt {
            path: loaded.path.clone(),
            line: 0,
            detail,
        })?;
    let scan = Scan::from(segments, loaded.header.position(), Mode::Lenient)?;
    Ok((replay, scan))
}

fn positions(request: &Request, out: &mut dyn Write) -> Result<bool, QueryError> {
    let state_dir = &request.state_dir;
    let newest = newest_snapshot(state_dir);
    let (mut replay, mut scan) = start(state_dir, Duration::MAX)?;
    let mut compared: Option<Vec<String>> = None;
    let mut compare = |replay: &Replay, seq: u64| {
        if let Some(newest) = newest.as_ref().filter(|newest| newest.header.seq == seq) {
            compared = Some(replay.position_differences(&newest.header));
        }
    };
    compare(&replay, scan.seq());
    while let Some((seq, record)) = scan.record()? {
        replay.apply(&record);
        compare(&replay, seq);
    }
    let last_seq = scan.seq();
    let positions = replay.engine.positions();
    if request.json {
        for (symbol, position) in &positions {
            let held = Held::of(symbol, position);
            let mut line = serde_json::to_value(held).map_err(io::Error::other)?;
            line["seq"] = json!(last_seq);
            writeln!(out, "{line}")?;
        }
    } else {
        writeln!(
            out,
            "{:<12}  {:>14}  {:>14}  {:>14}  {:>16}  {:>16}  {:>12}  {:>16}",
            "SYMBOL", "QTY", "AVG PRICE", "MARK", "UNREALIZED PNL", "REALIZED PNL", "FEES", "COST"
        )?;
        for (symbol, position) in &positions {
            writeln!(
                out,
                "{symbol:<12}  {:>14}  {:>14}  {:>14}  {:>16}  {:>16}  {:>12}  {:>16}",
                position.qty,
                position.avg_price(),
                or_dash(position.mark),
                or_dash(position.unrealized_pnl().ok()),
                position.realized_pnl,
                position.fees,
                position.cost
            )?;
        }
        writeln!(out, "replayed up to seq {last_seq}")?;
    }
    let (verdict, ok) = match (&newest, compared) {
        (None, _) => ("no snapshot to compare with".to_owned(), true),
        (Some(newest), None) => (
            format!(
                "snapshot seq {} is beyond the journal read (seq {last_seq})",
                newest.header.seq
            ),
            false,
        ),
        (Some(newest), Some(differences)) if differences.is_empty() => (
            format!(
                "snapshot seq {} (written {}) matches the replay",
                newest.header.seq, newest.header.written_at
            ),
            true,
        ),
        (Some(newest), Some(differences)) => (
            format!(
                "snapshot seq {} DIFFERS from the replay: {}",
                newest.header.seq,
                differences.join("; ")
            ),
            false,
        ),
    };
    if request.json {
        writeln!(out, "{}", json!({ "snapshot": verdict, "matches": ok }))?;
    } else {
        writeln!(out, "{verdict}")?;
    }
    Ok(ok)
}

/// Realized PnL, fills, fees and volume over a day or a symbol, exact.
#[derive(Default)]
struct Tally {
    /// Before fees.
    realized: Amount,
    fills: u64,
    fees: Amount,
    volume: Amount,
}

impl Tally {
    fn add(&mut self, other: &Tally) -> Result<(), Overflow> {
        self.realized = self.realized.checked_add(other.realized)?;
        self.fills += other.fills;
        self.fees = self.fees.checked_add(other.fees)?;
        self.volume = self.volume.checked_add(other.volume)?;
        Ok(())
    }
}

fn pnl(request: &Request, by_day: bool, out: &mut dyn Write) -> Result<(), QueryError> {
    let (mut replay, mut scan) = start(&request.state_dir, Duration::MAX)?;
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let before = match replay.from.as_ref() {
        Some(header) => {
            let mut realized = Amount::ZERO;
            for position in header.positions.values() {
                realized = realized
                    .checked_add(position.realized_pnl)
                    .map_err(|_| QueryError::Beyond { seq: header.seq })?;
            }
            Some((format!("before seq {}", header.seq + 1), realized))
        }
        None => None,
    };
    if let (true, Some((label, realized))) = (by_day, &before) {
        tallies.entry(label.clone()).or_default().realized = *realized;
    }
    while let Some((seq, record)) = scan.record()? {
        let Some((_, symbol, fill)) = fill_of(&record) else {
            replay.apply(&record);
            continue;
        };
        let realized = |replay: &Replay| {
            replay
                .engine
                .position(symbol)
                .map_or(Amount::ZERO, |held| held.realized_pnl)
        };
        let was = realized(&replay);
        replay.apply(&record);
        let key = if by_day {
            day(fill.at_ms)
        } else {
            symbol.to_owned()
        };
        let beyond = |_: Overflow| QueryError::Beyond { seq };
        let moved = Tally {
            realized: realized(&replay).checked_sub(was).map_err(beyond)?,
            fills: 1,
            fees: fill.fee,
            volume: fill.qty.times(fill.price).map_err(beyond)?,
        };
        tallies
            .entry(key)
            .or_default()
            .add(&moved)
            .map_err(beyond)?;
    }
    if !by_day {
        // Lifetime realized PnL per symbol, those not traded since included.
        for (symbol, held) in replay.engine.positions() {
            tallies.entry(symbol).or_default().realized = held.realized_pnl;
        }
    }
    let label = if by_day { "DAY (UTC)" } else { "SYMBOL" };
    if !request.json {
        writeln!(
            out,
            "{label:<20}  {:>18}  {:>8}  {:>14}  {:>18}",
            "REALIZED PNL", "FILLS", "FEES", "VOLUME"
        )?;
    }
    let mut total = Tally::default();
    for (key, tally) in &tallies {
        total
            .add(tally)
            .map_err(|_| QueryError::Beyond { seq: scan.seq() })?;
        if request.json {
            let key_name = if by_day { "day" } else { "symbol" };
            writeln!(
                out,
                "{}",
                json!({ key_name: key, "realized_pnl": tally.realized, "fills": tally.fills,
                        "fees": tally.fees, "volume": tally.volume })
            )?;
        } else {
            writeln!(
                out,
                "{key:<20}  {:>18}  {:>8}  {:>14}  {:>18}",
                tally.realized, tally.fills, tally.fees, tally.volume
            )?;
        }
    }
    if !request.json {
        writeln!(
            out,
            "{:<20}  {:>18}  {:>8}  {:>14}  {:>18}",
            "total", total.realized, total.fills, total.fees, total.volume
        )?;
        if let Some((label, _)) = before {
            writeln!(
                out,
                "(fills, fees and volume counted from the oldest snapshot on: {label} was deleted by retention)"
            )?;
        }
    }
    Ok(())
}

/// The trade report as the read API and `tradingbot journal report
/// --json` give it: the window, how far the journal was read, and the
/// report.
#[derive(Debug, Serialize)]
pub(crate) struct ReportDocument {
    #[serde(flatten)]
    pub(crate) window: report::Window,
    /// The last record read.
    pub(crate) last_seq: u64,
    /// Set when retention deleted the journal's start: the round trips
    /// open at this snapshot's seq are taken from its positions, as opened
    /// then, without the fees paid before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) carried_from_seq: Option<u64>,
    #[serde(flatten)]
    pub(crate) report: Report,
}

/// The trade report over the fills of the journal in `state_dir` up to
/// `up_to` (the API reads only what is durable), from the first record
/// or, when retention deleted the journal's start, from the positions of
/// the oldest snapshot that checks.
pub(crate) fn report_of(
    state_dir: &Path,
    window: report::Window,
    up_to: u64,
) -> Result<ReportDocument, QueryError> {
    let (replay, mut scan) = start(state_dir, Duration::MAX)?;
    let mut builder = report::Builder::new(window.clone(), Rounding::DEFAULT);
    if let Some(header) = &replay.from {
        for (symbol, position) in &header.positions {
            builder
                .carry(symbol, position, header.clock)
                .map_err(|_| QueryError::Beyond { seq: header.seq })?;
        }
    }
    let mut last_seq = scan.seq();
    while let Some((seq, record)) = scan.record()? {
        if seq > up_to {
            break;
        }
        last_seq = seq;
        if let Some((_, symbol, fill)) = fill_of(&record) {
            builder
                .fill(symbol, &fill)
                .map_err(|_| QueryError::Beyond { seq })?;
        }
    }
    let report = builder
        .finish()
        .map_err(|_| QueryError::Beyond { seq: last_seq })?;
    Ok(ReportDocument {
        window,
        last_seq,
        carried_from_seq: replay.from.map(|header| header.seq),
        report,
    })
}

fn trade_report(
    request: &Request,
    window: &report::Window,
    out: &mut dyn Write,
) -> Result<(), QueryError> {
    let document = report_of(&request.state_dir, window.clone(), u64::MAX)?;
    if request.json {
        let line = serde_json::to_string(&document).map_err(io::Error::other)?;
        writeln!(out, "{line}")?;
        return Ok(());
    }
    let report = &document.report;
    writeln!(
        out,
        "{:<12}  {:>6}  {:>8}  {:>13}  {:>14}  {:>14}  {:>14}  {:>14}  {:>12}  {:>16}",
        "SYMBOL",
        "TRADES",
        "WIN RATE",
        "PROFIT FACTOR",
        "AVG WIN",
        "AVG LOSS",
        "LARGEST LOSS",
        "MAX DRAWDOWN",
        "FEES",
        "PNL NET OF FEES"
    )?;
    for (symbol, summary) in &report.by_symbol {
        summary_row(out, symbol, summary)?;
    }
    summary_row(out, "total", &report.total)?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<12}  {:<9}  {:<24}  {:<24}  {:>12}  {:>14}  {:>14}  {:>14}  {:>16}",
        "SYMBOL",
        "DIRECTION",
        "OPENED (UTC)",
        "CLOSED (UTC)",
        "DURATION",
        "QTY",
        "ENTRY PRICE",
        "EXIT PRICE",
        "PNL NET OF FEES"
    )?;
    for trip in &report.round_trips {
        round_trip_row(out, trip)?;
    }
    if report.round_trips.is_empty() {
        writeln!(out, "no round trip closed in the window")?;
    }
    for open in &report.open {
        writeln!(
            out,
            "open: {} {} {} since {}, entry {}, mark {}, {} net of fees if closed at the mark",
            open.symbol,
            open.direction.as_str(),
            open.qty,
            time(open.opened_ms),
            open.entry_price,
            open.mark,
            open.pnl
        )?;
    }
    writeln!(out, "read up to seq {}", document.last_seq)?;
    if let Some(seq) = document.carried_from_seq {
        writeln!(
            out,
            "(the journal before seq {} was deleted by retention: positions held then open their round trips at snapshot seq {seq}, without the fees paid before)",
            seq + 1
        )?;
    }
    Ok(())
}

/// A figure a table shows, or a dash where there is none.
fn or_dash(figure: Option<impl std::fmt::Display>) -> String {
    figure.map_or_else(|| "-".into(), |figure| figure.to_string())
}

fn summary_row(out: &mut dyn Write, label: &str, summary: &Summary) -> io::Result<()> {
    let percent = Rounding::new(2).unwrap_or_default();
    let win_rate = (summary.trades > 0)
        .then(|| Ratio::of(summary.wins.saturating_mul(100), summary.trades, percent).ok())
        .flatten()
        .map(|rate| format!("{rate}%"));
    writeln!(
        out,
        "{label:<12}  {:>6}  {:>8}  {:>13}  {:>14}  {:>14}  {:>14}  {:>14}  {:>12}  {:>16}",
        summary.trades,
        or_dash(win_rate),
        or_dash(summary.profit_factor),
        or_dash(summary.avg_win),
        or_dash(summary.avg_loss),
        or_dash(summary.largest_loss),
        summary.max_drawdown,
        summary.fees,
        summary.pnl
    )
}

fn round_trip_row(out: &mut dyn Write, trip: &RoundTrip) -> io::Result<()> {
    let duration = Duration::from_millis(u64::try_from(trip.duration_ms()).unwrap_or(0));
    writeln!(
        out,
        "{:<12}  {:<9}  {:<24}  {:<24}  {:>12}  {:>14}  {:>14}  {:>14}  {:>16}",
        trip.symbol,
        trip.direction.as_str(),
        time(trip.opened_ms),
        time(trip.closed_ms),
        humantime::format_duration(duration).to_string(),
        trip.qty,
        trip.entry_price,
        trip.exit_price,
        trip.pnl
    )
}

/// The UTC day of an epoch-ms time, `YYYY-MM-DD`.
fn day(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map_or_else(|_| format!("{ms} ms"), |at| at.date().to_string())
}

/// Checks the journal and every snapshot: whole records with their
/// checksums, no sequence gap, no id decided twice within the window, each
/// snapshot intact, at a record of this journal, and equal to the replay
/// up to it.
fn verify(
    request: &Request,
    dedupe_window: Option<Duration>,
    out: &mut dyn Write,
) -> Result<bool, QueryError> {
    let state_dir = &request.state_dir;
    match check(state_dir, dedupe_window) {
        Ok(summary) => {
            if request.json {
                writeln!(out, "{}", json!({ "ok": true, "summary": summary }))?;
            } else {
                writeln!(out, "ok: {summary}")?;
            }
            Ok(true)
        }
        Err(problem) => {
            if request.json {
                writeln!(out, "{}", json!({ "ok": false, "problem": problem }))?;
            } else {
                writeln!(out, "problem: {problem}")?;
            }
            Ok(false)
        }
    }
}

/// The DEDUPE_WINDOW a snapshot was taken with, if it says.
fn recorded_window(snapshot: &snapshot::Loaded) -> Option<Duration> {
    snapshot.header.dedupe_window_ms.map(Duration::from_millis)
}

/// The window the replay starts with, and why that one: the one given,
/// else the one the oldest snapshot records, else the default.
fn first_window(given: Option<Duration>, snapshots: &[snapshot::Loaded]) -> (Duration, String) {
    if let Some(window) = given {
        return (window, "given".into());
    }
    let recorded = snapshots
        .iter()
        .find_map(|snapshot| recorded_window(snapshot).map(|window| (window, snapshot.header.seq)));
    match recorded {
        Some((window, seq)) => (window, format!("as snapshot seq {seq} records it")),
        None => (
            settings::Settings::default().dedupe_window,
            "assumed: no snapshot records the daemon's; give it with --dedupe-window".into(),
        ),
    }
}

/// Every snapshot that passes its own checks, oldest first; the first
/// that does not is the problem.
fn checked_snapshots(state_dir: &Path) -> Result<Vec<snapshot::Loaded>, String> {
    let mut snapshots: Vec<(u64, PathBuf)> =
        snapshot::list(state_dir).map_err(|error| error.to_string())?;
    snapshots.reverse();
    let mut loaded = Vec::new();
    for (_, path) in &snapshots {
        match checked(state_dir, path) {
            Ok(snapshot) => loaded.push(snapshot),
            // Pruned by the running daemon since it was listed.
            Err(_) if !path.exists() => {}
            Err(problem) => return Err(format!("snapshot {}: {problem}", path.display())),
        }
    }
    Ok(loaded)
}

/// A replay of the journal held against its snapshots as it reaches them.
struct Check<'s> {
    replay: Replay,
    snapshots: std::iter::Peekable<std::slice::Iter<'s, snapshot::Loaded>>,
    compared: usize,
    /// Where the window checked with changed to a snapshot's, for the
    /// summary.
    changes: Vec<String>,
}

impl Check<'_> {
    /// Compares the replay with every snapshot taken after record `seq`.
    fn snapshots_at(&mut self, seq: u64) -> Result<(), String> {
        while let Some(snapshot) = self.snapshots.next_if(|next| next.header.seq <= seq) {
            if snapshot.header.seq < seq {
                return Err(format!(
                    "snapshot {}: seq {} is not a record of the journal",
                    snapshot.path.display(),
                    snapshot.header.seq
                ));
            }
            self.compare(snapshot, seq)?;
        }
        Ok(())
    }

    fn compare(&mut self, snapshot: &snapshot::Loaded, seq: u64) -> Result<(), String> {
        let replay = &mut self.replay;
        // A batch of duplicates, or time passing, moves the clock without
        // a record: the snapshot's may be ahead of the record's time. The
        // next record's time is at least the snapshot's clock, so moving
        // the replay's there now changes nothing after.
        replay.state.window.advance(snapshot.header.clock);
        let mut differences = replay.position_differences(&snapshot.header);
        differences.extend(replay.state_differences(&snapshot.header));
        let changed = recorded_window(snapshot)
            .filter(|window| settings::millis(*window) != replay.state.window.span_ms());
        match changed {
            // Taken after a restart with another window: where the replay
            // should have changed its own is not written anywhere, so it
            // takes the snapshot's window and goes on from there.
            Some(window) => {
                replay.take_window(snapshot, window)?;
                self.changes.push(format!(
                    "checked within DEDUPE_WINDOW {} from snapshot seq {} on, as it records",
                    humantime::format_duration(window),
                    snapshot.header.seq
                ));
            }
            None => {
                differences.extend(replay.window_difference(&snapshot.header, &snapshot.window))
            }
        }
        if !differences.is_empty() {
            return Err(format!(
                "snapshot {} differs from the replay of the journal up to seq {seq}: {}",
                snapshot.path.display(),
                differences.join("; ")
            ));
        }
        self.compared += 1;
        Ok(())
    }

    /// The problem if record `seq` decides an id the window still holds.
    fn decided_once(&mut self, seq: u64, record: &Record<'_>) -> Result<(), String> {
        let Some((id, _)) = took_id(record) else {
            return Ok(());
        };
        let window = &mut self.replay.state.window;
        window.advance(record_at(record));
        if window.contains(window::id_hash(id), id) {
            return Err(format!(
                "id {id:?} is decided again at seq {seq} while its first decision is within the window (DEDUPE_WINDOW {})",
                span(window)
            ));
        }
        Ok(())
    }
}

/// A window's DEDUPE_WINDOW for people.
fn span(window: &Window) -> humantime::FormattedDuration {
    humantime::format_duration(Duration::from_millis(
        u64::try_from(window.span_ms()).unwrap_or(0),
    ))
}

/// The summary of a clean journal, or its first problem.
fn check(state_dir: &Path, given: Option<Duration>) -> Result<String, String> {
    // Snapshots first: every segment a listed snapshot names exists by the
    // time the segments are listed (a running daemon rolls meanwhile).
    let loaded = checked_snapshots(state_dir)?;
    let segments = segments::list(state_dir).map_err(|error| error.to_string())?;
    let bytes: u64 = segments
        .iter()
        .filter_map(|segment| std::fs::metadata(&segment.path).ok())
        .map(|metadata| metadata.len())
        .sum();
    let first_seq = segments.first().map_or(1, |first| first.first_seq);
    // Where checking decisions starts: the first record, or the oldest
    // snapshot when the journal's start is gone.
    let origin = if first_seq > 1 {
        Some(loaded.first().ok_or_else(|| {
            format!(
                "the journal starts at seq {first_seq} and there is no snapshot to check it from"
            )
        })?)
    } else {
        None
    };
    let (window, whence) = first_window(given, &loaded);
    let mut check = Check {
        replay: Replay::new(window),
        snapshots: loaded.iter().peekable(),
        compared: 0,
        changes: Vec::new(),
    };
    let mut scan = Scan::new(segments.clone(), Mode::Strict);
    let mut live = origin.is_none();
    let mut checked_records = 0u64;
    if live {
        check.snapshots_at(0)?;
    }
    while let Some((seq, record)) = scan.record().map_err(|error| error.to_string())? {
        if !live {
            if let Some(origin) = origin.filter(|origin| origin.header.seq == seq) {
                check.replay.restore(origin)?;
                live = true;
                check.snapshots_at(seq)?;
            }
            continue;
        }
        check.decided_once(seq, &record)?;
        check.replay.apply(&record);
        checked_records += 1;
        check.snapshots_at(seq)?;
    }
    if let Some(snapshot) = check.snapshots.next() {
        return Err(format!(
            "snapshot {} covers seq {}, beyond the journal's end (seq {})",
            snapshot.path.display(),
            snapshot.header.seq,
            scan.seq()
        ));
    }
    let mut notes: Vec<String> = check.changes;
    notes.extend(unchecked_note(&scan));
    notes.extend(scan.torn().map(|(path, bytes)| {
        format!(
            "the last segment, {}, ends with {bytes} bytes of a record being written (or torn by a crash: cut at the next start)",
            path.display()
        )
    }));
    let notes: String = notes.iter().map(|note| format!("; {note}")).collect();
    Ok(format!(
        "{} segments (seq {first_seq}..{}, {bytes} bytes), {} snapshots consistent with the journal, {checked_records} records checked for ids decided twice within DEDUPE_WINDOW {} ({whence}){notes}",
        segments.len(),
        scan.seq(),
        check.compared,
        humantime::format_duration(window),
    ))
}

/// What the summary says of records read without a checksum.
fn unchecked_note(scan: &Scan) -> Option<String> {
    let unchecked = scan.unchecked();
    if unchecked.records == 0 {
        return None;
    }
    Some(match unchecked.first_after_checked {
        None => format!(
            "{} records without a checksum (written before checksums)",
            unchecked.records
        ),
        Some(seq) => format!(
            "{} records without a checksum, some after records with one (from seq {seq}: an earlier release wrote on after this one)",
            unchecked.records
        ),
    })
}

fn record_at(record: &Record<'_>) -> i64 {
    match record {
        Record::Fill { at, .. } | Record::Reject { at, .. } => *at,
        Record::Ckpt { .. } => i64::MIN,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_three_forms() {
        assert_eq!(instant("1714557600250"), Ok(1_714_557_600_250));
        assert_eq!(
            instant("2024-05-01T12:00:00.250+02:00"),
            Ok(1_714_557_600_250)
        );
        let hour_ago = instant("1h").unwrap();
        assert!((now_ms() - 3_600_000 - hour_ago).abs() < 5_000);
        assert!(instant("yesterday").is_err());
    }
}
