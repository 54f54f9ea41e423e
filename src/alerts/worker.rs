//! One destination's thread and its inbox.
//!
//! Each destination has its own OS thread, outside the bot's runtime, so a
//! wedged runtime still gets its stall alert out, and a dead or slow
//! destination delays no other. The inbox has two bounded lanes: health
//! and lifecycle events ("urgent"), sent one by one and in order; trade
//! and source events ("batched"), folded into one message per
//! `min_interval`. A full lane drops its oldest event and counts it; the
//! next message says how many. Pushing never waits for the thread: the
//! lock guards a few queue operations and nothing else.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::batch::Batch;
use super::delivery::{retry_delay, Client, RateLimit, Verdict};
use super::destination::{Destination, Message};
use super::event::{Event, Lane};
use super::metrics::{DestinationMetrics, Outcome};

/// Health and lifecycle events a destination may have waiting. They are
/// rare (state changes), so this many waiting means the destination has
/// been failing for a long while; the oldest then make way.
pub(crate) const URGENT_CAPACITY: usize = 64;

/// Trade and source events waiting for the thread to fold them into its
/// batch (it does so between deliveries, so this fills only while a
/// delivery is under way).
pub(crate) const BATCHED_CAPACITY: usize = 1024;

#[derive(Default)]
struct Inbox {
    urgent: VecDeque<Arc<Event>>,
    batched: VecDeque<Arc<Event>>,
    dropped_urgent: u64,
    dropped_batched: u64,
    /// Urgent events taken by the thread and not yet delivered or given up.
    busy: usize,
    /// The thread is waiting for work. A push wakes it only then: a
    /// wake-up is a system call, and a busy bot pushes a fill per signal.
    waiting: bool,
}

#[derive(Default)]
pub(crate) struct Outbox {
    inbox: Mutex<Inbox>,
    /// The thread waits on this for work.
    wake: Condvar,
    /// [`Outbox::wait_idle`] waits on this for the urgent lane to empty.
    idle: Condvar,
}

impl Outbox {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Queues `event`; drops the oldest of its lane if that lane is full.
    pub(crate) fn push(&self, event: Arc<Event>, metrics: &DestinationMetrics) {
        let mut inbox = self.lock();
        let inbox = &mut *inbox;
        let (queue, capacity, dropped) = match event.kind().lane() {
            Lane::Urgent => (
                &mut inbox.urgent,
                URGENT_CAPACITY,
                &mut inbox.dropped_urgent,
            ),
            Lane::Batched => (
                &mut inbox.batched,
                BATCHED_CAPACITY,
                &mut inbox.dropped_batched,
            ),
        };
        if queue.len() >= capacity {
            queue.pop_front();
            *dropped += 1;
            metrics.dropped();
        }
        queue.push_back(event);
        if std::mem::take(&mut inbox.waiting) {
            self.wake.notify_one();
        }
    }

