//! One bot's read API and event stream, over a blocking client (ureq) of
//! its own: each bot has its own connections and timeouts, so a bot that
//! hangs or answers garbage costs only its own threads.
//!
//! Everything a bot sends is untrusted: bodies are capped, lines are
//! capped, and anything that does not parse is "invalid answer", never a
//! panic.

use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use ureq::tls::TlsConfig;

use super::settings::BotSpec;
use super::sources;
use crate::bot::money::{Amount, Price, Quantity};
use crate::secret::Secret;

/// Status and positions fit in far less; a bot sending more is broken.
const MAX_BODY: u64 = 4 << 20;
/// One line of the event stream (an event is one `data:` line).
const MAX_LINE: usize = 64 << 10;
/// An open stream is reopened this often (from where it stopped, so
/// nothing is lost): ureq has no idle timeout, and a peer that vanished
/// without closing would otherwise hold the stream forever.
const STREAM_CYCLE: Duration = Duration::from_secs(60);
/// Event kinds the stream is asked for.
const STREAM_TYPES: &str = "fill,reject,health,source,dropped";

pub(crate) struct BotClient {
    agent: ureq::Agent,
    base: String,
    token: Option<Secret>,
    timeout: Duration,
}

/// Why a request failed, in words fit for the page and the log (never the
/// token: it travels in a header only).
pub(crate) type Problem = String;

impl BotClient {
    pub(crate) fn new(spec: &BotSpec, timeout: Duration) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            // A redirect would carry the read token to whoever it names.
            .max_redirects(0)
            .user_agent(concat!("tradingbot-web/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                TlsConfig::builder()
                    .root_certs(crate::tls::root_certs(&[]))
                    .build(),
            )
            .build()
            .new_agent();
        BotClient {
            agent,
            base: spec.url.clone(),
            token: spec.token.clone(),
            timeout,
        }
    }

    fn get(&self, path_and_query: &str) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        let request = self.agent.get(format!("{}{path_and_query}", self.base));
        match &self.token {
            Some(token) => request.header("Authorization", format!("Bearer {}", token.expose())),
            None => request,
        }
    }

    /// GETs `path` and parses its JSON answer.
    pub(crate) fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Problem> {
        let mut response = self
            .get(path)
            .header("Accept", "application/json")
            .call()
            .map_err(|error| self.describe(&error))?;
        check_status(response.status().as_u16())?;
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|error| self.describe(&error))?;
        serde_json::from_slice(&body).map_err(|error| invalid(&error))
    }

    /// Follows the event stream from `after`: `on_open` once it answers,
    /// then each event to `on_event` until that returns false, the stream
    /// ends, or the stream's cycle is over (all three Ok).
    pub(crate) fn stream(
        &self,
        after: u64,
        on_open: impl FnOnce(),
        mut on_event: impl FnMut(Event) -> bool,
    ) -> Result<(), Problem> {
        let response = self
            .get(&format!("/events?after={after}&types={STREAM_TYPES}"))
            .header("Accept", "text/event-stream")
            .config()
            .timeout_global(Some(STREAM_CYCLE))
            .timeout_connect(Some(self.timeout))
            .timeout_recv_response(Some(self.timeout))
            .build()
            .call()
            .map_err(|error| self.describe(&error))?;
        check_status(response.status().as_u16())?;
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !content_type.starts_with("text/event-stream") {
            return Err(format!(
                "invalid answer: not an event stream ({:?})",
                truncate(content_type, 60)
            ));
        }
        on_open();
        let mut reader = BufReader::new(response.into_body().into_reader());
        let mut parser = SseParser::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            let read = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line);
            match read {
                Ok(0) => return Ok(()),
                Ok(_) if line.len() > MAX_LINE => {
                    return Err(format!(
                        "invalid answer: a stream line over {MAX_LINE} bytes"
                    ))
                }
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => return Ok(()),
                Err(error) => return Err(format!("stream broken: {}", error.kind())),
            }
            let Ok(text) = std::str::from_utf8(&line) else {
                return Err("invalid answer: the stream is not UTF-8".into());
            };
            if let Some(data) = parser.line(text) {
                let event = serde_json::from_str::<Value>(&data)
                    .map_err(|error| invalid(&error))
                    .and_then(Event::from_json)?;
                if !on_event(event) {
                    return Ok(());
                }
            }
        }
    }

    /// A transport error in our words: ureq's own may quote the URL.
    fn describe(&self, error: &ureq::Error) -> Problem {
        match error {
            ureq::Error::Timeout(_) => format!(
                "no answer within {}",
                humantime::format_duration(self.timeout)
            ),
            ureq::Error::HostNotFound => "host not found".into(),
            ureq::Error::ConnectionFailed => "connection refused".into(),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                "connection refused".into()
            }
            ureq::Error::Io(io) => format!("connection error: {}", io.kind()),
            ureq::Error::Tls(problem) => format!("TLS: {problem}"),
            ureq::Error::Rustls(problem) => format!("TLS: {problem}"),
            ureq::Error::BodyExceedsLimit(_) => {
                format!("invalid answer: a body over {} MiB", MAX_BODY >> 20)
            }
            ureq::Error::Http(_) | ureq::Error::Protocol(_) => "invalid answer: not HTTP".into(),
            other => format!("request failed: {other}"),
        }
    }
}

