//! A WebSocket server for throughput figures, made so that it is never
//! the limit: the messages are framed once, at start, into one buffer,
//! and each connection gets the whole buffer in one write as soon as the
//! client sent its first text (its subscribe), as fast as the client
//! reads. It then answers `ping` with `pong` (and ping frames with pongs)
//! until the client leaves. Memory: the messages' bytes plus a few bytes
//! of header each.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::Message;

use super::listener::{timed_out, Listener, Stream};

/// What the server has done so far.
#[derive(Clone, Debug, Default)]
pub struct Blasted {
    pub connections: usize,
    /// For each connection that got every frame: from its subscribe to
    /// the last byte written.
    pub took: Vec<Duration>,
}

struct Shared {
    frames: Vec<u8>,
    blasted: Mutex<Blasted>,
    changed: Condvar,
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
            blasted: Mutex::default(),
            changed: Condvar::new(),
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

    /// Waits until `connections` connections got every frame (at most
    /// `timeout`), and returns what was done.
    pub fn wait_blasted(&self, connections: usize, timeout: Duration) -> Blasted {
        let deadline = Instant::now() + timeout;
        let mut blasted = self.shared.blasted.lock().unwrap();
        while blasted.took.len() < connections {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                panic!("the fast feed did not reach {connections} clients: {blasted:?}");
            };
            blasted = self.shared.changed.wait_timeout(blasted, left).unwrap().0;
        }
        blasted.clone()
    }
}

fn serve(shared: &Shared, stream: Stream, stopped: &AtomicBool) {
    stream.set_read_timeout(Duration::from_secs(10));
    let Ok(mut socket) = tungstenite::accept(stream) else {
        return;
    };
    shared.blasted.lock().unwrap().connections += 1;
    let subscribed = loop {
        match socket.read() {
            Ok(Message::Text(_)) => break Instant::now(),
            Ok(_) => {}
            Err(_) => return,
        }
    };
    if socket.flush().is_err() || socket.get_mut().write_all(&shared.frames).is_err() {
        return;
    }
    shared
        .blasted
        .lock()
        .unwrap()
        .took
        .push(subscribed.elapsed());
    shared.changed.notify_all();
    socket
        .get_ref()
        .set_read_timeout(Duration::from_millis(100));
    while !stopped.load(Ordering::Relaxed) {
        match socket.read() {
            Ok(Message::Text(text)) if text.as_str() == "ping" => {
                if socket.send(Message::text("pong")).is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) => {
                let _ = socket.flush();
                return;
            }
            Ok(_) => {}
            Err(error) if timed_out(&error) => {}
            Err(_) => return,
        }
    }
}
