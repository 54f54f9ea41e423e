//! The judge: an OS thread that reads the heartbeat on every tick and is the
//! only party that talks to the watchdog and keeps the health file.
//!
//! It never beats the heartbeat itself, and it does not run on the bot's
//! runtime, so a wedged runtime cannot silence it nor be covered up by it.

use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::file::{HealthFile, Record};
use super::notify::Notifier;
use super::state::{Component, HealthState, Snapshot, Status};
use crate::alerts::{Alerts, Event};

/// Exit code for a stall that outlasted `STALL_EXIT_AFTER`.
pub const EXIT_STALLED: i32 = 70;

pub struct Judge {
    pub state: Arc<HealthState>,
    pub notifier: Arc<Notifier>,
    pub file: HealthFile,
    pub tick: Duration,
    /// Whether systemd armed a watchdog for us (`WATCHDOG_USEC`, our pid).
    pub watchdog: bool,
    pub stall_exit_after: Option<Duration>,
    pub startup_grace: Duration,
    /// Alerts (issue 14): stalls, recoveries, components, the exit after a stall.
    pub alerts: Alerts,
}

/// What the judge remembers between ticks, so each change is logged once.
#[derive(Default)]
struct Memory {
    stalled: bool,
    file_error: Option<String>,
    /// When the current stall began (its last beat): a recovery's alert says how long it lasted.
    stalled_since: Option<Instant>,
    /// Components last seen failed, each alerted once.
    failed: Vec<&'static str>,
}

impl Judge {
    /// Starts the thread; it runs until `stop` receives or is dropped.
    pub fn spawn(self, stop: Receiver<()>) -> std::io::Result<JoinHandle<()>> {
        std::thread::Builder::new()
            .name("judge".into())
            .spawn(move || self.run(stop))
    }

