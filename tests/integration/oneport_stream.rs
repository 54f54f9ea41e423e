//! The event stream on the main port, with a real WebSocket client
//! (tungstenite): fills, rejects and duplicates live and in order, a
//! replay after a seq that loses nothing across a reconnect and a daemon
//! restart, 50 clients that each get every fill, a client that stops
//! reading dropped with a close frame while the others go on, keep-alive
//! pings, limits, and the SSE twin.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

use crate::kit::daemon::{stdin_bot, Builder, Daemon};
use crate::kit::journal::{read_journal, signal_line};
use crate::kit::wait::{wait_until, SOON};

const API_TOKEN: &str = "read-0nly-t0ken-for-the-stream";

fn stream_bot(builder: Builder) -> Builder {
    builder.env("API_TOKEN", API_TOKEN)
}

struct Client {
    socket: WebSocket<TcpStream>,
}

/// Connects to `/ws?{query}` with the read token: the client, or the HTTP
/// status the handshake was refused with.
fn connect(addr: SocketAddr, query: &str) -> Result<Client, u16> {
    connect_raw(addr, &format!("/ws?token={API_TOKEN}&{query}"))
}

fn connect_raw(addr: SocketAddr, path: &str) -> Result<Client, u16> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(SOON)).unwrap();
    match tungstenite::client(format!("ws://{addr}{path}"), stream) {
        Ok((socket, _)) => Ok(Client { socket }),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("handshake: {error}"),
    }
}

