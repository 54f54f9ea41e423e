//! The health port under abuse (idle floods, slowloris, garbage, oversized
//! heads, pipelining): a fresh probe is still answered, threads and memory
//! stay bounded, and the server is whole again when the abuse stops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kit::abuse::{keep_doing, slowloris};
use crate::kit::daemon::Builder;
use crate::kit::http::{exchange, http};
use crate::kit::process::proc_status;
use crate::kit::wait::{wait_until, SOON};

/// A request head past the server's limits, on its own connection: one
/// header line of `line_bytes`, then `count` small headers.
fn oversized_head(line_bytes: usize, count: usize) -> Vec<u8> {
    let mut head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    head.resize(head.len() + line_bytes, b'a');
    head.extend_from_slice(b"\r\n");
    for index in 0..count {
        head.extend_from_slice(format!("X-Many-{index}: {index}\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// What one round of abuse did to the daemon, as seen from outside.
struct Round {
    probes: Vec<Duration>,
    peak_threads: u64,
    peak_rss_kib: u64,
    reconnects: u64,
    refused_heads: u64,
}

impl Round {
    fn percentile(&self, percent: usize) -> Duration {
        let mut sorted = self.probes.clone();
        sorted.sort();
        sorted[(sorted.len() - 1) * percent / 100]
    }

    fn over(&self, limit: Duration) -> usize {
        self.probes.iter().filter(|probe| **probe > limit).count()
    }

    fn slowest(&self) -> Duration {
        self.probes.iter().copied().max().unwrap_or_default()
    }
}

/// 1,000 idle connections, 200 slowloris clients, garbage, 64 KiB heads and
/// heads with a 1 MiB line or 2,000 headers, all at once for `length`,
/// while a fresh client asks for `/health` every 20 ms and times the answer.
fn flood(addr: SocketAddr, pid: i32, length: Duration) -> Round {
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    assert!(
        idle.len() >= 900,
        "only {} idle connections opened",
        idle.len()
    );

    let stop = Arc::new(AtomicBool::new(false));
    let reconnects = Arc::new(AtomicU64::new(0));
    let refused_heads = Arc::new(AtomicU64::new(0));
    let mut abusers = vec![slowloris(addr, "/health", &stop, Arc::clone(&reconnects))];
    abusers.push(keep_doing(&stop, move || {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let _ = stream.write_all(b"\x00\x16\x03\x01 garbage that is not HTTP\r\n\r\n");
            let _ = stream.read(&mut [0u8; 256]);
        }
    }));
    abusers.push(keep_doing(&stop, move || {
        if let Ok(mut stream) = TcpStream::connect(addr) {
            let mut head = b"GET /health HTTP/1.1\r\nX-Big: ".to_vec();
            head.resize(head.len() + 64 * 1024, b'a');
            let _ = stream.write_all(&head);
            let _ = stream.read(&mut [0u8; 256]);
        }
    }));
    for (line_bytes, count) in [(1024 * 1024, 0), (0, 2000)] {
        let refused = Arc::clone(&refused_heads);
        abusers.push(keep_doing(&stop, move || {
            let Ok(response) = exchange(addr, &oversized_head(line_bytes, count)) else {
                return;
            };
            let response = String::from_utf8_lossy(&response);
            assert!(
                !response.starts_with("HTTP/1.1 200"),
                "a head of {line_bytes} bytes + {count} headers was served"
            );
            if response.starts_with("HTTP/1.1 431") {
                refused.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Pipelined requests on one connection are all answered, in order.
    let mut pipelined = TcpStream::connect(addr).unwrap();
    pipelined
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut requests = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n".repeat(49);
    requests.push_str("GET /livez HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    pipelined.write_all(requests.as_bytes()).unwrap();
    let mut answers = String::new();
    pipelined.read_to_string(&mut answers).unwrap();
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 50);

    let mut round = Round {
        probes: Vec::new(),
        peak_threads: 0,
        peak_rss_kib: 0,
        reconnects: 0,
        refused_heads: 0,
    };
    let probing_until = Instant::now() + length;
    while Instant::now() < probing_until {
        let started = Instant::now();
        let (code, _) =
            http(addr, "GET", "/health", &[]).expect("a fresh probe must get an answer");
        round.probes.push(started.elapsed());
        assert_eq!(code, 200);
        round.peak_threads = round.peak_threads.max(proc_status(pid, "Threads:"));
        round.peak_rss_kib = round.peak_rss_kib.max(proc_status(pid, "VmRSS:"));
        std::thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for abuser in abusers {
        abuser.join().unwrap();
    }
    drop(idle);
    round.reconnects = reconnects.load(Ordering::Relaxed);
    round.refused_heads = refused_heads.load(Ordering::Relaxed);
    round
}

/// Prints the figures RELIABILITY.md quotes:
///
///     cargo test --features failpoints --test heavy -- abuse_http --nocapture
#[test]
fn a_fresh_probe_is_served_through_a_flood_and_the_server_recovers() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    let addr = daemon.addr();
    let pid = daemon.pid();
    let threads_before = proc_status(pid, "Threads:");

    let first = flood(addr, pid, Duration::from_secs(7));
    // Recovered: threads back where they were, and new clients served at
    // once, each on a fresh connection.
    assert!(
        wait_until(SOON, || proc_status(pid, "Threads:") <= threads_before),
        "threads stayed at {} after the flood (were {threads_before})",
        proc_status(pid, "Threads:")
    );
    let mut after = Vec::new();
    for _ in 0..100 {
        let started = Instant::now();
        assert_eq!(daemon.get("/health").0, 200);
        after.push(started.elapsed());
    }
    let rss_between_kib = proc_status(pid, "VmRSS:");
    // A second, identical flood: whatever the first one cost and did not
    // give back must not grow much again. Allocator arenas settle by a few
    // MB; a leak of even 1 KiB per connection would add tens over the
    // ~10,000 connections a round makes.
    let second = flood(addr, pid, Duration::from_secs(7));

    let mut probes = first.probes.clone();
    probes.extend(&second.probes);
    let all = Round {
        probes,
        peak_threads: first.peak_threads.max(second.peak_threads),
        peak_rss_kib: first.peak_rss_kib.max(second.peak_rss_kib),
        reconnects: first.reconnects + second.reconnects,
        refused_heads: first.refused_heads + second.refused_heads,
    };
    eprintln!(
        "flood (2 rounds of 7 s): 1000 idle + 200 slowloris ({} reconnects) + garbage + 64 KiB heads \
         + 1 MiB header lines + 2000-header heads ({} answered 431); {} fresh probes of /health: \
         p50 {:?}, p99 {:?}, max {:?}, {} over 100 ms; threads {threads_before} -> peak {}; \
         RSS peak {} KiB in round 1, {rss_between_kib} KiB between rounds, peak {} KiB in round 2; \
         after the flood {} fresh probes, slowest {:?}",
        all.reconnects,
        all.refused_heads,
        all.probes.len(),
        all.percentile(50),
        all.percentile(99),
        all.slowest(),
        all.over(Duration::from_millis(100)),
        all.peak_threads,
        first.peak_rss_kib,
        second.peak_rss_kib,
        after.len(),
        after.iter().max().unwrap(),
    );
    // The 100 ms figure is measured and printed above; these bounds only
    // catch a probe locked out behind the flood on a loaded machine.
    assert!(
        all.slowest() < Duration::from_secs(1),
        "slowest fresh probe took {:?}",
        all.slowest()
    );
    assert!(
        all.peak_threads <= threads_before + 1,
        "threads grew from {threads_before} to {}: a thread per connection?",
        all.peak_threads
    );
    assert!(
        all.peak_rss_kib < 64 * 1024,
        "RSS reached {} KiB",
        all.peak_rss_kib
    );
    assert!(
        second.peak_rss_kib < first.peak_rss_kib + 12 * 1024,
        "RSS grew from round to round: {} KiB then {} KiB",
        first.peak_rss_kib,
        second.peak_rss_kib
    );
    assert!(all.refused_heads > 0, "no oversized head was answered 431");

    assert_eq!(daemon.get("/health").0, 200);
    let (code, metrics) = daemon.get("/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("tradingbot_http_requests_total{path=\"/health\",code=\"200\"}"));
}
