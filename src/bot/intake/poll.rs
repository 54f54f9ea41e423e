//! `poll` sources: an HTTP API read every `interval`, on a thread of its
//! own with a blocking client (ureq; reqwest's blocking client panics
//! inside a runtime). A round:
//!
//! - GETs `url` with the `headers_file` headers, and `If-None-Match` with
//!   the `ETag` last answered for the same cursor (a 304 decides nothing);
//! - with a `cursor` (`from`: a JSON pointer into the answer; `param`: the
//!   query parameter that sends it back), follows page after page until
//!   the cursor stops moving (absent, empty, or the one sent), at most
//!   `max_pages` a round; the next round goes on from the last cursor;
//! - hands each page's body to the [`FeedSink`] with the cursor after that
//!   page, the source's resumable position; a restart starts from the one
//!   it is given (the journaled one).
//!
//! A failure (no answer within `timeout`, a refused connection, any status
//! but 2xx and 304) is retried after the shared [`Backoff`], or after the
//! server's `Retry-After` on a 429 or a 503 (capped at
//! [`LONGEST_RETRY_AFTER`]); it never gives up. Redirects are not followed:
//! the headers carry a credential. Shutdown ends a wait, and a request in
//! flight, at once: a blocking request cannot be interrupted, so each is
//! made on a thread of its own, which is left to end at its `timeout`
//! (the poller's thread, and the source's hold on the loop, do not wait
//! for it: a `timeout` over `DRAIN_TIMEOUT` cannot hold up a stop).

use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use ureq::tls::{Certificate, TlsConfig};

use super::feed::{Counts, Delivered, Delivery, FeedSink, Status};
use super::headers::Headers;
use super::sources_file::Cursor;
use crate::backoff::Backoff;

/// The largest page read; a bigger answer is a failure.
pub(crate) const MAX_PAGE: u64 = 8 << 20;

/// A `Retry-After` longer than this is cut to it: a poller that obeyed an
/// hour would look down for that hour while the service may be back.
pub(crate) const LONGEST_RETRY_AFTER: Duration = Duration::from_secs(600);

/// What a `poll` source is given, its files already read.
pub(crate) struct PollConfig {
    pub(crate) url: String,
    pub(crate) interval: Duration,
    /// For a whole request: connect, send, answer and body.
    pub(crate) timeout: Duration,
    pub(crate) headers: Headers,
    /// A source's `ca_file`, trusted besides the bundled roots.
    pub(crate) ca_certificates: Vec<Certificate<'static>>,
    pub(crate) cursor: Option<Cursor>,
    /// Pages a round follows at most (at least one is read).
    pub(crate) max_pages: u32,
    /// `None`: a feed is never quiet (a quiet market is not a fault).
    pub(crate) quiet_after: Option<Duration>,
    pub(crate) backoff: Backoff,
}

/// A `poll` source, checked and ready to [`spawn`](Poller::spawn).
pub(crate) struct Poller {
    http: Arc<Http>,
    config: PollConfig,
}

/// What a request needs, shared with the thread that makes it.
struct Http {
    agent: ureq::Agent,
    url: String,
    headers: Headers,
    /// The query parameter that sends the cursor back.
    param: Option<String>,
}

/// One request: the cursor it sends, and the `ETag` it offers.
struct Ask {
    cursor: Option<String>,
    etag: Option<String>,
}

/// An answer, as read on the request's thread: a 2xx's body, and the
/// headers the poller acts on.
struct Answered {
    status: u16,
    etag: Option<String>,
    retry_after: Option<String>,
    body: Vec<u8>,
}

impl Poller {
    /// Checks what can be checked before the first request; the error
    /// never quotes the URL or a header (they may carry a credential).
    pub(crate) fn new(config: PollConfig) -> Result<Self, String> {
        let scheme = config.url.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("http" | "https")) || config.url.contains('#') {
            return Err("the url must be an http:// or https:// URL without a #fragment".into());
        }
        if config.interval.is_zero() || config.timeout.is_zero() {
            return Err("interval and timeout must be more than 0".into());
        }
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            // A redirect would carry the headers to whoever it names.
            .max_redirects(0)
            .user_agent(concat!("tradingbot/", env!("CARGO_PKG_VERSION")))
            .tls_config(
                TlsConfig::builder()
                    .root_certs(crate::tls::root_certs(&config.ca_certificates))
                    .build(),
            )
            .build()
            .new_agent();
        let http = Arc::new(Http {
            agent,
            url: config.url.clone(),
            headers: config.headers.clone(),
            param: config.cursor.as_ref().map(|cursor| cursor.param.clone()),
        });
        Ok(Poller { http, config })
    }

    /// Starts polling from `resume` (the journaled cursor) on a thread of
    /// its own, until `shutdown` fires or the sink is closed. Must be
    /// called inside the bot's runtime: the thread waits on its timers and
    /// the token, and delivers, through it.
    pub(crate) fn spawn(
        self,
        sink: impl FeedSink,
        resume: Option<String>,
        shutdown: CancellationToken,
    ) -> io::Result<JoinHandle<()>> {
        let runtime = Handle::current();
        std::thread::Builder::new()
            .name("source-poll".into())
            .spawn(move || {
                crate::bot::yield_cpu_to_health();
                let mut run = Run {
                    poller: &self,
                    sink,
                    runtime,
                    shutdown,
                    cursor: resume,
                    etag: None,
                    counts: Counts::default(),
                    status: None,
                    started: Instant::now(),
                    last_signal: None,
                };
                run.go();
            })
    }
}

