//! The shared port under abuse with the webhook and the stream on: the
//! health port's floods (idle connections, slowloris, garbage, oversized
//! heads) plus failed tokens on every route, oversized bodies, WebSocket
//! handshakes past the cap and garbage frames, while stream clients read
//! and a fresh client asks for `/health` every 20 ms.
//!
//!     cargo test --features failpoints --test integration -- oneport_abuse --nocapture

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kit::abuse::{keep_doing, slowloris};
use crate::kit::daemon::Builder;
use crate::kit::http::{http, http_with_body};
use crate::kit::journal::signal_line;
use crate::kit::process::proc_status;
use crate::kit::wait::{wait_until, SOON};

const WEBHOOK_TOKEN: &str = "abuse-write-token-0123456789abcdef";
const API_TOKEN: &str = "abuse-read-token-0123456789abcdef";

/// Fresh `/health` probes, one every 20 ms, for `length`: their latencies.
fn probe(addr: SocketAddr, length: Duration) -> Vec<Duration> {
    let mut probes = Vec::new();
    let until = Instant::now() + length;
    while Instant::now() < until {
        let started = Instant::now();
        let (code, _) =
            http(addr, "GET", "/health", &[]).expect("a fresh probe must get an answer");
        probes.push(started.elapsed());
        assert_eq!(code, 200);
        std::thread::sleep(Duration::from_millis(20));
    }
    probes.sort();
    probes
}

fn summary(probes: &[Duration]) -> String {
    format!(
        "{} probes: p50 {:?}, p99 {:?}, max {:?}, {} over 100 ms",
        probes.len(),
        probes[probes.len() / 2],
        probes[(probes.len() - 1) * 99 / 100],
        probes.last().unwrap(),
        probes
            .iter()
            .filter(|probe| **probe > Duration::from_millis(100))
            .count()
    )
}

/// A WebSocket handshake, written by hand: the stream after the 101 (or
/// the refusal).
fn handshake(addr: SocketAddr, token: &str) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /ws?token={token} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    head.starts_with(b"HTTP/1.1 101").then_some(stream)
}

