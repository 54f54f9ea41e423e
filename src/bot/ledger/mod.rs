//! The Ledger: the exactly-once unit. It owns the journal (segments), the
//! exactly-once window, the sources' checkpoints and the snapshots;
//! it answers a waiting client only once the decision it waits for is
//! durable; and it recovers all of it at start from the newest valid
//! snapshot and the records after it.
//!
//! The loop decides (the engine); the ledger records. It never decides
//! anything itself, and it can be driven without a daemon. Whether a
//! record took its signal's id is one rule, [`took_id`], applied to every
//! record as it is appended and as it is replayed: the live window and a
//! recovered one cannot disagree.

pub(crate) mod checkpoint;
pub mod journal;
pub(crate) mod metrics;
pub(crate) mod query;
pub mod reader;
pub mod record;
pub(crate) mod segments;
pub(crate) mod settings;
pub(crate) mod snapshot;
#[cfg(test)]
mod tests;
pub(crate) mod window;

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::oneshot;

use self::checkpoint::Checkpoint;
use self::journal::{Journal, JournalError};
use self::metrics::{Figures, LedgerMetrics};
use self::reader::{Mode, Scan};
use self::record::Record;
use self::snapshot::{Header, Job, Totals};
use self::window::{id_hash, Window};
use super::account::{Fill, Position as Holding};
use super::engine::Engine;
use super::intake::Outcome;
use super::signal::{now_ms, Reason, Reject, Signal};
use crate::health::{Component, HealthState};

/// Outcomes of a client's lines, sent once the journal holds them durably.
type Reply = oneshot::Sender<Vec<Outcome>>;

/// The one rule: the id a record took, and its signal's `ts`. A fill takes
/// its id; so does a reject that is a decision about a valid signal (no
/// price, a risk limit). A line refused as malformed (a `bad_qty` from the
/// parser or an order whose notional overflows alike), a signal too old or
/// too far ahead, takes none: a corrected resend is still decided.
#[inline]
pub(crate) fn took_id<'r>(record: &'r Record<'_>) -> Option<(&'r str, i64)> {
    match record {
        Record::Fill { id, ts, .. } => Some((id, *ts)),
        Record::Reject {
            id: Some(id),
            reason,
            ts,
            at,
            ..
        } if Reason::from_label(reason).is_some_and(takes_id) => Some((id, ts.unwrap_or(*at))),
        _ => None,
    }
}

/// Rejects that are decisions about a valid signal: no price, a risk
/// limit.
///
/// A symbol refused by `SYMBOLS` (`unknown_symbol`) or `MAX_SYMBOLS`
/// (`too_many_symbols`) takes no id either. The refusal is about what the
/// bot is set up to hold, not about the signal: the same signal is refused
/// again for as long as the settings stand (after a restart too), and
/// handled once the operator lists the symbol or raises the cap (once: it
/// was never executed). And these are the signals of a feed that invents
/// symbols: taking their ids would let it grow the exactly-once window by
/// every one, the very growth the bound is there to stop.
fn takes_id(reason: Reason) -> bool {
    reason == Reason::NoPrice || reason.is_risk_limit()
}

/// What records move, besides the engine: the window, the checkpoints and
/// the totals. Live appends and every replay (recovery, `tradingbot
/// journal`) go through [`State::apply`].
pub(crate) struct State {
    pub(crate) window: Window,
    pub(crate) checkpoints: BTreeMap<String, Checkpoint>,
    pub(crate) totals: Totals,
}

impl State {
    pub(crate) fn new(dedupe_window: Duration) -> State {
        State {
            window: Window::new(settings::millis(dedupe_window)),
            checkpoints: BTreeMap::new(),
            totals: Totals::default(),
        }
    }

