//! Where signals come from. Every source has one shape: [`Intake::start`]
//! hands it an [`Outlet`] and it runs on its own (a task or a thread),
//! splits and parses what it reads, and sends the loop [`Batch`]es of
//! parsed lines over one of two [`Channels`] (bulk, or waited on by a
//! client); the loop alone decides and journals them. Every source stops
//! on the one shutdown token and then drops its sender (exec once its
//! process group is gone, the webhook once the requests in flight are
//! answered), so both channels closing is the sign that the whole intake
//! has stopped.

mod exec;
mod file;
pub mod lines;
mod parsed;
mod pump;
mod settings;
mod stdin;
pub mod webhook;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::ledger::snapshot::Checkpoint;
use crate::alerts::{Alerts, Event};
use crate::backoff::Backoff;
use crate::bot::events::{self, Events};
use crate::bot::signal::Ids;
use crate::health::{Component, HealthState};
use lines::Lines;
use parsed::ParsedLines;
pub(crate) use settings::{Settings, SourceSpec, WebhookSettings};

/// Why the intake could not start.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("cannot listen for webhooks on --webhook-bind (WEBHOOK_BIND) {addr}: {source}")]
    WebhookBind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
}

impl IntakeError {
    /// A configuration mistake (exit 2) rather than a runtime failure: a
    /// webhook address that cannot be bound is one the operator must change.
    pub(crate) fn is_config(&self) -> bool {
        matches!(self, IntakeError::WebhookBind { .. })
    }

    fn start(what: &'static str) -> impl FnOnce(std::io::Error) -> IntakeError {
        move |source| IntakeError::Start { what, source }
    }
}

/// The sources, configured and not yet started.
pub(crate) struct Intake {
    settings: Settings,
    /// The webhook's own listener (`WEBHOOK_BIND`), bound by [`Intake::bind`].
    listener: Option<TcpListener>,
    /// Otherwise the webhook is served on the main port, through this.
    route: webhook::Route,
}

impl Intake {
    /// Binds the webhook's own listener if it has one, the one part of
    /// starting that a setting can make fail: done at init, before the bot
    /// reports ready.
    pub(crate) fn bind(settings: Settings, route: webhook::Route) -> Result<Intake, IntakeError> {
        let listener = match settings.webhook.as_ref().and_then(|webhook| webhook.bind) {
            Some(asked) => {
                let listener =
                    TcpListener::bind(asked).map_err(|source| IntakeError::WebhookBind {
                        addr: asked,
                        source,
                    })?;
                // The address bound, not the one asked for: port 0 picks one.
                let addr = listener.local_addr().unwrap_or(asked);
                tracing::info!(%addr, port = addr.port(), "webhook listening on POST /signals (WEBHOOK_BIND)");
                Some(listener)
            }
            None => None,
        };
        Ok(Intake {
            settings,
            listener,
            route,
        })
    }

