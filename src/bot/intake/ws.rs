//! `ws` sources: a WebSocket client (tokio-tungstenite over rustls, with
//! the bundled roots and a source's `ca_file`) that stays connected until
//! the shutdown token fires. tokio-tungstenite has neither a ping timer
//! nor a reconnect, so this is both:
//!
//! - after every connect it sends the `subscribe` messages, then pings
//!   every `ping_interval` (ping frames, or an application text such as
//!   RTDS's `ping`), and keeps reading so tungstenite's automatic pongs go
//!   out;
//! - two timers, because "connected" is not "data is arriving": the
//!   connection is dead after three ping intervals without a frame of any
//!   kind, and the feed is quiet after `quiet_after` (off by default)
//!   without a message that mapped to a signal;
//! - on a dead connection, a quiet feed, a close or an error it opens a
//!   NEW socket, and subscribes again, after the shared [`Backoff`]
//!   (started over once a connection lasted [`STABLE`]); it never gives up.
//!
//! Frames already read are handed to the [`FeedSink`] together (a busy
//! feed makes batches, an idle one no delay). A binary frame is handed on
//! like a text frame: some feeds send their JSON in binary frames, and
//! what is not JSON is the mapper's to count. With a ping text, the
//! server's `pong` (any case) is a keepalive answer, not a message.
//! SIGTERM during a connect, a backoff, a read or a delivery ends the
//! client at once (a close handshake gets at most [`CLOSE_GRACE`]).

use std::future::pending;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{interval_at, sleep, sleep_until, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::feed::{Counts, Delivered, Delivery, FeedSink, Status};
use super::headers::Headers;
use crate::backoff::Backoff;

/// The largest message (and frame) taken. RTDS trades and CLOB events are
/// well under a kilobyte, a book snapshot tens of kilobytes. A frame over
/// it is refused from its header, before its payload is read; the socket
/// is then replaced, since its stream cannot go on past a payload unread.
pub(crate) const MAX_MESSAGE: usize = 1 << 20;

/// A connection up this long was healthy: the next failure starts the
/// backoff over.
pub(crate) const STABLE: Duration = Duration::from_secs(10);

/// No frame of any kind for this many ping intervals: the connection is
/// dead. The same bound applies to a connect (TCP, TLS and the upgrade).
const DEAD_AFTER_PINGS: u32 = 3;

/// Frames already read go to the sink together, up to this many, or this
/// many bytes (a group holds at most two maximal messages).
const GROUP_MESSAGES: usize = 1024;
const GROUP_BYTES: usize = MAX_MESSAGE;

/// The most a close handshake may take, at shutdown or before a new socket.
pub(crate) const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// What a `ws` source is given, its files already read.
pub(crate) struct WsConfig {
    pub(crate) url: String,
    /// Sent in order after every connect.
    pub(crate) subscribe: Vec<String>,
    pub(crate) ping: Ping,
    pub(crate) ping_interval: Duration,
    /// `None`: a feed is never quiet (a quiet market is not a fault).
    pub(crate) quiet_after: Option<Duration>,
    /// On the handshake.
    pub(crate) headers: Headers,
    /// [`crate::tls::rustls_client`], with the source's `ca_file`.
    pub(crate) tls: Arc<rustls::ClientConfig>,
    pub(crate) backoff: Backoff,
}

/// How the client keeps a connection alive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ping {
    /// WebSocket ping frames (the server's pong is a frame too).
    Frames,
    /// An application text (RTDS: `ping`, the CLOB: `PING`).
    Text(String),
}

/// A `ws` source, checked and ready to [`run`](WsClient::run).
pub(crate) struct WsClient {
    request: Request,
    config: WsConfig,
}

