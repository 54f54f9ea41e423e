//! Each source's own truth. "Connected" is not "data is arriving": a socket
//! can answer every ping and deliver nothing, so every source has a status
//! of its own (`connecting`, `up`, `quiet`, `down` with its last error),
//! when it last delivered a message and a signal, its reconnects and its
//! messages by result. A source `down` or `quiet` makes the `feed`
//! component degraded, naming it; each change is a stream event and an
//! alert. The source's own thread or task writes its figures (atomics, and
//! a lock for the rare status change); readers copy them, never waiting on
//! the loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::feed::Status;
use super::parsed::ParsedLines;
use super::sources_file::{Kind, SourceSettings};
use crate::alerts::{Alerts, Event};
use crate::bot::events::{self, Events};
use crate::bot::signal::now_ms;
use crate::health::{Component, HealthState};
use crate::metrics::{Kind as MetricKind, MetricsSource, Sample};

/// Every source's truth, by its index in the settings.
pub(crate) struct Sources {
    health: Arc<HealthState>,
    alerts: Alerts,
    events: Events,
    table: Vec<Source>,
    /// A problem of the feed as a whole rather than of one source (no
    /// signal from any for `MAX_SIGNAL_AGE`).
    overall: Mutex<Option<String>>,
}

struct Source {
    name: String,
    kind: &'static str,
    quiet_after: Option<Duration>,
    /// Its client tells quiet itself (a socket, a poller); the others are
    /// judged quiet by [`Sources::check_quiet`].
    judges_quiet: bool,
    started: Instant,
    state: Mutex<State>,
    /// Epoch milliseconds; 0: never.
    last_message_ms: AtomicI64,
    last_signal_ms: AtomicI64,
    reconnects: AtomicU64,
    /// Up again after being down, not yet steady (see `State::up_since`):
    /// what its next message, or the loop's next look, ends.
    recovering: AtomicBool,
    mapped: AtomicU64,
    ignored: AtomicU64,
    unmapped: AtomicU64,
}

#[derive(Clone, Debug)]
struct State {
    status: Status,
    last_error: Option<String>,
    /// What is wrong, from a `down` or a `quiet` until the source is up
    /// and steady: a source connecting again after a failure is still in
    /// trouble, so `/health` does not turn green, nor an alert say "down"
    /// again, at every attempt of its backoff.
    trouble: Option<Trouble>,
    /// Up since then after being down: steady, and out of trouble, at its
    /// first message or once up for [`STEADY`], whichever comes first. A
    /// feed that connects and fails at once is one trouble, not an "up
    /// again" and a "down" at every attempt.
    up_since: Option<Instant>,
}

#[derive(Clone, Debug)]
struct Trouble {
    /// `down` or `quiet`.
    word: &'static str,
    /// In words, without the word (the latest error of a down source).
    problem: String,
    since: Instant,
}

/// Up this long after being down, a source is steady even without a
/// message: as long as a socket must last for its backoff to start over.
const STEADY: Duration = super::ws::STABLE;

/// What a status change tells the operator.
enum Told {
    Nothing,
    Trouble(Trouble),
    Back(Trouble),
}

/// One source as `/api/v1/status` shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct SourceView {
    pub(crate) name: String,
    pub(crate) kind: &'static str,
    pub(crate) status: &'static str,
    pub(crate) last_message_age_seconds: Option<f64>,
    pub(crate) last_signal_age_seconds: Option<f64>,
    pub(crate) reconnects: u64,
    pub(crate) last_error: Option<String>,
}

/// A status's one word.
pub(crate) fn word(status: &Status) -> &'static str {
    match status {
        Status::Connecting => "connecting",
        Status::Up => "up",
        Status::Quiet => "quiet",
        Status::Down { .. } => "down",
    }
}

impl Sources {
    pub(crate) fn new(
        health: Arc<HealthState>,
        alerts: Alerts,
        events: Events,
        settings: &[SourceSettings],
    ) -> Arc<Sources> {
        health.set_component("feed", Component::Ok);
        let started = Instant::now();
        let table = settings
            .iter()
            .map(|source| Source {
                name: source.name.clone(),
                kind: source.kind.label(),
                quiet_after: source.quiet_after,
                judges_quiet: matches!(source.kind, Kind::Ws(_) | Kind::Poll(_)),
                started,
                state: Mutex::new(State {
                    status: Status::Connecting,
                    last_error: None,
                    trouble: None,
                    up_since: None,
                }),
                last_message_ms: AtomicI64::new(0),
                last_signal_ms: AtomicI64::new(0),
                reconnects: AtomicU64::new(0),
                recovering: AtomicBool::new(false),
                mapped: AtomicU64::new(0),
                ignored: AtomicU64::new(0),
                unmapped: AtomicU64::new(0),
            })
            .collect();
        Arc::new(Sources {
            health,
            alerts,
            events,
            table,
            overall: Mutex::new(None),
        })
    }

