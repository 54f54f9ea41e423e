//! Trade and source events, batched per destination: at most one message
//! per `min_interval`. The first event after a quiet spell goes out at
//! once; what comes during the interval is shown (the first few in full)
//! and counted ("12 more fills, 3 rejects since ..."). The batch holds a
//! bounded amount whatever the rate: a few events and a count per kind.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use super::destination::Message;
use super::event::{Event, Kind, Severity};

/// Events of a batch shown in full; the rest are counted.
const SHOWN: usize = 5;

#[derive(Default)]
pub(crate) struct Batch {
    shown: Vec<Arc<Event>>,
    /// Per kind (indexed by `Kind as usize`): events beyond the shown ones.
    more: [u64; Kind::ALL.len()],
    /// Events lost before they reached the batch (a full queue).
    dropped: u64,
    /// The worst severity of every event in the batch, shown or counted.
    worst: Option<Severity>,
    since: Option<SystemTime>,
    last_sent: Option<Instant>,
}

impl Batch {
    pub(crate) fn add(&mut self, event: Arc<Event>) {
        self.since.get_or_insert_with(SystemTime::now);
        let severity = event.severity();
        if self.worst.is_none_or(|worst| severity as u8 > worst as u8) {
            self.worst = Some(severity);
        }
        if let Event::Counted { kind, count } = *event {
            self.more[kind as usize] += count;
        } else if self.shown.len() < SHOWN {
            self.shown.push(event);
        } else {
            self.more[event.kind() as usize] += 1;
        }
    }

    pub(crate) fn add_dropped(&mut self, count: u64) {
        if count > 0 {
            self.since.get_or_insert_with(SystemTime::now);
            self.dropped += count;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.shown.is_empty() && self.dropped == 0 && self.more.iter().all(|count| *count == 0)
    }

    /// When the pending batch may go out: now if nothing went out within
    /// `min_interval`, else when that interval ends; `None` when empty.
    pub(crate) fn due_at(&self, min_interval: Duration, now: Instant) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        Some(self.last_sent.map_or(now, |sent| sent + min_interval))
    }

    /// Renders the batch and starts the next interval.
    pub(crate) fn take(&mut self, now: Instant) -> Message {
        let batch = std::mem::take(self);
        self.last_sent = Some(now);
        batch.render()
    }

    fn render(self) -> Message {
        let since = self
            .since
            .map(|at| humantime::format_rfc3339_seconds(at).to_string())
            .unwrap_or_default();
        let more: Vec<String> = Kind::ALL
            .iter()
            .filter(|kind| self.more[**kind as usize] > 0)
            .map(|kind| counted(*kind, self.more[*kind as usize]))
            .collect();
        let mut lines = Vec::new();
        let title = match (self.shown.as_slice(), more.is_empty(), self.dropped) {
            ([only], true, 0) => {
                lines.push(only.detail());
                only.title()
            }
            (shown, _, _) => {
                for event in shown {
                    lines.push(format!("• {}: {}", event.title(), event.detail()));
                }
                let mut totals = [0u64; Kind::ALL.len()];
                for event in shown {
                    totals[event.kind() as usize] += 1;
                }
                for (total, extra) in totals.iter_mut().zip(self.more) {
                    *total += extra;
                }
                Kind::ALL
                    .iter()
                    .filter(|kind| totals[**kind as usize] > 0)
                    .map(|kind| counted(*kind, totals[*kind as usize]))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        if !more.is_empty() {
            // "12 more fills, 3 rejects since ...": "more" after the first count.
            let counts = more.join(", ").replacen(' ', " more ", 1);
            lines.push(format!("{counts} since {since}"));
        }
        if self.dropped > 0 {
            lines.push(format!(
                "{} events dropped before this message: the notifier fell behind",
                self.dropped
            ));
        }
        let title = if title.is_empty() {
            "Events dropped".to_owned()
        } else {
            title
        };
        // A batch of nothing but dropped events is a warning in itself.
        let severity = self.worst.unwrap_or(Severity::Warning);
        let counts: Map<String, Value> = Kind::ALL
            .iter()
            .filter(|kind| self.more[**kind as usize] > 0)
            .map(|kind| (kind.name().to_owned(), self.more[*kind as usize].into()))
            .collect();
        Message {
            title,
            text: lines.join("\n"),
            severity,
            fields: json!({
                "kind": "batch",
                "events": self.shown.iter().map(|event| event.fields()).collect::<Vec<_>>(),
                "more": counts,
                "dropped": self.dropped,
                "since": since,
            }),
        }
    }
}

/// "12 fills", "1 reject".
fn counted(kind: Kind, count: u64) -> String {
    let (one, many) = match kind {
        Kind::Fill => ("fill", "fills"),
        Kind::Reject => ("reject", "rejects"),
        Kind::Source => ("source change", "source changes"),
        Kind::Auth => ("refused-token burst", "refused-token bursts"),
        other => (other.name(), other.name()),
    };
    format!("{count} {}", if count == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(number: u32) -> Arc<Event> {
        Arc::new(Event::Fill {
            id: format!("s{number}"),
            symbol: "BTC".into(),
            side: "buy",
            qty: "1".into(),
            price: "100".into(),
            asked: "100".into(),
            fee: "0".into(),
        })
    }

    fn reject() -> Arc<Event> {
        Arc::new(Event::RiskReject {
            id: Some("r".into()),
            symbol: "ETH".into(),
            reason: "max_position_qty",
            detail: "over".into(),
        })
    }

    #[test]
    fn the_first_event_goes_at_once_the_next_after_the_interval() {
        let interval = Duration::from_secs(60);
        let now = Instant::now();
        let mut batch = Batch::default();
        assert_eq!(batch.due_at(interval, now), None);
        batch.add(fill(1));
        assert_eq!(batch.due_at(interval, now), Some(now));
        let message = batch.take(now);
        assert_eq!(message.title, "Fill");
        assert_eq!(message.text, "BUY 1 BTC @ 100 (id s1)");
        batch.add(fill(2));
        assert_eq!(batch.due_at(interval, now), Some(now + interval));
    }

    #[test]
    fn a_busy_interval_is_summarised() {
        let mut batch = Batch::default();
        for number in 0..17 {
            batch.add(fill(number));
        }
        for _ in 0..3 {
            batch.add(reject());
        }
        batch.add_dropped(4);
        let message = batch.take(Instant::now());
        assert_eq!(message.title, "17 fills, 3 rejects");
        let lines: Vec<&str> = message.text.lines().collect();
        assert_eq!(lines.len(), 7, "{}", message.text);
        assert!(lines[0].starts_with("• Fill: BUY 1 BTC"));
        assert!(
            lines[5].starts_with("12 more fills, 3 rejects since "),
            "{}",
            lines[5]
        );
        assert!(lines[6].starts_with("4 events dropped"), "{}", lines[6]);
        assert_eq!(message.fields["more"]["fill"], 12);
        assert_eq!(message.fields["dropped"], 4);
        assert_eq!(message.severity, Severity::Warning);
        assert!(batch.is_empty());
    }

    #[test]
    fn counted_events_join_the_counts() {
        let mut batch = Batch::default();
        batch.add(fill(1));
        batch.add(Arc::new(Event::Counted {
            kind: Kind::Fill,
            count: 40,
        }));
        let message = batch.take(Instant::now());
        assert_eq!(message.title, "41 fills");
        assert!(
            message.text.contains("40 more fills since "),
            "{}",
            message.text
        );
    }
}