    /// Waits until no urgent event is waiting or being delivered, or
    /// `deadline` passes; true when idle.
    pub(crate) fn wait_idle(&self, deadline: Instant) -> bool {
        let mut inbox = self.lock();
        loop {
            if inbox.urgent.is_empty() && inbox.busy == 0 {
                return true;
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            inbox = self
                .idle
                .wait_timeout(inbox, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

pub(crate) struct Worker {
    pub(crate) destination: Destination,
    /// Which bot this is, at the head of every message.
    pub(crate) name: Arc<str>,
    pub(crate) client: Client,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) metrics: Arc<DestinationMetrics>,
}

/// What the thread took from its inbox in one go.
struct Work {
    urgent: Vec<Arc<Event>>,
    dropped_urgent: u64,
}

impl Worker {
    pub(crate) fn spawn(self) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name(format!("notify-{}", self.destination.label))
            .spawn(move || self.run())
            .map(drop)
    }

    fn run(self) {
        let mut limit = RateLimit::new(self.destination.service.rate());
        let mut batch = Batch::default();
        loop {
            let work = self.next(&mut batch);
            let mut dropped = work.dropped_urgent;
            for event in work.urgent {
                let mut message = render(&event);
                if dropped > 0 {
                    message.text.push_str(&format!(
                        "\n({dropped} earlier alerts were dropped: this destination fell behind)"
                    ));
                    dropped = 0;
                }
                self.deliver(event.kind().name(), &message, &mut limit);
                let mut inbox = self.outbox.lock();
                inbox.busy -= 1;
                drop(inbox);
                self.outbox.idle.notify_all();
            }
            let now = Instant::now();
            if batch
                .due_at(self.destination.min_interval, now)
                .is_some_and(|due| due <= now)
            {
                let message = batch.take(now);
                self.deliver("batch", &message, &mut limit);
            }
        }
    }

    /// Waits for urgent events or a due batch; folds batched events into
    /// `batch` on the way.
    fn next(&self, batch: &mut Batch) -> Work {
        let mut inbox = self.outbox.lock();
        loop {
            batch.add_dropped(std::mem::take(&mut inbox.dropped_batched));
            for event in inbox.batched.drain(..) {
                batch.add(event);
            }
            let now = Instant::now();
            let due = batch.due_at(self.destination.min_interval, now);
            if !inbox.urgent.is_empty() || due.is_some_and(|due| due <= now) {
                let urgent: Vec<_> = inbox.urgent.drain(..).collect();
                inbox.busy += urgent.len();
                return Work {
                    urgent,
                    dropped_urgent: std::mem::take(&mut inbox.dropped_urgent),
                };
            }
            inbox.waiting = true;
            inbox = match due {
                Some(due) => {
                    self.outbox
                        .wake
                        .wait_timeout(inbox, due - now)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0
                }
                None => self
                    .outbox
                    .wake
                    .wait(inbox)
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            };
        }
    }

    /// Sends `message`, retrying as the service allows; true when delivered.
    fn deliver(&self, event: &'static str, message: &Message, limit: &mut RateLimit) -> bool {
        let label = self.destination.label.as_str();
        let request = self.destination.request(&self.name, message);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let wait = limit.take(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
                limit.take(Instant::now());
            }
            let result = self.client.post(&self.destination, &request);
            self.metrics.observe_latency(result.latency);
            if let Some(pause) = result.wait {
                limit.hold(Instant::now() + pause);
            }
            let error = result.error.as_deref().unwrap_or_default();
            let status = result.status.unwrap_or_default();
            match result.verdict {
                Verdict::Delivered => {
                    self.metrics.count(event, Outcome::Delivered);
                    tracing::debug!(
                        destination = label,
                        event,
                        status,
                        attempt,
                        latency_ms = result.latency.as_millis() as u64,
                        "notification delivered"
                    );
                    return true;
                }
                Verdict::Refused => {
                    self.metrics.count(event, Outcome::Failed);
                    tracing::warn!(
                        destination = label,
                        event,
                        status,
                        error,
                        "notification refused by the service; not retried"
                    );
                    return false;
                }
                Verdict::Retry => match retry_delay(attempt, result.wait) {
                    Some(delay) => {
                        self.metrics.count(event, Outcome::Retried);
                        tracing::info!(
                            destination = label,
                            event,
                            status,
                            error,
                            attempt,
                            retry_in_ms = delay.as_millis() as u64,
                            "notification not delivered; retrying"
                        );
                        std::thread::sleep(delay);
                    }
                    None => {
                        self.metrics.count(event, Outcome::Failed);
                        tracing::warn!(
                            destination = label,
                            event,
                            status,
                            error,
                            attempts = attempt,
                            "notification not delivered; given up"
                        );
                        return false;
                    }
                },
            }
        }
    }
}

/// One urgent event as a message.
pub(crate) fn render(event: &Event) -> Message {
    Message {
        title: event.title(),
        text: event.detail(),
        severity: event.severity(),
        fields: event.fields(),
    }
}

/// The longest [`super::Alerts::flush`] waits, whatever it is asked.
pub(crate) const MAX_FLUSH: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn fill() -> Arc<Event> {
        Arc::new(Event::Fill {
            id: "s".into(),
            symbol: "BTC".into(),
            side: "buy",
            qty: "1".into(),
            price: "1".into(),
            asked: "1".into(),
            fee: "0".into(),
        })
    }

    #[test]
    fn a_full_lane_drops_its_oldest_and_counts_them() {
        let outbox = Outbox::default();
        let metrics = DestinationMetrics::new("json#1".into());
        let stalled = Arc::new(Event::Stalled {
            stalled_for: Duration::from_secs(2),
            reason: "stale".into(),
        });
        outbox.push(Arc::clone(&stalled), &metrics);
        for _ in 0..BATCHED_CAPACITY + 10 {
            outbox.push(fill(), &metrics);
        }
        let inbox = outbox.lock();
        assert_eq!(inbox.batched.len(), BATCHED_CAPACITY);
        assert_eq!(inbox.dropped_batched, 10);
        // Trade events never push out a health event.
        assert_eq!(inbox.urgent.len(), 1);
        assert_eq!(inbox.dropped_urgent, 0);
        assert_eq!(metrics.dropped_total(), 10);
    }

    #[test]
    fn waiting_for_idle_is_bounded() {
        let outbox = Outbox::default();
        let metrics = DestinationMetrics::new("json#1".into());
        assert!(outbox.wait_idle(Instant::now()));
        outbox.push(
            Arc::new(Event::Exiting {
                code: 70,
                reason: "stalled".into(),
            }),
            &metrics,
        );
        let started = Instant::now();
        assert!(!outbox.wait_idle(started + Duration::from_millis(50)));
        assert!(started.elapsed() >= Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