/// One poller's thread and what it remembers between rounds.
struct Run<'a, S> {
    poller: &'a Poller,
    sink: S,
    runtime: Handle,
    shutdown: CancellationToken,
    /// Where the next round starts.
    cursor: Option<String>,
    /// The last `ETag`, and the cursor of the request it answered.
    etag: Option<(Option<String>, String)>,
    counts: Counts,
    /// The status last reported.
    status: Option<Status>,
    started: Instant,
    last_signal: Option<Instant>,
}

/// How a round ended.
enum Round {
    Done,
    Stopped,
    Failed {
        error: String,
        /// The server's `Retry-After`.
        asked: Option<Duration>,
    },
}

/// How one request went.
enum Page {
    /// A body, and the cursor after it (the one sent when it names none).
    Body {
        body: Vec<u8>,
        next: Option<String>,
    },
    NotModified,
}

impl<S: FeedSink> Run<'_, S> {
    fn go(&mut self) {
        self.report(Status::Connecting);
        let mut backoff = self.poller.config.backoff.clone();
        loop {
            let wait = match self.round() {
                Round::Stopped => return,
                Round::Done => {
                    backoff = self.poller.config.backoff.clone();
                    self.report_answering();
                    self.poller.config.interval
                }
                Round::Failed { error, asked } => {
                    let retry_in = match asked {
                        Some(asked) => asked.min(LONGEST_RETRY_AFTER),
                        None => backoff.next_wait(),
                    };
                    self.report(Status::Down { error, retry_in });
                    self.counts.reconnects += 1;
                    retry_in
                }
            };
            if self.wait(wait) {
                return;
            }
        }
    }

    /// Pages from the current cursor until it stops moving.
    fn round(&mut self) -> Round {
        for _ in 0..self.poller.config.max_pages.max(1) {
            if self.shutdown.is_cancelled() {
                return Round::Stopped;
            }
            let sent = self.cursor.clone();
            let (body, next) = match self.request(sent.as_deref()) {
                Ok(Page::Body { body, next }) => (body, next),
                Ok(Page::NotModified) => return Round::Done,
                Err(failed) => return failed,
            };
            let after = next.clone().or_else(|| sent.clone());
            match self.deliver(body, after.clone()) {
                Delivered::Closed => return Round::Stopped,
                Delivered::Signals => self.last_signal = Some(Instant::now()),
                Delivered::NoSignal => {}
            }
            self.cursor = after;
            if self.poller.config.cursor.is_none() || next.is_none() || next == sent {
                return Round::Done;
            }
        }
        Round::Done
    }

    fn request(&mut self, cursor: Option<&str>) -> Result<Page, Round> {
        let etag = self
            .etag
            .as_ref()
            .filter(|(answered, _)| answered.as_deref() == cursor)
            .map(|(_, etag)| etag.clone());
        let ask = Ask {
            cursor: cursor.map(str::to_owned),
            etag,
        };
        let answered = match self.call(ask) {
            None => return Err(Round::Stopped),
            Some(answered) => answered.map_err(|error| Round::Failed {
                error: self.describe(&error),
                asked: None,
            })?,
        };
        let status = answered.status;
        match status {
            200..=299 => {}
            304 => return Ok(Page::NotModified),
            429 | 503 => {
                return Err(Round::Failed {
                    error: format!("HTTP {status}"),
                    asked: answered
                        .retry_after
                        .as_deref()
                        .and_then(crate::backoff::parse_retry_after),
                })
            }
            300..=399 => {
                return Err(Round::Failed {
                    error: format!("HTTP {status}: a redirect, not followed"),
                    asked: None,
                })
            }
            _ => {
                return Err(Round::Failed {
                    error: format!("HTTP {status}"),
                    asked: None,
                })
            }
        }
        if let Some(etag) = answered.etag {
            self.etag = Some((cursor.map(str::to_owned), etag));
        }
        let next = self
            .poller
            .config
            .cursor
            .as_ref()
            .and_then(|spec| cursor_in(&answered.body, spec.from.as_str()));
        Ok(Page::Body {
            body: answered.body,
            next,
        })
    }

    /// Makes `ask` on a thread of its own and waits for its answer, or
    /// for shutdown (`None`), whichever comes first: a request cannot be
    /// interrupted, so one in flight at shutdown is left to end at its
    /// timeout.
    fn call(&self, ask: Ask) -> Option<Result<Answered, ureq::Error>> {
        let (reply, answer) = oneshot::channel();
        let http = Arc::clone(&self.poller.http);
        let spawned = std::thread::Builder::new()
            .name("source-poll-get".into())
            .spawn(move || {
                crate::bot::yield_cpu_to_health();
                let _ = reply.send(http.get(&ask));
            });
        if let Err(error) = spawned {
            return Some(Err(ureq::Error::Io(error)));
        }
        let shutdown = &self.shutdown;
        self.runtime.block_on(async {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => None,
                answered = answer => Some(answered.unwrap_or_else(|_| {
                    Err(ureq::Error::Io(io::Error::other("the request's thread ended")))
                })),
            }
        })
    }

    fn deliver(&mut self, body: Vec<u8>, cursor: Option<String>) -> Delivered {
        self.counts.messages += 1;
        let delivery = Delivery {
            messages: vec![Bytes::from(body)],
            cursor,
        };
        let sink = &mut self.sink;
        let shutdown = &self.shutdown;
        self.runtime.block_on(async {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => Delivered::Closed,
                delivered = sink.deliver(delivery) => delivered,
            }
        })
    }

    /// Waits `wait`; true when stopping.
    fn wait(&self, wait: Duration) -> bool {
        let shutdown = &self.shutdown;
        self.runtime.block_on(async {
            tokio::select! {
                () = shutdown.cancelled() => true,
                () = tokio::time::sleep(wait) => false,
            }
        })
    }

    /// After a round that was answered: up, or quiet when nothing has
    /// mapped for `quiet_after`.
    fn report_answering(&mut self) {
        let since = self.last_signal.unwrap_or(self.started);
        let quiet = self
            .poller
            .config
            .quiet_after
            .is_some_and(|after| since.elapsed() >= after);
        self.report(if quiet { Status::Quiet } else { Status::Up });
    }

    /// Reports `status` if it is news.
    fn report(&mut self, status: Status) {
        if self.status.as_ref() != Some(&status) {
            self.sink.status(&status, self.counts);
            self.status = Some(status);
        }
    }

    /// A transport error in the poller's words: ureq's own may quote the URL.
    fn describe(&self, error: &ureq::Error) -> String {
        match error {
            ureq::Error::Timeout(_) => format!(
                "no answer within {}",
                humantime::format_duration(self.poller.config.timeout)
            ),
            ureq::Error::HostNotFound => "host not found".into(),
            ureq::Error::ConnectionFailed => "connection failed".into(),
            ureq::Error::Io(io) => format!("connection error: {}", io.kind()),
            ureq::Error::Tls(problem) => format!("TLS: {problem}"),
            ureq::Error::Rustls(problem) => format!("TLS: {problem}"),
            ureq::Error::BodyExceedsLimit(_) => {
                format!("a page over the {} MiB limit", MAX_PAGE >> 20)
            }
            ureq::Error::Protocol(_) | ureq::Error::LargeResponseHeader(..) => {
                "the answer is not valid HTTP".into()
            }
            _ => "the request failed".into(),
        }
    }
}

