//! What the notifier tells operators, and in which words.
//!
//! An [`Event`] carries facts only (no secret: a source is named by its
//! kind, never by its path or command line). Each event has a [`Kind`]
//! (what `events=` filters on and metrics count by) and a [`Lane`]: health
//! and lifecycle events go out one by one and are never dropped behind
//! trade events; trade and source events are batched per destination.

use std::time::Duration;

use serde_json::{json, Value};

/// One thing worth telling an operator.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Event {
    /// The heartbeat went stale (sent by the judge).
    Stalled {
        /// Heartbeat age when the judge noticed.
        stalled_for: Duration,
        reason: String,
    },
    /// The heartbeat is fresh again after a stall.
    Recovered { stalled_for: Duration },
    /// A health component (journal, feed, ...) turned failed.
    ComponentFailed {
        component: &'static str,
        reason: String,
    },
    /// A failed component is no longer failed.
    ComponentRecovered { component: &'static str },
    /// Recovery is done and the loop is about to run.
    Started {
        version: &'static str,
        journal_records: u64,
        recovered_fills: u64,
        positions: usize,
    },
    /// A clean stop: drained, journal committed.
    Stopped {
        signals: u64,
        fills: u64,
        rejects: u64,
    },
    /// The process is about to exit non-zero (70 after a stall, 1 on a
    /// runtime failure); sent before the exit, with a bounded wait.
    Exiting { code: i32, reason: String },
    /// A paper fill.
    Fill {
        id: String,
        symbol: String,
        side: &'static str,
        qty: f64,
        price: f64,
    },
    /// A signal refused by a risk limit.
    RiskReject {
        id: Option<String>,
        symbol: String,
        reason: &'static str,
        detail: String,
    },
    /// A source (by its name) went down (a feed died, a socket closed, a
    /// file was lost) or quiet (no signal for its `quiet_after`).
    SourceDown {
        source: String,
        /// `down` or `quiet`.
        status: &'static str,
        /// What is wrong, in words: `no signal for 30s (quiet_after)`.
        problem: String,
    },
    /// That source is up again, after `lasted` down or quiet (`was`).
    SourceUp {
        source: String,
        was: &'static str,
        lasted: Duration,
    },
    /// No signal from any source for `MAX_SIGNAL_AGE`.
    SignalsQuiet { problem: String },
    /// A signal again after that.
    SignalsBack,
    /// The webhook refused a burst of requests with a wrong token.
    TokensRefused { count: u64, within: Duration },
    /// More trade events of one kind (fill, reject) than were sent one by
    /// one: the bot loop sends a few in full per iteration and counts the
    /// rest (see [`super::Digest`]).
    Counted { kind: Kind, count: u64 },
    /// `tradingbot notify-test`.
    Test,
}

/// What `events=` selects and what metrics count by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Stalled,
    Recovered,
    Component,
    Started,
    Stopped,
    Exiting,
    Fill,
    Reject,
    Source,
    Auth,
    Test,
}

impl Kind {
    pub(crate) const ALL: [Kind; 11] = [
        Kind::Stalled,
        Kind::Recovered,
        Kind::Component,
        Kind::Started,
        Kind::Stopped,
        Kind::Exiting,
        Kind::Fill,
        Kind::Reject,
        Kind::Source,
        Kind::Auth,
        Kind::Test,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Stalled => "stalled",
            Kind::Recovered => "recovered",
            Kind::Component => "component",
            Kind::Started => "started",
            Kind::Stopped => "stopped",
            Kind::Exiting => "exiting",
            Kind::Fill => "fill",
            Kind::Reject => "reject",
            Kind::Source => "source",
            Kind::Auth => "auth",
            Kind::Test => "test",
        }
    }

    pub(crate) fn bit(self) -> u16 {
        1 << (self as u16)
    }

    pub(crate) fn lane(self) -> Lane {
        match self {
            Kind::Fill | Kind::Reject | Kind::Source | Kind::Auth => Lane::Batched,
            _ => Lane::Urgent,
        }
    }

    /// The kinds an `events=` word selects: a kind's own name, or a group.
    pub(crate) fn selected_by(word: &str) -> Option<u16> {
        let group = |kinds: &[Kind]| kinds.iter().fold(0, |mask, kind| mask | kind.bit());
        Some(match word {
            "all" => group(&Kind::ALL),
            "health" => group(&[Kind::Stalled, Kind::Recovered, Kind::Component]),
            "lifecycle" => group(&[Kind::Started, Kind::Stopped, Kind::Exiting]),
            "trading" => group(&[Kind::Fill, Kind::Reject]),
            "sources" => group(&[Kind::Source, Kind::Auth]),
            _ => Kind::ALL.iter().find(|kind| kind.name() == word)?.bit(),
        })
    }
}

/// How a destination's worker handles an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Sent at once, in order; never dropped behind batched events.
    Urgent,
    /// At most one message per `min_interval`, summarising the rest.
    Batched,
}

/// How bad it is; Apprise's `type` in a JSON payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Severity {
    Info,
    Success,
    Warning,
    Failure,
}

impl Severity {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Success => "success",
            Severity::Warning => "warning",
            Severity::Failure => "failure",
        }
    }
}

