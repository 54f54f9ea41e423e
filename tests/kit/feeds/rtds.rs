//! A fake of Polymarket's real-time data service (RTDS,
//! `wss://ws-live-data.polymarket.com`), as its documentation and clients
//! describe it:
//!
//! - a client subscribes with
//!   `{"action":"subscribe","subscriptions":[{"topic":"activity","type":"trades"}]}`
//!   and gets no trade before it has;
//! - it must send the text `ping` at least every [`PING_WITHIN`] (the
//!   service drops a client that does not), answered with `pong`;
//! - trades come as `{"topic":"activity","type":"trades","timestamp":MS,
//!   "payload":{"slug":…,"outcome":"Yes","outcomeIndex":0,"proxyWallet":"0x…",
//!   "side":"BUY"|"SELL","size":…,"price":…,"timestamp":S,
//!   "transactionHash":"0x…"}}`, one a frame or several in an array frame.
//!
//! A test queues what is sent (trades, and the bad days: garbage, binary
//! and oversized frames, a message sent again after a reconnect), switches
//! modes (silent while answering pings; dead: answering nothing; closing
//! every connection once subscribed), closes every connection at once, and
//! awaits what the fake saw ([`Seen`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::{Message, WebSocket};

use super::listener::{read, Incoming, Listener, Stream};
use super::watched::Watched;

/// RTDS drops a client that sent no `ping` for this long.
pub const PING_WITHIN: Duration = Duration::from_secs(5);

/// How often a connection's thread looks at the queue and the modes.
const TICK: Duration = Duration::from_millis(10);

/// What the fake has seen so far.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// When each connection's handshake completed.
    pub connects: Vec<Instant>,
    /// Each handshake's request headers, names in lower case.
    pub headers: Vec<HashMap<String, String>>,
    /// Connections open now.
    pub open: usize,
    pub subscribes: usize,
    /// Text `ping`s.
    pub pings: usize,
    /// WebSocket ping frames (answered with pong frames by tungstenite).
    pub ping_frames: usize,
    /// Connections dropped for sending no `ping` in time.
    pub dropped_for_no_ping: usize,
    /// Frames of the queue sent.
    pub sent: usize,
}

/// A frame to send.
#[derive(Clone, Debug)]
enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
}

/// What a test sets.
#[derive(Default)]
struct Control {
    queue: VecDeque<Outgoing>,
    history: Vec<Outgoing>,
    silent: bool,
    dead: bool,
    closing: bool,
    /// Bumped by [`Rtds::close_all`]: a connection of an older one closes.
    generation: u64,
}

struct Shared {
    control: Mutex<Control>,
    seen: Watched<Seen>,
    ping_within: Option<Duration>,
}

impl Shared {
    fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap()
    }
}

pub struct Rtds {
    listener: Listener,
    shared: Arc<Shared>,
    scheme: &'static str,
}

impl Rtds {
    /// Requires a `ping` every [`PING_WITHIN`], as the service does.
    pub fn start() -> Self {
        Self::start_with(Some(PING_WITHIN), None)
    }

    /// `ping_within: None` drops no client for want of a `ping` (for a
    /// client that pings with frames); `tls`: serve `wss://`.
    pub fn start_with(
        ping_within: Option<Duration>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let shared = Arc::new(Shared {
            control: Mutex::default(),
            seen: Watched::default(),
            ping_within,
        });
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let serving = Arc::clone(&shared);
        let listener =
            Listener::start(tls, move |stream, stopped| serve(&serving, stream, stopped));
        Rtds {
            listener,
            shared,
            scheme,
        }
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/", self.scheme, self.listener.addr.port())
    }

    /// The subscribe message RTDS requires before it sends trades.
    pub fn subscribe_message() -> String {
        json!({"action": "subscribe", "subscriptions": [{"topic": "activity", "type": "trades"}]})
            .to_string()
    }

    /// One trade, a frame of its own.
    pub fn push_trade(&self, trade: &Value) {
        self.push(Outgoing::Text(trade.to_string()));
    }

    /// Several trades in one array frame.
    pub fn push_trades(&self, trades: &[Value]) {
        self.push(Outgoing::Text(Value::from(trades.to_vec()).to_string()));
    }

    /// A text frame as given (garbage: not JSON).
    pub fn push_text(&self, text: &str) {
        self.push(Outgoing::Text(text.to_owned()));
    }

    pub fn push_binary(&self, bytes: &[u8]) {
        self.push(Outgoing::Binary(bytes.to_vec()));
    }

    /// A text frame of `bytes` bytes (a JSON string), for a client's limit.
    pub fn push_oversized(&self, bytes: usize) {
        self.push(Outgoing::Text(format!("\"{}\"", "x".repeat(bytes - 2))));
    }

    /// Sends the last `count` frames sent again, before anything queued:
    /// what a service does that replays after a reconnect.
    pub fn replay(&self, count: usize) {
        let mut control = self.shared.control();
        let from = control.history.len().saturating_sub(count);
        let again: Vec<Outgoing> = control.history[from..].to_vec();
        for frame in again.into_iter().rev() {
            control.queue.push_front(frame);
        }
    }

    /// Silent: answers pings, sends nothing queued (a frozen feed).
    pub fn set_silent(&self, silent: bool) {
        self.shared.control().silent = silent;
    }