    /// Source `index` is now `status`. Trouble (down, quiet) is an alert
    /// when it starts or changes word, and so is its end (up); a change of
    /// status is a stream event. Returns whether the status changed.
    pub(crate) fn set(&self, index: usize, status: Status) -> bool {
        let Some(source) = self.table.get(index) else {
            return false;
        };
        let (changed, told, reworded) = {
            let mut state = lock(&source.state);
            let before = std::mem::replace(&mut state.status, status.clone());
            if let Status::Down { error, .. } = &status {
                state.last_error = Some(error.clone());
            }
            let (told, reworded) = state.follow(source, &status);
            source
                .recovering
                .store(state.up_since.is_some(), Ordering::Relaxed);
            (word(&before) != word(&status), told, reworded)
        };
        self.tell(source, told);
        if changed {
            self.events.send(events::Event::Source {
                source: source.name.clone(),
                status: word(&status),
                problem: problem(source, &status)
                    .map(|problem| format!("{}: {problem}", word(&status))),
            });
        }
        if changed || reworded {
            self.publish_component();
        }
        changed
    }

    /// Alerts of a source's trouble, or of its end.
    fn tell(&self, source: &Source, told: Told) {
        match told {
            Told::Trouble(trouble) => {
                tracing::warn!(source = %source.name, status = trouble.word, problem = %trouble.problem, "source {}", trouble.word);
                self.alerts.send(Event::SourceDown {
                    source: source.name.clone(),
                    status: trouble.word,
                    problem: trouble.problem,
                });
            }
            Told::Back(trouble) => {
                tracing::info!(source = %source.name, "source up again");
                self.alerts.send(Event::SourceUp {
                    source: source.name.clone(),
                    was: trouble.word,
                    lasted: trouble.since.elapsed(),
                });
            }
            Told::Nothing => {}
        }
    }

    /// Source `index`, up again after being down, is steady: `heard` (a
    /// message came) or up for [`STEADY`] by now. Its trouble ends.
    fn settle(&self, index: usize, heard: bool) {
        let Some(source) = self.table.get(index) else {
            return;
        };
        let told = {
            let mut state = lock(&source.state);
            let steady = state
                .up_since
                .is_some_and(|since| heard || since.elapsed() >= STEADY);
            if !steady {
                return;
            }
            state.up_since = None;
            source.recovering.store(false, Ordering::Relaxed);
            state.trouble.take().map_or(Told::Nothing, Told::Back)
        };
        self.tell(source, told);
        self.publish_component();
    }

    /// One more reconnect of source `index` (a socket opened again, a feed
    /// process restarted).
    pub(crate) fn reconnected(&self, index: usize, reconnects: u64) {
        if let Some(source) = self.table.get(index) {
            source.reconnects.store(reconnects, Ordering::Relaxed);
        }
    }

    /// Counts what source `index` received, as decoded: every message, the
    /// signals among them, those a mapping ignored, and the rest (rejects).
    pub(crate) fn received(&self, index: usize, items: &ParsedLines) {
        let Some(source) = self.table.get(index) else {
            return;
        };
        let messages = items.messages();
        if messages == 0 {
            return;
        }
        let signals = items.signals();
        let ignored = items.ignored();
        let now = now_ms();
        source.last_message_ms.store(now, Ordering::Relaxed);
        source.mapped.fetch_add(signals, Ordering::Relaxed);
        source.ignored.fetch_add(ignored, Ordering::Relaxed);
        source
            .unmapped
            .fetch_add(messages - signals - ignored, Ordering::Relaxed);
        if signals > 0 {
            source.last_signal_ms.store(now, Ordering::Relaxed);
        }
        if source.recovering.load(Ordering::Relaxed) {
            self.settle(index, true);
        }
    }