fn check_status(code: u16) -> Result<(), Problem> {
    match code {
        200 => Ok(()),
        401 | 403 => Err(format!(
            "HTTP {code}: the read token was refused (WEB_BOT_TOKENS_FILE)"
        )),
        404 => Err("HTTP 404: no read API there (an older bot, or a wrong URL)".into()),
        code => Err(format!("HTTP {code}")),
    }
}

fn invalid(error: &serde_json::Error) -> Problem {
    format!("invalid answer: {}", truncate(&error.to_string(), 120))
}

pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Server-sent events, as far as this stream uses them: `data:` lines
/// joined by newlines, dispatched at a blank line; other fields and
/// comments are ignored (the JSON carries the type and the sequence).
#[derive(Default)]
struct SseParser {
    data: Option<String>,
}

impl SseParser {
    /// Takes one line (with or without its line end); returns an event's
    /// data when the line ends one.
    fn line(&mut self, line: &str) -> Option<String> {
        let line = line.trim_end_matches('\n').trim_end_matches('\r');
        if line.is_empty() {
            return self.data.take();
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        if field == "data" {
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            }
        }
        None
    }
}

/// The stream's events the dashboard uses.
#[derive(Debug, PartialEq)]
pub(crate) enum Event {
    /// Boxed: its exact amounts make it several times the other events.
    Trade(Box<Trade>),
    Health {
        status: String,
        reasons: Vec<String>,
        /// The bot's heartbeat age at the change, when it says.
        heartbeat_age_seconds: Option<f64>,
    },
    /// A source's status changed.
    Source {
        source: String,
        status: String,
        problem: Option<String>,
    },
    /// The bot dropped events for this client: resume from the journal.
    Dropped,
    /// A kind the dashboard does not show.
    Other,
}

impl Event {
    fn from_json(value: Value) -> Result<Event, Problem> {
        match value.get("type").and_then(Value::as_str) {
            Some("fill" | "reject") => Trade::deserialize(&value)
                .map(|trade| Event::Trade(Box::new(trade.clipped())))
                .map_err(|error| invalid(&error)),
            Some("health") => {
                let health = Health::deserialize(&value).map_err(|error| invalid(&error))?;
                Ok(Event::Health {
                    status: truncate(&health.status, 40),
                    reasons: clip_reasons(health.reasons),
                    heartbeat_age_seconds: health.heartbeat_age_seconds,
                })
            }
            Some("source") => {
                let source = SourceEvent::deserialize(&value).map_err(|error| invalid(&error))?;
                Ok(Event::Source {
                    source: truncate(&source.source, sources::NAME_CHARS),
                    status: truncate(&source.status, sources::STATUS_CHARS),
                    problem: source
                        .problem
                        .map(|problem| truncate(&problem, sources::ERROR_CHARS)),
                })
            }
            Some("dropped") => Ok(Event::Dropped),
            Some(_) => Ok(Event::Other),
            None => Err("invalid answer: an event without a type".into()),
        }
    }
}

#[derive(Deserialize)]
struct Health {
    status: String,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    heartbeat_age_seconds: Option<f64>,
}

#[derive(Deserialize)]
struct SourceEvent {
    source: String,
    status: String,
    #[serde(default)]
    problem: Option<String>,
}

