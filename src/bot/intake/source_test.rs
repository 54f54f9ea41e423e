//! `tradingbot source-test NAME`: one source, with the service's own
//! settings, its next messages printed raw beside what each becomes (a
//! signal's fields, ignored and why, or the reject and why): the way to
//! write a mapping. It trades nothing and writes nothing (no journal, no
//! lock, no health file, no port); a signal shown is what the loop would
//! be handed, which may still refuse it (a duplicate, a risk limit, a
//! symbol the bound refuses).

mod hear;

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::decode::{Came, Decoder};
use super::feed::Status;
use super::map::{Mapped, Unmatched};
use super::parsed::too_long;
use super::sources_file::{redact_url, Kind, SourceSettings};
use super::IntakeError;
use crate::bot::ledger::format_ms;
use crate::bot::signal::{Item, Reject, Signal};
use hear::Heard;

/// A raw message is shown up to this many characters: enough for any
/// message a mapping reads, where a whole page without `items` may be
/// megabytes.
const SHOWN_RAW: usize = 4096;

/// How long a feed process's group gets to go once the test is done.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What to test, from the service's settings.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) source: SourceSettings,
    /// Messages to show before the test passes.
    pub(crate) count: usize,
    /// The longest the test takes.
    pub(crate) timeout: Duration,
    /// How often a file at its end is read again.
    pub(crate) file_poll_interval: Duration,
    /// The largest webhook body.
    pub(crate) body_limit: usize,
}

/// Why a test could not be run.
#[derive(Debug, thiserror::Error)]
pub enum SourceTestError {
    /// A source's settings that only starting it can check (its
    /// `ca_file`, its headers): a configuration error.
    #[error(transparent)]
    Source(#[from] IntakeError),
    #[error("cannot start the runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot write to stdout: {0}")]
    Output(#[from] io::Error),
}

impl SourceTestError {
    pub(crate) fn is_config(&self) -> bool {
        matches!(self, SourceTestError::Source(error) if error.is_config())
    }
}

/// Runs the test, printing to `out`; whether `count` messages came within
/// the timeout (or the input ended after some).
pub(crate) fn run(request: &Request, out: &mut dyn Write) -> Result<bool, SourceTestError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(SourceTestError::Runtime)?;
    let passed = runtime.block_on(test(request, out));
    // A read of stdin or a poll in flight may still wait: not on them.
    runtime.shutdown_background();
    passed
}

/// How a test ended.
enum Outcome {
    Shown,
    TimedOut,
    End(String),
    Failed(String),
}

async fn test(request: &Request, out: &mut dyn Write) -> Result<bool, SourceTestError> {
    let (sender, mut heard) = mpsc::channel(64);
    let shutdown = CancellationToken::new();
    let hearing = hear::start(request, sender, &shutdown)?;
    let mut report = Report::new(request, out);
    let listened = listen(&mut report, &mut heard, hearing.came, request.timeout).await;
    // Whatever ended it (stdout gone too), a feed process is not left behind.
    shutdown.cancel();
    drop(heard);
    if let Some(cleanup) = hearing.cleanup {
        let _ = timeout(STOP_GRACE, cleanup).await;
    }
    report.finish(listened?)
}

/// Shows what is heard until the count, the end of the source, or the
/// timeout.
async fn listen(
    report: &mut Report<'_>,
    heard: &mut mpsc::Receiver<Heard>,
    came: Came,
    within: Duration,
) -> Result<Outcome, SourceTestError> {
    report.header()?;
    let deadline = Instant::now() + within;
    while report.tally.messages < report.count {
        let next = tokio::select! {
            next = heard.recv() => next,
            () = sleep_until(deadline) => return Ok(Outcome::TimedOut),
        };
        match next {
            Some(Heard::Status(status)) => report.status(&status)?,
            Some(Heard::Message(message)) => report.message(&message, came)?,
            Some(Heard::TooLong(length)) => report.rejected(b"", &too_long(length))?,
            Some(Heard::End(why)) => return Ok(Outcome::End(why)),
            Some(Heard::Failed(why)) => return Ok(Outcome::Failed(why)),
            None => return Ok(Outcome::Failed("the source stopped".to_owned())),
        }
    }
    Ok(Outcome::Shown)
}

/// What was shown, by result.
#[derive(Default)]
struct Tally {
    messages: usize,
    signals: usize,
    prices: usize,
    ignored: usize,
    rejected: usize,
}

struct Report<'a> {
    out: &'a mut dyn Write,
    source: &'a SourceSettings,
    decoder: Decoder,
    count: usize,
    timeout: Duration,
    tally: Tally,
    /// Up once, or a message heard.
    connected: bool,
    last_error: Option<String>,
}

impl<'a> Report<'a> {
    fn new(request: &'a Request, out: &'a mut dyn Write) -> Self {
        Report {
            out,
            source: &request.source,
            decoder: request.source.decoder(),
            count: request.count,
            timeout: request.timeout,
            tally: Tally::default(),
            connected: false,
            last_error: None,
        }
    }

