//! The one piece of state the bot, the judge and the HTTP server share.
//!
//! The bot writes it (through its [`Heartbeat`] and component reports); the
//! judge and the HTTP server only read it. Everything here is an atomic or a
//! lock held for a few instructions, so a reader never waits on the bot's
//! runtime, and the verdict is recomputed on each read from the raw facts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::judge::{Inbox, Request};
use crate::metrics::MetricsSource;

/// What `/health` says, worst last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Starting,
    Healthy,
    Degraded,
    Unhealthy,
    Stopping,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Healthy => "healthy",
            Status::Degraded => "degraded",
            Status::Unhealthy => "unhealthy",
            Status::Stopping => "stopping",
        }
    }

    /// Healthy and degraded both mean "the bot is making progress".
    pub(crate) fn is_up(self) -> bool {
        matches!(self, Status::Healthy | Status::Degraded)
    }
}

/// The condition of one part of the bot (feed, journal, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "lowercase")]
pub enum Component {
    Ok,
    /// Working below par; `/health` stays 200 but says why.
    Degraded(String),
    /// Broken; `/health` answers 503.
    Failed(String),
}

pub struct HealthState {
    started: Instant,
    stall_timeout: Duration,
    startup_grace: Duration,
    ready: AtomicBool,
    stopping: AtomicBool,
    /// Nanoseconds from `started` to the last beat, plus one; 0 means never.
    last_beat: AtomicU64,
    beats: AtomicU64,
    components: Mutex<BTreeMap<&'static str, Component>>,
    bound: OnceLock<SocketAddr>,
    bot_metrics: Mutex<Option<Arc<dyn MetricsSource>>>,
    first_beat: tokio::sync::Notify,
    /// Set by the judge while it holds the bot stalled, so the beat that
    /// ends the stall tells it at once; one relaxed load a beat otherwise.
    stalled: AtomicBool,
    judge: OnceLock<Inbox>,
}

/// The only way to make the bot look alive. The daemon hands exactly one to
/// the bot loop, which beats it once per iteration; nothing else gets one.
pub struct Heartbeat {
    state: Arc<HealthState>,
}

impl Heartbeat {
    pub(crate) fn beat(&self) {
        let since_start = self.state.started.elapsed().as_nanos() as u64;
        self.state
            .last_beat
            .store(since_start + 1, Ordering::Release);
        if self.state.beats.fetch_add(1, Ordering::Relaxed) == 0 {
            self.state.first_beat.notify_one();
        }
        if self.state.stalled.load(Ordering::Relaxed)
            && self.state.stalled.swap(false, Ordering::AcqRel)
        {
            if let Some(judge) = self.state.judge.get() {
                judge.send(Request::StallEnded);
            }
        }
    }
}

impl HealthState {
    pub fn new(stall_timeout: Duration, startup_grace: Duration) -> Arc<Self> {
        Arc::new(HealthState {
            started: Instant::now(),
            stall_timeout,
            startup_grace,
            ready: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            last_beat: AtomicU64::new(0),
            beats: AtomicU64::new(0),
            components: Mutex::new(BTreeMap::new()),
            bound: OnceLock::new(),
            bot_metrics: Mutex::new(None),
            first_beat: tokio::sync::Notify::new(),
            stalled: AtomicBool::new(false),
            judge: OnceLock::new(),
        })
    }

    /// Hands out the heartbeat. Called once, by the daemon, for the bot loop.
    pub(crate) fn heartbeat(self: &Arc<Self>) -> Heartbeat {
        Heartbeat {
            state: Arc::clone(self),
        }
    }

