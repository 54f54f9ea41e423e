//! Where signals come from. Each source runs on its own (a task or a
//! thread), splits and parses what it reads, and hands the loop
//! [`Batch`]es of parsed lines over one channel; the loop alone decides
//! and journals them.

pub mod exec;
pub mod file;
pub mod lines;
pub mod parsed;
pub mod stdin;
pub mod webhook;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::snapshot::Checkpoint;
use crate::alerts::{Alerts, Event};
use crate::health::{Component, HealthState};
pub use lines::{Line, Lines};
pub use parsed::ParsedLines;

/// Lines from one source, in order, as the loop receives them.
pub struct Batch {
    /// Index of the source in the loop's table.
    pub source: usize,
    pub lines: ParsedLines,
    /// For a file source: where reading may resume once these lines are journaled.
    pub checkpoint: Option<Checkpoint>,
    /// For a webhook request: answered once the lines' decisions are durable.
    pub reply: Option<oneshot::Sender<Vec<Outcome>>>,
}

/// What became of one line, as a webhook client is told.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    pub id: Option<String>,
    pub result: Decision,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Filled,
    Rejected,
    Duplicate,
    /// The line is not a valid signal (rejected before the engine saw it).
    Invalid,
}

/// The `feed` health component, combined from every source's problem
/// (a feed process down, a file missing, a quiet feed): degraded while any
/// has one.
pub struct FeedHealth {
    health: Arc<HealthState>,
    problems: Mutex<BTreeMap<String, String>>,
    /// Alerts (issue 14): a source down or back.
    alerts: Alerts,
}

impl FeedHealth {
    pub fn new(health: Arc<HealthState>, alerts: Alerts) -> Arc<Self> {
        health.set_component("feed", Component::Ok);
        Arc::new(FeedHealth {
            health,
            problems: Mutex::new(BTreeMap::new()),
            alerts,
        })
    }

    /// Records (or clears) `who`'s problem; true when that changed it.
    /// `/health` names each source by its kind only: a source's name holds
    /// a path or a command line, which may carry a credential.
    pub fn set(&self, who: &str, problem: Option<String>) -> bool {
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
        // Alerts (issue 14): on going down and coming back, not on each
        // new wording of a problem (an exec feed's growing backoff).
        let source = source_kind(who);
        match problem {
            Some(problem) if !was_down => self.alerts.send(Event::SourceDown { source, problem }),
            None => self.alerts.send(Event::SourceUp { source }),
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

/// A source's kind from its name (`exec:...` → `exec`): the name itself
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

/// One `--source` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// `file:PATH`: tail a JSONL file.
    File(PathBuf),
    /// `exec:COMMAND ARGS...`: read a feed process's stdout.
    Exec(Vec<String>),
    /// `webhook`: authenticated `POST /signals`.
    Webhook,
    /// `stdin`.
    Stdin,
}

impl SourceSpec {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(path) = text.strip_prefix("file:") {
            if path.is_empty() {
                return Err("file: needs a path, as in file:/var/lib/feed/signals.jsonl".into());
            }
            return Ok(SourceSpec::File(path.into()));
        }
        if let Some(command) = text.strip_prefix("exec:") {
            let words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
            if words.is_empty() {
                return Err(
                    "exec: needs a command, as in exec:/usr/local/bin/feed --symbol BTC".into(),
                );
            }
            return Ok(SourceSpec::Exec(words));
        }
        match text {
            "webhook" => Ok(SourceSpec::Webhook),
            "stdin" | "-" => Ok(SourceSpec::Stdin),
            _ => Err(format!(
                "{text:?} is not a source: use file:PATH, exec:COMMAND ARGS..., webhook or stdin"
            )),
        }
    }

    /// The name journal records carry, e.g. `file:/var/lib/feed/signals.jsonl`.
    pub fn name(&self) -> String {
        match self {
            SourceSpec::File(path) => format!("file:{}", path.display()),
            SourceSpec::Exec(words) => format!("exec:{}", words.join(" ")),
            SourceSpec::Webhook => "webhook".to_owned(),
            SourceSpec::Stdin => "stdin".to_owned(),
        }
    }

    /// A short name for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceSpec::File(_) => "file",
            SourceSpec::Exec(_) => "exec",
            SourceSpec::Webhook => "webhook",
            SourceSpec::Stdin => "stdin",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            SourceSpec::parse("file:/x.jsonl"),
            Ok(SourceSpec::File("/x.jsonl".into()))
        );
        assert_eq!(
            SourceSpec::parse("exec:feed --symbol BTC"),
            Ok(SourceSpec::Exec(vec![
                "feed".into(),
                "--symbol".into(),
                "BTC".into()
            ]))
        );
        assert_eq!(SourceSpec::parse("webhook"), Ok(SourceSpec::Webhook));
        assert_eq!(SourceSpec::parse("stdin"), Ok(SourceSpec::Stdin));
        assert!(SourceSpec::parse("file:").is_err());
        assert!(SourceSpec::parse("kafka").is_err());
    }
}