    /// Applies one record; `hash` is the window's hash of its id when the
    /// caller has just found that id absent.
    #[inline]
    pub(crate) fn apply(&mut self, record: &Record<'_>, hash: Option<u32>) {
        let taken = took_id(record);
        match record {
            Record::Fill { at, .. } => {
                self.window.advance(*at);
                self.totals.fills += 1;
            }
            Record::Reject { at, reason, .. } => {
                self.window.advance(*at);
                match self.totals.rejects.get_mut(reason.as_str()) {
                    Some(count) => *count += 1,
                    None => {
                        self.totals.rejects.insert(reason.clone(), 1);
                    }
                }
            }
            Record::Ckpt { src, checkpoint } => match self.checkpoints.get_mut(src.as_ref()) {
                Some(known) => known.clone_from(checkpoint),
                None => {
                    self.checkpoints.insert(src.to_string(), checkpoint.clone());
                }
            },
        }
        if let Some((id, ts)) = taken {
            match hash {
                // Found absent by the admission of this very decision.
                Some(hash) => self.window.insert_new(hash, id, ts),
                None => {
                    self.window.insert(id_hash(id), id, ts);
                }
            }
            self.totals.ids_taken += 1;
        }
    }

    /// The state a snapshot holds (the engine's part apart, see
    /// [`restore_engine`]), its window's clock moved on to `now_ms` if
    /// that is later (so the ids that left the window since are not even
    /// loaded); what is wrong with it otherwise.
    pub(crate) fn restore(&mut self, loaded: &snapshot::Loaded, now_ms: i64) -> Result<(), String> {
        self.window.load(
            &loaded.window,
            loaded.header.window_ids,
            loaded.header.clock.max(now_ms),
        )?;
        self.checkpoints = loaded.header.checkpoints.clone();
        self.totals = loaded.header.totals.clone();
        Ok(())
    }
}

/// The engine's state a snapshot holds; what is wrong with it otherwise
/// (the engine unchanged).
pub(crate) fn restore_engine(header: &Header, engine: &mut Engine) -> Result<(), String> {
    engine
        .restore(
            header.positions.clone(),
            &header.symbol_fills,
            header.recent_fills.clone(),
        )
        .map_err(|overflow| format!("its positions' cash is {overflow}"))
}

/// Replays a record into `engine` and `state`. A fill no decision could
/// have made (amounts past what a value holds: only a float release could
/// journal one) is reported and not booked; its id is still taken.
pub(crate) fn replay(record: &Record<'_>, state: &mut State, engine: &mut Engine) {
    if let Some((id, symbol, fill)) = fill_of(record) {
        if let Err(overflow) = engine.apply(symbol, &fill) {
            let (qty, price) = (fill.qty, fill.price);
            tracing::error!(%id, %symbol, %qty, %price, %overflow, "A JOURNALED FILL IS PAST WHAT AN AMOUNT HOLDS: not booked");
        }
    }
    state.apply(record, None);
}

/// A fill record as the account books it (replay, the trade report): its
/// id, its symbol and the fill.
pub(crate) fn fill_of<'r>(record: &'r Record<'_>) -> Option<(&'r str, &'r str, Fill)> {
    let Record::Fill {
        id,
        at,
        symbol,
        side,
        qty,
        price,
        asked,
        fee,
        places,
        ..
    } = record
    else {
        return None;
    };
    let fill = Fill {
        side: *side,
        qty: *qty,
        asked: asked.unwrap_or(*price),
        price: *price,
        fee: fee.unwrap_or_default(),
        at_ms: *at,
        rounding: *places,
    };
    Some((id, symbol, fill))
}

/// A signal the window let through: its id is not remembered, and this
/// is its hash. Consumed by the append of that signal's decision.
pub(crate) struct Admitted {
    hash: u32,
}

/// Why the window refuses a signal before the engine sees it.
pub(crate) enum Refusal {
    Duplicate,
    Reject(Reject),
}

/// What a start found, for the log and the alert.
pub(crate) struct Recovery {
    pub(crate) snapshot: Option<u64>,
    pub(crate) records: u64,
    pub(crate) fills: u64,
    pub(crate) took: Duration,
}

pub(crate) struct Ledger {
    state_dir: PathBuf,
    journal: Journal,
    /// Set while the journal cannot be written: intake pauses.
    error: Option<String>,
    state: State,
    skew_ms: i64,
    /// Decided, not yet written: answered once their bytes are durable.
    replies: Vec<(Reply, Vec<Outcome>)>,
    /// Waiting for the journal to be durable up to the byte given.
    awaiting: Vec<(u64, Reply, Vec<Outcome>)>,
    /// The last seq known durable (the event stream shows no more), and
    /// the commits not yet known durable: where each ends, and its last seq.
    durable_seq: u64,
    undurable: VecDeque<(u64, u64)>,
    health: Arc<HealthState>,
    writer: snapshot::Writer,
    snapshot_interval: Duration,
    /// The last snapshot started.
    last_snapshot: Option<Taken>,
    /// Closed segments: first seq → bytes.
    closed: BTreeMap<u64, u64>,
    /// The last snapshot could not be written (the `snapshot` check).
    snapshot_failing: bool,
    figures: Figures,
    metrics: Arc<LedgerMetrics>,
}

