//! Where signals come from. Every source has one shape: [`Intake::start`]
//! hands it an [`Outlet`] and it runs on its own (a task or a thread),
//! splits and parses what it reads, and sends the loop [`Batch`]es of
//! parsed lines over one of two [`Channels`] (bulk, or waited on by a
//! client); the loop alone decides and journals them. A source that
//! receives whole messages from a transport (the webhook's requests) is
//! the [`Submit`] handle that transport holds. Every source stops on the
//! one shutdown token and then drops its sender (exec once its process
//! group is gone, the webhook once the bodies in flight are answered), so
//! both channels closing is the sign that the whole intake has stopped.

pub mod decode;
mod exec;
mod feed;
#[cfg(test)]
mod feed_tests;
mod file;
mod headers;
pub mod lines;
pub mod map;
mod parsed;
mod poll;
mod pump;
mod remote;
mod settings;
pub(crate) mod source_test;
mod sources;
pub(crate) mod sources_file;
mod stdin;
pub mod submit;
mod ws;

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::ledger::checkpoint::Checkpoint;
use crate::backoff::Backoff;
use decode::Decoder;
use parsed::ParsedLines;
pub(crate) use settings::Settings;
pub(crate) use sources::{SourceView, Sources};
pub(crate) use sources_file::{Kind, SourceSettings};
pub(crate) use submit::{Gate, Submit, Unavailable};

/// Why the intake could not start.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("cannot start the {what}: {source}")]
    Start {
        what: &'static str,
        source: std::io::Error,
    },
    /// A source's settings that only starting it could check (its CA
    /// file's certificates, its URL as a request).
    #[error("source {name:?}: {problem}")]
    Source { name: String, problem: String },
}

impl IntakeError {
    /// A configuration mistake (exit 2) rather than a runtime failure: a
    /// source's settings the operator must change.
    pub(crate) fn is_config(&self) -> bool {
        matches!(self, IntakeError::Source { .. })
    }

    fn start(what: &'static str) -> impl FnOnce(std::io::Error) -> IntakeError {
        move |source| IntakeError::Start { what, source }
    }
}

/// The sources, configured and not yet started.
pub(crate) struct Intake {
    settings: Settings,
    /// Where the webhook's bodies come in, from whichever listener serves it.
    submit: Submit,
}

impl Intake {
    pub(crate) fn new(settings: Settings, submit: Submit) -> Intake {
        Intake { settings, submit }
    }

    /// Starts every source. A source that can resume does so from its
    /// entry in `checkpoints` (a file by its path, a poller by its name).
    /// Must be called inside the bot's runtime: exec and stdin run as its
    /// tasks, and the file and poll threads wait on its timers (a ws
    /// source's thread has a runtime of its own).
    pub(crate) fn start(
        self,
        checkpoints: &BTreeMap<String, Checkpoint>,
        channels: Channels,
        sources: Arc<Sources>,
        shutdown: &CancellationToken,
    ) -> Result<(), IntakeError> {
        let Intake { settings, submit } = self;
        for (index, source) in settings.sources.iter().enumerate() {
            let batches = match source.kind {
                Kind::Webhook => &channels.waited_on,
                _ => &channels.bulk,
            };
            let outlet = Outlet {
                index,
                name: source.name.clone(),
                decoder: source.decoder(),
                batches: batches.clone(),
                sources: Arc::clone(&sources),
                shutdown: shutdown.clone(),
            };
            let resume = checkpoints.get(&source.resume_key()).cloned();
            match &source.kind {
                Kind::File { path } => {
                    file::spawn(outlet, path.clone(), settings.file_poll_interval, resume)
                        .map_err(IntakeError::start("file source thread"))?;
                }
                Kind::Exec { command } => exec::spawn(
                    outlet,
                    command.clone(),
                    Backoff::new(settings.exec_backoff, settings.exec_backoff_max),
                ),
                Kind::Stdin => stdin::spawn(outlet),
                Kind::Ws(ws) => remote::spawn_ws(outlet, ws, source.quiet_after)?,
                Kind::Poll(poll) => {
                    remote::spawn_poll(outlet, poll, source.quiet_after, resume)?;
                }
                Kind::Webhook => {
                    outlet.set_status(feed::Status::Up);
                    submit.open(outlet);
                    tracing::info!("webhook source open: POST /signals");
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
#[derive(Clone)]
pub(crate) struct Outlet {
    /// The index its batches carry.
    index: usize,
    /// Its label, which journal records carry as their `src`.
    name: String,
    decoder: Decoder,
    batches: mpsc::Sender<Batch>,
    /// Where it reports its status and counts what it received.
    sources: Arc<Sources>,
    shutdown: CancellationToken,
}

impl Outlet {
    /// A batch of `items`, counted as this source's.
    fn batch(&self, items: ParsedLines) -> Batch {
        self.sources.received(self.index, &items);
        Batch::of(self.index, items)
    }

    /// Whether that changed its status.
    fn set_status(&self, status: feed::Status) -> bool {
        self.sources.set(self.index, status)
    }

    /// A webhook source's outlet, alone in its intake.
    #[cfg(test)]
    fn webhook_for_test(batches: mpsc::Sender<Batch>, shutdown: CancellationToken) -> Outlet {
        let settings = sources_file::from_plain(vec![Kind::Webhook]);
        let health = crate::health::HealthState::new(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(1),
        );
        Outlet {
            index: 0,
            name: settings[0].name.clone(),
            decoder: settings[0].decoder(),
            batches,
            sources: Sources::new(
                health,
                crate::alerts::Alerts::disabled(),
                crate::bot::events::Events::default(),
                &settings,
            ),
            shutdown,
        }
    }
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
    /// Items of source `source`, decoded where they were read (see
    /// [`Decoder`]).
    pub(crate) fn of(source: usize, lines: ParsedLines) -> Self {
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

impl Outcome {
    /// A message the source's mapping leaves out (`when`).
    fn ignored() -> Outcome {
        Outcome {
            id: None,
            result: Decision::Ignored,
            reason: None,
            detail: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Decision {
    Filled,
    Rejected,
    Duplicate,
    /// The line is not a valid signal (rejected before the engine saw it).
    Invalid,
    /// A price update: its symbol's mark moved.
    Marked,
    /// Not for the source's mapping (`when`): counted, never decided.
    Ignored,
}