    /// Quiet and back, for the sources whose client does not judge it:
    /// up with no signal for its `quiet_after` (from the start, before the
    /// first) is quiet; a signal since makes it up again. Once an
    /// iteration, on the loop: a few atomic loads.
    pub(crate) fn check_quiet(&self) {
        for (index, source) in self.table.iter().enumerate() {
            if source.recovering.load(Ordering::Relaxed) {
                self.settle(index, false);
            }
            let Some(quiet_after) = source.quiet_after.filter(|_| !source.judges_quiet) else {
                continue;
            };
            let last = source.last_signal_ms.load(Ordering::Relaxed);
            let silent = if last == 0 {
                source.started.elapsed()
            } else {
                Duration::from_millis(now_ms().saturating_sub(last).max(0) as u64)
            };
            let status = lock(&source.state).status.clone();
            let next = match status {
                Status::Up if silent > quiet_after => Status::Quiet,
                Status::Quiet if silent <= quiet_after => Status::Up,
                _ => continue,
            };
            self.set(index, next);
        }
    }

    /// The feed's overall problem (`MAX_SIGNAL_AGE`), or none.
    pub(crate) fn set_overall(&self, problem: Option<String>) {
        let changed = {
            let mut overall = lock(&self.overall);
            let changed = *overall != problem;
            overall.clone_from(&problem);
            changed
        };
        if !changed {
            return;
        }
        match &problem {
            Some(problem) => self.alerts.send(Event::SignalsQuiet {
                problem: problem.clone(),
            }),
            None => self.alerts.send(Event::SignalsBack),
        }
        self.publish_component();
    }

    /// Every source as it is now, for the read API.
    pub(crate) fn views(&self) -> Vec<SourceView> {
        let age = |ms: i64| (ms > 0).then(|| now_ms().saturating_sub(ms).max(0) as f64 / 1000.0);
        self.table
            .iter()
            .map(|source| {
                let state = lock(&source.state).clone();
                SourceView {
                    name: source.name.clone(),
                    kind: source.kind,
                    status: word(&state.status),
                    last_message_age_seconds: age(source.last_message_ms.load(Ordering::Relaxed)),
                    last_signal_age_seconds: age(source.last_signal_ms.load(Ordering::Relaxed)),
                    reconnects: source.reconnects.load(Ordering::Relaxed),
                    last_error: state.last_error,
                }
            })
            .collect()
    }

    /// `feed`: degraded while a source is down or quiet (or the feed as a
    /// whole is quiet), naming each.
    fn publish_component(&self) {
        let mut problems: BTreeMap<&str, String> = BTreeMap::new();
        for source in &self.table {
            if let Some(trouble) = &lock(&source.state).trouble {
                problems.insert(
                    &source.name,
                    format!("{}: {}", trouble.word, trouble.problem),
                );
            }
        }
        let overall = lock(&self.overall).clone();
        let mut reasons: Vec<String> = problems
            .iter()
            .map(|(name, problem)| format!("{name}: {problem}"))
            .collect();
        reasons.extend(overall.map(|problem| format!("signals: {problem}")));
        let component = if reasons.is_empty() {
            Component::Ok
        } else {
            Component::Degraded(reasons.join("; "))
        };
        self.health.set_component("feed", component);
    }
}

impl State {
    /// Follows the trouble through `status` (just set): what to tell, and
    /// whether the trouble's words changed (a down source's new error).
    fn follow(&mut self, source: &Source, status: &Status) -> (Told, bool) {
        if *status != Status::Up {
            self.up_since = None;
        }
        match (problem(source, status), &mut self.trouble) {
            (Some(problem), Some(trouble)) if trouble.word == word(status) => {
                let reworded = trouble.problem != problem;
                trouble.problem = problem;
                (Told::Nothing, reworded)
            }
            (Some(problem), _) => {
                let trouble = Trouble {
                    word: word(status),
                    problem,
                    since: Instant::now(),
                };
                self.trouble = Some(trouble.clone());
                (Told::Trouble(trouble), true)
            }
            // Up from quiet is a signal come in: steady at once.
            (None, Some(trouble)) if *status == Status::Up && trouble.word == "quiet" => {
                let trouble = self.trouble.take().map_or(Told::Nothing, Told::Back);
                (trouble, true)
            }
            (None, Some(_)) if *status == Status::Up => {
                self.up_since.get_or_insert_with(Instant::now);
                (Told::Nothing, false)
            }
            (None, _) => (Told::Nothing, false),
        }
    }
}

/// What is wrong with a source in `status`, in words; none when up or
/// connecting.
fn problem(source: &Source, status: &Status) -> Option<String> {
    match status {
        Status::Down { error, .. } => Some(error.clone()),
        Status::Quiet => Some(match source.quiet_after {
            Some(quiet_after) => format!(
                "no signal for {} (quiet_after)",
                humantime::format_duration(quiet_after)
            ),
            None => "no signal".to_owned(),
        }),
        Status::Up | Status::Connecting => None,
    }
}