    /// Resolves once the bot loop has completed its first iteration.
    pub(crate) async fn first_beat(&self) {
        if self.beats.load(Ordering::Acquire) == 0 {
            self.first_beat.notified().await;
        }
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Where the heartbeat reports the end of a stall; set once, by the judge.
    pub(crate) fn set_judge_inbox(&self, inbox: Inbox) {
        let _ = self.judge.set(inbox);
    }

    /// The judge's view of the heartbeat: stalled or not.
    pub(crate) fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Release);
    }

    pub(crate) fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    pub fn set_component(&self, name: &'static str, status: Component) {
        self.components
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name, status);
    }

    pub fn set_bound(&self, addr: SocketAddr) {
        let _ = self.bound.set(addr);
    }

    pub(crate) fn bound(&self) -> Option<SocketAddr> {
        self.bound.get().copied()
    }

    pub fn set_bot_metrics(&self, source: Arc<dyn MetricsSource>) {
        *self
            .bot_metrics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(source);
    }

    pub(crate) fn bot_metrics(&self) -> Option<Arc<dyn MetricsSource>> {
        self.bot_metrics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reads every fact once, at one instant, so a verdict is consistent.
    pub fn view(&self) -> HealthView {
        let now = Instant::now();
        let uptime = now.saturating_duration_since(self.started);
        let last_beat = self.last_beat.load(Ordering::Acquire);
        let heartbeat_age =
            (last_beat != 0).then(|| uptime.saturating_sub(Duration::from_nanos(last_beat - 1)));
        HealthView {
            uptime,
            ready: self.ready.load(Ordering::Acquire),
            stopping: self.stopping.load(Ordering::Acquire),
            beats: self.beats.load(Ordering::Relaxed),
            heartbeat_age,
            stall_timeout: self.stall_timeout,
            startup_grace: self.startup_grace,
            components: self
                .components
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
            bound: self.bound(),
        }
    }
}

/// The facts at one instant; every verdict is derived from these.
#[derive(Clone, Debug)]
pub struct HealthView {
    pub(crate) uptime: Duration,
    pub(crate) ready: bool,
    pub(crate) stopping: bool,
    pub(crate) beats: u64,
    /// `None` until the first beat.
    pub(crate) heartbeat_age: Option<Duration>,
    pub(crate) stall_timeout: Duration,
    pub(crate) startup_grace: Duration,
    pub(crate) components: BTreeMap<&'static str, Component>,
    pub(crate) bound: Option<SocketAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub(crate) status: Status,
    pub(crate) reasons: Vec<String>,
}

impl HealthView {
    pub(crate) fn heartbeat_fresh(&self) -> bool {
        self.heartbeat_age
            .is_some_and(|age| age < self.stall_timeout)
    }

    /// Why the heartbeat counts as stale, if it does.
    pub(crate) fn stall_reason(&self) -> Option<String> {
        match self.heartbeat_age {
            Some(age) if age >= self.stall_timeout => {
                Some(format!("heartbeat stale for {:.1}s", age.as_secs_f64()))
            }
            Some(_) => None,
            None => Some("no heartbeat yet".to_owned()),
        }
    }

    pub fn verdict(&self) -> Verdict {
        if self.stopping {
            return Verdict {
                status: Status::Stopping,
                reasons: vec!["stopping".to_owned()],
            };
        }
        if !self.ready {
            return Verdict {
                status: Status::Starting,
                reasons: vec!["starting".to_owned()],
            };
        }
        let mut failed = Vec::new();
        let mut degraded = Vec::new();
        if let Some(reason) = self.stall_reason() {
            failed.push(reason);
        }
        for (name, component) in &self.components {
            match component {
                Component::Ok => {}
                Component::Degraded(reason) => degraded.push(format!("{name}: {reason}")),
                Component::Failed(reason) => failed.push(format!("{name}: {reason}")),
            }
        }
        if !failed.is_empty() {
            failed.extend(degraded);
            Verdict {
                status: Status::Unhealthy,
                reasons: failed,
            }
        } else if !degraded.is_empty() {
            Verdict {
                status: Status::Degraded,
                reasons: degraded,
            }
        } else {
            Verdict {
                status: Status::Healthy,
                reasons: Vec::new(),
            }
        }
    }

