//! The event stream (`GET /ws`, a WebSocket; `GET /events`, its SSE twin)
//! and the read API's journal reads, served from a thread of their own,
//! `stream`, with its own current-thread runtime, at a lower priority than
//! the bot.
//!
//! The HTTP thread only answers the handshake: it authenticates, takes a
//! client slot (`WS_MAX_CLIENTS`, 503 beyond) and hands the upgraded
//! socket over. The writes, the journal reads and the JSON are all done
//! here, so neither `/health` nor the loop waits on any of it: the bot
//! publishes how far its journal is durable and never waits for a reader
//! (see [`crate::bot::events`]).

mod client;
mod hub;
pub mod message;

use std::cell::RefCell;
use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Frame, Incoming};
use hyper::header::{
    HeaderValue, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, RETRY_AFTER, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use self::client::Ending;
pub use self::client::{Subscription, Timing};
use self::hub::Hub;
use self::message::{record_json, Kind};
use super::response::{text, Body};
use crate::bot::events;
use crate::bot::ledger::query::{report_of, QueryError};
use crate::bot::ledger::reader::JournalReader;
use crate::bot::ledger::record::Record;
use crate::bot::report;
use crate::health::HealthState;
use crate::metrics::{Kind as MetricKind, MetricsSource, Sample};

/// Niceness of the stream thread: below the bot's (10), so a busy stream
/// (many clients catching up) takes the CPU the bot leaves, not the bot's.
const NICENESS: i32 = 19;

/// How often the health verdict is looked at while clients are connected.
const HEALTH_POLL: Duration = Duration::from_millis(100);

/// Requests waiting for the stream thread; past this, 503.
const COMMANDS: usize = 256;

/// The most records the read API returns at once.
pub const MAX_PAGE: usize = 1000;

/// The handle the HTTP thread (and the daemon) keep.
#[derive(Clone)]
pub struct Stream {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
    events: Arc<events::Shared>,
}

enum Command {
    WebSocket {
        socket: std::net::TcpStream,
        read_ahead: Vec<u8>,
        subscription: Subscription,
        slot: Slot,
    },
    Events {
        body: mpsc::Sender<Bytes>,
        subscription: Subscription,
        slot: Slot,
    },
    /// A page of fills or rejects for the read API, as its JSON body.
    Page {
        kind: Kind,
        after: u64,
        limit: usize,
        reply: oneshot::Sender<io::Result<Vec<u8>>>,
    },
    /// The trade report over what is durable, as its JSON body.
    Report {
        window: report::Window,
        reply: oneshot::Sender<Result<Vec<u8>, QueryError>>,
    },
    Finish {
        within: Duration,
        done: std::sync::mpsc::Sender<()>,
    },
}

/// Counters shared with the HTTP thread (and `/metrics`).
pub struct Shared {
    clients: AtomicUsize,
    max_clients: usize,
    refused: AtomicU64,
    /// By [`DropReason`].
    dropped: [AtomicU64; 3],
    events_lost: AtomicU64,
}

/// Why a client was dropped, as `/metrics` labels it.
#[derive(Clone, Copy, Debug)]
pub enum DropReason {
    Slow,
    Silent,
    TooBig,
}

impl DropReason {
    const ALL: [DropReason; 3] = [DropReason::Slow, DropReason::Silent, DropReason::TooBig];

    fn label(self) -> &'static str {
        match self {
            DropReason::Slow => "slow",
            DropReason::Silent => "no_pong",
            DropReason::TooBig => "too_big",
        }
    }
}

