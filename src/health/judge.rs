//! The judge: an OS thread that reads the heartbeat and is the only party
//! that talks to systemd, keeps the health file and ends the process while
//! the bot runs.
//!
//! It never beats the heartbeat itself, and it does not run on the bot's
//! runtime, so a wedged runtime cannot silence it nor be covered up by it.
//! It judges on every tick and at once on every change it is told of
//! ([`Request`]): the signals never disagree, so READY=1 goes out only
//! after the health file is written, and the beat that ends a stall brings
//! the file back at once, not at the next tick.

use std::net::SocketAddr;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::file::{FileError, HealthFile, HealthRecord};
use super::notify::Notifier;
use super::state::{Component, HealthState, HealthView, Status};
use crate::alerts::{Alerts, Event};
use crate::exit::{self, Exit};

/// What the other threads tell the judge. Each is acted on at once.
#[derive(Debug)]
pub(crate) enum Request {
    /// The bot's first iteration is done: the health file, then READY=1.
    Ready,
    /// A stop signal: STOPPING=1, the file goes, the drain deadline starts.
    Stop,
    /// A stop signal long enough after the first to mean "now".
    ForceStop,
    /// SIGHUP: RELOADING=1 now, READY=1 at [`Request::Reloaded`].
    Reloading,
    Reloaded,
    /// A part the daemon cannot run without has failed (the health server).
    Fatal(String),
    /// The beat that ended a stall.
    StallEnded,
    /// The bot has finished: the file goes, the thread ends.
    Finished,
}

/// Where requests go; cheap to clone, never blocks.
#[derive(Clone)]
pub(crate) struct Inbox(Sender<Request>);

impl Inbox {
    pub(crate) fn send(&self, request: Request) {
        // The judge outlives every sender but the daemon's last request;
        // a send after it has gone has nothing left to change.
        let _ = self.0.send(request);
    }
}

pub(crate) struct Judge {
    pub(crate) state: Arc<HealthState>,
    pub(crate) notifier: Notifier,
    pub(crate) file: HealthFile,
    pub(crate) tick: Duration,
    /// Whether systemd armed a watchdog for us (`WATCHDOG_USEC`, our pid).
    pub(crate) watchdog: bool,
    pub(crate) stall_exit_after: Option<Duration>,
    pub(crate) startup_grace: Duration,
    pub(crate) drain_timeout: Duration,
    /// Stalls, recoveries, failed components and exits go to chat too.
    pub(crate) alerts: Alerts,
}

/// The running judge: its inbox, and the thread to join once finished.
pub(crate) struct JudgeThread {
    inbox: Inbox,
    thread: JoinHandle<()>,
}

impl JudgeThread {
    pub(crate) fn inbox(&self) -> Inbox {
        self.inbox.clone()
    }

    /// Tells the judge the bot has finished and waits for it to clean up.
    pub(crate) fn finish(self) {
        self.inbox.send(Request::Finished);
        let _ = self.thread.join();
    }
}

/// What the judge remembers between judgements, so each change is acted on
/// and logged once.
#[derive(Default)]
struct Memory {
    stalled: bool,
    announced_ready: bool,
    drain_deadline: Option<Instant>,
    file_error: Option<String>,
    /// When the current stall began (its last beat): a recovery's alert
    /// says how long it lasted.
    stalled_since: Option<Instant>,
    /// Components last seen failed, each alerted once.
    failed: Vec<&'static str>,
}

impl Judge {
    /// Starts the thread; it runs until [`JudgeThread::finish`] (or it ends
    /// the process itself).
    pub(crate) fn spawn(self) -> std::io::Result<JudgeThread> {
        let (sender, requests) = mpsc::channel();
        let inbox = Inbox(sender);
        self.state.set_judge_inbox(inbox.clone());
        let thread = std::thread::Builder::new()
            .name("judge".into())
            .spawn(move || self.run(&requests))?;
        Ok(JudgeThread { inbox, thread })
    }

