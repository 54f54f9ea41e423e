//! The bot loop. Each iteration takes what the sources have delivered (or
//! wakes on the idle tick), decides every line, commits the journal once,
//! and only then answers webhook clients, records checkpoints and beats the
//! heartbeat: a wedged iteration is a missing beat.
//!
//! While the journal cannot be written the loop takes no new lines (the
//! sources wait on the full channel) and retries on every idle tick; it
//! keeps beating, and the `journal` component says what is wrong.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::decide::{decide, Verdict};
use super::engine::{Engine, PaperExecution};
use super::events::{self, Duplicates, Events};
use super::figures::{BotMetrics, Figures, SymbolSeries, Tally};
use super::intake::{
    Batch, Channels, Decision, Gate, Intake, IntakeError, Outcome, SourceSettings, Sources, Submit,
};
use super::ledger::checkpoint::Checkpoint;
use super::ledger::journal::JournalError;
use super::ledger::{EngineState, Ledger};
use super::settings::Settings;
use super::signal::{now_ms, Reason};
use crate::alerts::{Alerts, Digest, Event, Kind};
use crate::health::{HealthState, Heartbeat};
use crate::metrics::{Combined, MetricsSource};

/// Batches each channel (bulk, and waited on by clients) holds before
/// sources wait: bounds memory (a parsed file batch is about 160 KiB), and
/// is the back-pressure that stops intake while the journal is failing.
/// One iteration's worth keeps the loop fed while a source parses the next.
const CHANNEL_BATCHES: usize = MAX_BATCHES_PER_ITERATION;

/// Most batches one iteration takes, so a flood still beats regularly.
const MAX_BATCHES_PER_ITERATION: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
}

impl BotError {
    /// A configuration mistake (exit 2) rather than a runtime failure.
    pub(crate) fn is_config(&self) -> bool {
        matches!(self, BotError::Intake(error) if error.is_config())
    }
}

pub(crate) struct Bot {
    sources: Arc<Sources>,
    metrics: Arc<BotMetrics>,
    figures: Figures,
    /// Each source's name, as journal records carry it, by its index.
    names: Vec<String>,
    /// Where each source's position is journaled, by its index.
    resume_keys: Vec<String>,
    /// Whether each source, by its index, can deliver its lines again after
    /// a restart (see `leave_rereadable`).
    rereadable: Vec<bool>,
    /// Made by `init`, started by `run`.
    intake: Option<Intake>,
    /// Tells the webhook's clients, every iteration, whether intake is paused.
    gate: Gate,
    ledger: Ledger,
    engine: Engine,
    /// File sources' progress in this iteration, journaled at its end.
    moved: BTreeMap<usize, Checkpoint>,
    idle_tick: Duration,
    max_signal_age: Option<Duration>,
    started: Instant,
    quiet: bool,
    /// A fill or a price update this iteration: the positions' figures
    /// are made again at its end.
    positions_moved: bool,
    /// Which symbols have metrics series of their own.
    series: SymbolSeries,
    alerts: Alerts,
    /// This iteration's fills and risk rejects, sent at its end.
    trades: Digest,
    /// For the stream: how far the journal is durable, and this
    /// iteration's duplicates (published at its end).
    events: Events,
    duplicates: Duplicates,
}