impl Ledger {
    /// Takes over a journal of an earlier release, then recovers: the
    /// newest snapshot that passes every check (a damaged one is set aside
    /// loudly, and the next older one tried), then the records after it,
    /// into `engine` and the ledger; with no snapshot usable, every record
    /// from the first. Never a state it cannot vouch for: a gap, a record
    /// it replays that is corrupt or fails its checksum, or a journal whose
    /// start was deleted with no snapshot to stand in for it stops the
    /// start. The window's clock is moved on to the wall clock, so ids
    /// that left the window while the bot was down are not loaded.
    pub(crate) fn recover(
        config: &super::settings::Settings,
        health: Arc<HealthState>,
        engine: &mut Engine,
    ) -> Result<(Ledger, Recovery), JournalError> {
        let started = Instant::now();
        let state_dir = &config.state_dir;
        let took_over = segments::take_over_legacy(state_dir)?;
        snapshot::remove_leftovers(state_dir);
        let older_set_aside = snapshot::set_aside_older(state_dir);
        let list_error = |path: PathBuf| {
            move |source| JournalError::Io {
                what: "cannot list",
                path,
                source,
            }
        };
        let segments = segments::list(state_dir).map_err(list_error(segments::dir(state_dir)))?;
        let snapshots = snapshot::list(state_dir).map_err(list_error(snapshot::dir(state_dir)))?;
        let mut state = State::new(config.ledger.dedupe_window);
        let mut from: Option<Header> = None;
        let mut kept = Vec::new();
        for (seq, path) in &snapshots {
            if from.is_some() {
                // Older ones are checked only if ever needed; their place
                // in the journal is enough to keep it for them.
                if let Some(segment) = header_only(path).map(|header| header.segment) {
                    kept.push((*seq, segment));
                }
                continue;
            }
            let loaded = snapshot::read(path)
                .and_then(|loaded| {
                    snapshot::matches_journal(state_dir, &loaded.header).map(|()| loaded)
                })
                .and_then(|loaded| {
                    let mut fresh = State::new(config.ledger.dedupe_window);
                    fresh.restore(&loaded, now_ms())?;
                    restore_engine(&loaded.header, engine)?;
                    Ok((loaded, fresh))
                });
            match loaded {
                Ok((loaded, fresh)) => {
                    state = fresh;
                    kept.push((*seq, loaded.header.segment));
                    from = Some(loaded.header);
                }
                Err(problem) => {
                    tracing::error!(
                        snapshot = %path.display(),
                        %problem,
                        "SNAPSHOT UNUSABLE: set aside as *.bad; trying an older one, or a full replay"
                    );
                    snapshot::set_aside(path);
                }
            }
        }
        kept.reverse();
        let mut scan = match &from {
            Some(header) => Scan::from(segments, header.position(), Mode::Strict)?,
            None => {
                if let Some(first) = segments.first().filter(|first| first.first_seq > 1) {
                    let older = if older_set_aside {
                        " (those of an earlier format, set aside as *.old, hold floats and are \
                         never trusted)"
                    } else {
                        ""
                    };
                    return Err(JournalError::Corrupt {
                        path: first.path.clone(),
                        line: 0,
                        detail: format!(
                            "the journal starts at seq {} (older segments were deleted) and no \
                             snapshot is usable{older}, so the state before it cannot be rebuilt; \
                             restore the deleted segments into {}, or a snapshot of this \
                             release into {}",
                            first.first_seq,
                            segments::dir(state_dir).display(),
                            snapshot::dir(state_dir).display()
                        ),
                    });
                }
                if !snapshots.is_empty() {
                    tracing::error!(
                        segments = segments.len(),
                        "NO USABLE SNAPSHOT: replaying the whole journal"
                    );
                } else if !segments.is_empty() && !took_over && !older_set_aside {
                    tracing::warn!(
                        segments = segments.len(),
                        "no snapshot yet: replaying the whole journal"
                    );
                }
                Scan::new(segments, Mode::Strict)
            }
        };
        let mut records = 0u64;
        let mut fills = 0u64;
        while let Some((_, record)) = scan.record()? {
            records += 1;
            fills += u64::from(matches!(record, Record::Fill { .. }));
            replay(&record, &mut state, engine);
        }
        if let Some((path, bytes)) = scan.torn() {
            tracing::warn!(
                path = %path.display(),
                torn_bytes = bytes,
                "journal ends with a torn line (a crash mid-write); it is cut away"
            );
        }
        if let Some(seq) = scan.unchecked().first_after_checked {
            tracing::warn!(
                first_seq = seq,
                records = scan.unchecked().records,
                "journal records without a checksum after records with one: an earlier release \
                 wrote on after this one; they are read unchecked"
            );
        }
        let mut end = scan.end();
        if end.tail.is_none() {
            // Nothing after the snapshot: the last record is the one it names.
            end.tail = from.as_ref().filter(|header| header.seq > 0).map(|header| {
                (
                    header.segment,
                    header.offset,
                    header.last_record_len as usize,
                )
            });
        }
        let journal = Journal::resume(state_dir, config.fsync, config.ledger.segment_size, &end);
        let mut closed = BTreeMap::new();
        for segment in segments::list(state_dir).unwrap_or_default() {
            if Some(segment.first_seq) != end.last_segment.map(|(first, _)| first) {
                let bytes = std::fs::metadata(&segment.path).map_or(0, |metadata| metadata.len());
                closed.insert(segment.first_seq, bytes);
            }
        }
        let writer = snapshot::Writer::new(state_dir.clone(), kept, config.ledger.retention);
        let recovery = Recovery {
            snapshot: from.as_ref().map(|header| header.seq),
            records,
            fills,
            took: started.elapsed(),
        };
        // What the snapshot on disk holds, not what was loaded of it: one
        // holding ids that have left the window since is written again.
        let window_ids = from
            .as_ref()
            .map_or(state.window.len(), |header| header.window_ids);
        let figures = Figures {
            snapshot_at: from
                .as_ref()
                .and_then(|header| humantime::parse_rfc3339(&header.written_at).ok()),
            recovery_seconds: recovery.took.as_secs_f64(),
            recovery_records: records,
            ..Figures::default()
        };
        let ledger = Ledger {
            state_dir: state_dir.clone(),
            journal,
            error: None,
            state,
            skew_ms: settings::millis(config.ledger.max_clock_skew),
            replies: Vec::new(),
            awaiting: Vec::new(),
            durable_seq: end.last_seq,
            undurable: VecDeque::new(),
            health,
            writer,
            snapshot_interval: config.snapshot_interval,
            // The first snapshot comes an interval after start, like any
            // other (one at the first signal would put its fsyncs beside
            // the first batches'); at once only after a replay of records
            // no snapshot covered, so the next start need not repeat it.
            last_snapshot: match (from, records) {
                (None, 1..) => None,
                (from, _) => Some(Taken {
                    seq: from.map_or(0, |header| header.seq),
                    at: Instant::now(),
                    bytes: 0,
                    ids: window_ids,
                    marks: 0,
                }),
            },
            closed,
            snapshot_failing: false,
            figures,
            metrics: LedgerMetrics::new(),
        };
        Ok((ledger, recovery))
    }

