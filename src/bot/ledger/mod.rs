//! The Ledger: the exactly-once unit. It owns the journal, the index of
//! decided ids, the file sources' checkpoints and the snapshot; it answers
//! a waiting client only once the decision it waits for is durable; and it
//! recovers all of it from the journal at start.
//!
//! The loop decides (the engine); the ledger records. It never decides
//! anything itself, and it can be driven without a daemon.

pub(crate) mod decided;
pub(crate) mod journal;
pub(crate) mod reader;
pub(crate) mod snapshot;

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;

use self::decided::DecidedIds;
use self::journal::{Journal, JournalError, Record};
use self::snapshot::{Checkpoint, Snapshot};
use super::engine::Fill;
use super::intake::Outcome;
use super::settings::FsyncPolicy;
use super::signal::{Reason, Reject};
use crate::health::{Component, HealthState};

/// Outcomes of a client's lines, sent once the journal holds them durably.
type Reply = oneshot::Sender<Vec<Outcome>>;

pub(crate) struct Ledger {
    journal: Journal,
    /// Set while the journal cannot be written: intake pauses.
    error: Option<String>,
    /// Ids with a decision (fill or reject) in the journal.
    decided: DecidedIds,
    checkpoints: BTreeMap<String, Checkpoint>,
    records: u64,
    /// Decided, not yet written: answered once their commit is durable.
    replies: Vec<(Reply, Vec<Outcome>)>,
    /// Written by the commit numbered first, answered when it is durable.
    awaiting: Vec<(u64, Reply, Vec<Outcome>)>,
    /// The last seq known durable (the event stream shows no more), and
    /// the commits not yet known durable with the last seq each wrote.
    durable_seq: u64,
    undurable: VecDeque<(u64, u64)>,
    state_dir: PathBuf,
    health: Arc<HealthState>,
}

/// What [`Ledger::snapshot`] writes beside the ledger's own state.
pub(crate) struct Figures<'a> {
    pub(crate) positions: &'a BTreeMap<String, super::engine::Position>,
    pub(crate) signals: u64,
    pub(crate) fills: u64,
    pub(crate) rejects: u64,
    pub(crate) duplicates: u64,
}

impl Ledger {
    /// Opens the journal (cutting a torn tail) and replays it: every fill
    /// is handed to `apply` (the engine), every decided id and checkpoint
    /// is remembered.
    pub(crate) fn recover(
        state_dir: PathBuf,
        fsync: FsyncPolicy,
        health: Arc<HealthState>,
        mut apply: impl FnMut(&Fill<'_>),
    ) -> Result<Ledger, JournalError> {
        let (journal, records) = Journal::recover(&state_dir, fsync)?;
        let mut ledger = Ledger {
            journal,
            error: None,
            decided: DecidedIds::default(),
            checkpoints: BTreeMap::new(),
            records: 0,
            replies: Vec::new(),
            awaiting: Vec::new(),
            durable_seq: 0,
            undurable: VecDeque::new(),
            state_dir,
            health,
        };
        for record in records {
            ledger.replay(record, &mut apply);
        }
        ledger.durable_seq = ledger.records;
        Ok(ledger)
    }

    fn replay(&mut self, record: Record<'_>, apply: &mut impl FnMut(&Fill<'_>)) {
        self.records += 1;
        match record {
            Record::Fill {
                id,
                at,
                symbol,
                side,
                qty,
                price,
                ..
            } => {
                apply(&Fill {
                    symbol: &symbol,
                    side,
                    qty,
                    price,
                    at_ms: at,
                });
                self.decided.insert(&id);
            }
            Record::Reject { id, reason, .. } => {
                let decided = Reason::from_label(&reason).is_some_and(is_decision);
                if let (Some(id), true) = (id, decided) {
                    self.decided.insert(&id);
                }
            }
            Record::Ckpt { src, dev, ino, off } => {
                self.checkpoints.insert(
                    src.into_owned(),
                    Checkpoint {
                        dev,
                        ino,
                        offset: off,
                    },
                );
            }
        }
    }

    pub(crate) fn journal_path(&self) -> &std::path::Path {
        self.journal.path()
    }

    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    pub(crate) fn decided_ids(&self) -> usize {
        self.decided.len()
    }

    /// Where each file source, by name, may resume reading.
    pub(crate) fn checkpoints(&self) -> &BTreeMap<String, Checkpoint> {
        &self.checkpoints
    }

    /// While the journal cannot be written, the loop takes no new lines.
    pub(crate) fn is_blocked(&self) -> bool {
        self.error.is_some()
    }

