//! Crashes across segment rolls and snapshot writes. A daemon whose
//! journal rolls every 2 KiB and which writes a snapshot every 10 ms is
//! fed by a file and a webhook client at once and SIGKILLed at random
//! instants (start-up and recovery included), `STORM_KILLS` times
//! (default 12; `STORM_KILLS=1000` for the long run, `CRASH_SEED` to
//! replay one). After every kill and beside every restarted daemon,
//! `tradingbot journal verify` must be clean; at the end every line of the
//! file and every acknowledged webhook signal is decided exactly once, and
//! the positions are a replay of the fills. Then a crash at each step of a
//! snapshot write, a roll, retention, the takeover and an fsync, by fail
//! point, loses and doubles nothing either.
//!
//!     STORM_KILLS=1000 cargo test --features failpoints --test heavy -- ledger_storm --nocapture

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::kit::daemon::{Builder, Daemon, READY};
use crate::kit::decimal;
use crate::kit::journal::{journal_command, latest_snapshot, read_journal, signal_line};
use crate::kit::port::Reserved;
use crate::kit::process::SIGKILL;
use crate::kit::wait::{wait_until, SOON};
use crate::kit::webhook::post_signals;
use crate::storm::rng::Rng;
use crate::storm::storm_bot;

const TOKEN: &str = "storm-token";

/// A signal with a price (the kit's storm signals lack one now and then).
fn line(rng: &mut Rng, id: &str) -> String {
    let symbol = ["BTC", "ETH"][rng.below(2) as usize];
    let side = ["buy", "sell"][rng.below(2) as usize];
    let qty = (1 + rng.below(3)) as f64;
    signal_line(id, symbol, side, qty, Some((90 + rng.below(20)) as f64))
}

fn assert_clean(state_dir: &Path, when: &str) {
    let (code, verdict) = journal_command(state_dir, &["verify"]);
    assert_eq!(code, 0, "journal verify {when}: {verdict}");
}

