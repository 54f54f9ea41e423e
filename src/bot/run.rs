//! The bot loop. Each iteration takes what the sources have delivered (or
//! wakes on the idle tick), decides every line, commits the journal once,
//! and only then answers webhook clients, records checkpoints and beats the
//! heartbeat: a wedged iteration is a missing beat.
//!
//! While the journal cannot be written the loop takes no new lines (the
//! sources wait on the full channel) and retries on every idle tick; it
//! keeps beating, and the `journal` component says what is wrong.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::engine::{Engine, Fill, PaperExecution};
use super::events::{self, Duplicates, Events};
use super::figures::{BotMetrics, Figures, SymbolSeries, Tally};
use super::intake::{
    Batch, Channels, Decision, FeedHealth, Gate, Intake, IntakeError, Outcome, SourceSpec, Submit,
};
use super::ledger::journal::{JournalError, Record};
use super::ledger::snapshot::Checkpoint;
use super::ledger::{EngineState, Ledger, Refusal};
use super::settings::Settings;
use super::signal::{Reason, Reject, Signal};
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

/// Longest raw line kept in a reject record.
const MAX_REJECT_LINE: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
}

pub(crate) struct Bot {
    feed: Arc<FeedHealth>,
    metrics: Arc<BotMetrics>,
    figures: Figures,
    /// Each source's name, as journal records carry it, by its index.
    names: Vec<String>,
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
            Engine::new(config.risk, Box::new(PaperExecution)).with_symbols(&config.symbols);
        let (ledger, recovery) = Ledger::recover(config, Arc::clone(health), &mut engine)?;
        let mut bot = Bot {
            feed: FeedHealth::new(Arc::clone(health), alerts.clone(), events.clone()),
            metrics: BotMetrics::new(),
            figures: Figures::new(config.intake.sources.iter().map(SourceSpec::kind)),
            names: config.intake.sources.iter().map(SourceSpec::name).collect(),
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
        bot.figures.symbols = bot.series.tally(&bot.engine);
        bot.figures.positions = Arc::new(bot.engine.positions());
        bot.commit(false);
        bot.intake = Some(Intake::new(config.intake.clone(), submit));
        bot.metrics.publish(&bot.figures);
        bot.ledger.publish();
        bot.events
            .publish(bot.ledger.durable_seq(), &mut bot.duplicates);
        bot.events.set_figures(bot.metrics.clone());
        bot.events.send(events::Event::Start {
            journal_records: bot.ledger.last_seq(),
            recovered_fills: recovery.fills,
        });
        // The ledger's and the notifier's figures beside the bot's.
        let mut sources: Vec<Arc<dyn MetricsSource>> =
            vec![bot.metrics.clone(), bot.ledger.metrics()];
        sources.extend(bot.alerts.metrics());
        health.set_bot_metrics(Arc::new(Combined(sources)));
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
        let (batches_in, mut batches) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
        let (waited_on_in, mut waited_on) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
        if let Some(intake) = self.intake.take() {
            let channels = Channels {
                bulk: batches_in,
                waited_on: waited_on_in,
            };
            intake.start(
                self.ledger.checkpoints(),
                channels,
                Arc::clone(&self.feed),
                &shutdown,
            )?;
        }
        let mut idle = tokio::time::interval(self.idle_tick);
        idle.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut open = true;
        let mut waited_on_open = true;
        let mut stopping = false;
        // Bulk batches taken and not yet handled: an iteration a client's
        // request cut short leaves the rest to the next one.
        let mut taken = VecDeque::new();
        let mut requests = Vec::new();
        let mut left_for_restart = 0usize;
        loop {
            let blocked = self.ledger.is_blocked();
            self.gate
                .set(blocked.then_some("the journal cannot be written"));
            let fresh = taken.is_empty();
            if fresh || blocked {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled(), if !stopping => {
                        stopping = true;
                        tracing::info!("bot loop: sources stopping; finishing what they delivered");
                    }
                    received = waited_on.recv(), if waited_on_open && !blocked => match received {
                        Some(batch) => requests.push(batch),
                        None => waited_on_open = false,
                    },
                    received = batches.recv(), if open && !blocked && fresh => match received {
                        Some(batch) => taken.push_back(batch),
                        None => open = false,
                    },
                    _ = idle.tick() => {}
                }
            }
            // Topped up even when a request woke the loop, so a stream of
            // requests never starves the bulk sources.
            if fresh && open && !blocked {
                open = take_ready(&mut batches, &mut taken);
                if stopping {
                    left_for_restart += leave_rereadable(&mut taken);
                }
            }
            fail::fail_point!("bot::iteration");
            if !blocked {
                while let Ok(batch) = waited_on.try_recv() {
                    requests.push(batch);
                }
                for batch in requests.drain(..) {
                    self.handle(batch);
                }
                while let Some(batch) = taken.pop_front() {
                    self.handle(batch);
                    // A client waits on the next commit: it is made now,
                    // not after the rest of a flood's batches.
                    if !waited_on.is_empty() {
                        break;
                    }
                }
            }
            for (source, checkpoint) in std::mem::take(&mut self.moved) {
                self.ledger
                    .append_checkpoint(&self.names[source], checkpoint);
            }
            self.trades.send(&self.alerts);
            // A client waiting on this commit (a webhook) is answered at
            // its end, not a whole iteration later: no overlapped fsync then.
            let more = !batches.is_empty() || !taken.is_empty();
            self.commit(more && !self.ledger.has_waiting_clients());
            self.events
                .publish(self.ledger.durable_seq(), &mut self.duplicates);
            if std::mem::take(&mut self.positions_moved) {
                self.figures.symbols = self.series.tally(&self.engine);
                self.figures.positions = Arc::new(self.engine.positions());
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
            heartbeat.beat();
            if stopping && !open && !waited_on_open && taken.is_empty() && !self.ledger.is_blocked()
            {
                break;
            }
        }
        self.commit(false);
        self.ledger.finish(EngineState::of(&self.engine));
        self.take_fsync_times();
        self.events
            .publish(self.ledger.durable_seq(), &mut self.duplicates);
        self.events.send(events::Event::Stop {
            signals: self.figures.total(None),
            fills: self.figures.total(Some(Tally::Filled)),
            rejects: self.figures.total(Some(Tally::Rejected)),
        });
        tracing::info!(
            last_seq = self.ledger.last_seq(),
            left_for_restart,
            "bot loop: drained, journal committed"
        );
        self.alerts.send(Event::Stopped {
            signals: self.figures.total(None),
            fills: self.figures.total(Some(Tally::Filled)),
            rejects: self.figures.total(Some(Tally::Rejected)),
        });
        Ok(())
    }