impl Client {
    /// The next message: JSON text, or `None` once the stream closed
    /// (with the close frame's code and reason in `closed`).
    fn next(&mut self, closed: &mut Option<(CloseCode, String)>) -> Option<Value> {
        loop {
            match self.socket.read() {
                Ok(Message::Text(text)) => return Some(serde_json::from_str(&text).unwrap()),
                Ok(Message::Close(frame)) => {
                    *closed = frame.map(|frame| (frame.code, frame.reason.to_string()));
                    return None;
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next message, which must come.
    fn expect(&mut self) -> Value {
        let mut closed = None;
        self.next(&mut closed)
            .unwrap_or_else(|| panic!("the stream ended: {closed:?}"))
    }

    /// Reads until `count` fills have come; returns their seqs, in order,
    /// and every message seen.
    fn fills(&mut self, count: usize) -> (Vec<u64>, Vec<Value>) {
        let mut seqs = Vec::new();
        let mut all = Vec::new();
        while seqs.len() < count {
            let message = self.expect();
            if message["type"] == "fill" {
                seqs.push(message["seq"].as_u64().unwrap());
            }
            all.push(message);
        }
        (seqs, all)
    }
}

fn journal_fills(daemon: &Daemon) -> Vec<u64> {
    fills_in(&daemon.state_dir())
}

/// The seqs of the fills in the journal in `state_dir`.
fn fills_in(state_dir: &std::path::Path) -> Vec<u64> {
    read_journal(state_dir)
        .iter()
        .enumerate()
        .filter(|(_, record)| record["t"] == "fill")
        .map(|(index, _)| index as u64 + 1)
        .collect()
}

fn lines(from: usize, to: usize) -> String {
    (from..to)
        .map(|index| signal_line(&format!("s{index}"), "BTC", "buy", 1.0, Some(100.0)))
        .collect()
}

#[test]
fn fills_rejects_and_duplicates_stream_live_in_order_and_replay_after_a_seq() {
    let mut daemon = stream_bot(stdin_bot()).spawn();
    daemon.wait_ready();
    let addr = daemon.addr();
    let mut live = connect(addr, "").unwrap();
    let health = live.expect();
    assert_eq!(health["type"], "health", "{health}");
    assert_eq!(health["status"], "healthy");

    daemon.write_stdin(lines(0, 5).as_bytes());
    let (seqs, _) = live.fills(5);
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    daemon.write_stdin(b"not json\n");
    daemon.write_stdin(lines(2, 3).as_bytes());
    let reject = live.expect();
    assert_eq!(reject["type"], "reject", "{reject}");
    assert_eq!(reject["seq"], 6);
    assert_eq!(reject["reason"], "not_json");
    let duplicate = live.expect();
    assert_eq!(duplicate["type"], "duplicate", "{duplicate}");
    assert_eq!(duplicate["id"], "s2");
    assert_eq!(duplicate["seq"], 6, "it follows the record before it");

    // A fill carries the read API's fields.
    let mut replay = connect(addr, "after=2&types=fill").unwrap();
    let fill = replay.expect();
    for field in [
        "seq", "id", "ts", "at", "symbol", "side", "qty", "price", "asked", "fee", "src",
    ] {
        assert!(fill.get(field).is_some(), "{field} missing: {fill}");
    }
    assert_eq!(
        (fill["seq"].as_u64(), fill["id"].as_str()),
        (Some(3), Some("s2"))
    );
    assert_eq!(
        (&fill["qty"], &fill["price"]),
        (&"1".into(), &"100".into()),
        "exact decimals, as strings"
    );
    assert_eq!(replay.fills(2).0, [4, 5]);
    daemon.write_stdin(lines(10, 11).as_bytes());
    let next = replay.expect();
    assert_eq!(
        (next["type"].as_str(), next["seq"].as_u64()),
        (Some("fill"), Some(7))
    );
    assert_eq!(live.fills(1).0, [7]);

    // The read token, and only it, opens the stream.
    assert_eq!(connect_raw(addr, "/ws").err(), Some(401));
    assert_eq!(connect_raw(addr, "/ws?token=nope").err(), Some(401));
    assert_eq!(
        connect_raw(addr, &format!("/ws?token={API_TOKEN}&after=x")).err(),
        Some(400)
    );
    assert_eq!(
        connect_raw(addr, &format!("/ws?token={API_TOKEN}&types=fill,bogus")).err(),
        Some(400)
    );
    let (code, _) = daemon.get(&format!("/ws?token={API_TOKEN}"));
    assert_eq!(code, 426, "a plain GET is told to upgrade");
    assert!(daemon.stop().success());
    let mut closed = None;
    while live.next(&mut closed).is_some() {}
    let (code, reason) = closed.expect("a close frame at the stop");
    assert_eq!(code, CloseCode::Away);
    assert!(reason.contains("after=7"), "{reason}");
}

/// Without `after`, "now" is when the handshake was answered, not when the
/// stream thread got to the client: fills made durable in between come.
#[test]
fn a_client_without_after_gets_what_was_decided_after_its_handshake() {
    let mut daemon = stream_bot(stdin_bot())
        .env("FAILPOINTS", "stream::client=1*sleep(3000)")
        .spawn();
    daemon.wait_ready();
    let mut late = connect(daemon.addr(), "types=fill").unwrap();
    daemon.write_stdin(lines(0, 3).as_bytes());
    // Durable while the stream thread still sleeps on the client.
    assert!(wait_until(SOON, || journal_fills(&daemon).len() == 3));
    assert_eq!(late.fills(3).0, [1, 2, 3]);
    assert!(daemon.stop().success());
}

/// The second "done when" of issue 12: resume after reconnect loses nothing
/// across a daemon restart.
#[test]
fn a_client_that_resumes_after_its_last_seq_loses_nothing_across_a_restart() {
    let builder = stream_bot(stdin_bot());
    let state = builder.dir().join("state");
    let mut daemon = builder.spawn();
    daemon.wait_ready();
    let mut client = connect(daemon.addr(), "after=0&types=fill").unwrap();
    daemon.write_stdin(lines(0, 300).as_bytes());
    // It reads 120 fills, then goes away; the daemon goes on.
    let (mut seen, _) = client.fills(120);
    drop(client);
    daemon.write_stdin(lines(300, 400).as_bytes());
    let mut client = connect(
        daemon.addr(),
        &format!("after={}&types=fill", seen.last().unwrap()),
    )
    .unwrap();
    seen.extend(client.fills(100).0);
    // The daemon stops mid-stream; the client keeps what it got.
    assert!(daemon.stop().success());
    let mut closed = None;
    while let Some(message) = client.next(&mut closed) {
        seen.push(message["seq"].as_u64().unwrap());
    }
    let stopped_at = *seen.last().unwrap();
    assert!(closed.is_some_and(|(_, reason)| reason.contains(&format!("after={stopped_at}"))));

    // A new daemon on the same journal; more signals; the client comes back.
    let mut restarted = stream_bot(stdin_bot()).env("STATE_DIR", &state).spawn();
    restarted.wait_ready();
    restarted.write_stdin(lines(400, 450).as_bytes());
    restarted.wait_metric("signals_total", &[("result", "filled")], 50.0);
    let mut client = connect(restarted.addr(), &format!("after={stopped_at}&types=fill")).unwrap();
    seen.extend(client.fills(450 - seen.len()).0);
    let journal = fills_in(&state);
    assert_eq!(journal.len(), 450);
    assert_eq!(seen, journal, "every fill, once, in journal order");
    assert!(restarted.stop().success());
}

#[test]
fn fifty_clients_each_get_every_fill_in_order() {
    const CLIENTS: usize = 50;
    const SIGNALS: usize = 5_000;
    let mut daemon = stream_bot(stdin_bot()).spawn();
    daemon.wait_ready();
    let addr = daemon.addr();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| connect(addr, "types=fill").unwrap())
        .collect();
    assert!(wait_until(SOON, || daemon.metric("stream_clients", &[])
        == Some(CLIENTS as f64)));
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| std::thread::spawn(move || client.fills(SIGNALS).0))
        .collect();
    let started = Instant::now();
    daemon.write_stdin(lines(0, SIGNALS).as_bytes());
    let mut health = Vec::new();
    while health.len() < 50 {
        let asked = Instant::now();
        assert_eq!(daemon.get("/health").0, 200);
        health.push(asked.elapsed());
    }
    let received: Vec<Vec<u64>> = readers
        .into_iter()
        .map(|reader| reader.join().unwrap())
        .collect();
    let delivered = started.elapsed();
    let journal = journal_fills(&daemon);
    assert_eq!(journal.len(), SIGNALS);
    for seqs in &received {
        assert_eq!(seqs, &journal);
    }
    health.sort();
    eprintln!(
        "{CLIENTS} clients x {SIGNALS} fills delivered in {delivered:?}; /health during it: p50 {:?}, max {:?}",
        health[health.len() / 2],
        health.last().unwrap()
    );
    assert!(daemon.stop().success());
}

#[test]
fn a_client_that_stops_reading_is_dropped_and_the_others_are_not_held_up() {
    const SIGNALS: usize = 60_000;
    let mut daemon = stream_bot(stdin_bot()).env("WS_SEND_TIMEOUT", "1s").spawn();
    daemon.wait_ready();
    let addr = daemon.addr();
    let mut stalled = connect(addr, "types=fill").unwrap();
    let mut reader = connect(addr, "types=fill").unwrap();
    let started = Instant::now();
    let reading = std::thread::spawn(move || {
        let (seqs, _) = reader.fills(SIGNALS);
        (seqs, started.elapsed(), reader)
    });
    daemon.write_stdin(lines(0, SIGNALS).as_bytes());
    daemon.wait_metric("stream_clients_dropped_total", &[("reason", "slow")], 1.0);
    // Reading again, it finds what was buffered, then the reason.
    let mut closed = None;
    let mut got = 0;
    while stalled.next(&mut closed).is_some() {
        got += 1;
    }
    let (code, reason) = closed.expect("a close frame with the reason");
    assert_eq!(code, CloseCode::Policy);
    assert!(
        reason.contains("too slow") && reason.contains(&format!("after={got}")),
        "{reason} ({got} received)"
    );
    assert!(got < SIGNALS, "it was dropped before the end");
    let (seqs, took, _reader) = reading.join().unwrap();
    eprintln!("{SIGNALS} fills to a reading client beside one that stopped: {took:?}");
    assert_eq!(seqs, journal_fills(&daemon));
    assert_eq!(daemon.metric("stream_clients", &[]), Some(1.0));
    assert_eq!(daemon.health().0, 200);
}

#[test]
fn pings_keep_it_alive_silence_and_oversized_frames_end_it_and_clients_are_capped() {
    let daemon = stream_bot(Builder::new())
        .env("WS_PING_INTERVAL", "1s")
        .env("WS_MAX_CLIENTS", "3")
        .spawn();
    daemon.wait_ready();
    let addr = daemon.addr();
    // A client that answers (tungstenite answers pings as it reads) stays.
    let mut answering = connect(addr, "types=fill").unwrap();
    answering
        .socket
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let pinged = Instant::now();
    match answering.socket.read().unwrap() {
        Message::Ping(_) => {}
        other => panic!("{other:?}"),
    }
    eprintln!("first ping after {:?}", pinged.elapsed());

    // A client that completes the handshake and then says nothing.
    let mut silent = TcpStream::connect(addr).unwrap();
    write!(
        silent,
        "GET /ws?token={API_TOKEN} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = String::new();
    BufReader::new(&silent).read_line(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // The cap: this third client fills it, a fourth is refused.
    let third = connect(addr, "").unwrap();
    assert_eq!(connect(addr, "").err(), Some(503));
    daemon.wait_metric(
        "stream_clients_dropped_total",
        &[("reason", "no_pong")],
        1.0,
    );
    // The third read nothing either, so it answered no ping: it may be
    // going the same way, and says nothing more here.
    drop(third);

    // An oversized frame: refused with 1009 (a fresh client, in the slot
    // the silent one left).
    let mut big = connect(addr, "").unwrap();
    big.socket
        .send(Message::text("x".repeat(64 * 1024)))
        .unwrap();
    let mut closed = None;
    while big.next(&mut closed).is_some() {}
    assert_eq!(closed.map(|(code, _)| code), Some(CloseCode::Size));
    daemon.wait_metric(
        "stream_clients_dropped_total",
        &[("reason", "too_big")],
        1.0,
    );
    // Garbage instead of frames: the connection ends, nothing else does.
    let mut garbage = connect(addr, "").unwrap();
    garbage.socket.get_mut().write_all(&[0xff; 4096]).unwrap();
    let mut closed = None;
    while garbage.next(&mut closed).is_some() {}
    // The answering client is the one left.
    assert!(wait_until(SOON, || daemon.metric("stream_clients", &[]) == Some(1.0)));
    assert_eq!(daemon.health().0, 200);
    drop(silent);
}

#[test]
fn the_sse_twin_replays_streams_and_resumes_from_the_last_event_id() {
    let mut daemon = stream_bot(stdin_bot()).spawn();
    daemon.wait_ready();
    daemon.write_stdin(lines(0, 3).as_bytes());
    daemon.wait_metric("signals_total", &[("result", "filled")], 3.0);
    let addr = daemon.addr();
    let open = |headers: &str, query: &str| {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(SOON)).unwrap();
        write!(
            stream,
            "GET /events?{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n{headers}\r\n"
        )
        .unwrap();
        BufReader::new(stream)
    };
    // Reads events until `count` `event: fill` blocks: their ids.
    let read_fills = |reader: &mut BufReader<TcpStream>, count: usize| {
        let mut ids = Vec::new();
        let mut id = 0;
        let mut line = String::new();
        while ids.len() < count {
            line.clear();
            assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended");
            if let Some(value) = line.strip_prefix("id: ") {
                id = value.trim().parse().unwrap();
            }
            if line == "event: fill\n" {
                ids.push(id);
            }
        }
        ids
    };
    let mut events = open("", "after=1");
    let mut head = String::new();
    events.read_line(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(read_fills(&mut events, 2), [2, 3]);
    daemon.write_stdin(lines(3, 4).as_bytes());
    assert_eq!(read_fills(&mut events, 1), [4]);
    // An EventSource reconnects with the last id it saw.
    let mut resumed = open("Last-Event-ID: 2\r\n", "types=fill");
    assert_eq!(read_fills(&mut resumed, 2), [3, 4]);
    // The connection's maximum age (60 s) does not apply to a stream;
    // the stream's own ping keeps going instead (not waited for here).
    assert!(daemon.stop().success());
}
