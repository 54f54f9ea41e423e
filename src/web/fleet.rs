//! What the dashboard knows of each bot. Each bot's poller threads write
//! its [`Bot`]; the HTTP thread reads it. The lock is held for an update
//! or a copy, never across a request to a bot, so a bot that hangs can
//! delay nothing but its own figures.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use super::client::{clip_reasons, truncate, Event, Problem, Trade};
use super::sources::{self, SourceRow};
use crate::bot::engine::Held;

/// Fills and rejects kept per bot for the live table.
const RING: usize = 200;
/// How far back (in journal records) a fresh dashboard starts its table.
const BACKFILL: u64 = 1_000;
/// One chart point per this many seconds, for an hour.
const POINT_SECONDS: u64 = 10;
const POINTS: usize = 360;
const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);
/// Position rows kept per bot (a page of thousands helps nobody).
const MAX_POSITIONS: usize = 500;

/// Every bot, in the configured order, and a revision that moves
/// whenever any of them changes (the fleet page waits on it).
pub(crate) struct Fleet {
    pub(crate) bots: Vec<Arc<Bot>>,
    revision: Arc<watch::Sender<u64>>,
}

impl Fleet {
    pub(crate) fn new(names_and_urls: impl IntoIterator<Item = (String, String)>) -> Self {
        let revision = Arc::new(watch::Sender::new(0));
        let bots = names_and_urls
            .into_iter()
            .map(|(name, url)| {
                Arc::new(Bot {
                    name,
                    url,
                    state: Mutex::default(),
                    revision: watch::Sender::new(0),
                    fleet: Arc::clone(&revision),
                })
            })
            .collect();
        Fleet { bots, revision }
    }

    pub(crate) fn bot(&self, name: &str) -> Option<&Arc<Bot>> {
        self.bots.iter().find(|bot| bot.name == name)
    }

    pub(crate) fn revision(&self) -> &watch::Sender<u64> {
        &self.revision
    }

    pub(crate) fn summaries(&self) -> Value {
        let now = Instant::now();
        Value::Array(self.bots.iter().map(|bot| bot.summary(now)).collect())
    }
}

/// `GET /api/v1/status`, as the bot answers it.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Status {
    pub(crate) version: Option<String>,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) reasons: Vec<String>,
    pub(crate) uptime_seconds: Option<f64>,
    pub(crate) heartbeat_age_seconds: Option<f64>,
    pub(crate) last_signal_age_seconds: Option<f64>,
    pub(crate) max_signal_age_seconds: Option<f64>,
    pub(crate) stall_timeout_seconds: Option<f64>,
    #[serde(flatten)]
    pub(crate) totals: Totals,
    #[serde(default)]
    pub(crate) last_seq: u64,
    pub(crate) fsync_seconds: Option<Fsync>,
    /// Each source's own truth (a bot before issue 22 has none).
    #[serde(default)]
    pub(crate) sources: Vec<SourceRow>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, Serialize)]
pub(crate) struct Totals {
    #[serde(default, rename(deserialize = "signals_total"))]
    pub(crate) signals: u64,
    #[serde(default, rename(deserialize = "fills_total"))]
    pub(crate) fills: u64,
    #[serde(default, rename(deserialize = "rejects_total"))]
    pub(crate) rejects: u64,
    #[serde(default, rename(deserialize = "duplicates_total"))]
    pub(crate) duplicates: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize)]
pub(crate) struct Fsync {
    pub(crate) p50: Option<f64>,
    pub(crate) p99: Option<f64>,
}

/// `GET /api/v1/positions`.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct Positions {
    #[serde(default)]
    pub(crate) positions: Vec<Held>,
    pub(crate) realized_pnl: f64,
    pub(crate) cash: f64,
}

/// How a figure looks: green, amber, red.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Level {
    Ok,
    Warn,
    Bad,
}

pub(crate) struct Bot {
    pub(crate) name: String,
    pub(crate) url: String,
    state: Mutex<BotState>,
    /// Moves whenever this bot's state changes (its page waits on it).
    revision: watch::Sender<u64>,
    fleet: Arc<watch::Sender<u64>>,
}