impl Event {
    pub(crate) fn kind(&self) -> Kind {
        match self {
            Event::Stalled { .. } => Kind::Stalled,
            Event::Recovered { .. } => Kind::Recovered,
            Event::ComponentFailed { .. } | Event::ComponentRecovered { .. } => Kind::Component,
            Event::Started { .. } => Kind::Started,
            Event::Stopped { .. } => Kind::Stopped,
            Event::Exiting { .. } => Kind::Exiting,
            Event::Fill { .. } => Kind::Fill,
            Event::RiskReject { .. } => Kind::Reject,
            Event::SourceDown { .. }
            | Event::SourceUp { .. }
            | Event::SignalsQuiet { .. }
            | Event::SignalsBack => Kind::Source,
            Event::TokensRefused { .. } => Kind::Auth,
            Event::Counted { kind, .. } => *kind,
            Event::Test => Kind::Test,
        }
    }

    pub(crate) fn severity(&self) -> Severity {
        match self {
            Event::Stalled { .. }
            | Event::ComponentFailed { .. }
            | Event::Exiting { .. }
            | Event::SourceDown { .. }
            | Event::SignalsQuiet { .. }
            | Event::TokensRefused { .. } => Severity::Failure,
            Event::Recovered { .. }
            | Event::ComponentRecovered { .. }
            | Event::SourceUp { .. }
            | Event::SignalsBack => Severity::Success,
            Event::RiskReject { .. } => Severity::Warning,
            Event::Counted { kind, .. } if *kind == Kind::Reject => Severity::Warning,
            Event::Counted { .. } => Severity::Info,
            Event::Started { .. } | Event::Stopped { .. } | Event::Fill { .. } | Event::Test => {
                Severity::Info
            }
        }
    }

    /// A few words, for a message's first line.
    pub(crate) fn title(&self) -> String {
        match self {
            Event::Stalled { .. } => "Bot loop STALLED".into(),
            Event::Recovered { .. } => "Bot loop recovered".into(),
            Event::ComponentFailed { component, .. } => format!("{component} FAILED"),
            Event::ComponentRecovered { component } => format!("{component} recovered"),
            Event::Started { .. } => "Started".into(),
            Event::Stopped { .. } => "Stopped cleanly".into(),
            Event::Exiting { code, .. } => format!("EXITING with code {code}"),
            Event::Fill { .. } => "Fill".into(),
            Event::RiskReject { .. } => "Risk limit reject".into(),
            Event::SourceDown { source, status, .. } => format!("{source} source {status}"),
            Event::SourceUp { source, .. } => format!("{source} source up again"),
            Event::SignalsQuiet { .. } => "Signals quiet".into(),
            Event::SignalsBack => "Signals back".into(),
            Event::TokensRefused { .. } => "Webhook refused bad tokens".into(),
            Event::Counted { kind, .. } => format!("More {}", kind.name()),
            Event::Test => "Test message".into(),
        }
    }

    /// One line of detail.
    pub(crate) fn detail(&self) -> String {
        match self {
            Event::Stalled {
                stalled_for,
                reason,
            } => format!(
                "no heartbeat for {}: {reason}; /health answers 503",
                seconds(*stalled_for)
            ),
            Event::Recovered { stalled_for } => {
                format!(
                    "heartbeat fresh again after a stall of {}",
                    seconds(*stalled_for)
                )
            }
            Event::ComponentFailed { reason, .. } => reason.clone(),
            Event::ComponentRecovered { .. } => "working again".into(),
            Event::Started {
                version,
                journal_records,
                recovered_fills,
                positions,
            } => format!(
                "version {version}; recovery found {journal_records} journal records, \
                 {recovered_fills} fills, {positions} open positions"
            ),
            Event::Stopped {
                signals,
                fills,
                rejects,
            } => format!("{signals} signals, {fills} fills, {rejects} rejects since start"),
            Event::Exiting { reason, .. } => reason.clone(),
            Event::Fill {
                id,
                symbol,
                side,
                qty,
                price,
            } => format!("{} {qty} {symbol} @ {price} (id {id})", side.to_uppercase()),
            Event::RiskReject {
                id,
                symbol,
                reason,
                detail,
            } => format!(
                "{symbol}: {reason}: {detail}{}",
                id.as_ref()
                    .map_or_else(String::new, |id| format!(" (id {id})"))
            ),
            Event::SourceDown { problem, .. } => problem.clone(),
            Event::SourceUp { was, lasted, .. } => format!("after {} {was}", seconds(*lasted)),
            Event::SignalsQuiet { problem } => problem.clone(),
            Event::SignalsBack => "a signal came in again".into(),
            Event::TokensRefused { count, within } => format!(
                "{count} requests with a missing or wrong token within {}",
                seconds(*within)
            ),
            Event::Counted { kind, count } => format!("{count} more {} events", kind.name()),
            Event::Test => "tradingbot notify-test: this destination works".into(),
        }
    }