impl MetricsSource for Sources {
    fn samples(&self, out: &mut Vec<Sample>) {
        let per_source = |name, kind, help, value: &dyn Fn(&Source) -> f64| {
            self.table
                .iter()
                .map(move |source| {
                    Sample::new(name, kind, help, value(source))
                        .label("source", source.name.as_str())
                })
                .collect::<Vec<_>>()
        };
        let seconds = |ms: &AtomicI64| ms.load(Ordering::Relaxed) as f64 / 1000.0;
        out.extend(per_source(
            "source_up",
            MetricKind::Gauge,
            "1 while the source is up (connected and delivering), 0 while connecting, quiet or down.",
            &|source| f64::from(u8::from(matches!(lock(&source.state).status, Status::Up))),
        ));
        out.extend(per_source(
            "source_last_message_timestamp_seconds",
            MetricKind::Gauge,
            "Unix time of the source's last message, mapped or not (0: none yet).",
            &|source| seconds(&source.last_message_ms),
        ));
        out.extend(per_source(
            "source_last_signal_timestamp_seconds",
            MetricKind::Gauge,
            "Unix time of the source's last message that was a signal (0: none yet).",
            &|source| seconds(&source.last_signal_ms),
        ));
        out.extend(per_source(
            "source_reconnects_total",
            MetricKind::Counter,
            "Connections opened again (a socket, a poller's round, a feed process) after a failure or a quiet feed.",
            &|source| source.reconnects.load(Ordering::Relaxed) as f64,
        ));
        for source in &self.table {
            for (result, count) in [
                ("mapped", &source.mapped),
                ("ignored", &source.ignored),
                ("unmapped", &source.unmapped),
            ] {
                out.push(
                    Sample::new(
                        "source_messages_total",
                        MetricKind::Counter,
                        "Messages received, by result: mapped (a signal), ignored (not for the mapping), unmapped (rejected).",
                        count.load(Ordering::Relaxed) as f64,
                    )
                    .label("source", source.name.as_str())
                    .label("result", result),
                );
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws_source() -> Vec<SourceSettings> {
        let kind = super::super::sources_file::parse_plain("ws:ws://127.0.0.1:1/").unwrap();
        super::super::sources_file::from_plain(vec![kind])
    }

    fn down(error: &str) -> Status {
        Status::Down {
            error: error.to_owned(),
            retry_in: Duration::from_secs(1),
        }
    }

    #[test]
    fn trouble_lasts_through_the_reconnects_until_up_and_steady() {
        let health = HealthState::new(Duration::from_secs(1), Duration::from_secs(1));
        let sources = Sources::new(
            Arc::clone(&health),
            Alerts::disabled(),
            Events::default(),
            &ws_source(),
        );
        let feed = || health.view().components["feed"].clone();
        let told = |status: &Status| {
            let source = &sources.table[0];
            let mut state = lock(&source.state);
            state.status = status.clone();
            match state.follow(source, status).0 {
                Told::Nothing => "nothing".to_owned(),
                Told::Trouble(trouble) => format!("{}: {}", trouble.word, trouble.problem),
                Told::Back(trouble) => format!("back from {}", trouble.word),
            }
        };
        assert_eq!(told(&Status::Connecting), "nothing");
        assert_eq!(told(&Status::Up), "nothing");
        assert_eq!(told(&down("refused")), "down: refused");
        assert_eq!(told(&Status::Connecting), "nothing", "still down");
        assert_eq!(told(&down("reset")), "nothing", "down again is no news");
        assert_eq!(told(&Status::Up), "nothing", "up, not yet steady");
        assert_eq!(told(&Status::Quiet), "quiet: no signal");
        assert_eq!(told(&Status::Up), "back from quiet", "a signal came");
        assert_eq!(told(&Status::Up), "nothing");

        let degraded = |problem: &str| Component::Degraded(format!("ws: down: {problem}"));
        assert!(sources.set(0, down("refused")));
        assert!(sources.set(0, Status::Connecting));
        assert_eq!(
            feed(),
            degraded("refused"),
            "connecting again after a failure is not healthy yet"
        );
        assert!(sources.set(0, down("no frame for 30s")));
        assert!(sources.set(0, Status::Up));
        assert_eq!(
            feed(),
            degraded("no frame for 30s"),
            "up, and closed at once, again and again, is one trouble"
        );
        assert!(sources.set(0, down("closed")));
        assert!(sources.set(0, Status::Up));
        sources.check_quiet();
        assert_eq!(feed(), degraded("closed"), "not steady before a message");
        let mut items = ParsedLines::default();
        items.ignore();
        sources.received(0, &items);
        assert_eq!(feed(), Component::Ok, "steady at its first message");
    }
}
