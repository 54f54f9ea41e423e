//! The bot loop. Each iteration takes what the sources have delivered (or
//! wakes on the idle tick), decides every line, commits the journal once,
//! and only then answers webhook clients, records checkpoints and beats the
//! heartbeat: a wedged iteration is a missing beat.
//!
//! While the journal cannot be written the loop takes no new lines (the
//! sources wait on the full channel) and retries on every idle tick; it
//! keeps beating, and the `journal` component says what is wrong.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::decided::DecidedIds;
use super::engine::{Engine, Fill, PaperExecution};
use super::journal::{FsyncPolicy, Journal, JournalError, Record};
use super::metrics::{self, BotMetrics, Figures, SymbolSeries};
use super::signal::{Reason, Reject, Signal};
use super::snapshot::{self, Checkpoint, Snapshot};
use super::source::exec::ExecSource;
use super::source::file::FileSource;
use super::source::webhook::Webhook;
use super::source::{self, Batch, Decision, FeedHealth, Outcome};
use super::SourceSpec;
use crate::config::Config;
use crate::health::{Component, HealthState, Heartbeat};

/// Batches the channel holds before sources wait: bounds memory (a parsed
/// file batch is about 160 KiB), and is the back-pressure that stops
/// intake while the journal is failing. One iteration's worth keeps the
/// loop fed while a source parses the next.
const CHANNEL_BATCHES: usize = MAX_BATCHES_PER_ITERATION;

/// Most batches one iteration takes, so a flood still beats regularly.
const MAX_BATCHES_PER_ITERATION: usize = 64;

/// Longest raw line kept in a reject record.
const MAX_REJECT_LINE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot listen for webhooks on --webhook-bind (WEBHOOK_BIND) {addr}: {source}")]
    WebhookBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
}

impl BotError {
    /// A configuration mistake (exit 2) rather than a runtime failure: a
    /// webhook address that cannot be bound is one the operator must change.
    pub fn is_config(&self) -> bool {
        matches!(self, BotError::WebhookBind { .. })
    }
}

/// One configured source: its spec and the name journal records carry.
struct SourceEntry {
    spec: SourceSpec,
    name: String,
}

pub struct Bot {
    health: Arc<HealthState>,
    feed: Arc<FeedHealth>,
    metrics: Arc<BotMetrics>,
    figures: Figures,
    sources: Vec<SourceEntry>,
    webhook: Option<(std::net::TcpListener, crate::config::WebhookConfig)>,
    journal: Journal,
    journal_error: Option<String>,
    engine: Engine,
    /// Which symbols have metrics series of their own (issue 16).
    series: SymbolSeries,
    /// Ids with a decision (fill or reject) in the journal.
    decided: DecidedIds,
    checkpoints: BTreeMap<String, Checkpoint>,
    /// File sources' progress in this iteration, journaled at its end.
    moved: BTreeMap<usize, Checkpoint>,
    records: u64,
    /// Decided, not yet written: answered once their commit is durable.
    replies: Vec<(oneshot::Sender<Vec<Outcome>>, Vec<Outcome>)>,
    /// Written by the commit numbered first, answered when it is durable.
    awaiting: Vec<(u64, oneshot::Sender<Vec<Outcome>>, Vec<Outcome>)>,
    state_dir: PathBuf,
    idle_tick: Duration,
    snapshot_interval: Duration,
    max_signal_age: Option<Duration>,
    file_poll_interval: Duration,
    exec_backoff: (Duration, Duration),
    started: Instant,
    quiet: bool,
    positions_moved: bool,
}

