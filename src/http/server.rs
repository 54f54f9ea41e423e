//! A small, hard-to-exhaust HTTP/1 server on hyper: the one port's, and
//! the webhook's own listener when it has one.
//!
//! Bounded everywhere a client could make it grow: a connection cap that
//! evicts the oldest connection (so a flood of idle or slow clients cannot
//! lock a fresh probe out), a header size cap, a header read deadline that
//! is also the idle timeout, and a maximum connection age. Accept errors
//! (EMFILE in a flood) back off and retry; they never end the server.
//!
//! A connection is retired without losing a request: past its maximum age,
//! its next response says `Connection: close` and hyper closes it after
//! that response, so its client opens a new one before it sends again.
//! Only a connection idle for longer than the idle timeout is closed
//! without a word, which every client expects of an idle connection; a
//! connection closed between two requests of a busy client could lose the
//! second one, written at that instant, and a POST cannot safely be sent
//! again. A stream's response (`/events`) is not cut either: it has bounds
//! of its own.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;

/// The address of the client's end of the connection, in every request's
/// extensions.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Past this, accepting a connection evicts the oldest one.
    pub(crate) max_connections: usize,
    /// Request head bytes; a larger head gets 431. hyper refuses < 8192.
    pub(crate) max_header_bytes: usize,
    /// A client must send a whole request head within this of connecting
    /// or of its last response: it is also the idle timeout, after which a
    /// kept-alive connection is closed.
    pub(crate) header_timeout: Duration,
    /// Past this, a connection's next response says `Connection: close`.
    pub(crate) max_connection_age: Duration,
    /// Once the server stops, requests in flight get this long to be
    /// answered (a webhook client waiting on its signals' journal commit
    /// gets its answer rather than a reset).
    pub(crate) drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_secs(60),
            drain: Duration::from_secs(5),
        }
    }
}

/// The listen backlog: deep enough that a probe's SYN survives a reconnect flood.
const BACKLOG: i32 = 1024;

/// Binds the first address that can be bound, logging each refusal.
pub(crate) fn bind_first(addrs: &[SocketAddr]) -> Option<StdTcpListener> {
    for addr in addrs {
        match StdTcpListener::bind(addr) {
            Ok(listener) => {
                if let Err(error) = rustix::net::listen(&listener, BACKLOG) {
                    tracing::debug!(%error, "could not deepen the listen backlog");
                }
                return Some(listener);
            }
            Err(error) => tracing::warn!(%addr, %error, "cannot bind health port; trying the next"),
        }
    }
    None
}

/// Live connections, oldest first, so the oldest can be evicted.
#[derive(Default)]
struct Connections {
    next_id: u64,
    live: BTreeMap<u64, AbortHandle>,
}

/// Removes a connection from the table when its task ends, however it ends.
struct Registration {
    id: u64,
    connections: Rc<RefCell<Connections>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.connections.borrow_mut().live.remove(&self.id);
    }
}

impl Connections {
    fn evict_oldest(&mut self) -> bool {
        match self.live.pop_first() {
            Some((_, handle)) => {
                handle.abort();
                true
            }
            None => false,
        }
    }
}

/// Serves `listener` with `handler` on the current thread until `shutdown`.
/// Must run inside a `LocalSet`. Connections may be upgraded (`/ws`).
pub(crate) async fn serve<H, F, B>(
    listener: StdTcpListener,
    limits: Limits,
    handler: H,
    shutdown: CancellationToken,
) -> io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + 'static,
    F: Future<Output = Response<B>> + 'static,
    B: hyper::body::Body<Data = Bytes> + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let connections = Rc::new(RefCell::new(Connections::default()));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let mut accept_errors = AcceptErrorLog::default();

    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                let evicted =
                    is_descriptor_exhaustion(&error) && connections.borrow_mut().evict_oldest();
                accept_errors.record(&error, evicted);
                if !evicted {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);

        let id = {
            let mut table = connections.borrow_mut();
            while table.live.len() >= limits.max_connections && table.evict_oldest() {}
            table.next_id += 1;
            table.next_id
        };
        let registration = Registration {
            id,
            connections: Rc::clone(&connections),
        };
        let handler = handler.clone();
        let retire_at = Instant::now() + limits.max_connection_age;
        let service = service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(Peer(peer));
            let response = handler(request);
            async move {
                let mut response = response.await;
                if Instant::now() >= retire_at {
                    retire(&mut response);
                }
                Ok::<_, Infallible>(response)
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let shutdown = shutdown.clone();
        let task = tokio::task::spawn_local(async move {
            let _registration = registration;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = shutdown.cancelled() => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.header_timeout, connection).await;
        });
        connections
            .borrow_mut()
            .live
            .insert(id, task.abort_handle());
    }
    Ok(())
}

/// Says `Connection: close`, so hyper closes the connection once this
/// response is sent, and the client knows before it sends again. Not on
/// an upgrade (`/ws`), whose `Connection` says where the connection goes.
fn retire<B>(response: &mut Response<B>) {
    if !response.headers().contains_key(CONNECTION) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
}

fn is_descriptor_exhaustion(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
            || code == rustix::io::Errno::NFILE.raw_os_error()
    )
}

/// Logs accept errors at most once a second, with how many were skipped.
#[derive(Default)]
struct AcceptErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrorLog {
    fn record(&mut self, error: &io::Error, evicted: bool) {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now - last < Duration::from_secs(1))
        {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            %error,
            evicted_oldest = evicted,
            suppressed = self.suppressed,
            "accept failed; the server keeps running"
        );
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Runs `serve` on a dedicated OS thread with its own current-thread
/// runtime, isolated from the bot's runtime, then drains it (see
/// [`Limits::drain`]). What a failed server means is the caller's to say
/// in `on_failure`: the health server's ends the process (through the judge), the webhook's
/// only the webhook.
pub(crate) fn spawn_server_thread<H, F, B>(
    name: &str,
    listener: StdTcpListener,
    limits: Limits,
    make_handler: impl FnOnce() -> H + Send + 'static,
    shutdown: CancellationToken,
    on_failure: impl FnOnce(io::Error) + Send + 'static,
) -> io::Result<std::thread::JoinHandle<()>>
where
    H: Fn(Request<Incoming>) -> F + Clone + 'static,
    F: Future<Output = Response<B>> + 'static,
    B: hyper::body::Body<Data = Bytes> + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            let handler = make_handler();
            if let Err(error) = local.block_on(&runtime, serve(listener, limits, handler, shutdown))
            {
                on_failure(error);
            }
            runtime.block_on(async {
                let _ = tokio::time::timeout(limits.drain, local).await;
            });
        })
}
