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

use serde_json::json;

use super::journal::JournalError;
use super::reader::{Mode, Scan};
use super::record::Record;
use super::snapshot::{self, Header};
use super::window::Window;
use super::{restore_engine, segments, settings, took_id, State};
use crate::bot::engine::{Engine, Held, PaperExecution, Position};
use crate::bot::settings::RiskLimits;

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

fn within(at: i64, since: Option<i64>, until: Option<i64>) -> bool {
    since.is_none_or(|since| at >= since) && until.is_none_or(|until| at < until)
}

fn time(ms: i64) -> String {
    super::format_ms(ms)
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
            "{:>8}  {:<24}  {:<24}  {:<10}  {:<4}  {:>12}  {:>14}  SRC",
            "SEQ", "AT (UTC)", "ID", "SYMBOL", "SIDE", "QTY", "PRICE"
        )?;
    }
    each_record(&request.state_dir, |seq, record| {
        let Record::Fill {
            id,
            src,
            ts,
            at,
            symbol,
            side,
            qty,
            price,
            source,
        } = record
        else {
            return Ok(());
        };
        if !within(*at, since, until) || wanted.is_some_and(|wanted| wanted != symbol) {
            return Ok(());
        }
        if request.json {
            let mut item = json!({
                "seq": seq, "id": id, "ts": ts, "at": at, "symbol": symbol,
                "side": side.as_str(), "qty": qty, "price": price, "src": src,
            });
            if let Some(source) = source {
                item["source"] = json!(source);
            }
            writeln!(out, "{item}")
        } else {
            writeln!(
                out,
                "{seq:>8}  {:<24}  {id:<24}  {symbol:<10}  {:<4}  {qty:>12}  {price:>14}  {src}",
                time(*at),
                side.as_str()
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
            engine: Engine::new(RiskLimits::default(), Box::new(PaperExecution)),
            from: None,
        }
    }

    fn apply(&mut self, record: &Record<'_>) {
        super::replay(record, &mut self.state, &mut self.engine);
    }

    /// Takes the state of `loaded`.
    fn restore(&mut self, loaded: &snapshot::Loaded) -> Result<(), String> {
        self.state.restore(loaded, i64::MIN)?;
        restore_engine(&loaded.header, &mut self.engine);
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
                "qty {} avg {} realized {} cash {}",
                position.qty, position.avg_price, position.realized_pnl, position.cash
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
            let held = Held {
                symbol: symbol.clone(),
                position: position.clone(),
            };
            let mut line = serde_json::to_value(held).map_err(io::Error::other)?;
            line["seq"] = json!(last_seq);
            writeln!(out, "{line}")?;
        }
    } else {
        writeln!(
            out,
            "{:<12}  {:>14}  {:>14}  {:>14}  {:>16}  {:>14}",
            "SYMBOL", "QTY", "AVG PRICE", "REALIZED PNL", "CASH", "LAST PRICE"
        )?;
        for (symbol, position) in &positions {
            writeln!(
                out,
                "{symbol:<12}  {:>14}  {:>14}  {:>14}  {:>16}  {:>14}",
                position.qty,
                position.avg_price,
                position.realized_pnl,
                position.cash,
                position.last_price
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

#[derive(Default)]
struct Tally {
    realized: f64,
    fills: u64,
    volume: f64,
}

fn pnl(request: &Request, by_day: bool, out: &mut dyn Write) -> Result<(), QueryError> {
    let (mut replay, mut scan) = start(&request.state_dir, Duration::MAX)?;
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    let before = replay.from.as_ref().map(|header| {
        (
            format!("before seq {}", header.seq + 1),
            header
                .positions
                .values()
                .map(|held| held.realized_pnl)
                .sum::<f64>(),
        )
    });
    if let (true, Some((label, realized))) = (by_day, &before) {
        tallies.entry(label.clone()).or_default().realized = *realized;
    }
    while let Some((_, record)) = scan.record()? {
        let Record::Fill {
            at,
            symbol,
            qty,
            price,
            ..
        } = &record
        else {
            replay.apply(&record);
            continue;
        };
        let realized = |replay: &Replay| {
            replay
                .engine
                .position(symbol)
                .map_or(0.0, |held| held.realized_pnl)
        };
        let was = realized(&replay);
        replay.apply(&record);
        let key = if by_day { day(*at) } else { symbol.to_string() };
        let tally = tallies.entry(key).or_default();
        tally.realized += realized(&replay) - was;
        tally.fills += 1;
        tally.volume += qty * price;
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
            "{label:<20}  {:>16}  {:>8}  {:>16}",
            "REALIZED PNL", "FILLS", "VOLUME"
        )?;
    }
    let mut total = Tally::default();
    for (key, tally) in &tallies {
        total.realized += tally.realized;
        total.fills += tally.fills;
        total.volume += tally.volume;
        if request.json {
            let key_name = if by_day { "day" } else { "symbol" };
            writeln!(
                out,
                "{}",
                json!({ key_name: key, "realized_pnl": tally.realized, "fills": tally.fills, "volume": tally.volume })
            )?;
        } else {
            writeln!(
                out,
                "{key:<20}  {:>16.4}  {:>8}  {:>16.4}",
                tally.realized, tally.fills, tally.volume
            )?;
        }
    }
    if !request.json {
        writeln!(
            out,
            "{:<20}  {:>16.4}  {:>8}  {:>16.4}",
            "total", total.realized, total.fills, total.volume
        )?;
        if let Some((label, _)) = before {
            writeln!(
                out,
                "(fills and volume counted from the oldest snapshot on: {label} was deleted by retention)"
            )?;
        }
    }
    Ok(())
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
        if window.contains(window.hash(id), id) {
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