impl WsClient {
    /// Checks what can be checked before connecting; the error never
    /// quotes the URL or a header (they may carry a credential).
    pub(crate) fn new(config: WsConfig) -> Result<Self, String> {
        let scheme = config.url.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("ws" | "wss")) {
            return Err("the url must start with ws:// or wss://".into());
        }
        if config.ping_interval.is_zero() {
            return Err("ping_interval must be more than 0".into());
        }
        let mut request = config
            .url
            .as_str()
            .into_client_request()
            .map_err(|_| "the url is not a valid URL".to_owned())?;
        for header in config.headers.iter() {
            let name = HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|_| format!("header {} has an invalid name", header.name))?;
            let mut value = HeaderValue::from_str(header.value.expose())
                .map_err(|_| format!("the value of header {} is invalid", header.name))?;
            value.set_sensitive(true);
            request.headers_mut().append(name, value);
        }
        Ok(WsClient { request, config })
    }

    /// [`run`](WsClient::run) on a thread of its own, with a runtime of
    /// its own. On the bot runtime's workers a busy socket would take turns
    /// with the loop rather than run beside it: the loop, woken by each
    /// delivery, waits in that worker's LIFO slot, which the other worker
    /// does not steal from.
    pub(crate) fn spawn(
        self,
        sink: impl FeedSink,
        shutdown: CancellationToken,
    ) -> io::Result<JoinHandle<()>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("source-ws".into())
            .spawn(move || {
                crate::bot::yield_cpu_to_health();
                runtime.block_on(self.run(sink, shutdown));
            })
    }

    /// Connects, and connects again, until `shutdown` fires or the sink is
    /// closed; each status change goes to `sink`.
    pub(crate) async fn run(self, sink: impl FeedSink, shutdown: CancellationToken) {
        let mut feed = Feed {
            sink,
            counts: Counts::default(),
            quiet: false,
            last_signal: Instant::now(),
        };
        let mut backoff = self.config.backoff.clone();
        loop {
            if feed.quiet {
                // Still quiet, but one more socket: its count is news.
                feed.report(Status::Quiet);
            } else {
                feed.report(Status::Connecting);
            }
            let (ended, lasted) = self.connection(&mut feed, &shutdown).await;
            backoff.settle(lasted, STABLE);
            let retry_in = backoff.next_wait();
            match ended {
                Ended::Stopped => return,
                Ended::Quiet if !feed.quiet => {
                    feed.quiet = true;
                    feed.report(Status::Quiet);
                }
                Ended::Quiet => {}
                Ended::Failed(error) => {
                    feed.quiet = false;
                    feed.report(Status::Down { error, retry_in });
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = sleep(retry_in) => {}
            }
            feed.counts.reconnects += 1;
        }
    }

    /// One socket, from its connect to its end; and how long it was up.
    async fn connection<S: FeedSink>(
        &self,
        feed: &mut Feed<S>,
        shutdown: &CancellationToken,
    ) -> (Ended, Duration) {
        let settings = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE))
            .max_frame_size(Some(MAX_MESSAGE));
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            self.request.clone(),
            Some(settings),
            true,
            Some(Connector::Rustls(Arc::clone(&self.config.tls))),
        );
        let connected = tokio::select! {
            biased;
            () = shutdown.cancelled() => return (Ended::Stopped, Duration::ZERO),
            connected = timeout(self.dead_after(), connect) => connected,
        };
        let mut socket = match connected {
            Ok(Ok((socket, _answer))) => socket,
            Ok(Err(error)) => return (Ended::Failed(describe(&error)), Duration::ZERO),
            Err(_) => {
                let waited = humantime::format_duration(self.dead_after());
                return (
                    Ended::Failed(format!("no connection within {waited}")),
                    Duration::ZERO,
                );
            }
        };
        let up = Instant::now();
        let ended = self.converse(&mut socket, feed, shutdown).await;
        let _ = timeout(CLOSE_GRACE, socket.close(None)).await;
        (ended, up.elapsed())
    }

    /// Subscribes, then reads, pings and delivers until the connection ends.
    async fn converse<S: FeedSink>(
        &self,
        socket: &mut Socket,
        feed: &mut Feed<S>,
        shutdown: &CancellationToken,
    ) -> Ended {
        for text in &self.config.subscribe {
            if let Err(ended) = self
                .send(socket, Message::text(text.as_str()), shutdown)
                .await
            {
                return ended;
            }
        }
        if !feed.quiet {
            feed.report(Status::Up);
        }
        let connected = Instant::now();
        let mut last_heard = connected;
        let every = self.config.ping_interval;
        let mut pings = interval_at(connected + every, every);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let dead_at = last_heard + self.dead_after();
            let quiet_at = self
                .config
                .quiet_after
                .map(|after| feed.last_signal.max(connected) + after);
            let event = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ended::Stopped,
                next = socket.next() => Event::Read(next),
                _ = pings.tick() => Event::Ping,
                () = sleep_until(dead_at) => Event::Dead,
                () = sleep_until_some(quiet_at) => return Ended::Quiet,
            };
            match event {
                Event::Read(next) => {
                    if let Some(ended) = self.read(socket, next, feed, shutdown).await {
                        return ended;
                    }
                    // Heard now, after the delivery: time spent waiting on
                    // the loop does not count against the connection.
                    last_heard = Instant::now();
                }
                Event::Ping => {
                    if let Err(ended) = self.send(socket, self.ping(), shutdown).await {
                        return ended;
                    }
                }
                Event::Dead => {
                    let waited = humantime::format_duration(self.dead_after());
                    return Ended::Failed(format!("no frame for {waited}: the connection is dead"));
                }
            }
        }
    }

    /// Takes `first` and the frames already read after it, and hands
    /// their messages to the sink; `Some` when the connection ended.
    async fn read<S: FeedSink>(
        &self,
        socket: &mut Socket,
        first: Option<Result<Message, Error>>,
        feed: &mut Feed<S>,
        shutdown: &CancellationToken,
    ) -> Option<Ended> {
        let mut group = Group::default();
        let mut ended = self.take(first, &mut group);
        while ended.is_none() && group.has_room() {
            match socket.next().now_or_never() {
                Some(next) => ended = self.take(next, &mut group),
                None => break,
            }
        }
        if !group.messages.is_empty() {
            feed.counts.messages += group.messages.len() as u64;
            let delivery = Delivery {
                messages: group.messages,
                cursor: None,
            };
            let delivered = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Some(Ended::Stopped),
                delivered = feed.sink.deliver(delivery) => delivered,
            };
            match delivered {
                Delivered::Signals => feed.mapped(),
                Delivered::NoSignal => {}
                Delivered::Closed => return Some(Ended::Stopped),
            }
        }
        ended
    }

    /// Adds a frame's message to `group`, if it has one; `Some` when the
    /// connection ended.
    fn take(&self, next: Option<Result<Message, Error>>, group: &mut Group) -> Option<Ended> {
        let message = match next {
            None => return Some(Ended::Failed("the server closed the connection".into())),
            Some(Err(error)) => return Some(Ended::Failed(describe(&error))),
            Some(Ok(message)) => message,
        };
        match message {
            Message::Text(text) if self.is_pong(text.as_str()) => {}
            Message::Text(text) => group.push(Bytes::from(text)),
            Message::Binary(bytes) => group.push(bytes),
            Message::Close(frame) => return Some(Ended::Failed(closed_by(frame.as_ref()))),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
        None
    }

    /// Sends `message`, giving it as long as the connection may stay silent.
    async fn send(
        &self,
        socket: &mut Socket,
        message: Message,
        shutdown: &CancellationToken,
    ) -> Result<(), Ended> {
        let sent = tokio::select! {
            biased;
            () = shutdown.cancelled() => return Err(Ended::Stopped),
            sent = timeout(self.dead_after(), socket.send(message)) => sent,
        };
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(Ended::Failed(describe(&error))),
            Err(_) => {
                let waited = humantime::format_duration(self.dead_after());
                Err(Ended::Failed(format!(
                    "a write waited {waited}: the server stopped reading"
                )))
            }
        }
    }

    fn ping(&self) -> Message {
        match &self.config.ping {
            Ping::Frames => Message::Ping(Bytes::new()),
            Ping::Text(text) => Message::text(text.as_str()),
        }
    }

    fn is_pong(&self, text: &str) -> bool {
        matches!(self.config.ping, Ping::Text(_)) && text.trim().eq_ignore_ascii_case("pong")
    }

    fn dead_after(&self) -> Duration {
        self.config.ping_interval * DEAD_AFTER_PINGS
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The sink, and what the client knows of the feed across its sockets.
struct Feed<S> {
    sink: S,
    counts: Counts,
    /// `Quiet` was reported and no message has mapped since.
    quiet: bool,
    last_signal: Instant,
}

impl<S: FeedSink> Feed<S> {
    fn report(&mut self, status: Status) {
        self.sink.status(&status, self.counts);
    }

    fn mapped(&mut self) {
        self.last_signal = Instant::now();
        if self.quiet {
            self.quiet = false;
            self.report(Status::Up);
        }
    }
}

/// Why a socket ended.
enum Ended {
    Stopped,
    Quiet,
    Failed(String),
}

enum Event {
    Read(Option<Result<Message, Error>>),
    Ping,
    Dead,
}

#[derive(Default)]
struct Group {
    messages: Vec<Bytes>,
    bytes: usize,
}

impl Group {
    fn push(&mut self, message: Bytes) {
        self.bytes += message.len();
        self.messages.push(message);
    }

    fn has_room(&self) -> bool {
        self.messages.len() < GROUP_MESSAGES && self.bytes < GROUP_BYTES
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

/// A close frame in words: its code, and its reason cut short (it is the
/// server's text).
fn closed_by(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(frame) if frame.reason.is_empty() => {
            format!("the server closed the connection ({})", frame.code)
        }
        Some(frame) => {
            let reason: String = frame.reason.as_str().chars().take(120).collect();
            format!("the server closed the connection ({} {reason})", frame.code)
        }
        None => "the server closed the connection".into(),
    }
}

/// An error in the client's words: tungstenite's own may quote the URL.
fn describe(error: &Error) -> String {
    match error {
        Error::ConnectionClosed | Error::AlreadyClosed => "the connection closed".into(),
        Error::Io(error) => format!("connection error: {error}"),
        Error::Tls(error) => format!("TLS: {error}"),
        Error::Capacity(error) => {
            format!("a frame over the {} KiB limit ({error})", MAX_MESSAGE >> 10)
        }
        Error::Protocol(error) => format!("WebSocket protocol error: {error}"),
        Error::WriteBufferFull(_) => "the write buffer is full".into(),
        Error::Utf8(_) => "a text frame that is not UTF-8".into(),
        Error::AttackAttempt => "the server's handshake looked like an attack".into(),
        Error::Url(_) => "the url cannot be connected to".into(),
        Error::Http(answer) => format!(
            "the server refused the WebSocket upgrade: HTTP {}",
            answer.status()
        ),
        Error::HttpFormat(error) => format!("invalid handshake: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> WsConfig {
        WsConfig {
            url: url.into(),
            subscribe: Vec::new(),
            ping: Ping::Frames,
            ping_interval: Duration::from_secs(5),
            quiet_after: None,
            headers: Headers::default(),
            tls: crate::tls::rustls_client(&[]).unwrap(),
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        }
    }

    #[test]
    fn a_url_must_be_a_websocket_one_and_is_never_quoted() {
        assert!(WsClient::new(config("wss://feed.example/ws?token=s3cret")).is_ok());
        for url in [
            "https://feed.example/?token=s3cret",
            "feed.example/s3cret",
            "ws://",
        ] {
            let error = WsClient::new(config(url)).err().unwrap();
            assert!(!error.contains("s3cret"), "{error}");
        }
        let mut zero = config("ws://127.0.0.1:1/");
        zero.ping_interval = Duration::ZERO;
        assert!(WsClient::new(zero).is_err());
    }

    #[test]
    fn a_close_frame_is_told_in_words() {
        let said = "the server closed the connection";
        for (code, reason, words) in [
            (1012u16, "restarting", format!("{said} (1012 restarting)")),
            (1000, "", format!("{said} (1000)")),
        ] {
            let frame = CloseFrame {
                code: code.into(),
                reason: reason.into(),
            };
            assert_eq!(closed_by(Some(&frame)), words);
        }
        assert_eq!(closed_by(None), said);
    }
}
