//! The webhook under abuse: wrong tokens answered in time that does not
//! depend on the guess, huge bodies refused unread, broken framing refused.
//! (Dribbled bodies and a flood killed mid-way take seconds: `heavy`'s
//! `hardening_webhook`.)

use std::collections::HashMap;
use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::kit::daemon::{Builder, Daemon};
use crate::kit::http::read_response;
use crate::kit::journal::signal_line;
use crate::kit::process::proc_status;
use crate::kit::wait::SOON;
use crate::kit::webhook::{post_signals, webhook_bot};

const TOKEN: &str = "hw-7fQ2-very-secret-webhook-token-0123456789abcdef0123456789abcdef";

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// One request on a kept-alive connection: the status code (body read and dropped).
fn keep_alive_request(reader: &mut BufReader<TcpStream>, request: &[u8]) -> u16 {
    reader.get_mut().write_all(request).unwrap();
    read_response(reader)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}

#[test]
fn wrong_tokens_are_refused_in_time_that_does_not_depend_on_the_guess() {
    let (builder, addr) = webhook_bot(Builder::new().env("WEBHOOK_TOKEN", TOKEN));
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
    let (code, answer) = post_signals(addr, TOKEN, body.as_bytes()).unwrap();
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
    let (builder, addr) = webhook_bot(Builder::new().env("WEBHOOK_TOKEN", TOKEN));
    let daemon = builder.spawn();
    daemon.wait_ready();
    let rss = |daemon: &Daemon| proc_status(daemon.pid(), "VmHWM:");
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
    let (builder, addr) = webhook_bot(Builder::new().env("WEBHOOK_TOKEN", TOKEN));
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
        let (code, answer) = post_signals(addr, TOKEN, body.as_bytes()).unwrap();
        assert_eq!(code, 400, "{answer}");
        assert!(answer.contains(reason), "{answer}");
    }
    let filled: Vec<String> = daemon
        .records("fill")
        .iter()
        .map(|record| record["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        filled.iter().all(|id| id == "both"),
        "a broken or smuggled request filled something: {filled:?}"
    );
    assert_eq!(daemon.health().0, 200);
}