/// A fill or a reject, as the API and the stream describe one. Strings are
/// clipped on arrival: the ring keeps a few hundred per bot.
#[derive(Clone, Debug, PartialEq, Deserialize, serde::Serialize)]
pub(crate) struct Trade {
    #[serde(rename = "type")]
    pub(crate) kind: TradeKind,
    pub(crate) seq: u64,
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// When it was decided, epoch milliseconds (an RFC 3339 time is
    /// converted).
    #[serde(default, deserialize_with = "epoch_ms")]
    pub(crate) at: Option<f64>,
    #[serde(default)]
    pub(crate) symbol: Option<String>,
    #[serde(default)]
    pub(crate) side: Option<String>,
    /// Exact, as the bot sends them (strings; a number from an older bot
    /// reads as the decimal its text says), and shown as given.
    #[serde(default)]
    pub(crate) qty: Option<Quantity>,
    #[serde(default)]
    pub(crate) price: Option<Price>,
    #[serde(default)]
    pub(crate) asked: Option<Price>,
    #[serde(default)]
    pub(crate) fee: Option<Amount>,
    #[serde(default)]
    pub(crate) reason: Option<String>,
    #[serde(default)]
    pub(crate) detail: Option<String>,
    #[serde(default)]
    pub(crate) src: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum TradeKind {
    Fill,
    Reject,
}

impl Trade {
    fn clipped(mut self) -> Self {
        for (field, max) in [
            (&mut self.id, 120),
            (&mut self.symbol, 40),
            (&mut self.side, 10),
            (&mut self.reason, 60),
            (&mut self.detail, 300),
            (&mut self.src, 60),
        ] {
            if let Some(text) = field {
                *text = truncate(text, max);
            }
        }
        self
    }
}

fn epoch_ms<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => humantime::parse_rfc3339_weak(&text)
            .ok()
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|since| since.as_secs_f64() * 1000.0),
        _ => None,
    })
}

/// At most 20 reasons of 300 characters: the page shows them all.
pub(crate) fn clip_reasons(reasons: Vec<String>) -> Vec<String> {
    reasons
        .into_iter()
        .take(20)
        .map(|reason| truncate(&reason, 300))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_lines_make_events() {
        let mut parser = SseParser::default();
        assert_eq!(parser.line(": keep-alive\n"), None);
        assert_eq!(parser.line("\n"), None, "a comment alone is no event");
        assert_eq!(parser.line("id: 7\r\n"), None);
        assert_eq!(parser.line("event: fill\n"), None);
        assert_eq!(parser.line("data: {\"a\":\n"), None);
        assert_eq!(parser.line("data:1}\n"), None);
        assert_eq!(parser.line("\r\n").as_deref(), Some("{\"a\":\n1}"));
        assert_eq!(parser.line("\n"), None);
    }

    #[test]
    fn events_parse_or_are_refused() {
        let fill = serde_json::json!({"type": "fill", "seq": 3, "id": "s1", "ts": 1, "at": 1700000000000_i64,
            "symbol": "BTC", "side": "buy", "qty": "1.5", "price": "64415.13", "asked": "64400",
            "fee": "0.04830885", "src": "stdin"});
        let Ok(Event::Trade(trade)) = Event::from_json(fill) else {
            panic!("a fill")
        };
        assert_eq!((trade.kind, trade.seq), (TradeKind::Fill, 3));
        let shown = serde_json::to_value(&trade).unwrap();
        assert_eq!(
            (&shown["qty"], &shown["price"], &shown["fee"]),
            (&"1.5".into(), &"64415.13".into(), &"0.04830885".into()),
            "exact, as sent"
        );
        let older = serde_json::json!({"type": "fill", "seq": 4, "qty": 0.1, "price": 100.0});
        let Ok(Event::Trade(trade)) = Event::from_json(older) else {
            panic!("a fill of an older bot")
        };
        assert_eq!(trade.qty.map(|qty| qty.to_string()).as_deref(), Some("0.1"));
        let reject = serde_json::json!({"type": "reject", "seq": 4, "id": null,
            "at": "2024-01-02T03:04:05.678Z", "reason": "bad_json", "detail": "x".repeat(5000), "src": "stdin"});
        let Ok(Event::Trade(trade)) = Event::from_json(reject) else {
            panic!("a reject")
        };
        assert_eq!(trade.at, Some(1_704_164_645_678.0));
        assert!(trade.detail.unwrap().chars().count() <= 301);
        assert_eq!(
            Event::from_json(serde_json::json!({"type": "start", "seq": 1})),
            Ok(Event::Other)
        );
        for garbage in [
            serde_json::json!({"seq": 1}),
            serde_json::json!({"type": "fill", "seq": "x"}),
            serde_json::json!({"type": "fill", "seq": 1, "qty": "1e999"}),
            serde_json::json!({"type": "health"}),
            serde_json::json!([1, 2]),
        ] {
            assert!(Event::from_json(garbage.clone()).is_err(), "{garbage}");
        }
    }
}