    /// The segment being appended to.
    pub(crate) fn journal_path(&self) -> &Path {
        self.journal.path()
    }

    /// The seq of the last record appended.
    pub(crate) fn last_seq(&self) -> u64 {
        self.journal.last_seq()
    }

    pub(crate) fn decided_ids(&self) -> usize {
        self.state.window.len()
    }

    pub(crate) fn metrics(&self) -> Arc<LedgerMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Where each source, by name, may resume reading.
    pub(crate) fn checkpoints(&self) -> &BTreeMap<String, Checkpoint> {
        &self.state.checkpoints
    }

    /// While the journal cannot be written, the loop takes no new lines.
    pub(crate) fn is_blocked(&self) -> bool {
        self.error.is_some()
    }

    /// The time the decisions about to be made are made at: the wall clock,
    /// or the latest decision time if the wall clock went back (the window
    /// never does). Forgets what fell out of the window.
    pub(crate) fn now(&mut self, wall_ms: i64) -> i64 {
        let now = wall_ms.max(self.state.window.clock());
        self.state.window.advance(now);
        now
    }

    /// The window's verdict on a parsed signal, before the engine sees it:
    /// already decided, too old to tell, too far ahead, or new: then its
    /// decision goes to [`Ledger::append_decision`] with what this returns.
    /// `hashed` is the id's [`id_hash`] when its source took it already.
    pub(crate) fn admit(
        &mut self,
        signal: &Signal<'_>,
        hashed: Option<u32>,
        now_ms: i64,
    ) -> Result<Admitted, Refusal> {
        let window = &self.state.window;
        let hash = hashed.unwrap_or_else(|| id_hash(&signal.id));
        if window.contains(hash, &signal.id) {
            return Err(Refusal::Duplicate);
        }
        let ts = signal.ts_ms;
        if ts < window.cutoff() {
            return Err(Refusal::Reject(Reject::new(
                Reason::TooOld,
                format!(
                    "ts {} is older than the exactly-once window (DEDUPE_WINDOW) reaches back, to {}",
                    format_ms(ts),
                    format_ms(window.cutoff())
                ),
            )));
        }
        if ts > now_ms.saturating_add(self.skew_ms) {
            return Err(Refusal::Reject(Reject::new(
                Reason::TsInFuture,
                format!(
                    "ts {} is more than MAX_CLOCK_SKEW ahead of now, {}",
                    format_ms(ts),
                    format_ms(now_ms)
                ),
            )));
        }
        Ok(Admitted { hash })
    }