impl Bot {
    /// Recovers the journal (cutting a torn tail, rebuilding the dedupe
    /// index, positions and checkpoints); the webhook's bodies will come
    /// in through `submit`.
    pub(crate) async fn init(
        config: &Settings,
        idle_tick: Duration,
        health: &Arc<HealthState>,
        alerts: Alerts,
        events: Events,
        submit: Submit,
    ) -> Result<Bot, BotError> {
        let mut engine =
            Engine::new(config.account, Box::new(PaperExecution)).with_symbols(&config.symbols);
        let (ledger, recovery) = Ledger::recover(config, Arc::clone(health), &mut engine)?;
        let mut bot = Bot {
            sources: Sources::new(
                Arc::clone(health),
                alerts.clone(),
                events.clone(),
                &config.intake.sources,
            ),
            metrics: BotMetrics::new(),
            figures: Figures::new(
                config
                    .intake
                    .sources
                    .iter()
                    .map(|source| source.kind.label()),
            ),
            names: config
                .intake
                .sources
                .iter()
                .map(|source| source.name.clone())
                .collect(),
            resume_keys: config
                .intake
                .sources
                .iter()
                .map(SourceSettings::resume_key)
                .collect(),
            rereadable: config
                .intake
                .sources
                .iter()
                .map(SourceSettings::rereadable)
                .collect(),
            intake: None,
            gate: submit.gate(),
            ledger,
            engine,
            moved: BTreeMap::new(),
            idle_tick,
            max_signal_age: config.max_signal_age,
            started: Instant::now(),
            quiet: false,
            positions_moved: false,
            series: SymbolSeries::new(&config.symbols),
            alerts,
            trades: Digest::default(),
            events,
            duplicates: Duplicates::default(),
        };
        tracing::info!(
            journal = %bot.ledger.journal_path().display(),
            last_seq = bot.ledger.last_seq(),
            from_snapshot = ?recovery.snapshot,
            replayed = recovery.records,
            took_ms = recovery.took.as_millis() as u64,
            decided_ids = bot.ledger.decided_ids(),
            symbols = bot.engine.symbols(),
            "journal recovered"
        );
        bot.engine.warn_if_over_bound();
        bot.figure_positions();
        bot.commit(false);
        bot.intake = Some(Intake::new(config.intake.clone(), submit));
        bot.metrics.publish(&bot.figures);
        bot.ledger.publish();
        bot.events
            .publish(bot.ledger.durable_seq(), &mut bot.duplicates);
        bot.events
            .set_figures(bot.metrics.clone(), Arc::clone(&bot.sources));
        bot.events.send(events::Event::Start {
            journal_records: bot.ledger.last_seq(),
            recovered_fills: recovery.fills,
        });
        // The sources', the ledger's and the notifier's figures beside the
        // bot's.
        let mut figures: Vec<Arc<dyn MetricsSource>> = vec![
            bot.metrics.clone(),
            bot.sources.clone(),
            bot.ledger.metrics(),
        ];
        figures.extend(bot.alerts.metrics());
        health.set_bot_metrics(Arc::new(Combined(figures)));
        bot.alerts.send(Event::Started {
            version: env!("CARGO_PKG_VERSION"),
            journal_records: bot.ledger.last_seq(),
            recovered_fills: recovery.fills,
            positions: bot.engine.symbols(),
        });
        Ok(bot)
    }

