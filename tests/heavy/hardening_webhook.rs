//! The webhook under load beyond reason: dribbled bodies cut off without
//! holding up anyone else (the body deadline takes seconds), and a flood
//! beyond capacity SIGKILLed mid-way: every 202 is in the journal, once,
//! and nothing half-written survives a restart.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kit::daemon::Builder;
use crate::kit::journal::{journal_text, read_journal, signal_line};
use crate::kit::process::SIGKILL;
use crate::kit::wait::{wait_until, SOON};
use crate::kit::webhook::{post_signals, webhook_bot};
use crate::storm::ledger::read_journal_so_far;

const TOKEN: &str = "hw-7fQ2-very-secret-webhook-token-0123456789abcdef0123456789abcdef";

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[test]
fn dribbled_bodies_hold_up_neither_other_clients_nor_the_loop_and_are_cut_off() {
    let (builder, addr) = webhook_bot(Builder::new().env("WEBHOOK_TOKEN", TOKEN));
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
        let line = signal_line(&format!("fast{index}"), "BTC", "buy", 1.0, Some(1.0));
        let (code, answer) = post_signals(addr, TOKEN, line.as_bytes()).unwrap();
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
    let (builder, addr) = webhook_bot(Builder::new().env("WEBHOOK_TOKEN", TOKEN));
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
                    match post_signals(addr, TOKEN, body.as_bytes()) {
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
    let text = journal_text(&state_dir);
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