impl Bot {
    /// Recovers the journal (cutting a torn tail, rebuilding the dedupe
    /// index, positions and checkpoints) and binds the webhook listener.
    pub async fn init(config: &Config, health: &Arc<HealthState>) -> Result<Bot, BotError> {
        // Past RLIMIT_FSIZE a write must fail with EFBIG, which the journal
        // reports and retries, instead of SIGXFSZ killing the process.
        signal_hook::flag::register(
            signal_hook::consts::SIGXFSZ,
            Arc::new(std::sync::atomic::AtomicBool::new(false)),
        )
        .map_err(|source| BotError::Start {
            what: "SIGXFSZ handler",
            source,
        })?;
        let (journal, records) = Journal::recover(&config.state_dir, config.fsync)?;
        let mut bot = Bot {
            health: Arc::clone(health),
            feed: FeedHealth::new(Arc::clone(health)),
            metrics: BotMetrics::new(),
            figures: Figures::new(config.sources.iter().map(SourceSpec::kind)),
            sources: config
                .sources
                .iter()
                .map(|spec| SourceEntry {
                    spec: spec.clone(),
                    name: spec.name(),
                })
                .collect(),
            webhook: None,
            journal,
            journal_error: None,
            engine: Engine::new(config.risk, Box::new(PaperExecution))
                .with_symbols(&config.symbols),
            series: SymbolSeries::new(&config.symbols),
            decided: DecidedIds::default(),
            checkpoints: BTreeMap::new(),
            moved: BTreeMap::new(),
            records: 0,
            replies: Vec::new(),
            awaiting: Vec::new(),
            state_dir: config.state_dir.clone(),
            idle_tick: config.heartbeat_interval,
            snapshot_interval: config.snapshot_interval,
            max_signal_age: config.max_signal_age,
            file_poll_interval: config.file_poll_interval,
            exec_backoff: (config.exec_backoff, config.exec_backoff_max),
            started: Instant::now(),
            quiet: false,
            positions_moved: false,
        };
        for record in records {
            bot.replay(record);
        }
        tracing::info!(
            journal = %bot.journal.path().display(),
            records = bot.records,
            decided_ids = bot.decided.len(),
            symbols = bot.engine.symbols(),
            "journal recovered"
        );
        bot.engine.warn_if_over_bound();
        bot.figures.symbols = bot.series.tally(&bot.engine);
        bot.try_commit(false);
        if let Some(webhook) = &config.webhook {
            let listener = std::net::TcpListener::bind(webhook.bind).map_err(|source| {
                BotError::WebhookBind {
                    addr: webhook.bind,
                    source,
                }
            })?;
            tracing::info!(addr = %webhook.bind, "webhook listening on POST /signals");
            bot.webhook = Some((listener, webhook.clone()));
        }
        bot.metrics.publish(&bot.figures);
        health.set_bot_metrics(bot.metrics.clone());
        Ok(bot)
    }