    fn run(self, stop: Receiver<()>) {
        let mut memory = Memory::default();
        loop {
            match stop.recv_timeout(self.tick) {
                Err(RecvTimeoutError::Timeout) => self.judge(&mut memory),
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn judge(&self, memory: &mut Memory) {
        let snapshot = self.state.snapshot();
        if snapshot.stopping {
            return;
        }
        if !snapshot.ready {
            self.while_starting(&snapshot);
            return;
        }
        let verdict = snapshot.verdict();
        let fresh = snapshot.heartbeat_fresh();
        if fresh && self.watchdog {
            self.notifier.watchdog();
        }
        self.log_transition(&snapshot, fresh, memory);
        self.alert_components(&snapshot, memory);
        self.check_stall_exit(&snapshot);

        if verdict.status.is_up() {
            let record = self.record(&snapshot, verdict.status);
            self.report_file(self.file.touch(&record), memory);
        } else {
            self.report_file(self.file.remove(), memory);
        }
        let label = if fresh {
            verdict.status.as_str()
        } else {
            "stalled"
        };
        self.notifier
            .status(&self.status_line(&snapshot, label, &verdict.reasons));
    }

    /// While init is slow, ask systemd for more time, but never past the
    /// startup grace: an init that hangs must still time out.
    fn while_starting(&self, snapshot: &Snapshot) {
        let remaining = self.startup_grace.saturating_sub(snapshot.uptime);
        if !remaining.is_zero() {
            self.notifier.extend_timeout((self.tick * 3).min(remaining));
        }
    }

    fn log_transition(&self, snapshot: &Snapshot, fresh: bool, memory: &mut Memory) {
        if !fresh && !memory.stalled {
            memory.stalled = true;
            let reason = snapshot.stall_reason().unwrap_or_default();
            tracing::warn!(
                reason = %reason,
                stall_timeout_ms = snapshot.stall_timeout.as_millis() as u64,
                "bot loop stalled: watchdog pings stopped, health file removed"
            );
            let age = snapshot.heartbeat_age.unwrap_or_default();
            memory.stalled_since = Instant::now().checked_sub(age);
            self.alerts.send(Event::Stalled {
                stalled_for: age,
                reason,
            });
        } else if fresh && memory.stalled {
            memory.stalled = false;
            tracing::info!(
                heartbeats = snapshot.beats,
                "bot loop recovered: heartbeat fresh again"
            );
            // From the last beat before the stall to the one that ended it.
            let stalled_for = memory.stalled_since.take().map_or(Duration::ZERO, |since| {
                since
                    .elapsed()
                    .saturating_sub(snapshot.heartbeat_age.unwrap_or_default())
            });
            self.alerts.send(Event::Recovered { stalled_for });
        }
    }

    /// Alerts (issue 14): a component turning failed, and back.
    fn alert_components(&self, snapshot: &Snapshot, memory: &mut Memory) {
        for (name, component) in &snapshot.components {
            let known = memory.failed.contains(name);
            match component {
                Component::Failed(reason) if !known => {
                    memory.failed.push(name);
                    self.alerts.send(Event::ComponentFailed {
                        component: name,
                        reason: reason.clone(),
                    });
                }
                Component::Ok | Component::Degraded(_) if known => {
                    memory.failed.retain(|failed| failed != name);
                    self.alerts
                        .send(Event::ComponentRecovered { component: name });
                }
                _ => {}
            }
        }
    }

    fn check_stall_exit(&self, snapshot: &Snapshot) {
        let (Some(exit_after), Some(age)) = (self.stall_exit_after, snapshot.heartbeat_age) else {
            return;
        };
        if age < exit_after {
            return;
        }
        let reason = format!(
            "stalled for {:.1}s, past STALL_EXIT_AFTER {:.1}s: exiting {EXIT_STALLED}",
            age.as_secs_f64(),
            exit_after.as_secs_f64()
        );
        tracing::error!(exit_code = EXIT_STALLED, "{reason}");
        // Alerts (issue 14): out before the exit, and before the trigger
        // (systemd may kill at once); at most two seconds.
        self.alerts.send(Event::Exiting {
            code: EXIT_STALLED,
            reason: reason.clone(),
        });
        self.alerts.flush(Duration::from_secs(2));
        self.notifier.watchdog_trigger(&reason);
        if let Err(error) = self.file.remove() {
            tracing::warn!(%error, "could not remove the health file");
        }
        std::process::exit(EXIT_STALLED);
    }

    fn record(&self, snapshot: &Snapshot, status: Status) -> Record {
        Record {
            pid: std::process::id(),
            addr: snapshot.bound,
            port: snapshot.bound.map(|addr: SocketAddr| addr.port()),
            heartbeats: snapshot.beats,
            status: status.as_str().to_owned(),
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        }
    }

    fn report_file(&self, result: Result<(), super::file::FileError>, memory: &mut Memory) {
        match result {
            Ok(()) => {
                if memory.file_error.take().is_some() {
                    tracing::info!(path = %self.file.path().display(), "health file writable again");
                }
            }
            Err(error) => {
                let message = error.to_string();
                if memory.file_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(
                        path = %self.file.path().display(),
                        "health file: {message}; health stays on HTTP and sd_notify"
                    );
                    memory.file_error = Some(message);
                }
            }
        }
    }

    fn status_line(&self, snapshot: &Snapshot, label: &str, reasons: &[String]) -> String {
        let port = snapshot.bound.map_or_else(
            || "no port".to_owned(),
            |addr| format!("port {}", addr.port()),
        );
        let summary = self
            .state
            .bot_metrics()
            .and_then(|metrics| metrics.summary())
            .map_or_else(String::new, |summary| format!(", {summary}"));
        let age = snapshot.heartbeat_age.map_or_else(
            || "never".to_owned(),
            |age| format!("{:.1}s ago", age.as_secs_f64()),
        );
        let mut line = format!(
            "{label}: {} heartbeats, last {age}{summary}, {port}",
            snapshot.beats
        );
        if !reasons.is_empty() {
            line.push_str(" (");
            line.push_str(&reasons.join("; "));
            line.push(')');
        }
        line
    }
}