#[derive(Default)]
struct BotState {
    polled: Option<Polled>,
    /// Why the last poll failed; None once one succeeds.
    error: Option<Problem>,
    /// Counters over the last minute, oldest first (per-minute rates).
    window: VecDeque<(Instant, Totals)>,
    series: VecDeque<Point>,
    /// The latest fills and rejects, in sequence order.
    trades: VecDeque<Trade>,
    /// Every fill and reject after this sequence number is in `trades`.
    floor: u64,
    /// Where the stream resumes: the last fill or reject received.
    cursor: Option<u64>,
    /// Set when the journal went backwards: the stream must start over.
    restream: bool,
    stream_connected: bool,
    stream_error: Option<Problem>,
}

struct Polled {
    at: Instant,
    status: Status,
    positions: Positions,
}

#[derive(Clone, Copy, Serialize)]
struct Point {
    /// Unix milliseconds of the point's start.
    t: u64,
    pnl: f64,
    fills_per_minute: Option<u64>,
    fsync_p99: Option<f64>,
}

impl Bot {
    fn lock(&self) -> MutexGuard<'_, BotState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update<T>(&self, change: impl FnOnce(&mut BotState) -> T) -> T {
        let result = change(&mut self.lock());
        self.revision.send_modify(|revision| *revision += 1);
        self.fleet.send_modify(|revision| *revision += 1);
        result
    }

    pub(crate) fn revision(&self) -> &watch::Sender<u64> {
        &self.revision
    }

    /// Records one poll: the status and positions, or why they could not
    /// be had.
    pub(crate) fn polled(&self, outcome: Result<(Status, Positions), Problem>, now: Instant) {
        self.update(|state| match outcome {
            Err(problem) => state.error = Some(problem),
            Ok((mut status, mut positions)) => {
                status.status = truncate(&status.status, 40);
                status.reasons = clip_reasons(std::mem::take(&mut status.reasons));
                status.sources = sources::clip(std::mem::take(&mut status.sources));
                positions.positions.truncate(MAX_POSITIONS);
                for position in &mut positions.positions {
                    position.symbol = truncate(&position.symbol, 40);
                }
                state.error = None;
                state.record_totals(status.totals, now);
                state.follow_journal(status.last_seq);
                state.record_point(&status, &positions);
                state.polled = Some(Polled {
                    at: now,
                    status,
                    positions,
                });
            }
        });
    }

    /// Where the stream should resume, once the first status has said
    /// where the journal is.
    pub(crate) fn cursor(&self) -> Option<u64> {
        self.lock().cursor
    }

    pub(crate) fn stream_connected(&self) {
        self.update(|state| {
            state.stream_connected = true;
            state.stream_error = None;
        });
    }

    pub(crate) fn stream_ended(&self, problem: Option<Problem>) {
        self.update(|state| {
            state.stream_connected = false;
            state.stream_error = problem;
        });
    }

    /// Takes one event from the stream; false when the stream must be
    /// reopened from the cursor (events were dropped, or the journal
    /// started over).
    pub(crate) fn event(&self, event: Event) -> bool {
        match event {
            Event::Trade(trade) => self.update(|state| {
                if state.cursor.is_some_and(|cursor| trade.seq <= cursor) {
                    return !state.restream;
                }
                state.cursor = Some(trade.seq);
                state.trades.push_back(trade);
                while state.trades.len() > RING {
                    if let Some(oldest) = state.trades.pop_front() {
                        state.floor = oldest.seq;
                    }
                }
                !state.restream
            }),
            Event::Health {
                status,
                reasons,
                heartbeat_age_seconds,
            } => self.update(|state| {
                // Shown at once; the next poll brings the rest. The
                // heartbeat's age comes with it: a stall shows as one at
                // once, not as another failure until that poll.
                if let Some(polled) = &mut state.polled {
                    polled.status.status = status;
                    polled.status.reasons = reasons;
                    if heartbeat_age_seconds.is_some() {
                        polled.status.heartbeat_age_seconds = heartbeat_age_seconds;
                    }
                }
                !state.restream
            }),
            Event::Source {
                source,
                status,
                problem,
            } => self.update(|state| {
                if let Some(polled) = &mut state.polled {
                    let rows = &mut polled.status.sources;
                    sources::apply(rows, &source, &status, problem.as_deref());
                }
                !state.restream
            }),
            Event::Dropped => false,
            Event::Other => !self.lock().restream,
        }
    }

    /// Called before the stream is reopened.
    pub(crate) fn take_restream(&self) {
        self.lock().restream = false;
    }

    /// The figures the fleet page shows.
    pub(crate) fn summary(&self, now: Instant) -> Value {
        let state = self.lock();
        self.summary_of(&state, now)
    }

    /// The bot page: the summary, the chart series and the fills and
    /// rejects after `after` (all of them, with `reset`, when the page's
    /// table cannot be continued from there).
    pub(crate) fn detail(&self, after: Option<u64>) -> Value {
        let state = self.lock();
        let mut detail = self.summary_of(&state, Instant::now());
        let reset = after.is_none_or(|after| after < state.floor);
        let trades: Vec<&Trade> = state
            .trades
            .iter()
            .filter(|trade| reset || after.is_some_and(|after| trade.seq > after))
            .collect();
        detail["series"] = json!(state.series);
        detail["trades"] = json!(trades);
        detail["reset"] = json!(reset);
        detail
    }

    fn summary_of(&self, state: &BotState, now: Instant) -> Value {
        let reachable = state.polled.is_some() && state.error.is_none();
        let polled = state.polled.as_ref();
        let status = polled.map(|polled| &polled.status);
        let since_poll = polled.map_or(0.0, |polled| (now - polled.at).as_secs_f64());
        let live = |value: Option<f64>| value.filter(|_| reachable);
        let signal_age = status
            .and_then(|status| status.last_signal_age_seconds)
            .map(|age| age + since_poll);
        let (level, signal_level) = levels(reachable, status, signal_age);
        json!({
            "name": self.name,
            "url": self.url,
            "state": match (polled, &state.error) {
                (None, None) => "waiting",
                (_, Some(_)) => "unreachable",
                (Some(_), None) => "up",
            },
            "error": state.error,
            "level": level,
            "signal_level": signal_level,
            "status": status.map(|status| &status.status),
            "reasons": status.map(|status| &status.reasons),
            "contact_age_seconds": polled.map(|_| since_poll),
            "version": status.and_then(|status| status.version.as_deref()),
            "uptime_seconds": live(status.and_then(|status| status.uptime_seconds)).map(|uptime| uptime + since_poll),
            "heartbeat_age_seconds": live(status.and_then(|status| status.heartbeat_age_seconds)),
            "last_signal_age_seconds": signal_age,
            "max_signal_age_seconds": status.and_then(|status| status.max_signal_age_seconds),
            "stall_timeout_seconds": status.and_then(|status| status.stall_timeout_seconds),
            "per_minute": state.per_minute(),
            "totals": status.map(|status| status.totals),
            "fsync_seconds": status.and_then(|status| status.fsync_seconds),
            "realized_pnl": polled.map(|polled| polled.positions.realized_pnl),
            "cash": polled.map(|polled| polled.positions.cash),
            "positions": polled.map(|polled| &polled.positions.positions),
            "last_seq": status.map(|status| status.last_seq),
            "stream": {"connected": state.stream_connected, "error": state.stream_error},
            "sources": status.map(|status| sources::rows(&status.sources, since_poll)),
        })
    }
}