impl Shared {
    fn ended(&self, ending: Ending) {
        if let Some(reason) = ending.dropped() {
            tracing::info!(reason = reason.label(), "stream client dropped");
            self.dropped[reason as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl MetricsSource for Shared {
    fn samples(&self, out: &mut Vec<Sample>) {
        out.push(Sample::new(
            "stream_clients",
            MetricKind::Gauge,
            "Stream clients connected (/ws and /events).",
            self.clients.load(Ordering::Relaxed) as f64,
        ));
        out.push(Sample::new(
            "stream_clients_refused_total",
            MetricKind::Counter,
            "Stream clients refused at WS_MAX_CLIENTS (503).",
            self.refused.load(Ordering::Relaxed) as f64,
        ));
        for reason in DropReason::ALL {
            out.push(
                Sample::new(
                    "stream_clients_dropped_total",
                    MetricKind::Counter,
                    "Stream clients dropped: took nothing for WS_SEND_TIMEOUT, no pong, or too big a frame.",
                    self.dropped[reason as usize].load(Ordering::Relaxed) as f64,
                )
                .label("reason", reason.label()),
            );
        }
        out.push(Sample::new(
            "stream_events_lost_total",
            MetricKind::Counter,
            "Events (other than fills and rejects) the stream thread fell too far behind to take.",
            self.events_lost.load(Ordering::Relaxed) as f64,
        ));
    }
}

/// One client's place in `WS_MAX_CLIENTS`, given back when dropped.
pub struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.clients.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Stream {
    /// Starts the stream thread over the journal in `state_dir`.
    pub fn spawn(
        state_dir: &Path,
        events: Arc<events::Shared>,
        health: Arc<HealthState>,
        max_clients: usize,
        timing: Timing,
    ) -> io::Result<Stream> {
        let reader = JournalReader::open(state_dir)?;
        let shared = Arc::new(Shared {
            clients: AtomicUsize::new(0),
            max_clients,
            refused: AtomicU64::new(0),
            dropped: Default::default(),
            events_lost: AtomicU64::new(0),
        });
        let (commands, received) = mpsc::channel(COMMANDS);
        // One blocking thread: a report reads the whole journal, one at a
        // time, beside the clients rather than in their way.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(1)
            .thread_name("stream-report")
            .build()?;
        let state_dir = state_dir.to_owned();
        let thread_shared = Arc::clone(&shared);
        let thread_events = Arc::clone(&events);
        std::thread::Builder::new()
            .name("stream".into())
            .spawn(move || {
                lower_priority();
                let hub = Hub::new(reader, Arc::clone(&thread_events), health);
                let local = tokio::task::LocalSet::new();
                local.block_on(
                    &runtime,
                    run(
                        received,
                        Rc::new(RefCell::new(hub)),
                        thread_shared,
                        thread_events,
                        timing,
                        state_dir,
                    ),
                );
            })?;
        Ok(Stream {
            commands,
            shared,
            events,
        })
    }

    pub fn metrics(&self) -> Arc<dyn MetricsSource> {
        Arc::clone(&self.shared) as Arc<dyn MetricsSource>
    }

    /// `GET /ws`: the handshake (RFC 6455 §4.2) and the hand-over.
    pub fn websocket(
        &self,
        mut request: Request<Incoming>,
        subscription: Subscription,
    ) -> Response<Body> {
        let headers = request.headers();
        let has = |name, value: &str| {
            headers.get_all(name).iter().any(|given| {
                given.to_str().is_ok_and(|given| {
                    given
                        .split(',')
                        .any(|token| token.trim().eq_ignore_ascii_case(value))
                })
            })
        };
        if !has(UPGRADE, "websocket") || !has(CONNECTION, "upgrade") {
            let mut response = text(
                StatusCode::UPGRADE_REQUIRED,
                "/ws is a WebSocket: connect with a WebSocket client (or use /events)\n",
            );
            response
                .headers_mut()
                .insert(UPGRADE, HeaderValue::from_static("websocket"));
            return response;
        }
        if headers
            .get(SEC_WEBSOCKET_VERSION)
            .map(HeaderValue::as_bytes)
            != Some(b"13")
        {
            let mut response = text(StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only\n");
            response
                .headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return response;
        }
        let Some(key) = headers.get(SEC_WEBSOCKET_KEY).filter(|key| key.len() == 24) else {
            return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key\n");
        };
        let accept = derive_accept_key(key.as_bytes());
        let Some(slot) = self.reserve() else {
            return busy();
        };
        let upgraded = hyper::upgrade::on(&mut request);
        let commands = self.commands.clone();
        tokio::task::spawn_local(async move {
            let Ok(upgraded) = upgraded.await else {
                return;
            };
            let Ok(parts) = upgraded.downcast::<TokioIo<tokio::net::TcpStream>>() else {
                tracing::error!("an upgraded connection is not a TCP stream; dropping it");
                return;
            };
            let Ok(socket) = parts.io.into_inner().into_std() else {
                return;
            };
            // Full: the client is dropped (its slot with it) and reconnects.
            let _ = commands.try_send(Command::WebSocket {
                socket,
                read_ahead: parts.read_buf.to_vec(),
                subscription,
                slot,
            });
        });
        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }

    /// `GET /events`: the SSE response, its body fed by the stream thread;
    /// `None` when there is no room for another client ([`busy`]).
    pub fn events(&self, subscription: Subscription) -> Option<Response<SseBody>> {
        let slot = self.reserve()?;
        let (body, receiver) = mpsc::channel(4);
        self.commands
            .try_send(Command::Events {
                body,
                subscription,
                slot,
            })
            .ok()?;
        let mut response = Response::new(SseBody(receiver));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // Proxies (nginx) must pass each event on at once.
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Some(response)
    }

    /// How far the journal is durable, as the bot last published it.
    pub fn durable(&self) -> u64 {
        self.events.durable()
    }

    /// A page of fills or rejects after `after`, as the API's JSON body.
    pub async fn page(&self, kind: Kind, after: u64, limit: usize) -> io::Result<Vec<u8>> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .try_send(Command::Page {
                kind,
                after,
                limit,
                reply,
            })
            .map_err(|_| io::Error::other("the stream thread is busy"))?;
        answer
            .await
            .map_err(|_| io::Error::other("the stream thread is gone"))?
    }

    /// The trade report over the durable journal, as the API's JSON body.
    pub async fn report(&self, window: report::Window) -> Result<Vec<u8>, QueryError> {
        let busy = || QueryError::Output(io::Error::other("the stream thread is busy"));
        let (reply, answer) = oneshot::channel();
        self.commands
            .try_send(Command::Report { window, reply })
            .map_err(|_| busy())?;
        answer.await.map_err(|_| busy())?
    }

    /// At the stop: clients get what is durable and a close frame; waits
    /// for them at most `within`.
    pub fn finish(&self, within: Duration) {
        let (done, finished) = std::sync::mpsc::channel();
        if self
            .commands
            .try_send(Command::Finish { within, done })
            .is_ok()
        {
            let _ = finished.recv_timeout(within + Duration::from_millis(100));
        }
    }

    fn reserve(&self) -> Option<Slot> {
        let shared = &self.shared;
        let taken = shared
            .clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |clients| {
                (clients < shared.max_clients).then_some(clients + 1)
            });
        if taken.is_err() {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Slot(Arc::clone(shared)))
    }
}

/// The answer when there is no room for another stream client.
pub fn busy() -> Response<Body> {
    let mut response = text(
        StatusCode::SERVICE_UNAVAILABLE,
        "too many stream clients (WS_MAX_CLIENTS); try again later\n",
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// The body of an `/events` response: what the stream thread sends.
pub struct SseBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(context)
            .map(|bytes| bytes.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Takes what the bot published, counting the events it could not queue.
fn refresh(hub: &RefCell<Hub>, shared: &Shared) {
    let lost = hub.borrow_mut().refresh();
    shared.events_lost.fetch_add(lost, Ordering::Relaxed);
}

async fn run(
    mut commands: mpsc::Receiver<Command>,
    hub: Rc<RefCell<Hub>>,
    shared: Arc<Shared>,
    events: Arc<events::Shared>,
    timing: Timing,
    state_dir: PathBuf,
) {
    let mut health = tokio::time::interval(HEALTH_POLL);
    health.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let command = tokio::select! {
            () = events.changed() => {
                refresh(&hub, &shared);
                continue;
            }
            _ = health.tick(), if shared.clients.load(Ordering::Acquire) > 0 => {
                hub.borrow_mut().check_health();
                continue;
            }
            command = commands.recv() => command,
        };
        let Some(command) = command else {
            return;
        };
        if matches!(command, Command::WebSocket { .. } | Command::Events { .. }) {
            fail::fail_point!("stream::client");
        }
        // The hub reaches at least what the bot had published as durable
        // when the request came (the `after` a client was given on the
        // HTTP thread, the `last_seq` `/api/v1/status` answered), so no
        // answer is older: the change's wake-up may not have been taken yet.
        refresh(&hub, &shared);
        match command {
            Command::WebSocket {
                socket,
                read_ahead,
                subscription,
                slot,
            } => {
                let (hub, shared) = (Rc::clone(&hub), Arc::clone(&shared));
                tokio::task::spawn_local(async move {
                    client::websocket(hub, &shared, socket, read_ahead, subscription, timing, slot)
                        .await;
                });
            }
            Command::Events {
                body,
                subscription,
                slot,
            } => {
                let (hub, shared) = (Rc::clone(&hub), Arc::clone(&shared));
                tokio::task::spawn_local(async move {
                    client::events(hub, &shared, body, subscription, timing).await;
                    drop(slot);
                });
            }
            Command::Page {
                kind,
                after,
                limit,
                reply,
            } => {
                let _ = reply.send(page(&hub.borrow(), kind, after, limit));
            }
            Command::Report { window, reply } => {
                let durable = hub.borrow().durable();
                let state_dir = state_dir.clone();
                // Off this thread's loop, so its clients are served while
                // the journal is read; niced like the thread.
                tokio::task::spawn_blocking(move || {
                    lower_priority();
                    let _ = reply.send(report_body(&state_dir, window, durable));
                });
            }
            Command::Finish { within, done } => {
                let deadline = Instant::now() + within;
                {
                    // Refreshed above, like before every command.
                    let mut hub = hub.borrow_mut();
                    hub.finishing = true;
                    hub.changed.notify_waiters();
                }
                while shared.clients.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                let _ = done.send(());
                return;
            }
        }
    }
}

/// `{"fills": [...], "next": SEQ}` (or `rejects`): durable records only.
fn page(hub: &Hub, kind: Kind, after: u64, limit: usize) -> io::Result<Vec<u8>> {
    let durable = hub.durable();
    let records = hub
        .reader()
        .after(after, limit.min(MAX_PAGE), |record| match kind {
            Kind::Fill => matches!(record, Record::Fill { .. }),
            _ => matches!(record, Record::Reject { .. }),
        })?;
    let name = if kind == Kind::Fill {
        "fills"
    } else {
        "rejects"
    };
    let mut body = format!("{{\"{name}\":[").into_bytes();
    let mut next = after;
    for (seq, record) in records.iter().take_while(|(seq, _)| *seq <= durable) {
        if let Some((_, json)) = record_json(*seq, record, false) {
            if next != after {
                body.push(b',');
            }
            body.extend_from_slice(json.as_bytes());
            next = *seq;
        }
    }
    body.extend_from_slice(format!("],\"next\":{next}}}\n").as_bytes());
    Ok(body)
}

/// The trade report's JSON document, over the journal up to `durable`.
fn report_body(
    state_dir: &Path,
    window: report::Window,
    durable: u64,
) -> Result<Vec<u8>, QueryError> {
    let document = report_of(state_dir, window, durable)?;
    Ok(serde_json::to_vec(&document).map_err(io::Error::other)?)
}

/// Runs the calling thread (the stream thread, its blocking thread) below
/// the bot's priority; a failure only costs that (it is logged).
fn lower_priority() {
    let thread = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(thread), NICENESS) {
        tracing::debug!(%error, "cannot lower the stream thread's priority");
    }
}