    /// Appends a record (written by the next commit), and applies it: the
    /// rule of [`took_id`], the checkpoints, the totals. Returns its seq.
    pub(crate) fn append(&mut self, record: &Record<'_>) -> u64 {
        let seq = self.journal.append(record);
        self.state.apply(record, None);
        seq
    }

    /// [`Ledger::append`] of the decision about the signal `admitted` was
    /// for: its id, found absent, is not looked up again.
    pub(crate) fn append_decision(&mut self, record: &Record<'_>, admitted: Admitted) -> u64 {
        debug_assert!(
            took_id(record).is_none_or(|(id, _)| id_hash(id) == admitted.hash),
            "a decision appended with another signal's admission"
        );
        let seq = self.journal.append(record);
        self.state.apply(record, Some(admitted.hash));
        seq
    }

    /// The seq of the last record known durable: what the event stream
    /// may show (a fill it showed never vanishes in a crash).
    pub(crate) fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Under `FSYNC=always` every decision is committed on its own.
    pub(crate) fn commits_each_decision(&self) -> bool {
        self.journal.policy() == super::settings::FsyncPolicy::Always
    }

    /// One checkpoint per source per iteration, after every decision of
    /// the iteration: the journal's order is what makes it safe.
    pub(crate) fn append_checkpoint(&mut self, source: &str, checkpoint: Checkpoint) {
        self.append(&Record::Ckpt {
            src: Cow::Borrowed(source),
            checkpoint,
        });
    }

    /// Whether a client waits on what the next commit writes.
    pub(crate) fn has_waiting_clients(&self) -> bool {
        !self.replies.is_empty()
    }

    /// Answers `reply` once everything appended so far is durable.
    pub(crate) fn answer_when_durable(&mut self, reply: Reply, outcomes: Vec<Outcome>) {
        self.replies.push((reply, outcomes));
    }

    /// Commits (overlapping the fsync with the next batch when `overlap`),
    /// and answers the clients whose decisions are now durable.
    pub(crate) fn commit(&mut self, overlap: bool) {
        let durable = match self.journal.commit(overlap) {
            Ok(durable) => durable,
            Err(error) => return self.failed(&error),
        };
        if self.error.take().is_some() {
            tracing::info!("journal writable again; intake resumes");
        }
        self.health.set_component("journal", Component::Ok);
        for (first_seq, bytes) in self.journal.rolled() {
            self.closed.insert(first_seq, bytes);
        }
        let end = self.journal.appended();
        // Everything appended so far ends at `end`: its last record is
        // durable once the journal is durable that far.
        let last_seq = self.journal.last_seq();
        let last_pending = self
            .undurable
            .back()
            .map_or(self.durable_seq, |(_, seq)| *seq);
        if last_seq > last_pending {
            self.undurable.push_back((end, last_seq));
        }
        while let Some((_, seq)) = self.undurable.front().filter(|(end, _)| *end <= durable) {
            self.durable_seq = *seq;
            self.undurable.pop_front();
        }
        self.awaiting.extend(
            self.replies
                .drain(..)
                .map(|(reply, outcomes)| (end, reply, outcomes)),
        );
        let (answered, waiting) = std::mem::take(&mut self.awaiting)
            .into_iter()
            .partition(|(end, ..)| *end <= durable);
        self.awaiting = waiting;
        for (_, reply, outcomes) in answered {
            let _ = reply.send(outcomes);
        }
    }