impl BotState {
    fn record_totals(&mut self, totals: Totals, now: Instant) {
        let went_back = self.window.back().is_some_and(|(_, last)| {
            totals.signals < last.signals
                || totals.fills < last.fills
                || totals.rejects < last.rejects
        });
        if went_back {
            // Counters that start over (a bot without its snapshot) make
            // no rate until a minute has passed again.
            self.window.clear();
        }
        self.window.push_back((now, totals));
        // Keep the newest sample at least a minute old as the baseline.
        while self
            .window
            .get(1)
            .is_some_and(|(at, _)| now.duration_since(*at) >= MINUTE)
        {
            self.window.pop_front();
        }
    }

    /// Signals, fills and rejects in the last minute (over what has been
    /// seen of it, when the dashboard has watched for less).
    fn per_minute(&self) -> Option<Value> {
        let ((_, first), (_, last)) = (self.window.front()?, self.window.back()?);
        Some(json!({
            "signals": last.signals - first.signals,
            "fills": last.fills - first.fills,
            "rejects": last.rejects - first.rejects,
        }))
    }

    fn follow_journal(&mut self, last_seq: u64) {
        match self.cursor {
            None => {
                let start = last_seq.saturating_sub(BACKFILL);
                self.cursor = Some(start);
                self.floor = start;
            }
            // A journal shorter than what was read: a new journal (state
            // wiped), or another bot at that URL. Start over.
            Some(cursor) if last_seq < cursor => {
                let start = last_seq.saturating_sub(BACKFILL);
                self.trades.clear();
                self.cursor = Some(start);
                self.floor = start;
                self.restream = true;
            }
            Some(_) => {}
        }
    }