/// Every id decided exactly once, all `expected` among them, and the
/// positions a replay of the fills.
fn check_exactly_once(state_dir: &Path, expected: impl IntoIterator<Item = String>) -> usize {
    let mut decisions: BTreeMap<String, usize> = BTreeMap::new();
    let mut replay: BTreeMap<String, i128> = BTreeMap::new();
    for record in read_journal(state_dir) {
        if record["t"] == "ckpt" {
            continue;
        }
        *decisions
            .entry(record["id"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
        if record["t"] == "fill" {
            let sign = if record["side"] == "buy" { 1 } else { -1 };
            *replay
                .entry(record["symbol"].as_str().unwrap().to_owned())
                .or_default() += sign * decimal::of(&record["qty"]);
        }
    }
    let twice: Vec<_> = decisions.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "decided more than once: {twice:?}");
    for id in expected {
        assert!(decisions.contains_key(&id), "{id} was never decided");
    }
    let snapshot = latest_snapshot(state_dir);
    for (symbol, qty) in &replay {
        let held = decimal::of(&snapshot["positions"][symbol]["qty"]);
        assert_eq!(held, *qty, "{symbol}: held, replayed");
    }
    decisions.len()
}

/// Waits for the daemon to be ready; false if it could not bind its
/// webhook port (taken by another process in the moment between the test
/// letting go of it and the daemon binding it): not the ledger's doing.
fn ready_or_port_taken(daemon: &mut Daemon) -> bool {
    if daemon.log.wait_for(READY, SOON).is_some() {
        return true;
    }
    let log = daemon.log.all().join("\n");
    assert!(
        log.contains("Address already in use"),
        "daemon never became ready; log:\n{log}"
    );
    daemon.wait_exit(SOON);
    false
}

/// The kit's storm daemon with small segments and frequent snapshots, fed
/// by `feed` and the webhook on a fresh port, which `port` then names (a
/// port kept over a long storm is sooner or later taken by another
/// process on the machine).
fn ledger_storm_bot(state_dir: &Path, feed: &Path, port: &AtomicU16) -> Daemon {
    let webhook = Reserved::loopback();
    port.store(webhook.addr().port(), Ordering::SeqCst);
    storm_bot(state_dir)
        .env("JOURNAL_SEGMENT_SIZE", "2KiB")
        .env("SNAPSHOT_INTERVAL", "10ms")
        .env("WEBHOOK_TOKEN", TOKEN)
        .bind_env("WEBHOOK_BIND", webhook)
        .arg("--source")
        .arg(format!("file:{}", feed.display()))
        .arg("--source")
        .arg("webhook")
        .spawn()
}

#[test]
fn a_kill_storm_across_rolls_and_snapshots_loses_and_doubles_nothing() {
    let kills: usize = std::env::var("STORM_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(12);
    let mut rng = Rng::from_env();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let feed = dir.path().join("feed.jsonl");
    let port = Arc::new(AtomicU16::new(0));
    let file_lines: Vec<String> = (0..kills * 12)
        .map(|index| line(&mut rng, &format!("f-{index}")))
        .collect();
    let posts: Vec<String> = (0..kills * 4)
        .map(|index| line(&mut rng, &format!("h-{index}")))
        .collect();
    std::fs::write(&feed, "").unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let feed = feed.clone();
        let lines = file_lines.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&feed)
                .unwrap();
            for chunk in lines.chunks(3) {
                file.write_all(chunk.concat().as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(8));
            }
        })
    };
    let client = {
        let done = Arc::clone(&done);
        let posts = posts.clone();
        let port = Arc::clone(&port);
        std::thread::spawn(move || {
            let mut acknowledged = Vec::new();
            for (index, post) in posts.iter().enumerate() {
                loop {
                    let webhook = SocketAddr::from(([127, 0, 0, 1], port.load(Ordering::SeqCst)));
                    let answer = post_signals(webhook, TOKEN, post.as_bytes());
                    if matches!(answer, Ok((202, _))) {
                        acknowledged.push(format!("h-{index}"));
                        break;
                    }
                    if done.load(Ordering::SeqCst) {
                        return acknowledged;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            acknowledged
        })
    };

    let started = Instant::now();
    let mut in_start_up = 0;
    let mut kill = 0;
    while kill < kills {
        let mut daemon = ledger_storm_bot(&state, &feed, &port);
        if rng.below(3) == 0 {
            // Anywhere from exec on: start-up, recovery, the first batches.
            std::thread::sleep(Duration::from_millis(rng.below(120)));
            in_start_up += 1;
        } else {
            if !ready_or_port_taken(&mut daemon) {
                continue;
            }
            assert_clean(
                &state,
                &format!("beside the daemon restarted after kill {kill}"),
            );
            std::thread::sleep(Duration::from_millis(5 + rng.below(150)));
        }
        // It may be gone already: its port taken before it bound it.
        if !daemon.has_exited() {
            daemon.signal(SIGKILL);
        }
        daemon.wait_exit(SOON);
        kill += 1;
        assert_clean(&state, &format!("after kill {kill}"));
    }
    writer.join().unwrap();

    let mut last = loop {
        let mut daemon = ledger_storm_bot(&state, &feed, &port);
        if ready_or_port_taken(&mut daemon) {
            break daemon;
        }
    };
    let finished = wait_until(Duration::from_secs(120), || client.is_finished());
    done.store(true, Ordering::SeqCst);
    let acknowledged = client.join().unwrap();
    assert!(
        finished,
        "only {} of {} acknowledged",
        acknowledged.len(),
        posts.len()
    );
    let total = (file_lines.len() + posts.len()) as f64;
    assert!(
        wait_until(Duration::from_secs(60), || {
            last.metric("dedupe_window_ids", &[]).unwrap_or(0.0) >= total
        }),
        "not every signal decided; log:\n{}",
        last.log.all().join("\n")
    );
    let segments = last.metric("journal_segments", &[]).unwrap();
    assert!(last.stop().success());
    assert_clean(&state, "at the end");
    let expected = (0..file_lines.len())
        .map(|index| format!("f-{index}"))
        .chain(acknowledged.iter().cloned());
    let decided = check_exactly_once(&state, expected);
    assert_eq!(decided as f64, total);
    eprintln!(
        "storm: {kills} SIGKILLs ({in_start_up} within start-up) in {:.0?}, {segments} segments, \
         {} snapshots kept; {decided} signals decided, {} acknowledged by the webhook: \
         lost 0, doubled 0, journal verify clean after every kill and beside every restart",
        started.elapsed(),
        std::fs::read_dir(state.join("snapshots")).unwrap().count(),
        acknowledged.len()
    );
}

/// A crash (a panic, which aborts) at each step of a snapshot write, a
/// roll, retention, the takeover and an fsync: the restart decides every
/// line of the file exactly once, and `verify` is clean after the crash.
#[test]
fn a_crash_at_each_step_of_a_snapshot_a_roll_and_retention_loses_and_doubles_nothing() {
    let steps = [
        "ledger::snapshot::create",
        "ledger::snapshot::write",
        "ledger::snapshot::fsync",
        "ledger::snapshot::rename",
        "ledger::snapshot::fsync_dir",
        "ledger::snapshot::prune",
        "ledger::roll::create",
        "ledger::roll::fsync_dir",
        "ledger::roll::switch",
        "ledger::retention::delete",
        "ledger::takeover::rename",
        "ledger::fsync",
    ];
    let mut rng = Rng::from_env();
    for step in steps {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let feed = dir.path().join("feed.jsonl");
        let mut lines: Vec<String> = (0..80)
            .map(|index| line(&mut rng, &format!("c-{index}")))
            .collect();
        if step.contains("takeover") {
            std::fs::create_dir_all(&state).unwrap();
            std::fs::copy(
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/old-release-state/journal.jsonl"
                ),
                state.join("journal.jsonl"),
            )
            .unwrap();
        }
        std::fs::write(&feed, "").unwrap();
        let start = |failpoints: Option<&str>| {
            let mut builder = Builder::new()
                .env("STATE_DIR", &state)
                .env("JOURNAL_SEGMENT_SIZE", "1KiB")
                .env("SNAPSHOT_INTERVAL", "10ms")
                .env("JOURNAL_RETENTION", "1ms")
                .env("FILE_POLL_INTERVAL", "10ms")
                .arg("--source")
                .arg(format!("file:{}", feed.display()));
            if let Some(failpoints) = failpoints {
                builder = builder.env("FAILPOINTS", failpoints);
            }
            builder.spawn()
        };
        let mut crashing = start(Some(&format!("{step}=panic")));
        // The feed arrives over time, so that rolls, snapshots, pruning
        // and retention all come round.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&feed)
            .unwrap();
        let mut crashed = false;
        for chunk in lines.chunks(4) {
            file.write_all(chunk.concat().as_bytes()).unwrap();
            if !crashed {
                crashed = crashing.has_exited();
                std::thread::sleep(Duration::from_millis(15));
            }
        }
        // On a loaded machine the loop takes more lines an iteration, so
        // fewer snapshots and rolls come round: more lines until it crashes.
        let deadline = Instant::now() + SOON;
        while !crashed && Instant::now() < deadline {
            let more: Vec<String> = (0..4)
                .map(|index| line(&mut rng, &format!("c-{}", lines.len() + index)))
                .collect();
            file.write_all(more.concat().as_bytes()).unwrap();
            lines.extend(more);
            std::thread::sleep(Duration::from_millis(15));
            crashed = crashing.has_exited();
        }
        let status = crashing.wait_exit(SOON);
        assert!(!status.success(), "{step}: never reached ({status})");
        assert!(
            crashing.log.all().join("\n").contains(step),
            "{step}: the crash was elsewhere; log:\n{}",
            crashing.log.all().join("\n")
        );
        assert_clean(&state, &format!("after a crash at {step}"));
        let mut restarted = start(None);
        restarted.wait_ready();
        let taken = lines.len() as f64 + if step.contains("takeover") { 7.0 } else { 0.0 };
        assert!(
            wait_until(SOON, || restarted
                .metric("dedupe_window_ids", &[])
                .unwrap_or(0.0)
                >= taken),
            "{step}: not every line decided after the restart; log:\n{}",
            restarted.log.all().join("\n")
        );
        assert!(restarted.stop().success(), "{step}");
        assert_clean(&state, &format!("after the restart from a crash at {step}"));
        // Every line once, retention or not: all of them again are all
        // duplicates.
        let mut again = Builder::new()
            .env("STATE_DIR", &state)
            .arg("--source")
            .arg("stdin")
            .piped_stdin()
            .spawn();
        again.wait_ready();
        again.write_stdin(lines.concat().as_bytes());
        again.wait_metric("duplicates_total", &[], lines.len() as f64);
        assert_eq!(
            again.metric("signals_total", &[("result", "filled")]),
            Some(0.0),
            "{step}"
        );
        assert!(again.stop().success());
        eprintln!(
            "{step}: crashed there, restarted: {} lines decided once",
            lines.len()
        );
    }
}