    fn handle(&mut self, batch: Batch) {
        let now_ms = self.ledger.now(now_ms());
        if !batch.lines.is_empty() {
            self.figures.last_signal = Some((Instant::now(), SystemTime::now()));
        }
        let mut outcomes = Vec::new();
        for (bytes, parsed) in batch.lines.iter() {
            let decided = self.decide(batch.source, bytes, parsed, now_ms);
            if self.ledger.commits_each_decision() && !self.ledger.is_blocked() {
                self.ledger.commit(false);
            }
            if batch.reply.is_some() {
                outcomes.push(decided.outcome());
            }
        }
        if let Some(checkpoint) = batch.checkpoint {
            self.moved.insert(batch.source, checkpoint);
        }
        if let Some(reply) = batch.reply {
            self.ledger.answer_when_durable(reply, outcomes);
        }
    }

    /// Decides one line: invalid, duplicate, rejected, or filled.
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
                journal_reject(
                    &mut self.ledger,
                    &self.names[source],
                    bytes,
                    reject,
                    None,
                    now_ms,
                );
                self.count_reject(source, reject.reason);
                return Decided::refused(Decision::Invalid, Cow::Borrowed(reject));
            }
        };
        let verdict = decide_signal(
            &mut self.ledger,
            &mut self.engine,
            &self.names[source],
            bytes,
            &signal,
            now_ms,
        );
        match verdict {
            Verdict::Duplicate => {
                self.figures.count(source, Tally::Duplicate);
                self.figures.duplicates += 1;
                if self.events.is_enabled() {
                    self.duplicates
                        .add(self.ledger.last_seq(), &signal.id, &self.names[source]);
                }
                Decided {
                    id: Some(signal.id),
                    result: Decision::Duplicate,
                    reject: None,
                }
            }
            Verdict::Filled(fill) => {
                self.figures.count(source, Tally::Filled);
                self.positions_moved = true;
                // Built only when it will be sent in full.
                self.trades.add(&self.alerts, Kind::Fill, || Event::Fill {
                    id: signal.id.to_string(),
                    symbol: fill.symbol.to_owned(),
                    side: fill.side.as_str(),
                    qty: fill.qty,
                    price: fill.price,
                });
                Decided {
                    id: Some(signal.id),
                    result: Decision::Filled,
                    reject: None,
                }
            }
            Verdict::Rejected(reject) => {
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
                Decided::refused(Decision::Rejected, Cow::Owned(reject))
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
}

/// What became of a valid signal; its decision is journaled already.
pub(crate) enum Verdict<'s> {
    /// Its id is in the exactly-once window: nothing journaled.
    Duplicate,
    /// Refused by the window (too old, too far ahead) or by the engine.
    Rejected(Reject),
    Filled(Fill<'s>),
}

/// Decides a valid signal and journals the decision: the exactly-once
/// window's verdict, then the engine's. This is all of a live decision but
/// the loop's figures and alerts, so the ledger's property test drives
/// exactly this.
pub(crate) fn decide_signal<'s>(
    ledger: &mut Ledger,
    engine: &mut Engine,
    src: &str,
    bytes: &[u8],
    signal: &'s Signal<'_>,
    now_ms: i64,
) -> Verdict<'s> {
    let admitted = match ledger.admit(signal, now_ms) {
        Ok(admitted) => admitted,
        Err(Refusal::Duplicate) => return Verdict::Duplicate,
        Err(Refusal::Reject(refused)) => {
            let reject = Reject {
                id: Some(signal.id.to_string()),
                ..refused
            };
            journal_reject(ledger, src, bytes, &reject, Some(signal.ts_ms), now_ms);
            return Verdict::Rejected(reject);
        }
    };
    match engine.decide(signal, now_ms) {
        Ok(fill) => {
            tracing::debug!(id = %signal.id, symbol = %fill.symbol, side = fill.side.as_str(), qty = fill.qty, price = fill.price, "filled");
            ledger.append_decision(
                &Record::Fill {
                    id: Cow::Borrowed(&signal.id),
                    src: Cow::Borrowed(src),
                    ts: signal.ts_ms,
                    at: fill.at_ms,
                    symbol: Cow::Borrowed(fill.symbol),
                    side: fill.side,
                    qty: fill.qty,
                    price: fill.price,
                    source: signal.source.as_deref().map(Cow::Borrowed),
                },
                admitted,
            );
            Verdict::Filled(fill)
        }
        Err(refused) => {
            let reject = Reject {
                id: Some(signal.id.to_string()),
                ..refused
            };
            ledger.append_decision(
                &reject_record(src, bytes, &reject, Some(signal.ts_ms), now_ms),
                admitted,
            );
            Verdict::Rejected(reject)
        }
    }
}