    /// How long each fsync since the last call took.
    pub(crate) fn fsync_times(&mut self) -> impl Iterator<Item = Duration> + '_ {
        self.journal.fsync_times()
    }

    fn failed(&mut self, error: &JournalError) {
        if matches!(error, JournalError::Io { what, .. } if what.contains("fsync journal segment"))
        {
            self.figures.fsync_failures += 1;
        }
        let message = error.to_string();
        if self.error.as_deref() != Some(message.as_str()) {
            tracing::error!(error = %message, "journal write failed; intake paused, retrying every tick");
            self.health
                .set_component("journal", Component::Failed(error.without_dir()));
            self.error = Some(message);
        }
    }

    /// Publishes the ledger's figures (once per loop iteration), and takes
    /// the result of a snapshot that finished.
    pub(crate) fn publish(&mut self) {
        self.poll_snapshot(false);
        let (_, active_bytes) = self.journal.active();
        self.figures.segments = self.closed.len() as u64 + 1;
        self.figures.segment_bytes = self.closed.values().sum::<u64>() + active_bytes;
        self.figures.window_ids = self.state.window.len() as u64;
        self.figures.last_seq = self.journal.last_seq();
        self.metrics.publish(&self.figures);
    }

    /// Starts a snapshot when one is due, `SNAPSHOT_INTERVAL` after the
    /// last: if records came since, once the journal has grown by a
    /// sixteenth of the window's bytes since (so snapshotting a large
    /// window costs at most 16 times the journal's own writes, and the
    /// replay after it stays a fraction of the window); or if the window
    /// holds less than half the ids the last snapshot holds (a burst has
    /// left it: the next start need not read them). `engine` is asked for
    /// its state only then.
    pub(crate) fn snapshot_if_due(&mut self, engine: impl FnOnce() -> EngineState) {
        self.follow_wall_clock();
        if self.writer.busy() || self.is_blocked() {
            return;
        }
        let last_seq = self.journal.last_seq();
        let due = match &self.last_snapshot {
            None => last_seq > 0,
            Some(last) => {
                let grown = last.seq != last_seq
                    && self.journal.appended() - last.bytes
                        >= self.state.window.bytes() as u64 / 16;
                let drained = self.state.window.len() < last.ids / 2;
                last.at.elapsed() >= self.snapshot_interval && (grown || drained)
            }
        };
        if due {
            self.start_snapshot(engine());
        }
    }

    /// At stop: waits for a snapshot being written, then writes one of
    /// everything if records came since, ids left the window since, or
    /// price updates moved marks since (they are not journaled: only a
    /// snapshot keeps them), and waits for it.
    pub(crate) fn finish(&mut self, engine: EngineState) {
        self.poll_snapshot(true);
        self.follow_wall_clock();
        let moved = self.last_snapshot.as_ref().is_none_or(|last| {
            last.seq != self.journal.last_seq()
                || self.state.window.len() < last.ids
                || last.marks != engine.marks
        });
        if moved && self.start_snapshot(engine) {
            self.poll_snapshot(true);
        }
        self.publish();
    }

    /// Moves the window's clock on to the wall clock (never back), so the
    /// ids that left the window leave memory, and the next snapshot, even
    /// while no signal comes to move it.
    fn follow_wall_clock(&mut self) {
        self.now(now_ms());
    }

    /// Hands the writer a snapshot of the state now, the journal durable
    /// first (a snapshot is never ahead of it); false if not started.
    fn start_snapshot(&mut self, engine: EngineState) -> bool {
        self.commit(false);
        if self.is_blocked() {
            return false;
        }
        let Some((position, last_record_len)) = self.journal.position() else {
            return false;
        };
        let marks = engine.marks;
        let job = Job {
            position,
            last_record_len,
            positions: engine.positions,
            symbol_fills: engine.symbol_fills,
            recent_fills: engine.recent_fills,
            checkpoints: self.state.checkpoints.clone(),
            totals: self.state.totals.clone(),
            window: self.state.window.view(),
            max_clock_skew_ms: self.skew_ms,
        };
        match self.writer.start(job) {
            Ok(()) => {
                self.last_snapshot = Some(Taken {
                    seq: position.seq,
                    at: Instant::now(),
                    bytes: self.journal.appended(),
                    ids: self.state.window.len(),
                    marks,
                });
                true
            }
            Err(error) => {
                self.snapshot_failed(&error);
                false
            }
        }
    }

    fn poll_snapshot(&mut self, wait: bool) {
        let Some(result) = self.writer.finished(wait) else {
            return;
        };
        match result {
            // Per decision is debug (a busy feed would drown the log); this
            // line, every SNAPSHOT_INTERVAL while signals flow and at stop,
            // shows at info that the bot is doing its job.
            Ok(written) => {
                tracing::info!(
                    seq = written.seq,
                    fills = self.state.totals.fills,
                    rejects = self.state.totals.rejects.values().sum::<u64>(),
                    window_ids = self.state.window.len(),
                    bytes = written.bytes,
                    took_ms = written.took.as_millis() as u64,
                    "snapshot written"
                );
                self.figures.snapshot_at = Some(written.at);
                self.figures.snapshot_bytes = written.bytes;
                if std::mem::take(&mut self.snapshot_failing) {
                    self.health.set_component("snapshot", Component::Ok);
                }
                for (first_seq, _) in written.deleted {
                    self.closed.remove(&first_seq);
                }
            }
            Err(error) => self.snapshot_failed(&error),
        }
    }

    fn snapshot_failed(&mut self, error: &str) {
        self.figures.snapshot_failures += 1;
        // Degraded, not failed: nothing is lost, only the next start takes
        // longer. The reason names no path (the health port is often
        // public).
        self.snapshot_failing = true;
        self.health.set_component(
            "snapshot",
            Component::Degraded(format!("cannot write the snapshot: {error}")),
        );
        // Tried again an interval later; the journal stays the truth
        // meanwhile, and recovery replays a little more.
        // The ids on disk are still those of the last snapshot written.
        let (ids, marks) = self
            .last_snapshot
            .as_ref()
            .map_or((0, 0), |last| (last.ids, last.marks));
        self.last_snapshot = Some(Taken {
            seq: 0,
            at: Instant::now(),
            bytes: self.journal.appended(),
            ids,
            marks,
        });
        tracing::warn!(%error, dir = %snapshot::dir(&self.state_dir).display(), "cannot write the snapshot (the journal stays the truth)");
    }
}

