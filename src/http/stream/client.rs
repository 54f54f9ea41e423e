//! One stream client on the stream thread: a WebSocket (`/ws`) or an SSE
//! response (`/events`), fed from the [`Hub`] at the pace the client reads.
//!
//! Per client, what is bounded: the messages taken at once (a batch), the
//! bytes buffered for the socket, and the time a write may wait. A client
//! that takes nothing for `WS_SEND_TIMEOUT` is dropped (a WebSocket gets a
//! close frame with the reason and the seq to resume from) and counted;
//! it never holds the others up, and the loop never waits for anyone.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::time::{timeout, MissedTickBehavior};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::hub::{Cursor, Hub, Item};
use super::message::Kinds;
use super::{DropReason, Shared, Slot};

/// Messages taken from the hub at once for one client.
const BATCH: usize = 512;

/// What a client may send us: control frames and nothing much else. A
/// larger frame or message is refused (close 1009).
const MAX_INCOMING: usize = 4 * 1024;

/// Bytes buffered before a write is made, and the most kept for a client
/// whose socket is full (past that, writes wait; see `WS_SEND_TIMEOUT`).
const WRITE_BUFFER: usize = 128 * 1024;
const MAX_WRITE_BUFFER: usize = 1024 * 1024;

/// The kernel's send buffer for a stream socket. Left to autotuning it
/// grows to megabytes for a client that stopped reading; fixed, it bounds
/// what one client can hold (the kernel counts it twice over) and lets a
/// stopped client show as one soon. Loopback and LAN rates need no more.
const SEND_BUFFER: usize = 256 * 1024;

/// How long a dropped client's close frame may wait behind what was
/// buffered for it (it gets it if it reads again meanwhile). Its slot is
/// free by then.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What a client asked for.
#[derive(Clone, Copy, Debug)]
pub struct Subscription {
    /// Replay fills and rejects after this seq first. A client that names
    /// none gets the seq durable as its request is read (from now on),
    /// fixed then on the HTTP thread, not when the stream thread gets to
    /// it, or what became durable in between would be missed.
    pub after: u64,
    pub kinds: Kinds,
}

#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub send_timeout: Duration,
    pub ping_interval: Duration,
}