/// Journals a reject; `ts` is the signal's, when the line parsed.
pub(crate) fn journal_reject(
    ledger: &mut Ledger,
    src: &str,
    bytes: &[u8],
    reject: &Reject,
    ts: Option<i64>,
    now_ms: i64,
) {
    ledger.append(&reject_record(src, bytes, reject, ts, now_ms));
}

fn reject_record<'r>(
    src: &'r str,
    bytes: &[u8],
    reject: &Reject,
    ts: Option<i64>,
    now_ms: i64,
) -> Record<'r> {
    tracing::debug!(id = ?reject.id, reason = reject.reason.label(), detail = %reject.detail, "rejected");
    Record::Reject {
        id: reject.id.clone(),
        src: Cow::Borrowed(src),
        ts,
        at: now_ms,
        reason: reject.reason.label().to_owned(),
        detail: reject.detail.clone(),
        line: String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_REJECT_LINE)]).into_owned(),
    }
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

/// Once stopping, a file source's queued lines are not "in hand": nothing
/// acknowledged them, and the next start re-reads them from the last
/// journaled checkpoint. Dropping them keeps the drain to one iteration
/// however deep the queue. Every later batch of that source is dropped too
/// (the source has stopped, and all its batches after this point arrive
/// here), so no checkpoint can ever move past a dropped line. Webhook
/// requests (waiting for their answer) and stdin or exec lines (which
/// cannot be read again) are still decided.
fn leave_rereadable(taken: &mut VecDeque<Batch>) -> usize {
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