    /// Starts every source. File sources resume from their entry in
    /// `checkpoints` (keyed by source name). Must be called inside the
    /// bot's runtime: exec and stdin run as its tasks, and the file thread
    /// waits on its timers.
    pub(crate) fn start(
        self,
        checkpoints: &BTreeMap<String, Checkpoint>,
        channels: Channels,
        feed: Arc<FeedHealth>,
        shutdown: &CancellationToken,
    ) -> Result<(), IntakeError> {
        let Intake {
            settings,
            mut listener,
            route,
        } = self;
        for (index, spec) in settings.sources.iter().enumerate() {
            let batches = match spec {
                SourceSpec::Webhook => &channels.waited_on,
                _ => &channels.bulk,
            };
            let outlet = Outlet {
                index,
                name: spec.name(),
                batches: batches.clone(),
                feed: Arc::clone(&feed),
                shutdown: shutdown.clone(),
            };
            match spec {
                SourceSpec::File(path) => {
                    let resume = checkpoints.get(&outlet.name).cloned();
                    file::spawn(outlet, path.clone(), settings.file_poll_interval, resume)
                        .map_err(IntakeError::start("file source thread"))?;
                }
                SourceSpec::Exec(command) => exec::spawn(
                    outlet,
                    command.clone(),
                    Backoff::new(settings.exec_backoff, settings.exec_backoff_max),
                ),
                SourceSpec::Stdin => stdin::spawn(outlet),
                SourceSpec::Webhook => {
                    let Some(webhook) = &settings.webhook else {
                        continue;
                    };
                    let handler = webhook::Handler::new(outlet, webhook.clone());
                    match listener.take() {
                        Some(listener) => webhook::spawn(handler, listener)
                            .map_err(IntakeError::start("webhook thread"))?,
                        None => {
                            route.install(handler);
                            tracing::info!("webhook on the main port: POST /signals");
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Where the sources' batches go: two channels, so that a client waiting
/// on its answer (the webhook's) never queues behind a bulk feed's batches.
pub(crate) struct Channels {
    /// File, exec and stdin batches.
    pub(crate) bulk: mpsc::Sender<Batch>,
    /// Webhook requests, each waiting on its commit: the loop takes these
    /// first, and ends an iteration early when one comes.
    pub(crate) waited_on: mpsc::Sender<Batch>,
}

/// What every source is given: its place in the loop's table, where its
/// batches go, where it reports a problem, and when to stop.
pub(crate) struct Outlet {
    /// The index its batches carry.
    index: usize,
    /// The name journal records carry (see [`SourceSpec::name`]).
    name: String,
    batches: mpsc::Sender<Batch>,
    feed: Arc<FeedHealth>,
    shutdown: CancellationToken,
}

/// Lines from one source, in order, as the loop receives them.
pub(crate) struct Batch {
    /// Index of the source in the loop's table.
    pub(crate) source: usize,
    pub(crate) lines: ParsedLines,
    /// For a file source: where reading may resume once these lines are journaled.
    pub(crate) checkpoint: Option<Checkpoint>,
    /// For a webhook request: answered once the lines' decisions are durable.
    pub(crate) reply: Option<oneshot::Sender<Vec<Outcome>>>,
}

impl Batch {
    /// Parses `lines` here, on the source's thread or task, so that on a
    /// busy feed parsing runs beside the loop instead of inside it.
    pub(crate) fn new(source: usize, lines: Lines) -> Self {
        Self::parsed(source, ParsedLines::new(lines, Ids::Required))
    }

    /// The webhook's: a signal without an id gets one from its content.
    pub(crate) fn deriving_ids(source: usize, lines: Lines) -> Self {
        Self::parsed(source, ParsedLines::new(lines, Ids::Derived))
    }

    fn parsed(source: usize, lines: ParsedLines) -> Self {
        Batch {
            source,
            lines,
            checkpoint: None,
            reply: None,
        }
    }
}

/// What became of one line, as a webhook client is told.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct Outcome {
    pub(crate) id: Option<String>,
    pub(crate) result: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Decision {
    Filled,
    Rejected,
    Duplicate,
    /// The line is not a valid signal (rejected before the engine saw it).
    Invalid,
}

/// The `feed` health component, combined from every source's problem
/// (a feed process down, a file missing, a quiet feed): degraded while any
/// has one.
pub(crate) struct FeedHealth {
    health: Arc<HealthState>,
    problems: Mutex<BTreeMap<String, String>>,
    /// A source going down or coming back is also an alert, and an event.
    alerts: Alerts,
    events: Events,
}

impl FeedHealth {
    pub(crate) fn new(health: Arc<HealthState>, alerts: Alerts, events: Events) -> Arc<Self> {
        health.set_component("feed", Component::Ok);
        Arc::new(FeedHealth {
            health,
            problems: Mutex::new(BTreeMap::new()),
            alerts,
            events,
        })
    }

    pub(crate) fn alerts(&self) -> &Alerts {
        &self.alerts
    }

    /// Records (or clears) `who`'s problem; true when that changed it.
    /// `/health` names each source by its kind only: a source's name holds
    /// a path or a command line, which may carry a credential.
    pub(crate) fn set(&self, who: &str, problem: Option<String>) -> bool {
        let mut problems = self
            .problems
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let was_down = problems.contains_key(who);
        let changed = match &problem {
            Some(problem) => {
                problems.insert(who.to_owned(), problem.clone()).as_ref() != Some(problem)
            }
            None => problems.remove(who).is_some(),
        };
        if !changed {
            return false;
        }
        // On going down and coming back, not on each new wording of a
        // problem (an exec feed's growing backoff).
        let source = source_kind(who);
        match problem {
            Some(problem) if !was_down => {
                self.events.send(events::Event::Source {
                    source,
                    problem: Some(problem.clone()),
                });
                self.alerts.send(Event::SourceDown { source, problem });
            }
            None => {
                self.events.send(events::Event::Source {
                    source,
                    problem: None,
                });
                self.alerts.send(Event::SourceUp { source });
            }
            Some(_) => {}
        }
        let component = if problems.is_empty() {
            Component::Ok
        } else {
            Component::Degraded(
                problems
                    .iter()
                    .map(|(who, problem)| {
                        let kind = who.split_once(':').map_or(who.as_str(), |(kind, _)| kind);
                        format!("{kind}: {problem}")
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        };
        self.health.set_component("feed", component);
        true
    }
}

/// A source's kind from its name (`exec:...` is `exec`): the name itself
/// may hold a credential; the quiet-feed check reports as `signals`.
fn source_kind(who: &str) -> &'static str {
    match who.split_once(':').map_or(who, |(kind, _)| kind) {
        "file" => "file",
        "exec" => "exec",
        "webhook" => "webhook",
        "stdin" => "stdin",
        _ => "signals",
    }
}