    /// `/livez`: alive while the heartbeat is fresh, while stopping, and
    /// before the first beat for at most the startup grace.
    pub(crate) fn liveness(&self) -> Result<(), String> {
        if self.stopping {
            return Ok(());
        }
        match self.heartbeat_age {
            None if self.uptime < self.startup_grace => Ok(()),
            None => Err(format!(
                "no heartbeat within the startup grace of {:.1}s",
                self.startup_grace.as_secs_f64()
            )),
            Some(_) => self.stall_reason().map_or(Ok(()), Err),
        }
    }

    /// `/readyz`: ready and not stopping.
    pub(crate) fn readiness(&self) -> Result<(), &'static str> {
        if self.stopping {
            Err("stopping")
        } else if !self.ready {
            Err("starting")
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_state() -> (Arc<HealthState>, Heartbeat) {
        let state = HealthState::new(Duration::from_secs(5), Duration::from_secs(60));
        let heartbeat = state.heartbeat();
        state.set_ready(true);
        (state, heartbeat)
    }

    #[test]
    fn starts_as_starting_and_alive() {
        let state = HealthState::new(Duration::from_secs(5), Duration::from_secs(60));
        let view = state.view();
        assert_eq!(view.verdict().status, Status::Starting);
        assert_eq!(view.liveness(), Ok(()));
        assert_eq!(view.readiness(), Err("starting"));
    }

    #[test]
    fn ready_without_a_beat_is_unhealthy() {
        let (state, _heartbeat) = ready_state();
        let verdict = state.view().verdict();
        assert_eq!(verdict.status, Status::Unhealthy);
        assert_eq!(verdict.reasons, vec!["no heartbeat yet".to_owned()]);
    }

    #[test]
    fn fresh_beat_is_healthy() {
        let (state, heartbeat) = ready_state();
        heartbeat.beat();
        assert_eq!(state.view().verdict().status, Status::Healthy);
        assert_eq!(state.view().beats, 1);
    }

    #[test]
    fn stale_beat_is_unhealthy_with_its_age() {
        let (state, heartbeat) = ready_state();
        heartbeat.beat();
        let mut view = state.view();
        view.heartbeat_age = Some(Duration::from_millis(7_200));
        let verdict = view.verdict();
        assert_eq!(verdict.status, Status::Unhealthy);
        assert_eq!(verdict.reasons, vec!["heartbeat stale for 7.2s".to_owned()]);
        assert_eq!(view.liveness(), Err("heartbeat stale for 7.2s".to_owned()));
    }

    #[test]
    fn components_degrade_or_fail() {
        let (state, heartbeat) = ready_state();
        heartbeat.beat();
        state.set_component("feed", Component::Degraded("feed process down".into()));
        let verdict = state.view().verdict();
        assert_eq!(verdict.status, Status::Degraded);
        assert_eq!(verdict.reasons, vec!["feed: feed process down".to_owned()]);
        state.set_component("journal", Component::Failed("ENOSPC".into()));
        let verdict = state.view().verdict();
        assert_eq!(verdict.status, Status::Unhealthy);
        assert_eq!(
            verdict.reasons,
            vec![
                "journal: ENOSPC".to_owned(),
                "feed: feed process down".to_owned()
            ]
        );
    }

    #[test]
    fn stopping_wins_and_stays_alive() {
        let (state, heartbeat) = ready_state();
        heartbeat.beat();
        state.set_stopping();
        let view = state.view();
        assert_eq!(view.verdict().status, Status::Stopping);
        assert_eq!(view.readiness(), Err("stopping"));
        assert_eq!(view.liveness(), Ok(()));
    }

    #[test]
    fn startup_grace_runs_out_without_a_beat() {
        let state = HealthState::new(Duration::from_secs(5), Duration::ZERO);
        assert!(state.view().liveness().is_err());
    }
}