/// Serves one WebSocket client until it goes, is dropped, or the daemon
/// stops; its `slot` is given back when it stops being served.
pub async fn websocket(
    hub: Rc<RefCell<Hub>>,
    shared: &Shared,
    socket: std::net::TcpStream,
    read_ahead: Vec<u8>,
    subscription: Subscription,
    timing: Timing,
    slot: Slot,
) {
    if let Err(error) = rustix::net::sockopt::set_socket_send_buffer_size(&socket, SEND_BUFFER) {
        tracing::debug!(%error, "cannot bound a stream socket's send buffer");
    }
    let Ok(socket) = TcpStream::from_std(socket) else {
        return;
    };
    let _ = socket.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_frame_size(Some(MAX_INCOMING))
        .max_message_size(Some(MAX_INCOMING))
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER);
    let socket =
        WebSocketStream::from_partially_read(socket, read_ahead, Role::Server, Some(config)).await;
    let (mut sink, mut incoming) = socket.split();

    // Reads what the client sends: pings are answered by tungstenite on
    // the next write, pongs and anything else prove it alive.
    let heard = Rc::new(Cell::new(Instant::now()));
    let gone = Rc::new(Notify::new());
    let ended: Rc<Cell<Option<Ending>>> = Rc::new(Cell::new(None));
    let reader = {
        let (heard, gone, ended) = (Rc::clone(&heard), Rc::clone(&gone), Rc::clone(&ended));
        tokio::task::spawn_local(async move {
            while let Some(frame) = incoming.next().await {
                match frame {
                    Ok(Message::Close(_)) => break,
                    Ok(_) => heard.set(Instant::now()),
                    Err(WsError::Capacity(_)) => {
                        ended.set(Some(Ending::TooBig));
                        break;
                    }
                    Err(_) => break,
                }
            }
            if ended.get().is_none() {
                ended.set(Some(Ending::ClientGone));
            }
            gone.notify_one();
        })
    };

    let mut cursor = hub.borrow().cursor(subscription.after, subscription.kinds);
    // Where the client may resume: everything up to it was handed to the
    // socket (the close frame goes out behind it).
    let mut resume = cursor.seq;
    let mut batch = Vec::with_capacity(BATCH);
    if subscription.kinds.has(super::message::Kind::Health) {
        batch.push(hub.borrow().health_now(&cursor));
    }
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + timing.ping_interval,
        timing.ping_interval,
    );
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let changed = Rc::clone(&hub.borrow().changed);
    let ending = loop {
        if let Some(ending) = ended.take() {
            break ending;
        }
        if let Err(ending) = fill(&hub, &mut cursor, &mut batch) {
            break ending;
        }
        if !batch.is_empty() {
            let sent = timeout(timing.send_timeout, async {
                for item in batch.drain(..) {
                    let seq = item.seq;
                    sink.feed(Message::Text(item.json)).await?;
                    resume = seq;
                }
                sink.flush().await
            })
            .await;
            match sent {
                Ok(Ok(())) => {
                    resume = cursor.seq;
                    // A socket that always takes more never makes this task
                    // wait: let the other clients, and the timers, run.
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(Err(_)) => break Ending::ClientGone,
                Err(_) => break Ending::Slow,
            }
        }
        if hub.borrow().finishing {
            break Ending::Stopping;
        }
        tokio::select! {
            () = changed.notified() => {}
            () = gone.notified() => {}
            _ = ping.tick() => {
                if heard.get().elapsed() > timing.ping_interval * 2 {
                    break Ending::Silent;
                }
                let pinged = timeout(timing.send_timeout, sink.send(Message::Ping(Bytes::new()))).await;
                match pinged {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break Ending::ClientGone,
                    Err(_) => break Ending::Slow,
                }
            }
        }
    };
    shared.ended(ending);
    drop(slot);
    if let Some((code, reason)) = ending.close(resume) {
        tracing::debug!(reason = %reason, "closing a stream client");
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // The close frame waits behind what is buffered; a client that
        // reads again within the grace gets it, then the connection ends.
        let _ = timeout(CLOSE_GRACE, async {
            sink.send(Message::Close(Some(frame))).await?;
            sink.flush().await
        })
        .await;
    } else {
        // Sends the answer to the client's close frame, if it sent one.
        let _ = timeout(Duration::from_secs(1), sink.flush()).await;
    }
    reader.abort();
}

/// Serves one SSE client: formatted messages go to the HTTP thread, which
/// writes them as the response body, through a channel of a few batches.
pub async fn events(
    hub: Rc<RefCell<Hub>>,
    shared: &Shared,
    body: mpsc::Sender<Bytes>,
    subscription: Subscription,
    timing: Timing,
) {
    let mut cursor = hub.borrow().cursor(subscription.after, subscription.kinds);
    let mut batch = Vec::with_capacity(BATCH);
    if subscription.kinds.has(super::message::Kind::Health) {
        batch.push(hub.borrow().health_now(&cursor));
    }
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + timing.ping_interval,
        timing.ping_interval,
    );
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let changed = Rc::clone(&hub.borrow().changed);
    let ending = loop {
        if let Err(ending) = fill(&hub, &mut cursor, &mut batch) {
            break ending;
        }
        if !batch.is_empty() {
            let text = sse_events(&batch);
            batch.clear();
            match timeout(timing.send_timeout, body.send(text)).await {
                Ok(Ok(())) => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Ok(Err(_)) => break Ending::ClientGone,
                Err(_) => break Ending::Slow,
            }
        }
        if hub.borrow().finishing {
            break Ending::Stopping;
        }
        tokio::select! {
            () = changed.notified() => {}
            () = body.closed() => break Ending::ClientGone,
            _ = ping.tick() => {
                // A comment line: keeps proxies from timing the stream out.
                match timeout(timing.send_timeout, body.send(Bytes::from_static(b": ping\n\n"))).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break Ending::ClientGone,
                    Err(_) => break Ending::Slow,
                }
            }
        }
    };
    shared.ended(ending);
}