    /// Decides `id` with `decide` unless it has a decision already (`None`:
    /// a duplicate); the outcome takes the id by the rule replay follows
    /// ([`is_decision`]), so an id's fate never depends on a restart.
    pub(crate) fn decide_once<T>(
        &mut self,
        id: &str,
        decide: impl FnOnce() -> Result<T, Reject>,
    ) -> Option<Result<T, Reject>> {
        self.decided.decide_once(id, || {
            let decided = decide();
            let takes_id = decided
                .as_ref()
                .map_or_else(|reject| is_decision(reject.reason), |_| true);
            (decided, takes_id)
        })
    }

    /// Appends a decision or checkpoint, written by the next commit;
    /// returns its seq (its 1-based ordinal in the whole journal).
    pub(crate) fn append(&mut self, record: &Record<'_>) -> u64 {
        self.journal.append(record);
        self.records += 1;
        self.records
    }

    /// The seq of the last record appended.
    pub(crate) fn last_seq(&self) -> u64 {
        self.records
    }

    /// The seq of the last record known durable: what the event stream
    /// may show (a fill it showed never vanishes in a crash).
    pub(crate) fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Under `FSYNC=always` every decision is committed on its own.
    pub(crate) fn commits_each_decision(&self) -> bool {
        self.journal.policy() == FsyncPolicy::Always
    }

    /// One checkpoint per file source per iteration, after every decision
    /// of the iteration: the journal's order is what makes it safe.
    pub(crate) fn append_checkpoint(&mut self, source: &str, checkpoint: Checkpoint) {
        self.append(&Record::Ckpt {
            src: Cow::Borrowed(source),
            dev: checkpoint.dev,
            ino: checkpoint.ino,
            off: checkpoint.offset,
        });
        self.checkpoints.insert(source.to_owned(), checkpoint);
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
        let written = self.journal.commits_written();
        // Everything appended so far was written by commit `written`.
        let last_written = self
            .undurable
            .back()
            .map_or(self.durable_seq, |(_, seq)| *seq);
        if self.records > last_written {
            self.undurable.push_back((written, self.records));
        }
        while let Some((_, seq)) = self
            .undurable
            .front()
            .filter(|(commit, _)| *commit <= durable)
        {
            self.durable_seq = *seq;
            self.undurable.pop_front();
        }
        self.awaiting.extend(
            self.replies
                .drain(..)
                .map(|(reply, outcomes)| (written, reply, outcomes)),
        );
        let (answered, waiting) = std::mem::take(&mut self.awaiting)
            .into_iter()
            .partition(|(commit, ..)| *commit <= durable);
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
        let message = error.to_string();
        if self.error.as_deref() != Some(message.as_str()) {
            tracing::error!(error = %message, "journal write failed; intake paused, retrying every tick");
            self.health
                .set_component("journal", Component::Failed(error.without_dir()));
            self.error = Some(message);
        }
    }

    /// Writes the snapshot; never ahead of the journal (it commits first,
    /// and writes nothing while the journal is failing). False if it was
    /// not written.
    pub(crate) fn snapshot(&mut self, figures: &Figures<'_>) -> bool {
        self.commit(false);
        if self.is_blocked() {
            return false;
        }
        let snapshot = Snapshot {
            written_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            journal_records: self.records,
            positions: figures.positions,
            checkpoints: &self.checkpoints,
            signals: figures.signals,
            fills: figures.fills,
            rejects: figures.rejects,
            duplicates: figures.duplicates,
        };
        match snapshot::write(&self.state_dir, &snapshot) {
            // Per decision is debug (a busy feed would drown the log); this
            // line, every SNAPSHOT_INTERVAL while signals flow and at stop,
            // shows at info that the bot is doing its job.
            Ok(()) => tracing::info!(
                signals = snapshot.signals,
                fills = snapshot.fills,
                rejects = snapshot.rejects,
                duplicates = snapshot.duplicates,
                symbols = snapshot.positions.len(),
                "snapshot written"
            ),
            Err(error) => {
                tracing::warn!(%error, "cannot write the snapshot (the journal stays the truth)")
            }
        }
        true
    }
}

/// Rejects that are decisions about a valid signal (a risk limit, no
/// price): the id is then taken. A line refused as malformed takes no id,
/// so a corrected resend is still handled. Live decisions and replay both
/// ask this, so an id's fate never depends on a restart.
///
/// A symbol refused by `SYMBOLS` (`unknown_symbol`) or `MAX_SYMBOLS`
/// (`too_many_symbols`) takes no id either. The refusal is about what the
/// bot is set up to hold, not about the signal: the same signal is refused
/// again for as long as the settings stand (after a restart too), and
/// handled once the operator lists the symbol or raises the cap (once: it
/// was never executed). And these are the signals of a feed that invents
/// symbols: taking their ids would let it grow the exactly-once index by
/// every one, the very growth the bound is there to stop.
fn is_decision(reason: Reason) -> bool {
    reason == Reason::NoPrice || reason.is_risk_limit()
}