    fn record_point(&mut self, status: &Status, positions: &Positions) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let point = Point {
            t: now / POINT_SECONDS * POINT_SECONDS * 1000,
            pnl: positions.realized_pnl,
            fills_per_minute: self
                .window
                .front()
                .zip(self.window.back())
                .map(|((_, first), (_, last))| last.fills - first.fills),
            fsync_p99: status.fsync_seconds.and_then(|fsync| fsync.p99),
        };
        match self.series.back_mut() {
            Some(last) if last.t == point.t => *last = point,
            _ => self.series.push_back(point),
        }
        while self.series.len() > POINTS {
            self.series.pop_front();
        }
    }
}

/// The bot's colour and its last signal's: red when unreachable, when its
/// own verdict is unhealthy (the signal age only when that is a stall),
/// amber when degraded, starting or stopping, or the last signal is older
/// than the bot's `MAX_SIGNAL_AGE`.
fn levels(reachable: bool, status: Option<&Status>, signal_age: Option<f64>) -> (Level, Level) {
    let Some(status) = status.filter(|_| reachable) else {
        return (Level::Bad, Level::Bad);
    };
    // The bot rounds the ages it reports to the millisecond: a heartbeat
    // just past its timeout can read as equal to it.
    let stalled = status.status == "unhealthy"
        && match (status.heartbeat_age_seconds, status.stall_timeout_seconds) {
            (Some(age), Some(timeout)) => age >= timeout,
            _ => true,
        };
    let level = match status.status.as_str() {
        "healthy" => Level::Ok,
        "unhealthy" => Level::Bad,
        _ => Level::Warn,
    };
    let quiet = status.max_signal_age_seconds.is_some_and(|max| {
        signal_age.map_or_else(
            || status.uptime_seconds.is_some_and(|uptime| uptime > max),
            |age| age > max,
        )
    });
    let signal_level = if stalled {
        Level::Bad
    } else if quiet {
        Level::Warn
    } else {
        Level::Ok
    };
    (level, signal_level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::client::TradeKind;

    fn status(value: Value) -> Status {
        serde_json::from_value(value).unwrap()
    }

    fn positions() -> Positions {
        serde_json::from_value(json!({"positions": [], "realized_pnl": 1.5, "cash": -10.0}))
            .unwrap()
    }

    fn trade(seq: u64) -> Trade {
        Trade {
            kind: TradeKind::Fill,
            seq,
            id: Some(format!("s{seq}")),
            at: None,
            symbol: None,
            side: None,
            qty: None,
            price: None,
            reason: None,
            detail: None,
            src: None,
        }
    }

    #[test]
    fn levels_follow_the_verdict_the_stall_and_the_quiet() {
        let healthy = status(json!({"status": "healthy", "heartbeat_age_seconds": 0.1,
            "stall_timeout_seconds": 10.0, "max_signal_age_seconds": 60.0, "uptime_seconds": 500.0}));
        assert_eq!(
            levels(true, Some(&healthy), Some(5.0)),
            (Level::Ok, Level::Ok)
        );
        assert_eq!(
            levels(true, Some(&healthy), Some(61.0)),
            (Level::Ok, Level::Warn)
        );
        assert_eq!(levels(true, Some(&healthy), None), (Level::Ok, Level::Warn));
        assert_eq!(
            levels(false, Some(&healthy), Some(5.0)),
            (Level::Bad, Level::Bad)
        );
        assert_eq!(levels(true, None, None), (Level::Bad, Level::Bad));
        let stalled = status(json!({"status": "unhealthy", "heartbeat_age_seconds": 12.0,
            "stall_timeout_seconds": 10.0}));
        assert_eq!(
            levels(true, Some(&stalled), Some(5.0)),
            (Level::Bad, Level::Bad)
        );
        let just_stalled = status(json!({"status": "unhealthy", "heartbeat_age_seconds": 1.0,
            "stall_timeout_seconds": 1.0}));
        assert_eq!(
            levels(true, Some(&just_stalled), Some(5.0)),
            (Level::Bad, Level::Bad)
        );
        let journal = status(json!({"status": "unhealthy", "heartbeat_age_seconds": 0.1,
            "stall_timeout_seconds": 10.0}));
        assert_eq!(
            levels(true, Some(&journal), Some(5.0)),
            (Level::Bad, Level::Ok)
        );
        let degraded = status(json!({"status": "degraded"}));
        assert_eq!(
            levels(true, Some(&degraded), None),
            (Level::Warn, Level::Ok)
        );
    }

    #[test]
    fn the_table_resumes_from_its_cursor_and_says_when_it_cannot() {
        let fleet = Fleet::new([("a".to_owned(), "http://a".to_owned())]);
        let bot = &fleet.bots[0];
        assert_eq!(bot.cursor(), None, "no cursor before the first status");
        bot.polled(
            Ok((
                status(json!({"status": "healthy", "last_seq": 1500})),
                positions(),
            )),
            Instant::now(),
        );
        assert_eq!(bot.cursor(), Some(500));
        for seq in 501..=800 {
            assert!(bot.event(Event::Trade(trade(seq))));
        }
        assert!(
            bot.event(Event::Trade(trade(700))),
            "a replayed one is skipped"
        );
        assert_eq!(bot.cursor(), Some(800));
        let detail = bot.detail(Some(790));
        assert_eq!(detail["reset"], false);
        assert_eq!(detail["trades"].as_array().unwrap().len(), 10);
        // 300 received, 200 kept: a page at 550 must start over.
        let detail = bot.detail(Some(550));
        assert_eq!(detail["reset"], true);
        assert_eq!(detail["trades"].as_array().unwrap().len(), RING);
        assert_eq!(detail["trades"][0]["seq"], 601);
        assert!(!bot.event(Event::Dropped), "dropped events: reopen");

        // The journal starts over: so does the table.
        bot.polled(
            Ok((
                status(json!({"status": "healthy", "last_seq": 3})),
                positions(),
            )),
            Instant::now(),
        );
        assert_eq!(bot.cursor(), Some(0));
        assert!(!bot.event(Event::Trade(trade(1))), "reopen after a reset");
        bot.take_restream();
        assert!(bot.event(Event::Trade(trade(2))));
        assert_eq!(bot.detail(None)["trades"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_source_event_shows_before_the_next_poll() {
        let fleet = Fleet::new([("a".to_owned(), "http://a".to_owned())]);
        let bot = &fleet.bots[0];
        bot.polled(
            Ok((
                status(json!({"status": "healthy", "sources": [
                    {"name": "rtds", "kind": "ws", "status": "up", "reconnects": 0}]})),
                positions(),
            )),
            Instant::now(),
        );
        assert!(bot.event(Event::Source {
            source: "rtds".into(),
            status: "down".into(),
            problem: Some("down: no frame for 15s".into()),
        }));
        let row = &bot.summary(Instant::now())["sources"][0];
        assert_eq!(
            (&row["status"], &row["level"], &row["last_error"]),
            (&json!("down"), &json!("bad"), &json!("no frame for 15s"))
        );
    }

    #[test]
    fn a_failed_poll_keeps_the_last_figures_and_turns_red() {
        let fleet = Fleet::new([("a".to_owned(), "http://a".to_owned())]);
        let bot = &fleet.bots[0];
        assert_eq!(bot.summary(Instant::now())["state"], "waiting");
        let start = Instant::now();
        bot.polled(
            Ok((
                status(
                    json!({"status": "healthy", "signals_total": 10, "fills_total": 7,
                    "rejects_total": 3, "last_signal_age_seconds": 2.0}),
                ),
                positions(),
            )),
            start,
        );
        bot.polled(
            Ok((
                status(
                    json!({"status": "healthy", "signals_total": 15, "fills_total": 11,
                    "rejects_total": 4, "last_signal_age_seconds": 0.5}),
                ),
                positions(),
            )),
            start + std::time::Duration::from_secs(1),
        );
        let summary = bot.summary(start + std::time::Duration::from_secs(1));
        assert_eq!(summary["level"], "ok");
        assert_eq!(
            summary["per_minute"],
            json!({"signals": 5, "fills": 4, "rejects": 1})
        );
        bot.polled(Err("connection refused".into()), Instant::now());
        let summary = bot.summary(Instant::now());
        assert_eq!(summary["state"], "unreachable");
        assert_eq!(summary["level"], "bad");
        assert_eq!(summary["error"], "connection refused");
        assert_eq!(summary["realized_pnl"], 1.5, "the last figures stay");
        assert_eq!(summary["heartbeat_age_seconds"], Value::Null);
    }
}