    pub(crate) async fn run(
        mut self,
        heartbeat: Heartbeat,
        shutdown: CancellationToken,
    ) -> Result<(), BotError> {
        let (channels, mut inbox) = Inbox::new();
        if let Some(intake) = self.intake.take() {
            intake.start(
                self.ledger.checkpoints(),
                channels,
                Arc::clone(&self.sources),
                &shutdown,
            )?;
        }
        let mut idle = tokio::time::interval(self.idle_tick);
        idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let blocked = self.ledger.is_blocked();
            self.gate
                .set(blocked.then_some("the journal cannot be written"));
            let fresh = inbox.wait(&shutdown, &mut idle, blocked).await;
            if fresh && !blocked {
                inbox.top_up(&self.rereadable);
            }
            fail::fail_point!("bot::iteration");
            if !blocked {
                self.decide_taken(&mut inbox);
            }
            self.end_iteration(inbox.has_more());
            heartbeat.beat();
            if inbox.drained() && !self.ledger.is_blocked() {
                break;
            }
        }
        self.finish(inbox.left_for_restart);
        Ok(())
    }

    /// Decides what the inbox holds: every request first, then bulk
    /// batches until a request comes in (a client waits on the next
    /// commit: it is made now, not after the rest of a flood's batches).
    fn decide_taken(&mut self, inbox: &mut Inbox) {
        while let Ok(batch) = inbox.waited_on.try_recv() {
            inbox.requests.push(batch);
        }
        for batch in std::mem::take(&mut inbox.requests) {
            self.handle(batch);
        }
        while let Some(batch) = inbox.taken.pop_front() {
            self.handle(batch);
            if !inbox.waited_on.is_empty() {
                break;
            }
        }
    }

    /// After an iteration's decisions: checkpoints, alerts, the commit
    /// (overlapped when `more` waits), then what is published.
    fn end_iteration(&mut self, more: bool) {
        for (source, checkpoint) in std::mem::take(&mut self.moved) {
            self.ledger
                .append_checkpoint(&self.resume_keys[source], checkpoint);
        }
        self.trades.send(&self.alerts);
        // A client waiting on this commit (a webhook) is answered at
        // its end, not a whole iteration later: no overlapped fsync then.
        self.commit(more && !self.ledger.has_waiting_clients());
        self.events
            .publish(self.ledger.durable_seq(), &mut self.duplicates);
        if std::mem::take(&mut self.positions_moved) {
            self.figure_positions();
        }
        let engine = &self.engine;
        self.ledger.snapshot_if_due(|| EngineState::of(engine));
        self.take_fsync_times();
        self.ledger.publish();
        self.figures.iterations += 1;
        self.metrics.publish(&self.figures);
        // After the figures are published: /health never calls a feed
        // fresh before it can show the signal that made it so.
        self.check_quiet();
    }

    /// The positions' figures: per symbol, every position, the account.
    /// After an iteration that moved them, never per scrape.
    fn figure_positions(&mut self) {
        self.figures.symbols = self.series.tally(&self.engine);
        self.figures.positions = Arc::new(self.engine.positions());
        match self.engine.summary() {
            Ok(summary) => self.figures.account = summary,
            Err(overflow) => {
                tracing::warn!(%overflow, "the account's equity is past what an amount holds; its last figures stay")
            }
        }
    }

    /// The stop: the last commit and snapshot, then the stop's events.
    fn finish(&mut self, left_for_restart: usize) {
        self.commit(false);
        self.ledger.finish(EngineState::of(&self.engine));
        self.take_fsync_times();
        self.events
            .publish(self.ledger.durable_seq(), &mut self.duplicates);
        let (signals, fills, rejects) = (
            self.figures.total(None),
            self.figures.total(Some(Tally::Filled)),
            self.figures.total(Some(Tally::Rejected)),
        );
        self.events.send(events::Event::Stop {
            signals,
            fills,
            rejects,
        });
        tracing::info!(
            last_seq = self.ledger.last_seq(),
            left_for_restart,
            "bot loop: drained, journal committed"
        );
        self.alerts.send(Event::Stopped {
            signals,
            fills,
            rejects,
        });
    }

    fn handle(&mut self, batch: Batch) {
        let now_ms = self.ledger.now(now_ms());
        if !batch.lines.is_empty() {
            self.figures.last_signal = Some((Instant::now(), SystemTime::now()));
        }
        let mut outcomes = Vec::new();
        for line in batch.lines.iter() {
            let item = line.item.as_ref().map_err(|reject| *reject);
            let src = &self.names[batch.source];
            let verdict = decide(
                &mut self.ledger,
                &mut self.engine,
                src,
                line.bytes,
                item,
                line.id_hash,
                now_ms,
            );
            if self.ledger.commits_each_decision() && !self.ledger.is_blocked() {
                self.ledger.commit(false);
            }
            if batch.reply.is_some() {
                outcomes.push(outcome(&verdict));
            }
            self.publish(batch.source, verdict);
        }
        if let Some(checkpoint) = batch.checkpoint {
            self.moved.insert(batch.source, checkpoint);
        }
        if let Some(reply) = batch.reply {
            self.ledger.answer_when_durable(reply, outcomes);
        }
    }

    /// What a verdict changes of the figures, the stream's duplicates and
    /// the trade alerts.
    fn publish(&mut self, source: usize, verdict: Verdict<'_>) {
        match verdict {
            Verdict::Invalid(reject) => self.count_reject(source, reject.reason),
            Verdict::Duplicate(signal) => {
                self.figures.count(source, Tally::Duplicate);
                self.figures.duplicates += 1;
                if self.events.is_enabled() {
                    self.duplicates
                        .add(self.ledger.last_seq(), &signal.id, &self.names[source]);
                }
            }
            Verdict::Filled(signal, fill) => {
                self.figures.count(source, Tally::Filled);
                self.positions_moved = true;
                // Built only when it will be sent in full.
                self.trades.add(&self.alerts, Kind::Fill, || Event::Fill {
                    id: signal.id.to_string(),
                    symbol: signal.symbol.to_string(),
                    side: fill.side.as_str(),
                    qty: fill.qty.to_string(),
                    price: fill.price.to_string(),
                    asked: fill.asked.to_string(),
                    fee: fill.fee.to_string(),
                });
            }
            Verdict::Marked => {
                self.figures.price_updates += 1;
                self.positions_moved = true;
            }
            Verdict::Unmarked(update, reject) => {
                tracing::debug!(symbol = %update.symbol, reason = reject.reason.label(), detail = %reject.detail, "price update refused");
                self.figures.rejects[reject.reason.index()] += 1;
            }
            Verdict::Rejected(signal, reject) => {
                self.count_reject(source, reject.reason);
                if reject.reason.is_risk_limit() {
                    self.trades
                        .add(&self.alerts, Kind::Reject, || Event::RiskReject {
                            id: reject.id.clone(),
                            symbol: signal.symbol.to_string(),
                            reason: reject.reason.label(),
                            detail: reject.detail.clone(),
                        });
                }
            }
        }
    }

    fn count_reject(&mut self, source: usize, reason: Reason) {
        self.figures.count(source, Tally::Rejected);
        self.figures.rejects[reason.index()] += 1;
    }

    /// Commits, and records how long its fsyncs took.
    fn commit(&mut self, overlap: bool) {
        self.ledger.commit(overlap);
        self.take_fsync_times();
    }

    fn take_fsync_times(&mut self) {
        for took in self.ledger.fsync_times() {
            self.figures.fsync.observe(took);
        }
    }

    /// Each source's own quiet (its `quiet_after`), and the whole feed's
    /// (`MAX_SIGNAL_AGE`).
    fn check_quiet(&mut self) {
        self.sources.check_quiet();
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
            self.sources.set_overall(quiet.then(|| {
                format!(
                    "no signal for {}s (MAX_SIGNAL_AGE {})",
                    age.as_secs(),
                    humantime::format_duration(max_age)
                )
            }));
        }
    }
}