    fn header(&mut self) -> Result<(), SourceTestError> {
        let source = self.source;
        let what = match &source.kind {
            Kind::Ws(ws) => format!("ws {}", redact_url(&ws.url)),
            Kind::Poll(poll) => format!("poll {}", redact_url(&poll.url)),
            Kind::File { path } => format!("file {}, read from its start", path.display()),
            Kind::Exec { command } => {
                format!("exec {}", command.first().map_or("", String::as_str))
            }
            Kind::Stdin => "stdin: lines piped in".to_owned(),
            Kind::Webhook => "webhook: one body piped in, as if POSTed".to_owned(),
        };
        let format = match &source.map {
            Some(_) => "mapped by its [source.map]",
            None => "in the bot's own signal format",
        };
        let count = counted(self.count, "message");
        let within = humantime::format_duration(self.timeout);
        self.line(format!(
            "source {} ({what}), {format}: up to {count} within {within}; nothing is traded or written",
            source.name
        ))
    }

    fn status(&mut self, status: &Status) -> Result<(), SourceTestError> {
        let said = match status {
            Status::Connecting => "connecting".to_owned(),
            Status::Up => {
                self.connected = true;
                "up".to_owned()
            }
            Status::Quiet => "quiet".to_owned(),
            Status::Down { error, retry_in } => {
                self.last_error = Some(error.clone());
                format!(
                    "down: {error}; trying again in {:.1}s",
                    retry_in.as_secs_f64()
                )
            }
        };
        self.line(said)
    }

    /// Each item of `message`, raw and as it maps, up to the count.
    fn message(&mut self, message: &[u8], came: Came) -> Result<(), SourceTestError> {
        self.connected = true;
        let decoder = self.decoder.clone();
        let mut text = String::new();
        decoder.each(message, came, &mut |mapped| {
            if self.tally.messages < self.count {
                self.item(&mapped, &mut text);
            }
        });
        self.write(&text)
    }

    fn rejected(&mut self, raw: &[u8], reject: &Reject) -> Result<(), SourceTestError> {
        let mut text = String::new();
        self.item(
            &Mapped::Garbage {
                raw,
                reject: reject.clone(),
            },
            &mut text,
        );
        self.write(&text)
    }

    fn item(&mut self, mapped: &Mapped<'_>, text: &mut String) {
        self.tally.messages += 1;
        let (raw, became) = match mapped {
            Mapped::Message {
                raw,
                signal: Ok(Item::Signal(signal)),
            } => {
                self.tally.signals += 1;
                (*raw, format!("signal: {}", fields(signal)))
            }
            Mapped::Message {
                raw,
                signal: Ok(Item::Price(update)),
            } => {
                self.tally.prices += 1;
                let price = format!(
                    "price: symbol={} price={} (a mark: trades nothing)",
                    update.symbol, update.price
                );
                (*raw, printable(&price, SHOWN_RAW))
            }
            Mapped::Message {
                raw,
                signal: Err(reject),
            }
            | Mapped::Garbage { raw, reject } => {
                self.tally.rejected += 1;
                (*raw, format!("rejected: {}", rejection(reject)))
            }
            Mapped::Ignored { raw, why } => {
                self.tally.ignored += 1;
                (*raw, format!("ignored: {}", self.ignored(raw, *why)))
            }
        };
        let _ = writeln!(text, "{}. {}\n   {became}", self.tally.messages, shown(raw));
    }

    /// Why a message was ignored, with the value it held where a pointer
    /// said what to expect.
    fn ignored(&self, raw: &[u8], why: Unmatched) -> String {
        let Some(map) = &self.source.map else {
            return "not a message".to_owned();
        };
        let pointer = match why {
            Unmatched::When(index) => map.settings().when.keys().nth(index),
            Unmatched::Text => map.settings().text.as_ref().map(|text| &text.from),
            Unmatched::NoItems => None,
        };
        let explained = map.explain(why);
        match pointer {
            Some(pointer) => format!("{explained}; here it is {}", held(raw, pointer.as_str())),
            None => explained,
        }
    }

    fn finish(&mut self, outcome: Outcome) -> Result<bool, SourceTestError> {
        let Tally {
            messages,
            signals,
            prices,
            ignored,
            rejected,
        } = self.tally;
        let prices = match prices {
            0 => String::new(),
            prices => format!(", {}", counted(prices, "price update")),
        };
        self.line(format!(
            "{}: {}{prices}, {ignored} ignored, {rejected} rejected",
            counted(messages, "message"),
            counted(signals, "signal")
        ))?;
        let within = humantime::format_duration(self.timeout);
        let (passed, said) = match outcome {
            Outcome::Shown => (true, None),
            Outcome::End(why) => (messages > 0, Some(why)),
            Outcome::Failed(why) => (false, Some(why)),
            Outcome::TimedOut if !self.connected => (
                false,
                Some(match &self.last_error {
                    Some(error) => format!("could not connect within {within}: {error}"),
                    None => format!("could not connect within {within}"),
                }),
            ),
            Outcome::TimedOut => (
                false,
                Some(format!(
                    "only {messages} of {} within {within}: the feed is quiet, \
                     or asks for nothing (its subscribe, its url)",
                    counted(self.count, "message")
                )),
            ),
        };
        if let Some(said) = said {
            self.line(said)?;
        }
        Ok(passed)
    }