#[test]
fn the_shared_port_keeps_health_fresh_through_floods_on_every_route() {
    let mut daemon = Builder::new()
        .arg("--source")
        .arg("webhook")
        .arg("--source")
        .arg("stdin")
        .piped_stdin()
        .env("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        .env("API_TOKEN", API_TOKEN)
        .env("WS_MAX_CLIENTS", "16")
        .env("WEBHOOK_BODY_LIMIT", "4096")
        .spawn();
    daemon.wait_ready();
    let addr = daemon.addr();
    let pid = daemon.pid();
    let threads_before = proc_status(pid, "Threads:");

    // A flood of failed tokens alone, against the quiet figure.
    let quiet = probe(addr, Duration::from_secs(3));
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let auth_flood: Vec<_> = (0..4)
        .map(|index| {
            let refused = Arc::clone(&refused);
            keep_doing(&stop, move || {
                let path = match index {
                    0 => "/signals/wrong-token".to_owned(),
                    1 => "/signals?token=wrong".to_owned(),
                    2 => "/api/v1/fills?token=wrong".to_owned(),
                    _ => "/api/v1/status".to_owned(),
                };
                let method = if index < 2 { "POST" } else { "GET" };
                if let Ok((401, _)) = http_with_body(addr, method, &path, &[], b"{}") {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let under_auth_flood = probe(addr, Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    for thread in auth_flood {
        thread.join().unwrap();
    }
    eprintln!(
        "failed-auth flood ({} refused): quiet {} | during the flood {}",
        refused.load(Ordering::Relaxed),
        summary(&quiet),
        summary(&under_auth_flood)
    );

    // Stream clients that read on through everything below.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let stream = TcpStream::connect(addr).unwrap();
            stream.set_read_timeout(Some(SOON)).unwrap();
            let (socket, _) = tungstenite::client(
                format!("ws://{addr}/ws?token={API_TOKEN}&types=fill"),
                stream,
            )
            .unwrap();
            socket
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(idle.len() >= 900, "only {} idle connections", idle.len());
    let mut abusers = Vec::new();
    // Slowloris: 200 heads a byte a second.
    abusers.push(slowloris(
        addr,
        "/api/v1/status",
        &stop,
        Arc::new(AtomicU64::new(0)),
    ));
    // Garbage, a 64 KiB head without an end, a 1 MiB header line.
    abusers.push(keep_doing(&stop, move || {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.write_all(b"\x00\x16\x03\x01 garbage that is not HTTP\r\n\r\n");
            let _ = stream.read(&mut [0u8; 256]);
        }
    }));
    abusers.push(keep_doing(&stop, move || {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let mut head =
                format!("POST /signals/{WEBHOOK_TOKEN} HTTP/1.1\r\nX-Big: ").into_bytes();
            head.resize(head.len() + 1024 * 1024, b'a');
            let _ = stream.write_all(&head);
            let _ = stream.read(&mut [0u8; 256]);
        }
    }));
    // Bodies over the limit, with the right token; failed tokens.
    abusers.push(keep_doing(&stop, move || {
        let body = vec![b'{'; 64 * 1024];
        let _ = http_with_body(
            addr,
            "POST",
            &format!("/signals/{WEBHOOK_TOKEN}"),
            &[],
            &body,
        );
        let _ = http_with_body(addr, "POST", "/signals/guess", &[], b"{}");
    }));
    // Handshakes with wrong tokens, and garbage or oversized frames after
    // good ones.
    abusers.push(keep_doing(&stop, move || {
        let _ = handshake(addr, "wrong");
        if let Some(mut stream) = handshake(addr, API_TOKEN) {
            let _ = stream.write_all(&[0xff; 2048]);
            let _ = stream.read(&mut [0u8; 4096]);
        }
        if let Some(mut stream) = handshake(addr, API_TOKEN) {
            // A masked text frame claiming 1 GiB.
            let mut frame = vec![0x81, 0xff];
            frame.extend_from_slice(&(1u64 << 30).to_be_bytes());
            frame.extend_from_slice(&[1, 2, 3, 4]);
            frame.resize(frame.len() + 8192, b'x');
            let _ = stream.write_all(&frame);
            let _ = stream.read(&mut [0u8; 4096]);
        }
    }));
    // Bursts of 20 handshakes at once, past the cap of 16 (with the 4 readers).
    abusers.push(keep_doing(&stop, move || {
        let burst: Vec<_> = (0..20).filter_map(|_| handshake(addr, API_TOKEN)).collect();
        std::thread::sleep(Duration::from_millis(50));
        drop(burst);
    }));
    let flood_started = Instant::now();
    let mut peak_threads = 0;
    let mut peak_rss = 0;
    let mut probes = Vec::new();
    let mut signals = 0;
    while flood_started.elapsed() < Duration::from_secs(7) {
        let started = Instant::now();
        let (code, _) =
            http(addr, "GET", "/health", &[]).expect("a fresh probe must get an answer");
        probes.push(started.elapsed());
        assert_eq!(code, 200);
        peak_threads = peak_threads.max(proc_status(pid, "Threads:"));
        peak_rss = peak_rss.max(proc_status(pid, "VmRSS:"));
        // Signals keep flowing to the stream clients meanwhile.
        daemon.write_stdin(
            signal_line(&format!("f{signals}"), "BTC", "buy", 1.0, Some(1.0)).as_bytes(),
        );
        signals += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for abuser in abusers {
        abuser.join().unwrap();
    }
    drop(idle);
    probes.sort();
    let refused_streams = daemon
        .metric("stream_clients_refused_total", &[])
        .unwrap_or(0.0);
    eprintln!(
        "flood with intake and stream on (7 s): 1000 idle + 200 slowloris + garbage + 1 MiB heads + \
         oversized bodies + failed tokens + WebSocket handshakes past the cap ({refused_streams} refused) \
         and garbage or 1 GiB frames; fresh /health {}; threads {threads_before} -> peak {peak_threads}; \
         RSS peak {peak_rss} KiB",
        summary(&probes)
    );
    // Loose bounds (the figures above are what RELIABILITY.md quotes): a
    // loaded CI machine must not fail on scheduling noise.
    assert!(*probes.last().unwrap() < Duration::from_secs(1));
    assert!(*under_auth_flood.last().unwrap() < Duration::from_secs(1));
    assert!(
        peak_threads <= threads_before + 1,
        "threads grew to {peak_threads}"
    );
    assert!(peak_rss < 96 * 1024, "RSS reached {peak_rss} KiB");
    assert!(refused_streams > 0.0, "the cap never refused anyone");

    // The readers got every signal, in order, through all of it.
    for mut reader in readers {
        let mut expected = 1;
        while expected <= signals {
            match reader.read().unwrap() {
                tungstenite::Message::Text(text) => {
                    let message: serde_json::Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(message["seq"], expected);
                    expected += 1;
                }
                _ => continue,
            }
        }
    }
    // The journal's sync thread, once the first commit starts it, lives as
    // long as the journal: the one thread allowed beyond those at start.
    assert!(wait_until(SOON, || proc_status(pid, "Threads:") <= threads_before + 1));
    assert_eq!(daemon.health().0, 200);
    assert!(daemon.stop().success());
}