/// Takes the client's next batch from the hub (none if caught up).
fn fill(hub: &RefCell<Hub>, cursor: &mut Cursor, batch: &mut Vec<Item>) -> Result<(), Ending> {
    hub.borrow_mut()
        .next(cursor, batch, BATCH)
        .map_err(|error| {
            tracing::error!(%error, "the stream cannot read the journal; closing the client");
            Ending::JournalUnreadable
        })
}

/// Why a client's stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    ClientGone,
    /// Took nothing for `WS_SEND_TIMEOUT`.
    Slow,
    /// Answered no ping for two intervals.
    Silent,
    /// Sent a frame or message over the limit.
    TooBig,
    Stopping,
    JournalUnreadable,
}

impl Ending {
    /// The close frame to send, naming the seq to resume after.
    fn close(self, seq: u64) -> Option<(CloseCode, String)> {
        match self {
            Ending::ClientGone => None,
            Ending::Slow => Some((
                CloseCode::Policy,
                format!("too slow: nothing read for too long; reconnect with ?after={seq}"),
            )),
            Ending::Silent => Some((
                CloseCode::Policy,
                format!("no pong; reconnect with ?after={seq}"),
            )),
            Ending::TooBig => Some((
                CloseCode::Size,
                format!("frame or message over {MAX_INCOMING} bytes"),
            )),
            Ending::Stopping => Some((
                CloseCode::Away,
                format!("stopping; reconnect with ?after={seq}"),
            )),
            Ending::JournalUnreadable => Some((
                CloseCode::Error,
                format!("cannot read the journal; reconnect with ?after={seq}"),
            )),
        }
    }

    pub fn dropped(self) -> Option<DropReason> {
        match self {
            Ending::Slow => Some(DropReason::Slow),
            Ending::Silent => Some(DropReason::Silent),
            Ending::TooBig => Some(DropReason::TooBig),
            Ending::ClientGone | Ending::Stopping | Ending::JournalUnreadable => None,
        }
    }
}

/// Items as server-sent events (`id:`, `event:`, `data:` and a blank
/// line each), in one buffer sized once: this runs for every item and
/// every SSE client, so no `format!` and no regrowing.
fn sse_events(items: &[Item]) -> Bytes {
    const FRAMING: usize = "id: \nevent: \ndata: \n\n".len() + 20 + "duplicate".len();
    let size = items.iter().map(|item| item.json.len() + FRAMING).sum();
    let mut text = BytesMut::with_capacity(size);
    for item in items {
        text.put_slice(b"id: ");
        text.put_slice(itoa::Buffer::new().format(item.seq).as_bytes());
        text.put_slice(b"\nevent: ");
        text.put_slice(item.kind.as_str().as_bytes());
        text.put_slice(b"\ndata: ");
        text.put_slice(item.json.as_bytes());
        text.put_slice(b"\n\n");
    }
    text.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::stream::message::Kind;

    #[test]
    fn items_read_as_server_sent_events() {
        let item = |seq, kind, json: &str| Item {
            seq,
            kind,
            json: json.into(),
        };
        let text = sse_events(&[
            item(0, Kind::Health, "{}"),
            item(u64::MAX, Kind::Duplicate, r#"{"id":"a"}"#),
        ]);
        assert_eq!(
            text,
            format!(
                "id: 0\nevent: health\ndata: {{}}\n\nid: {}\nevent: duplicate\ndata: {{\"id\":\"a\"}}\n\n",
                u64::MAX
            )
        );
    }
}