    fn line(&mut self, line: String) -> Result<(), SourceTestError> {
        self.write(&(line + "\n"))
    }

    fn write(&mut self, text: &str) -> Result<(), SourceTestError> {
        self.out.write_all(text.as_bytes())?;
        Ok(self.out.flush()?)
    }
}

/// A signal's fields, as the loop would be handed them.
fn fields(signal: &Signal<'_>) -> String {
    let mut text = format!(
        "id={} symbol={} side={} qty={}",
        signal.id,
        signal.symbol,
        signal.side.as_str(),
        signal.qty
    );
    let _ = match signal.price {
        Some(price) => write!(text, " price={price}"),
        None => write!(text, " price=none (fills at the symbol's last price)"),
    };
    let _ = write!(text, " ts={}", format_ms(signal.ts_ms));
    if let Some(source) = &signal.source {
        let _ = write!(text, " source={source}");
    }
    printable(&text, SHOWN_RAW)
}

fn rejection(reject: &Reject) -> String {
    printable(
        &format!("{}: {}", reject.reason.label(), reject.detail),
        SHOWN_RAW,
    )
}

/// The value at `pointer` in `raw`, as JSON, or that there is none.
fn held(raw: &[u8], pointer: &str) -> String {
    let found = serde_json::from_slice::<Value>(raw)
        .ok()
        .and_then(|message| message.pointer(pointer).map(Value::to_string));
    match found {
        Some(value) => printable(&value, 200),
        None => "absent".to_owned(),
    }
}

/// A message as received, on one line.
fn shown(raw: &[u8]) -> String {
    if raw.is_empty() {
        return "(not kept: over the line limit)".to_owned();
    }
    printable(&String::from_utf8_lossy(raw), SHOWN_RAW)
}

/// `text` with its control characters escaped (a feed's bytes never move
/// the terminal), cut at `max` characters.
fn printable(text: &str, max: usize) -> String {
    let mut shown = String::new();
    for (index, character) in text.chars().enumerate() {
        if index == max {
            let _ = write!(shown, "… ({} bytes in all)", text.len());
            break;
        }
        if character.is_control() {
            shown.extend(character.escape_default());
        } else {
            shown.push(character);
        }
    }
    shown
}

/// "1 message", "3 messages".
fn counted(count: usize, what: &str) -> String {
    match count {
        1 => format!("1 {what}"),
        _ => format!("{count} {what}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_cut() {
        assert_eq!(printable("a\u{1b}[31mb\nc", 100), "a\\u{1b}[31mb\\nc");
        assert_eq!(printable("abcdef", 3), "abc… (6 bytes in all)");
        assert_eq!(shown(b""), "(not kept: over the line limit)");
    }

    #[test]
    fn a_value_is_found_by_its_pointer_or_said_absent() {
        let raw = br#"{"topic":"crypto_prices","payload":{"n":1}}"#;
        assert_eq!(held(raw, "/topic"), r#""crypto_prices""#);
        assert_eq!(held(raw, "/payload"), r#"{"n":1}"#);
        assert_eq!(held(raw, "/type"), "absent");
        assert_eq!(held(b"not json", "/type"), "absent");
    }

    #[test]
    fn an_ignored_message_says_what_its_pointer_held() {
        let sample = include_str!("../../../samples/sources/polymarket-rtds.toml");
        let sources =
            super::super::sources_file::parse(std::path::Path::new("rtds.toml"), sample).unwrap();
        let request = Request {
            source: sources[0].clone(),
            count: 5,
            timeout: Duration::from_secs(1),
            file_poll_interval: Duration::from_secs(1),
            body_limit: 1024,
        };
        let mut out = Vec::new();
        let mut report = Report::new(&request, &mut out);
        report
            .message(
                br#"[{"topic":"crypto_prices","type":"update"},{"topic":"activity","type":"trades","payload":{"slug":"s","outcome":"Yes","side":"BUY","price":0.5,"timestamp":1750000000,"transactionHash":"0xa","proxyWallet":"0xb","outcomeIndex":0}}]"#,
                Came::Frame,
            )
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains(
                r#"ignored: /topic is not "activity" (when); here it is "crypto_prices""#
            ),
            "{text}"
        );
        assert!(
            text.contains("rejected: unmapped: /payload/size (qty) missing"),
            "{text}"
        );
    }
}