/// What a client waiting on an item is told of its verdict.
fn outcome(verdict: &Verdict<'_>) -> Outcome {
    let (id, result, reject) = match verdict {
        Verdict::Invalid(reject) => (reject.id.clone(), Decision::Invalid, Some(*reject)),
        Verdict::Duplicate(signal) => (Some(signal.id.to_string()), Decision::Duplicate, None),
        Verdict::Rejected(signal, reject) => (
            Some(signal.id.to_string()),
            Decision::Rejected,
            Some(reject),
        ),
        Verdict::Filled(signal, _) => (Some(signal.id.to_string()), Decision::Filled, None),
        Verdict::Marked => (None, Decision::Marked, None),
        Verdict::Unmarked(_, reject) => (None, Decision::Rejected, Some(reject)),
    };
    Outcome {
        id,
        result,
        reason: reject.map(|reject| reject.reason.label()),
        detail: reject.map(|reject| reject.detail.clone()),
    }
}

/// What the sources delivered and the loop has not decided yet: the two
/// channels (bulk, and requests a client waits on), the bulk batches taken
/// and not yet decided (an iteration a request cut short leaves the rest to
/// the next), and whether the stop has begun.
struct Inbox {
    bulk: mpsc::Receiver<Batch>,
    waited_on: mpsc::Receiver<Batch>,
    bulk_open: bool,
    waited_on_open: bool,
    stopping: bool,
    taken: VecDeque<Batch>,
    requests: Vec<Batch>,
    /// Lines left at the stop for the next start to read again.
    left_for_restart: usize,
}