    fn run(self, requests: &Receiver<Request>) {
        let mut memory = Memory::default();
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let now = Instant::now();
            if memory
                .drain_deadline
                .is_some_and(|deadline| now >= deadline)
            {
                self.terminate(
                    Exit::Forced,
                    &format!(
                        "drain did not finish within DRAIN_TIMEOUT {}",
                        humantime::format_duration(self.drain_timeout)
                    ),
                );
            }
            let wake_at = memory
                .drain_deadline
                .map_or(next_tick, |deadline| deadline.min(next_tick));
            match requests.recv_timeout(wake_at.saturating_duration_since(now)) {
                Ok(Request::Finished) | Err(RecvTimeoutError::Disconnected) => {
                    self.remove_file(&mut memory);
                    return;
                }
                Ok(request) => self.act_on(request, &mut memory),
                Err(RecvTimeoutError::Timeout) => {
                    if Instant::now() >= next_tick {
                        next_tick = (next_tick + self.tick).max(Instant::now());
                        self.judge(&mut memory);
                    }
                }
            }
        }
    }

    fn act_on(&self, request: Request, memory: &mut Memory) {
        match request {
            Request::Ready | Request::StallEnded => self.judge(memory),
            Request::Stop => {
                self.notifier.stopping();
                self.remove_file(memory);
                memory.drain_deadline = Some(Instant::now() + self.drain_timeout);
            }
            Request::ForceStop => self.terminate(
                Exit::Forced,
                "second stop signal: exiting without finishing the drain",
            ),
            Request::Reloading if self.announces() && memory.announced_ready => {
                self.notifier.reloading();
            }
            Request::Reloaded if self.announces() && memory.announced_ready => {
                self.notifier.ready("ready: reloaded");
            }
            Request::Reloading | Request::Reloaded => {}
            Request::Fatal(why) => self.terminate(Exit::Failure, &why),
            Request::Finished => unreachable!("handled by the loop"),
        }
    }

    /// Reload notifications mean nothing once stopping.
    fn announces(&self) -> bool {
        !self.state.is_stopping()
    }

    /// The one way the process ends while the bot runs: say why (log,
    /// sd_notify), take the health file away, exit.
    fn terminate(&self, exit: Exit, why: &str) -> ! {
        tracing::error!(exit_code = exit.code(), "{why}; exiting {}", exit.code());
        // Out before the exit, and before a watchdog trigger (systemd may
        // kill at once); the flush waits at most two seconds.
        self.alerts.send(Event::Exiting {
            code: i32::from(exit.code()),
            reason: why.to_owned(),
        });
        self.alerts.flush(Duration::from_secs(2));
        if exit == Exit::Stalled {
            self.notifier.watchdog_trigger(why);
        } else {
            self.notifier.status(why);
        }
        if let Err(error) = self.file.remove() {
            tracing::warn!(%error, "could not remove the health file");
        }
        exit::terminate(exit)
    }

    fn judge(&self, memory: &mut Memory) {
        let view = self.state.view();
        if view.stopping {
            return;
        }
        if !view.ready {
            self.while_starting(&view);
            return;
        }
        let verdict = view.verdict();
        let fresh = view.heartbeat_fresh();
        if fresh && self.watchdog {
            self.notifier.watchdog();
        }
        self.log_transition(&view, fresh, memory);
        self.alert_components(&view, memory);
        self.check_stall_exit(&view);

        if verdict.status.is_up() {
            let record = self.record(&view, verdict.status);
            self.report_file(self.file.touch(&record), memory);
        } else {
            self.remove_file(memory);
        }
        let label = if fresh {
            verdict.status.as_str()
        } else {
            "stalled"
        };
        let status = self.status_line(&view, label, &verdict.reasons);
        if memory.announced_ready {
            self.notifier.status(&status);
        } else {
            // After the file above: whoever trusts READY=1 finds it there.
            memory.announced_ready = true;
            self.notifier.ready(&status);
            tracing::info!("ready: first loop iteration done");
        }
    }

    /// While init is slow, ask systemd for more time, but never past the
    /// startup grace: an init that hangs must still time out.
    fn while_starting(&self, view: &HealthView) {
        let remaining = self.startup_grace.saturating_sub(view.uptime);
        if !remaining.is_zero() {
            self.notifier.extend_timeout((self.tick * 3).min(remaining));
        }
    }

    fn log_transition(&self, view: &HealthView, fresh: bool, memory: &mut Memory) {
        if !fresh && !memory.stalled {
            memory.stalled = true;
            self.state.set_stalled(true);
            let reason = view.stall_reason().unwrap_or_default();
            tracing::warn!(
                reason = %reason,
                stall_timeout_ms = view.stall_timeout.as_millis() as u64,
                "bot loop stalled: watchdog pings stopped, health file removed"
            );
            let age = view.heartbeat_age.unwrap_or_default();
            memory.stalled_since = Instant::now().checked_sub(age);
            self.alerts.send(Event::Stalled {
                stalled_for: age,
                reason,
            });
        } else if fresh && memory.stalled {
            memory.stalled = false;
            self.state.set_stalled(false);
            tracing::info!(
                heartbeats = view.beats,
                "bot loop recovered: heartbeat fresh again"
            );
            // From the last beat before the stall to the one that ended it.
            let stalled_for = memory.stalled_since.take().map_or(Duration::ZERO, |since| {
                since
                    .elapsed()
                    .saturating_sub(view.heartbeat_age.unwrap_or_default())
            });
            self.alerts.send(Event::Recovered { stalled_for });
        }
    }

    /// A component turning failed, and back.
    fn alert_components(&self, view: &HealthView, memory: &mut Memory) {
        for (name, component) in &view.components {
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

    fn check_stall_exit(&self, view: &HealthView) {
        let (Some(exit_after), Some(age)) = (self.stall_exit_after, view.heartbeat_age) else {
            return;
        };
        if age >= exit_after {
            self.terminate(
                Exit::Stalled,
                &format!(
                    "stalled for {:.1}s, past STALL_EXIT_AFTER {:.1}s",
                    age.as_secs_f64(),
                    exit_after.as_secs_f64()
                ),
            );
        }
    }

    fn remove_file(&self, memory: &mut Memory) {
        self.report_file(self.file.remove(), memory);
    }

    fn record(&self, view: &HealthView, status: Status) -> HealthRecord {
        HealthRecord {
            pid: std::process::id(),
            addr: view.bound,
            port: view.bound.map(|addr: SocketAddr| addr.port()),
            heartbeats: view.beats,
            status: status.as_str().to_owned(),
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        }
    }

    fn report_file(&self, result: Result<(), FileError>, memory: &mut Memory) {
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

    fn status_line(&self, view: &HealthView, label: &str, reasons: &[String]) -> String {
        let port = view.bound.map_or_else(
            || "no port".to_owned(),
            |addr| format!("port {}", addr.port()),
        );
        let summary = self
            .state
            .bot_metrics()
            .and_then(|metrics| metrics.summary())
            .map_or_else(String::new, |summary| format!(", {summary}"));
        let age = view.heartbeat_age.map_or_else(
            || "never".to_owned(),
            |age| format!("{:.1}s ago", age.as_secs_f64()),
        );
        let mut line = format!(
            "{label}: {} heartbeats, last {age}{summary}, {port}",
            view.beats
        );
        if !reasons.is_empty() {
            line.push_str(" (");
            line.push_str(&reasons.join("; "));
            line.push(')');
        }
        line
    }
}