    /// The event's facts as JSON, for the generic JSON destination.
    pub(crate) fn fields(&self) -> Value {
        let mut fields = match self {
            Event::Stalled {
                stalled_for,
                reason,
            } => json!({ "stalled_for_seconds": stalled_for.as_secs_f64(), "reason": reason }),
            Event::Recovered { stalled_for } => {
                json!({ "stalled_for_seconds": stalled_for.as_secs_f64() })
            }
            Event::ComponentFailed { component, reason } => {
                json!({ "component": component, "status": "failed", "reason": reason })
            }
            Event::ComponentRecovered { component } => {
                json!({ "component": component, "status": "ok" })
            }
            Event::Started {
                version,
                journal_records,
                recovered_fills,
                positions,
            } => json!({
                "version": version,
                "journal_records": journal_records,
                "recovered_fills": recovered_fills,
                "positions": positions,
            }),
            Event::Stopped {
                signals,
                fills,
                rejects,
            } => json!({ "signals": signals, "fills": fills, "rejects": rejects }),
            Event::Exiting { code, reason } => json!({ "exit_code": code, "reason": reason }),
            Event::Fill {
                id,
                symbol,
                side,
                qty,
                price,
            } => json!({ "id": id, "symbol": symbol, "side": side, "qty": qty, "price": price }),
            Event::RiskReject {
                id,
                symbol,
                reason,
                detail,
            } => json!({ "id": id, "symbol": symbol, "reason": reason, "detail": detail }),
            Event::SourceDown {
                source,
                status,
                problem,
            } => json!({ "source": source, "status": status, "problem": problem }),
            Event::SourceUp {
                source,
                was,
                lasted,
            } => json!({
                "source": source,
                "status": "up",
                "was": was,
                "lasted_seconds": lasted.as_secs_f64(),
            }),
            Event::SignalsQuiet { problem } => json!({ "status": "quiet", "problem": problem }),
            Event::SignalsBack => json!({ "status": "up" }),
            Event::TokensRefused { count, within } => {
                json!({ "count": count, "within_seconds": within.as_secs_f64() })
            }
            Event::Counted { count, .. } => json!({ "count": count }),
            Event::Test => json!({}),
        };
        if let Value::Object(map) = &mut fields {
            map.insert("kind".into(), self.kind().name().into());
        }
        fields
    }
}

/// `3.2s`, `75s`: one decimal below ten seconds, whole seconds above.
pub(crate) fn seconds(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds < 10.0 {
        format!("{seconds:.1}s")
    } else {
        format!("{}s", duration.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_names_select_kinds() {
        let health = Kind::selected_by("health").unwrap();
        assert_ne!(health & Kind::Stalled.bit(), 0);
        assert_eq!(health & Kind::Fill.bit(), 0);
        assert_eq!(Kind::selected_by("fill"), Some(Kind::Fill.bit()));
        assert_eq!(Kind::selected_by("fills"), None);
        assert_eq!(
            Kind::selected_by("all").unwrap().count_ones() as usize,
            Kind::ALL.len()
        );
    }

    #[test]
    fn trade_and_source_events_are_batched_health_is_not() {
        assert_eq!(Kind::Fill.lane(), Lane::Batched);
        assert_eq!(Kind::Auth.lane(), Lane::Batched);
        assert_eq!(Kind::Stalled.lane(), Lane::Urgent);
        assert_eq!(Kind::Exiting.lane(), Lane::Urgent);
    }

    #[test]
    fn source_changes_read_as_one_sentence() {
        let line = |event: Event| format!("{}: {}", event.title(), event.detail());
        assert_eq!(
            line(Event::SourceDown {
                source: "rtds".into(),
                status: "quiet",
                problem: "no signal for 30s (quiet_after)".into(),
            }),
            "rtds source quiet: no signal for 30s (quiet_after)"
        );
        assert_eq!(
            line(Event::SourceDown {
                source: "whop".into(),
                status: "down",
                problem: "HTTP 503".into(),
            }),
            "whop source down: HTTP 503"
        );
        let back = Event::SourceUp {
            source: "rtds".into(),
            was: "quiet",
            lasted: Duration::from_secs(42),
        };
        assert_eq!(back.fields()["was"], "quiet");
        assert_eq!(back.fields()["lasted_seconds"], 42.0);
        assert_eq!(line(back), "rtds source up again: after 42s quiet");
        assert_eq!(
            line(Event::SignalsQuiet {
                problem: "no signal for 61s (MAX_SIGNAL_AGE 1m)".into()
            }),
            "Signals quiet: no signal for 61s (MAX_SIGNAL_AGE 1m)"
        );
        let sources = Kind::selected_by("sources").unwrap();
        for event in [
            Event::SignalsBack,
            Event::SignalsQuiet {
                problem: String::new(),
            },
        ] {
            assert_ne!(sources & event.kind().bit(), 0, "{event:?}");
        }
    }

    #[test]
    fn fields_name_their_kind() {
        let event = Event::Recovered {
            stalled_for: Duration::from_millis(3_400),
        };
        assert_eq!(event.fields()["kind"], "recovered");
        assert_eq!(event.fields()["stalled_for_seconds"], 3.4);
        assert_eq!(
            event.detail(),
            "heartbeat fresh again after a stall of 3.4s"
        );
    }
}
