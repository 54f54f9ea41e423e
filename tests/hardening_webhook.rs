//! The webhook under abuse: wrong tokens answered in time that does not
//! depend on the guess, huge bodies refused unread, dribbled bodies cut off
//! without holding up anyone else, broken framing refused, and a flood
//! beyond capacity that is SIGKILLed mid-way: every 202 is in the journal,
//! once, and nothing half-written survives a restart.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{
    free_port, http_with_body, read_journal, read_journal_so_far, signal_line, wait_until, Builder,
    Daemon, SIGKILL, SOON,
};

pub const TOKEN: &str = "hw-7fQ2-very-secret-webhook-token-0123456789abcdef0123456789abcdef";

/// A builder for a bot with the webhook source on a free port.
pub fn webhook_bot(builder: Builder) -> (Builder, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let builder = builder
        .arg("--source")
        .arg("webhook")
        .env("WEBHOOK_BIND", addr.to_string())
        .env("WEBHOOK_TOKEN", TOKEN);
    (builder, addr)
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// One request on a kept-alive connection: the status code (body read and dropped).
fn keep_alive_request(reader: &mut BufReader<TcpStream>, request: &[u8]) -> u16 {
    reader.get_mut().write_all(request).unwrap();
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    let code = status[9..12].parse().unwrap();
    let mut length = 0;
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    reader.read_exact(&mut vec![0; length]).unwrap();
    code
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[test]
fn wrong_tokens_are_refused_in_time_that_does_not_depend_on_the_guess() {
    let (builder, addr) = webhook_bot(Builder::new());
    let daemon = builder.spawn();
    daemon.wait_ready();
    let body = signal_line("t1", "BTC", "buy", 1.0, Some(1.0));
    let mut near = TOKEN.to_owned();
    near.pop();
    near.push('X');
    let far = format!("X{}", &TOKEN[1..]);
    let short = "X".to_owned();
    let guesses = [("near miss", near), ("far miss", far), ("short", short)];
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(SOON)).unwrap();
    let mut reader = BufReader::new(stream);
    let mut timings: HashMap<&str, Vec<Duration>> = HashMap::new();
    // Interleaved, on one connection, so drift and connection set-up
    // weigh the same on every kind of guess.
    for _ in 0..150 {
        for (kind, guess) in &guesses {
            let request = format!(
                "POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {guess}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let started = Instant::now();
            let code = keep_alive_request(&mut reader, request.as_bytes());
            timings.entry(kind).or_default().push(started.elapsed());
            assert_eq!(code, 401, "{kind}");
        }
    }
    let medians: Vec<(&str, Duration)> = guesses
        .iter()
        .map(|(kind, _)| (*kind, median(timings.remove(kind).unwrap())))
        .collect();
    eprintln!("401 median latency by guess: {medians:?}");
    let fastest = medians.iter().map(|(_, time)| *time).min().unwrap();
    let slowest = medians.iter().map(|(_, time)| *time).max().unwrap();
    // Network noise dwarfs a 64-byte comparison either way; this only
    // catches a gross difference (a sleep, a lookup, a lockout by guess).
    assert!(
        slowest <= fastest * 3 + Duration::from_micros(500),
        "median 401 latency differs by guess: {medians:?}"
    );
    // Many wrong guesses do not lock the right token out.
    let (code, answer) = http_with_body(
        addr,
        "POST",
        "/signals",
        &[("Authorization", &bearer())],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 202, "{answer}");
    assert_eq!(
        daemon.journal().len(),
        1,
        "only the authorized request is journaled"
    );
}

/// Sends only a request head and returns the answer, read until close.
fn head_only(addr: SocketAddr, head: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(SOON)).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn huge_bodies_are_refused_before_they_are_read() {
    let (builder, addr) = webhook_bot(Builder::new());
    let daemon = builder.spawn();
    daemon.wait_ready();
    let rss = |daemon: &Daemon| {
        std::fs::read_to_string(format!("/proc/{}/status", daemon.pid()))
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap()
    };
    let peak_before = rss(&daemon);
    // A declared 10 GB body: 413 at once, without a byte of it sent.
    let started = Instant::now();
    let answer = head_only(
        addr,
        &format!(
            "POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: 10000000000\r\n\r\n",
            bearer()
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Unauthenticated, it is 401 before the size is even looked at.
    let answer = head_only(
        addr,
        "POST /signals HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    // 10 MB actually sent, chunked (no length to refuse it by): cut off
    // at the limit with 413.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(SOON)).unwrap();
    write!(
        stream,
        "POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        bearer()
    )
    .unwrap();
    let chunk = vec![b'{'; 64 * 1024];
    for _ in 0..160 {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if stream.write_all(&framed).is_err() {
            break;
        }
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let growth = rss(&daemon).saturating_sub(peak_before);
    eprintln!("huge bodies: peak RSS growth {growth} KiB");
    assert!(growth < 8 * 1024, "refused bodies grew RSS by {growth} KiB");
    assert!(daemon.journal().is_empty());
    assert_eq!(daemon.health().0, 200);
}

#[test]
fn broken_framing_is_refused_and_nothing_is_journaled() {
    let (builder, addr) = webhook_bot(Builder::new());
    let daemon = builder.spawn();
    daemon.wait_ready();
    let auth = bearer();
    let line = |id: &str| signal_line(id, "BTC", "buy", 1.0, Some(1.0));
    let broken = [
        // Bad chunk size.
        format!("POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", line("chunk")),
        // Two lengths that disagree.
        format!("POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 5\r\nContent-Length: {}\r\n\r\n{}", line("lengths").len(), line("lengths")),
        // Not HTTP at all, then a body.
        format!("\x16\x03\x01\x00 garbage\r\n\r\n{}", line("garbage")),
        // A body that ends (the client half-closes) before its declared length.
        format!("POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n{}", line("short").len() + 100, line("short")),
    ];
    for request in &broken {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(SOON)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 400"), "{request:?}: {answer}");
    }
    // Length and chunked at once (a smuggling shape): RFC 9112 lets the
    // chunked framing win, and then the request is whole, answered and
    // the connection closed, so nothing smuggled behind it is read.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(SOON)).unwrap();
    write!(
        stream,
        "POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\nPOST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: {}\r\n\r\n{}",
        line("both").len(),
        line("both"),
        line("smuggled").len(),
        line("smuggled"),
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{answer}");
    // Invalid JSON, an array of signals and NULs: 400 with a reason each.
    for (body, reason) in [
        ("{\"id\":\"j\",".to_owned(), "not_json"),
        (format!("[{}]", line("array").trim_end()), "not_object"),
        ("\0\0\0\0".to_owned(), "not_json"),
    ] {
        let (code, answer) = http_with_body(
            addr,
            "POST",
            "/signals",
            &[("Authorization", &auth)],
            body.as_bytes(),
        )
        .unwrap();
        assert_eq!(code, 400, "{answer}");
        assert!(answer.contains(reason), "{answer}");
    }
    let filled: Vec<String> = daemon
        .journal()
        .iter()
        .filter(|record| record["t"] == "fill")
        .map(|record| record["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        filled.iter().all(|id| id == "both"),
        "a broken or smuggled request filled something: {filled:?}"
    );
    assert_eq!(daemon.health().0, 200);
}

#[test]
fn dribbled_bodies_hold_up_neither_other_clients_nor_the_loop_and_are_cut_off() {
    let (builder, addr) = webhook_bot(Builder::new());
    let daemon = builder.spawn();
    daemon.wait_ready();
    // Twenty clients send a head, then a body byte every 200 ms.
    let line = signal_line("slow", "BTC", "buy", 1.0, Some(1.0));
    let mut dribblers: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut stream = TcpStream::connect(addr).unwrap();
            write!(
                stream,
                "POST /signals HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Length: {}\r\n\r\n",
                bearer(),
                line.len()
            )
            .unwrap();
            stream
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let dribbling = {
        let stop = Arc::clone(&stop);
        let mut streams: Vec<TcpStream> =
            dribblers.iter().map(|s| s.try_clone().unwrap()).collect();
        std::thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) && sent < line.len() - 1 {
                for stream in &mut streams {
                    let _ = stream.write_all(&line.as_bytes()[sent..sent + 1]);
                }
                sent += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    // Meanwhile others are served at once, and the loop keeps beating.
    let mut slowest = Duration::ZERO;
    for index in 0..20 {
        let started = Instant::now();
        let (code, answer) = http_with_body(
            addr,
            "POST",
            "/signals",
            &[("Authorization", &bearer())],
            signal_line(&format!("fast{index}"), "BTC", "buy", 1.0, Some(1.0)).as_bytes(),
        )
        .unwrap();
        slowest = slowest.max(started.elapsed());
        assert_eq!(code, 202, "{answer}");
    }
    let iterations = daemon.metric("loop_iterations_total", &[]).unwrap();
    daemon.wait_metric("loop_iterations_total", &[], iterations + 5.0);
    assert_eq!(daemon.health().0, 200);
    eprintln!("20 dribbled bodies: slowest of 20 other requests {slowest:?}");
    assert!(
        slowest < Duration::from_secs(2),
        "a request waited {slowest:?}"
    );

    // A dribbler is cut off with 408 once the body deadline passes.
    let started = Instant::now();
    for stream in &mut dribblers {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    eprintln!(
        "dribblers cut off within {:?} of the other requests",
        started.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    dribbling.join().unwrap();
    let filled: BTreeSet<String> = daemon
        .journal()
        .iter()
        .filter_map(|record| record["id"].as_str().map(str::to_owned))
        .collect();
    assert!(!filled.contains("slow"), "a dribbled body was journaled");
    assert_eq!(filled.len(), 20);
}

const CLIENTS: usize = 320;

#[test]
fn a_flood_killed_mid_way_acknowledged_only_what_is_durable() {
    let (builder, addr) = webhook_bot(Builder::new());
    let state_dir = builder.dir().join("state");
    let daemon = builder.spawn();
    daemon.wait_ready();
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    // 320 clients, each posting batches of 4 signals with ids of its own
    // as fast as it is answered: more requests at once than the loop's
    // channel holds (64 batches), so some wait on back-pressure.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let stop = Arc::clone(&stop);
            let refused = Arc::clone(&refused);
            let failed = Arc::clone(&failed);
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let mut slowest = Duration::ZERO;
                let mut batch = 0;
                while !stop.load(Ordering::Relaxed) {
                    let ids: Vec<String> =
                        (0..4).map(|n| format!("f{client}-{batch}-{n}")).collect();
                    let body: String = ids
                        .iter()
                        .map(|id| signal_line(id, "BTC", "buy", 1.0, Some(1.0)))
                        .collect();
                    batch += 1;
                    let started = Instant::now();
                    match http_with_body(
                        addr,
                        "POST",
                        "/signals",
                        &[("Authorization", &bearer())],
                        body.as_bytes(),
                    ) {
                        Ok((202, answer)) => {
                            assert_eq!(answer.matches("\"filled\"").count(), 4, "{answer}");
                            acked.extend(ids);
                            slowest = slowest.max(started.elapsed());
                        }
                        Ok((503, _)) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((code, answer)) => panic!("{code}: {answer}"),
                        Err(_) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                        }
                    }
                }
                (acked, slowest)
            })
        })
        .collect();
    // Let the flood build, check /health is served through it, then kill.
    assert!(wait_until(SOON, || read_journal_so_far(&state_dir).len() >= 2000));
    assert_eq!(daemon.health().0, 200);
    let mut daemon = daemon;
    daemon.signal(SIGKILL);
    daemon.wait_exit(SOON);
    stop.store(true, Ordering::Relaxed);
    let mut acked: Vec<String> = Vec::new();
    let mut slowest = Duration::ZERO;
    for client in clients {
        let (ids, waited) = client.join().unwrap();
        acked.extend(ids);
        slowest = slowest.max(waited);
    }

    // Straight after the kill: whole lines, save possibly a torn last one.
    let text = crate::common::journal_text(&state_dir);
    let lines: Vec<&str> = text.lines().collect();
    let torn = lines
        .iter()
        .filter(|line| serde_json::from_str::<serde_json::Value>(line).is_err())
        .count();
    assert!(
        torn == 0 || (torn == 1 && !text.ends_with('\n')),
        "{torn} unreadable journal lines"
    );

    // A restart on the same state recovers; every acknowledged id is a fill, once.
    let restarted = Builder::new().env("STATE_DIR", &state_dir).spawn();
    restarted.wait_ready();
    let records = read_journal(&state_dir);
    let mut fills: HashMap<&str, usize> = HashMap::new();
    for record in &records {
        if record["t"] == "fill" {
            *fills.entry(record["id"].as_str().unwrap()).or_default() += 1;
        }
    }
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !fills.contains_key(id.as_str()))
        .collect();
    let doubled = fills.values().filter(|count| **count > 1).count();
    eprintln!(
        "flood: {CLIENTS} clients, {} signals acknowledged (202), {} journaled, {} requests 503, \
         {} failed (connection cut by the kill), slowest 202 {slowest:?}; lost {}, doubled {doubled}, torn lines {torn}",
        acked.len(),
        fills.len(),
        refused.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged but not journaled: {lost:?}");
    assert_eq!(doubled, 0);
    assert!(acked.len() >= 500, "only {} acknowledged", acked.len());
}
