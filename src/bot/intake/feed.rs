//! The seam between a remote feed's client ([`super::ws`], [`super::poll`])
//! and the intake. The client owns the connection: connecting, keepalive,
//! its two timers (a dead connection, a quiet feed), the backoff. The
//! [`FeedSink`] owns everything after: mapping what was received, batching
//! it to the loop, and the source's status in `/health`, metrics and
//! alerts. The client tells the sink each status change and hands it what
//! it received; it learns back only whether that made a signal (the quiet
//! timer counts mapped messages, not frames).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

/// A feed's state. A client reports each change once, in order, and a
/// status again when only its [`Counts`] moved (a quiet feed's new socket).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Opening a connection: the first, or the next after a failure.
    Connecting,
    /// Connected and subscribed (a socket), or answering (a poller).
    Up,
    /// Up, but nothing has mapped to a signal for `quiet_after`: a socket
    /// is replaced, a poller polls on. It stays quiet until a message maps.
    Quiet,
    /// Failed, and waiting `retry_in` before the next attempt. `error`
    /// says what failed in the client's own words: never a URL, a header
    /// or a body, which may carry a credential.
    Down { error: String, retry_in: Duration },
}

/// What a client received at once, in order.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    /// WebSocket data frames read together (text, or binary: both are
    /// handed on as bytes), or one polled page's body.
    pub(crate) messages: Vec<Bytes>,
    /// A poller's cursor after these messages: the position it resumes
    /// from once they are journaled (`Checkpoint::Cursor`). `None` for a
    /// socket, and for a poller without a cursor.
    pub(crate) cursor: Option<String>,
}

/// What the intake made of a delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivered {
    /// At least one message mapped to a signal: the quiet timer starts over.
    Signals,
    /// None did (ignored, unmapped, not JSON).
    NoSignal,
    /// The loop is gone: the client stops.
    Closed,
}

/// A client's counters since it started, passed with each status change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Messages handed to the sink (data frames, pages); keepalive
    /// answers are not messages.
    pub(crate) messages: u64,
    /// Connections (a socket) or rounds (a poller) started again after a
    /// failure or a quiet feed.
    pub(crate) reconnects: u64,
}

/// Where a client's news goes. `status` is called inline and must be
/// cheap (a store, a queued alert); `deliver` may wait (a full channel to
/// the loop is the back-pressure that holds a feed). A client drops a
/// `deliver` future unfinished when the shutdown token fires, so the
/// sink need not watch the token itself.
pub(crate) trait FeedSink: Send + 'static {
    fn status(&mut self, status: &Status, counts: Counts);

    fn deliver(&mut self, delivery: Delivery) -> impl Future<Output = Delivered> + Send;
}
