//! Where signals come from. Each source runs on its own (a task or a
//! thread), splits and parses what it reads, and hands the loop
//! [`Batch`]es of parsed lines over one channel; the loop alone decides
//! and journals them.

pub mod exec;
pub mod file;
pub mod lines;
pub mod parsed;
mod settings;
pub mod stdin;
pub mod webhook;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::snapshot::Checkpoint;
use crate::health::{Component, HealthState};
pub use lines::{Line, Lines};
pub use parsed::ParsedLines;
pub use settings::SourceSpec;
pub(crate) use settings::{Settings, WebhookSettings};

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
}

impl FeedHealth {
    pub fn new(health: Arc<HealthState>) -> Arc<Self> {
        health.set_component("feed", Component::Ok);
        Arc::new(FeedHealth {
            health,
            problems: Mutex::new(BTreeMap::new()),
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
        let changed = match problem {
            Some(problem) => problems.insert(who.to_owned(), problem.clone()) != Some(problem),
            None => problems.remove(who).is_some(),
        };
        if !changed {
            return false;
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