    fn replay(&mut self, record: Record<'_>) {
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
                self.engine.apply(&Fill {
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

    pub async fn run(
        mut self,
        heartbeat: Heartbeat,
        shutdown: CancellationToken,
    ) -> Result<(), BotError> {
        let (batches_in, mut batches) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
        self.start_sources(batches_in, &shutdown)?;
        let mut idle = tokio::time::interval(self.idle_tick);
        idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_snapshot: Option<Instant> = None;
        let mut dirty = false;
        let mut open = true;
        let mut stopping = false;
        let mut taken = Vec::new();
        let mut left_for_restart = 0usize;
        loop {
            let blocked = self.journal_error.is_some();
            tokio::select! {
                biased;
                () = shutdown.cancelled(), if !stopping => {
                    stopping = true;
                    tracing::info!("bot loop: sources stopping; finishing what they delivered");
                }
                received = batches.recv(), if open && !blocked => match received {
                    Some(batch) => {
                        taken.push(batch);
                        while taken.len() < MAX_BATCHES_PER_ITERATION {
                            let Ok(batch) = batches.try_recv() else { break };
                            taken.push(batch);
                        }
                        if stopping {
                            left_for_restart += leave_rereadable(&mut taken);
                        }
                    }
                    None => open = false,
                },
                _ = idle.tick() => {}
            }
            fail::fail_point!("bot::iteration");
            dirty |= !taken.is_empty();
            for batch in taken.drain(..) {
                self.handle(batch);
            }
            self.append_checkpoints();
            self.try_commit(!batches.is_empty());
            if std::mem::take(&mut self.positions_moved) {
                self.figures.symbols = self.series.tally(&self.engine);
            }
            let due = last_snapshot.map_or(true, |at| at.elapsed() >= self.snapshot_interval);
            if dirty && due && self.journal_error.is_none() {
                // Never ahead of the journal: an overlapped fsync first.
                self.try_commit(false);
                if self.journal_error.is_none() {
                    self.write_snapshot();
                    last_snapshot = Some(Instant::now());
                    dirty = false;
                }
            }
            self.figures.iterations += 1;
            self.metrics.publish(&self.figures);
            // After the figures are published: /health never calls a feed
            // fresh before it can show the signal that made it so.
            self.check_quiet();
            heartbeat.beat();
            if stopping && !open && self.journal_error.is_none() {
                break;
            }
        }
        self.try_commit(false);
        self.write_snapshot();
        tracing::info!(
            records = self.records,
            left_for_restart,
            "bot loop: drained, journal committed"
        );
        Ok(())
    }

    fn start_sources(
        &mut self,
        batches: mpsc::Sender<Batch>,
        shutdown: &CancellationToken,
    ) -> Result<(), BotError> {
        for (index, entry) in self.sources.iter().enumerate() {
            match &entry.spec {
                SourceSpec::File(path) => {
                    FileSource {
                        index,
                        name: entry.name.clone(),
                        path: path.clone(),
                        poll: self.file_poll_interval,
                        resume: self.checkpoints.get(&entry.name).copied(),
                        batches: batches.clone(),
                        feed: Arc::clone(&self.feed),
                        shutdown: shutdown.clone(),
                    }
                    .spawn()
                    .map_err(|source| BotError::Start {
                        what: "file source thread",
                        source,
                    })?;
                }
                SourceSpec::Exec(command) => {
                    tokio::spawn(
                        ExecSource {
                            index,
                            name: entry.name.clone(),
                            command: command.clone(),
                            backoff: self.exec_backoff.0,
                            backoff_max: self.exec_backoff.1,
                            batches: batches.clone(),
                            feed: Arc::clone(&self.feed),
                            shutdown: shutdown.clone(),
                        }
                        .run(),
                    );
                }
                SourceSpec::Stdin => {
                    tokio::spawn(source::stdin::run(index, batches.clone(), shutdown.clone()));
                }
                SourceSpec::Webhook => {
                    let Some((listener, webhook)) = self.webhook.take() else {
                        continue;
                    };
                    Webhook {
                        index,
                        listener,
                        token: webhook.token,
                        body_limit: webhook.body_limit,
                        batches: batches.clone(),
                        shutdown: shutdown.clone(),
                    }
                    .spawn()
                    .map_err(|source| BotError::Start {
                        what: "webhook thread",
                        source,
                    })?;
                }
            }
        }
        Ok(())
    }

    fn handle(&mut self, batch: Batch) {
        let now_ms = now_ms();
        if !batch.lines.is_empty() {
            self.figures.last_signal = Some((Instant::now(), SystemTime::now()));
        }
        let mut outcomes = Vec::new();
        for (bytes, parsed) in batch.lines.iter() {
            let decided = self.decide(batch.source, bytes, parsed, now_ms);
            if self.journal.policy() == FsyncPolicy::Always && self.journal_error.is_none() {
                self.commit_now(false);
            }
            if batch.reply.is_some() {
                outcomes.push(decided.outcome());
            }
        }
        if let Some(checkpoint) = batch.checkpoint {
            self.moved.insert(batch.source, checkpoint);
        }
        if let Some(reply) = batch.reply {
            self.replies.push((reply, outcomes));
        }
    }

    /// Decides one line: invalid, duplicate, rejected by the engine, or filled.
    fn decide<'l>(
        &mut self,
        source: usize,
        bytes: &[u8],
        parsed: Result<Signal<'l>, &'l Reject>,
        now_ms: i64,
    ) -> Decided<'l> {
        let signal = match parsed {
            Ok(signal) => signal,
            Err(reject) => {
                self.reject(source, bytes, reject, now_ms);
                return Decided::refused(Decision::Invalid, Cow::Borrowed(reject));
            }
        };
        // The same rule as replay's decides whether the id is taken.
        let decided = self.decided.decide_once(&signal.id, || {
            let decided = self.engine.decide(&signal, now_ms);
            let takes_id = decided
                .as_ref()
                .map_or_else(|reject| is_decision(reject.reason), |_| true);
            (decided, takes_id)
        });
        let Some(decided) = decided else {
            self.figures.count(source, metrics::Result::Duplicate);
            self.figures.duplicates += 1;
            return Decided {
                id: Some(signal.id),
                result: Decision::Duplicate,
                reject: None,
            };
        };
        match decided {
            Ok(fill) => {
                tracing::debug!(id = %signal.id, symbol = %fill.symbol, side = fill.side.as_str(), qty = fill.qty, price = fill.price, "filled");
                self.figures.count(source, metrics::Result::Filled);
                self.positions_moved = true;
                self.journal.append(&Record::Fill {
                    id: Cow::Borrowed(&signal.id),
                    src: Cow::Borrowed(&self.sources[source].name),
                    ts: signal.ts_ms,
                    at: fill.at_ms,
                    symbol: Cow::Borrowed(fill.symbol),
                    side: fill.side,
                    qty: fill.qty,
                    price: fill.price,
                    source: signal.source.as_deref().map(Cow::Borrowed),
                });
                self.records += 1;
                Decided {
                    id: Some(signal.id),
                    result: Decision::Filled,
                    reject: None,
                }
            }
            Err(reject) => {
                let reject = Reject {
                    id: Some(signal.id.into_owned()),
                    ..reject
                };
                self.reject(source, bytes, &reject, now_ms);
                Decided::refused(Decision::Rejected, Cow::Owned(reject))
            }
        }
    }

    fn reject(&mut self, source: usize, bytes: &[u8], reject: &Reject, now_ms: i64) {
        tracing::debug!(id = ?reject.id, reason = reject.reason.label(), detail = %reject.detail, "rejected");
        self.journal.append(&Record::Reject {
            id: reject.id.clone(),
            src: Cow::Borrowed(&self.sources[source].name),
            at: now_ms,
            reason: reject.reason.label().to_owned(),
            detail: reject.detail.clone(),
            line: String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_REJECT_LINE)]).into_owned(),
        });
        self.records += 1;
        self.figures.count(source, metrics::Result::Rejected);
        self.figures.rejects[reject.reason.index()] += 1;
    }

    /// One checkpoint per file source per iteration, after every decision
    /// of the iteration: the journal's order is what makes it safe.
    fn append_checkpoints(&mut self) {
        for (source, checkpoint) in std::mem::take(&mut self.moved) {
            let name = self.sources[source].name.clone();
            self.journal.append(&Record::Ckpt {
                src: Cow::Borrowed(&name),
                dev: checkpoint.dev,
                ino: checkpoint.ino,
                off: checkpoint.offset,
            });
            self.checkpoints.insert(name, checkpoint);
            self.records += 1;
        }
    }

    /// Commits (overlapping the fsync with the next batch while more are
    /// waiting), and answers the webhook clients whose decisions are now
    /// durable.
    fn try_commit(&mut self, overlap: bool) {
        let Some(durable) = self.commit_now(overlap) else {
            return;
        };
        let written = self.journal.commits_written();
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

    /// The number of durable commits, or `None` if the journal failed.
    fn commit_now(&mut self, overlap: bool) -> Option<u64> {
        match self.journal.commit(overlap) {
            Ok(durable) => {
                for took in self.journal.fsync_times() {
                    self.figures.fsync.observe(took);
                }
                if self.journal_error.take().is_some() {
                    tracing::info!("journal writable again; intake resumes");
                }
                self.health.set_component("journal", Component::Ok);
                Some(durable)
            }
            Err(error) => {
                let message = error.to_string();
                if self.journal_error.as_deref() != Some(message.as_str()) {
                    tracing::error!(error = %message, "journal write failed; intake paused, retrying every tick");
                    self.health
                        .set_component("journal", Component::Failed(error.without_dir()));
                    self.journal_error = Some(message);
                }
                None
            }
        }
    }

    fn check_quiet(&mut self) {
        let Some(max_age) = self.max_signal_age else {
            return;
        };
        let age = self
            .figures
            .last_signal
            .map_or_else(|| self.started.elapsed(), |(at, _)| at.elapsed());
        let quiet = age > max_age;
        if quiet != self.quiet {
            self.quiet = quiet;
            self.feed.set(
                "signals",
                quiet.then(|| {
                    format!(
                        "no signal for {}s (MAX_SIGNAL_AGE {})",
                        age.as_secs(),
                        humantime::format_duration(max_age)
                    )
                }),
            );
        }
    }

    fn write_snapshot(&self) {
        let written_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let positions = self.engine.positions();
        let snapshot = Snapshot {
            written_at,
            journal_records: self.records,
            positions: &positions,
            checkpoints: &self.checkpoints,
            signals: self.figures.total(None),
            fills: self.figures.total(Some(metrics::Result::Filled)),
            rejects: self.figures.rejects.iter().sum(),
            duplicates: self.figures.duplicates,
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
    matches!(
        reason,
        Reason::NoPrice
            | Reason::MaxPositionQty
            | Reason::MaxOrderNotional
            | Reason::MaxOrdersPerMinute
    )
}

/// What became of one line, borrowing the line; made into an [`Outcome`]
/// only for a client waiting on it.
struct Decided<'l> {
    id: Option<Cow<'l, str>>,
    result: Decision,
    reject: Option<Cow<'l, Reject>>,
}

impl<'l> Decided<'l> {
    fn refused(result: Decision, reject: Cow<'l, Reject>) -> Self {
        Decided {
            id: None,
            result,
            reject: Some(reject),
        }
    }

    fn outcome(self) -> Outcome {
        let (reason, detail, reject_id) = match self.reject.map(Cow::into_owned) {
            Some(reject) => (Some(reject.reason.label()), Some(reject.detail), reject.id),
            None => (None, None, None),
        };
        Outcome {
            id: self.id.map(Cow::into_owned).or(reject_id),
            result: self.result,
            reason,
            detail,
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// Once stopping, a file source's queued lines are not "in hand": nothing
/// acknowledged them, and the next start re-reads them from the last
/// journaled checkpoint. Dropping them keeps the drain to one iteration
/// however deep the queue. Every later batch of that source is dropped too
/// (the source has stopped, and all its batches after this point arrive
/// here), so no checkpoint can ever move past a dropped line. Webhook
/// requests (waiting for their answer) and stdin or exec lines (which
/// cannot be read again) are still decided.
fn leave_rereadable(taken: &mut Vec<Batch>) -> usize {
    let mut left = 0;
    taken.retain(|batch| {
        let rereadable = batch.checkpoint.is_some() && batch.reply.is_none();
        if rereadable {
            left += batch.lines.len();
        }
        !rereadable
    });
    left
}