/// A snapshot started: what it covers, and when.
struct Taken {
    seq: u64,
    at: Instant,
    /// The journal's bytes appended by then.
    bytes: u64,
    /// The ids it holds.
    ids: usize,
    /// The engine's count of price updates by then.
    marks: u64,
}

/// The engine's part of a snapshot.
pub(crate) struct EngineState {
    pub(crate) positions: BTreeMap<String, Holding>,
    pub(crate) symbol_fills: BTreeMap<String, u64>,
    pub(crate) recent_fills: Vec<i64>,
    /// Price updates applied since the start (see [`Ledger::finish`]).
    pub(crate) marks: u64,
}

impl EngineState {
    pub(crate) fn of(engine: &Engine) -> EngineState {
        EngineState {
            positions: engine.positions(),
            symbol_fills: engine.symbol_fills(),
            recent_fills: engine.recent_fills(),
            marks: engine.marks_moved(),
        }
    }
}

/// A snapshot's header alone (its first line), unchecked.
fn header_only(path: &Path) -> Option<Header> {
    serde_json::from_slice(&snapshot::first_line(path)?).ok()
}

/// An epoch-ms time for people, in a message.
pub(crate) fn format_ms(ms: i64) -> String {
    u64::try_from(ms)
        .ok()
        .map(|ms| SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
        .map_or_else(
            || format!("{ms} ms"),
            |at| humantime::format_rfc3339_millis(at).to_string(),
        )
}