    /// Dead: every open connection, and each new one after its handshake,
    /// reads and writes nothing (not even a pong) while its socket stays open.
    pub fn set_dead(&self, dead: bool) {
        self.shared.control().dead = dead;
    }

    /// Closing: every connection is closed as soon as it subscribed.
    pub fn set_closing(&self, closing: bool) {
        self.shared.control().closing = closing;
    }

    /// Closes every open connection at once (close frame 1012, "service
    /// restart").
    pub fn close_all(&self) {
        self.shared.control().generation += 1;
    }

    pub fn seen(&self) -> Seen {
        self.shared.seen.get()
    }

    /// Waits until `until` holds of what the fake has seen, and returns
    /// that; panics, naming `what`, when it does not soon.
    pub fn wait(&self, what: &str, until: impl Fn(&Seen) -> bool) -> Seen {
        self.shared.seen.wait(what, until)
    }

    fn push(&self, frame: Outgoing) {
        self.shared.control().queue.push_back(frame);
    }
}

/// The wallet every [`trade`] is by: the sample's id joins it, so a test
/// names it in the id it expects.
pub const WALLET: &str = "0x56687bf447db6ffa42ffe2204a05edaa20f55839";

/// A trade as RTDS sends it, with a transaction hash of its own.
pub fn trade(slug: &str, side: &str, size: f64, price: f64) -> Value {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let number = NEXT.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    json!({
        "topic": "activity",
        "type": "trades",
        "timestamp": now.as_millis() as u64,
        "payload": {
            "slug": slug,
            "outcome": "Yes",
            "outcomeIndex": 0,
            "proxyWallet": WALLET,
            "side": side,
            "size": size,
            "price": price,
            "timestamp": now.as_secs(),
            "transactionHash": format!("0x{number:064x}"),
        }
    })
}

type Socket = WebSocket<Stream>;

fn serve(shared: &Shared, stream: Stream, stopped: &AtomicBool) {
    stream.set_read_timeout(Duration::from_secs(5));
    let mut headers = HashMap::new();
    // The signature is tungstenite's handshake callback's.
    #[allow(clippy::result_large_err)]
    let record = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        for (name, value) in request.headers() {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers.insert(name.as_str().to_owned(), value);
        }
        Ok(response)
    };
    let Ok(mut socket) = tungstenite::accept_hdr(stream, record) else {
        return;
    };
    socket.get_ref().set_read_timeout(TICK);
    let generation = shared.control().generation;
    shared.seen.change(|seen| {
        seen.connects.push(Instant::now());
        seen.headers.push(headers);
        seen.open += 1;
    });
    converse(shared, &mut socket, generation, stopped);
    shared.seen.change(|seen| seen.open -= 1);
}

/// One connection, until either side ends it.
fn converse(shared: &Shared, socket: &mut Socket, generation: u64, stopped: &AtomicBool) {
    let mut subscribed = false;
    let mut last_ping = Instant::now();
    while !stopped.load(Ordering::Relaxed) {
        let (dead, closing, current) = {
            let control = shared.control();
            (control.dead, control.closing, control.generation)
        };
        if current != generation || (closing && subscribed) {
            close(socket);
            return;
        }
        if dead {
            std::thread::sleep(TICK);
            continue;
        }
        match read(socket) {
            Incoming::Ping => {
                last_ping = Instant::now();
                shared.seen.change(|seen| seen.pings += 1);
            }
            Incoming::Message(Message::Text(text)) if is_trades_subscription(text.as_str()) => {
                subscribed = true;
                shared.seen.change(|seen| seen.subscribes += 1);
            }
            Incoming::Message(Message::Ping(_)) => shared.seen.change(|seen| seen.ping_frames += 1),
            Incoming::Message(_) | Incoming::Nothing => {}
            Incoming::Ended => return,
        }
        if shared
            .ping_within
            .is_some_and(|within| last_ping.elapsed() > within)
        {
            shared.seen.change(|seen| seen.dropped_for_no_ping += 1);
            socket.get_ref().shutdown();
            return;
        }
        if subscribed && send_queued(shared, socket).is_err() {
            return;
        }
    }
}

/// Sends what is queued, unless silent: looked at with each frame taken,
/// so nothing queued after [`Rtds::set_silent`] goes out.
fn send_queued(shared: &Shared, socket: &mut Socket) -> tungstenite::Result<()> {
    loop {
        let next = {
            let mut control = shared.control();
            if control.silent {
                None
            } else {
                control.queue.pop_front()
            }
        };
        let Some(frame) = next else {
            return Ok(());
        };
        let message = match &frame {
            Outgoing::Text(text) => Message::text(text.as_str()),
            Outgoing::Binary(bytes) => Message::binary(bytes.clone()),
        };
        socket.send(message)?;
        shared.control().history.push(frame);
        shared.seen.change(|seen| seen.sent += 1);
    }
}

fn is_trades_subscription(text: &str) -> bool {
    let Ok(message) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    message["action"] == "subscribe"
        && message["subscriptions"].as_array().is_some_and(|topics| {
            topics
                .iter()
                .any(|topic| topic["topic"] == "activity" && topic["type"] == "trades")
        })
}

fn close(socket: &mut Socket) {
    let frame = CloseFrame {
        code: CloseCode::Restart,
        reason: "service restart".into(),
    };
    let _ = socket.close(Some(frame));
    let _ = socket.flush();
}