impl Http {
    /// Asks, and reads the answer (a 2xx's body within [`MAX_PAGE`]).
    fn get(&self, ask: &Ask) -> Result<Answered, ureq::Error> {
        let mut request = self.agent.get(&self.url);
        if let (Some(param), Some(cursor)) = (&self.param, &ask.cursor) {
            request = request.query(param, cursor);
        }
        for header in self.headers.iter() {
            request = request.header(&header.name, header.value.expose());
        }
        if let Some(etag) = &ask.etag {
            request = request.header("if-none-match", etag);
        }
        let mut answer = request.call()?;
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        let status = answer.status().as_u16();
        let (etag, retry_after) = (header("etag"), header("retry-after"));
        let body = if answer.status().is_success() {
            answer
                .body_mut()
                .with_config()
                .limit(MAX_PAGE)
                .read_to_vec()?
        } else {
            Vec::new()
        };
        Ok(Answered {
            status,
            etag,
            retry_after,
            body,
        })
    }
}

/// The cursor at `pointer` in a JSON answer: a string, or a number's text.
/// Absent, null or empty is none (the last page).
fn cursor_in(body: &[u8], pointer: &str) -> Option<String> {
    let answer: Value = serde_json::from_slice(body).ok()?;
    match answer.pointer(pointer)? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_a_string_or_a_number() {
        let at = "/next_cursor";
        assert_eq!(
            cursor_in(br#"{"next_cursor":"c7"}"#, at).as_deref(),
            Some("c7")
        );
        assert_eq!(
            cursor_in(br#"{"next_cursor":42}"#, at).as_deref(),
            Some("42")
        );
        for last in [
            &br#"{"next_cursor":null}"#[..],
            br#"{"next_cursor":""}"#,
            br#"{"data":[]}"#,
            b"not json",
        ] {
            assert_eq!(cursor_in(last, at), None);
        }
        assert_eq!(
            cursor_in(br#"{"page":{"next":"p2"}}"#, "/page/next").as_deref(),
            Some("p2")
        );
    }
}
