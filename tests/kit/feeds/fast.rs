//! A WebSocket server for throughput figures, made so that it is never
//! the limit: the messages are framed once, at start, into one buffer,
//! and each connection gets the whole buffer in one write as soon as the
//! client sent its first text (its subscribe), as fast as the client
//! reads. It then answers `ping` with `pong` (and ping frames with pongs)
//! until the client leaves. Memory: the messages' bytes plus a few bytes
//! of header each.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

use super::listener::{read, Incoming, Listener, Stream};
use super::watched::Watched;

/// What the server has done so far.
#[derive(Clone, Debug, Default)]
pub struct Blasted {
    pub connections: usize,
    /// When each connection's subscribe came, in order: the start of a
    /// client's clock.
    pub subscribed: Vec<Instant>,
    /// For each connection that got every frame: from its subscribe to
    /// the last byte written.
    pub took: Vec<Duration>,
}

struct Shared {
    frames: Vec<u8>,
    blasted: Watched<Blasted>,
}

pub struct FastFeed {
    listener: Listener,
    shared: Arc<Shared>,
}

impl FastFeed {
    /// Frames `messages` (text frames, in order) once.
    pub fn start(messages: impl IntoIterator<Item = String>) -> Self {
        let mut frames = Vec::new();
        for message in messages {
            Frame::message(message.into_bytes(), OpCode::Data(Data::Text), true)
                .format(&mut frames)
                .unwrap();
        }
        let shared = Arc::new(Shared {
            frames,
            blasted: Watched::default(),
        });
        let serving = Arc::clone(&shared);
        let listener = Listener::start(None, move |stream, stopped| {
            serve(&serving, stream, stopped)
        });
        FastFeed { listener, shared }
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.listener.addr.port())
    }

    /// What was done so far.
    pub fn blasted(&self) -> Blasted {
        self.shared.blasted.get()
    }

    /// Waits until `connections` connections got every frame, and
    /// returns what was done.
    pub fn wait_blasted(&self, connections: usize) -> Blasted {
        self.shared.blasted.wait("every frame sent", |blasted| {
            blasted.took.len() >= connections
        })
    }
}

fn serve(shared: &Shared, stream: Stream, stopped: &AtomicBool) {
    stream.set_read_timeout(Duration::from_secs(10));
    let Ok(mut socket) = tungstenite::accept(stream) else {
        return;
    };
    shared.blasted.change(|blasted| blasted.connections += 1);
    let subscribed = loop {
        match read(&mut socket) {
            Incoming::Message(Message::Text(_)) => {
                let now = Instant::now();
                shared
                    .blasted
                    .change(|blasted| blasted.subscribed.push(now));
                break now;
            }
            Incoming::Ended => return,
            _ => {}
        }
    };
    if socket.flush().is_err() || socket.get_mut().write_all(&shared.frames).is_err() {
        return;
    }
    shared
        .blasted
        .change(|blasted| blasted.took.push(subscribed.elapsed()));
    socket
        .get_ref()
        .set_read_timeout(Duration::from_millis(100));
    while !stopped.load(Ordering::Relaxed) {
        if let Incoming::Ended = read(&mut socket) {
            return;
        }
    }
}