impl Inbox {
    fn new() -> (Channels, Inbox) {
        let (bulk_in, bulk) = mpsc::channel(CHANNEL_BATCHES);
        let (waited_on_in, waited_on) = mpsc::channel(CHANNEL_BATCHES);
        let channels = Channels {
            bulk: bulk_in,
            waited_on: waited_on_in,
        };
        let inbox = Inbox {
            bulk,
            waited_on,
            bulk_open: true,
            waited_on_open: true,
            stopping: false,
            taken: VecDeque::new(),
            requests: Vec::new(),
            left_for_restart: 0,
        };
        (channels, inbox)
    }

    /// Waits for something to do: a request, a bulk batch (unless some
    /// are still in hand), the stop, or the idle tick. While the journal
    /// is `blocked` it takes nothing: the sources wait on the full
    /// channels, and the tick retries the journal. Returns whether no bulk
    /// batch was in hand (then more may be taken).
    async fn wait(
        &mut self,
        shutdown: &CancellationToken,
        idle: &mut Interval,
        blocked: bool,
    ) -> bool {
        let fresh = self.taken.is_empty();
        if !fresh && !blocked {
            return fresh;
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled(), if !self.stopping => {
                self.stopping = true;
                tracing::info!("bot loop: sources stopping; finishing what they delivered");
            }
            received = self.waited_on.recv(), if self.waited_on_open && !blocked => match received {
                Some(batch) => self.requests.push(batch),
                None => self.waited_on_open = false,
            },
            received = self.bulk.recv(), if self.bulk_open && !blocked && fresh => match received {
                Some(batch) => self.taken.push_back(batch),
                None => self.bulk_open = false,
            },
            _ = idle.tick() => {}
        }
        fresh
    }

    /// Takes the bulk batches already waiting, even when a request woke the
    /// loop, so a stream of requests never starves the bulk sources.
    fn top_up(&mut self, rereadable: &[bool]) {
        if !self.bulk_open {
            return;
        }
        self.bulk_open = take_ready(&mut self.bulk, &mut self.taken);
        if self.stopping {
            self.left_for_restart += leave_rereadable(&mut self.taken, rereadable);
        }
    }

    /// More is waiting than this iteration decided.
    fn has_more(&self) -> bool {
        !self.bulk.is_empty() || !self.taken.is_empty()
    }

    /// Stopping, every source has stopped, and nothing is left to decide.
    fn drained(&self) -> bool {
        self.stopping && !self.bulk_open && !self.waited_on_open && self.taken.is_empty()
    }
}

/// Takes the bulk batches already waiting, up to an iteration's worth;
/// false once every bulk source has stopped and the channel is empty.
fn take_ready(batches: &mut mpsc::Receiver<Batch>, taken: &mut VecDeque<Batch>) -> bool {
    while taken.len() < MAX_BATCHES_PER_ITERATION {
        match batches.try_recv() {
            Ok(batch) => taken.push_back(batch),
            Err(mpsc::error::TryRecvError::Empty) => break,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
    true
}

/// Once stopping, the queued lines of a source that can read them again
/// (a file, from its journaled checkpoint) are not "in hand": nothing
/// acknowledged them, and the next start re-reads them. Dropping them keeps
/// the drain to one iteration however deep the queue. Every later batch of
/// that source is dropped too (the source has stopped, and all its batches
/// after this point arrive here), so no checkpoint can ever move past a
/// dropped line. What cannot be read again (webhook requests waiting for
/// their answer, stdin or exec lines) is still decided.
fn leave_rereadable(taken: &mut VecDeque<Batch>, rereadable: &[bool]) -> usize {
    let mut left = 0;
    taken.retain(|batch| {
        let rereadable = rereadable.get(batch.source).copied().unwrap_or(false);
        if rereadable {
            left += batch.lines.len();
        }
        !rereadable
    });
    left
}
