//! What the bot publishes for the read API and the event stream, without
//! ever waiting on them: how far the journal is durable (the stream reads
//! fills and rejects from the journal itself, so it can never miss one),
//! the events the journal does not hold (duplicates, a source down or back,
//! the start and the stop) through a bounded queue that drops and counts
//! when full, and the bot's figures.
//!
//! Everything is a no-op when nothing reads it (no `API_TOKEN`).

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::Notify;

use super::figures::{BotMetrics, Figures};
use super::intake::{SourceView, Sources};

/// Events queued for the stream before more are dropped (duplicates
/// counted one by one): a stream thread this far behind is told how many
/// it lost, never waited for.
const MAX_QUEUED: usize = 64 * 1024;

#[derive(Clone, Default)]
pub struct Events(Option<Arc<Shared>>);

pub struct Shared {
    durable: AtomicU64,
    /// Wakes the stream thread: the journal moved on, or events wait.
    wake: Notify,
    queue: Mutex<Queue>,
    figures: OnceLock<Arc<BotMetrics>>,
    sources: OnceLock<Arc<Sources>>,
}

#[derive(Default)]
struct Queue {
    events: VecDeque<Event>,
    /// Events held, a duplicate batch counted by its length.
    held: usize,
    lost: u64,
}

/// An event the journal does not hold.
#[derive(Debug)]
pub(crate) enum Event {
    Duplicates(Duplicates),
    /// A source (by its name) changed status: connecting, up, quiet or
    /// down, with what is wrong while quiet or down.
    Source {
        source: String,
        status: &'static str,
        problem: Option<String>,
    },
    Start {
        journal_records: u64,
        recovered_fills: u64,
    },
    Stop {
        signals: u64,
        fills: u64,
        rejects: u64,
    },
}

/// One iteration's duplicates, their strings end to end: the loop adds one
/// without an allocation of its own.
#[derive(Debug, Default)]
pub(crate) struct Duplicates {
    text: String,
    /// The seq of the last record appended before it, then its id and
    /// source name in `text`.
    items: Vec<(u64, Range<usize>, Range<usize>)>,
}

impl Duplicates {
    pub(crate) fn add(&mut self, seq: u64, id: &str, source: &str) {
        let mut keep = |string: &str| {
            let start = self.text.len();
            self.text.push_str(string);
            start..self.text.len()
        };
        let id = keep(id);
        let source = keep(source);
        self.items.push((seq, id, source));
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Each duplicate: (seq, id, source name).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &str, &str)> {
        self.items.iter().map(|(seq, id, source)| {
            let text = |range: &Range<usize>| self.text.get(range.clone()).unwrap_or_default();
            (*seq, text(id), text(source))
        })
    }
}

impl Events {
    /// Events that something reads.
    pub fn enabled() -> Self {
        Events(Some(Arc::new(Shared {
            durable: AtomicU64::new(0),
            wake: Notify::new(),
            queue: Mutex::default(),
            figures: OnceLock::new(),
            sources: OnceLock::new(),
        })))
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn shared(&self) -> Option<&Arc<Shared>> {
        self.0.as_ref()
    }

    /// Once per loop iteration: how far the journal is durable, and the
    /// iteration's duplicates (taken, leaving `duplicates` empty).
    pub(crate) fn publish(&self, durable_seq: u64, duplicates: &mut Duplicates) {
        let Some(shared) = &self.0 else {
            return;
        };
        let moved = shared.durable.swap(durable_seq, Ordering::AcqRel) != durable_seq;
        let queued =
            duplicates.len() > 0 && shared.push(Event::Duplicates(std::mem::take(duplicates)));
        if moved || queued {
            shared.wake.notify_one();
        }
    }

    /// Sends an event that is not a decision (a source, the start, the stop).
    pub(crate) fn send(&self, event: Event) {
        if let Some(shared) = &self.0 {
            if shared.push(event) {
                shared.wake.notify_one();
            }
        }
    }

    /// The bot's figures, published once per iteration, and its sources'
    /// truth, for the read API.
    pub(crate) fn set_figures(&self, figures: Arc<BotMetrics>, sources: Arc<Sources>) {
        if let Some(shared) = &self.0 {
            let _ = shared.figures.set(figures);
            let _ = shared.sources.set(sources);
        }
    }
}

impl Shared {
    /// Queues `event` unless the queue is full (then it is counted lost).
    fn push(&self, event: Event) -> bool {
        let weight = match &event {
            Event::Duplicates(duplicates) => duplicates.len(),
            _ => 1,
        };
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if queue.held + weight > MAX_QUEUED {
            queue.lost += weight as u64;
            return false;
        }
        queue.held += weight;
        queue.events.push_back(event);
        true
    }

    pub(crate) fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Resolves when the journal moved on or events wait.
    pub(crate) async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Takes the queued events into `into`; returns how many were lost
    /// since the last call.
    pub(crate) fn take(&self, into: &mut Vec<Event>) -> u64 {
        let mut queue = self
            .queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        into.extend(queue.events.drain(..));
        queue.held = 0;
        std::mem::take(&mut queue.lost)
    }

    /// The bot's figures as last published, once it has published any.
    pub(crate) fn figures(&self) -> Option<Arc<Figures>> {
        self.figures.get().map(|metrics| metrics.get())
    }

    /// Every source as it is now (none before the bot has started).
    pub(crate) fn sources(&self) -> Vec<SourceView> {
        self.sources
            .get()
            .map_or_else(Vec::new, |sources| sources.views())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_drops_and_counts_and_never_blocks() {
        let events = Events::enabled();
        let shared = Arc::clone(events.shared().unwrap());
        let mut duplicates = Duplicates::default();
        for index in 0..MAX_QUEUED - 1 {
            duplicates.add(index as u64, "id", "webhook");
        }
        events.publish(7, &mut duplicates);
        assert_eq!(duplicates.len(), 0, "taken");
        events.send(Event::Start {
            journal_records: 0,
            recovered_fills: 0,
        });
        events.send(Event::Stop {
            signals: 0,
            fills: 0,
            rejects: 0,
        });
        let mut taken = Vec::new();
        assert_eq!(shared.take(&mut taken), 1, "the stop did not fit");
        assert_eq!(taken.len(), 2);
        assert_eq!(shared.durable(), 7);
        let Event::Duplicates(duplicates) = &taken[0] else {
            panic!("{taken:?}")
        };
        assert_eq!(duplicates.iter().nth(3), Some((3, "id", "webhook")));
        assert_eq!(shared.take(&mut taken), 0);
        // Disabled: nothing is kept, nothing fails.
        Events::default().send(Event::Start {
            journal_records: 0,
            recovered_fills: 0,
        });
    }
}
