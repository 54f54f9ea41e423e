//! Crash consistency: signals flow in while the daemon is SIGKILLed at
//! random instants and restarted on the same state dir. Afterwards every id
//! has exactly one decision (fill or reject) in the journal, every
//! acknowledged webhook signal is among them, and the positions equal a
//! replay of the journal's fills.
//!
//! `CRASH_KILLS` sets the number of kills (default 30), `CRASH_SEED` the
//! random seed; for the long run:
//!
//!     CRASH_KILLS=1000 cargo test --features failpoints --test heavy -- bot_crash --nocapture

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::kit::daemon::{Builder, Daemon};
use crate::kit::http::http_with_body;
use crate::kit::port::Reserved;
use crate::kit::process::SIGKILL;
use crate::kit::wait::wait_until;
use crate::storm::ledger::{check_exactly_once, decided};
use crate::storm::rng::Rng;
use crate::storm::storm_bot;

fn kills() -> usize {
    std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(30)
}

/// Kills `kills` daemons at random instants, restarting each time.
fn kill_repeatedly(rng: &mut Rng, kills: usize, mut start: impl FnMut() -> Daemon) {
    for _ in 0..kills {
        let mut daemon = start();
        std::thread::sleep(Duration::from_millis(10 + rng.below(240)));
        daemon.signal(SIGKILL);
        daemon.wait_exit(Duration::from_secs(10));
    }
}

#[test]
fn file_source_under_random_sigkills_decides_every_signal_exactly_once() {
    let mut rng = Rng::from_env();
    let kills = kills();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let feed: PathBuf = dir.path().join("feed.jsonl");
    let total = kills * 12;
    let lines: Vec<String> = (0..total).map(|index| rng.signal(index)).collect();
    let writer = {
        let feed = feed.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&feed).unwrap();
            for chunk in lines.chunks(3) {
                file.write_all(chunk.concat().as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(8));
            }
        })
    };
    let source = format!("file:{}", feed.display());
    let bot = || storm_bot(&state_dir).arg("--source").arg(&source).spawn();
    kill_repeatedly(&mut rng, kills, bot);
    writer.join().unwrap();

    let mut last = bot();
    last.wait_ready();
    assert!(
        wait_until(Duration::from_secs(30), || decided(&state_dir) >= total),
        "only {} of {total} decided",
        decided(&state_dir)
    );
    assert!(last.stop().success());
    check_exactly_once(&state_dir, total);
}

#[test]
fn webhook_under_random_sigkills_loses_no_acknowledged_signal_and_doubles_none() {
    let mut rng = Rng::from_env();
    let kills = kills();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let mut reserved = Some(Reserved::loopback());
    let addr = reserved.as_ref().unwrap().addr();
    let total = kills * 6;
    let lines: Vec<String> = (0..total).map(|index| rng.signal(index)).collect();
    // Every start on the same address, held for it from one daemon to the next.
    let mut bot = || {
        let address = reserved.take().unwrap_or_else(|| Reserved::again(addr));
        storm_bot(&state_dir)
            .arg("--source")
            .arg("webhook")
            .bind_env("WEBHOOK_BIND", address)
            .env("WEBHOOK_TOKEN", "crash-test-token")
            .spawn()
    };
    let give_up = Arc::new(AtomicBool::new(false));
    let client = {
        let give_up = Arc::clone(&give_up);
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            for (index, line) in lines.iter().enumerate() {
                loop {
                    let answer = http_with_body(
                        addr,
                        "POST",
                        "/signals",
                        &[("Authorization", "Bearer crash-test-token")],
                        line.as_bytes(),
                    );
                    if matches!(answer, Ok((202, _))) {
                        acked.push(index);
                        break;
                    }
                    if give_up.load(Ordering::SeqCst) {
                        return acked;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            acked
        })
    };
    kill_repeatedly(&mut rng, kills, &mut bot);

    let mut last = bot();
    last.wait_ready();
    let all_acked = wait_until(Duration::from_secs(60), || client.is_finished());
    give_up.store(true, Ordering::SeqCst);
    let acked = client.join().unwrap();
    assert!(all_acked, "only {} of {total} acknowledged", acked.len());
    assert_eq!(acked.len(), total);
    assert!(last.stop().success());
    check_exactly_once(&state_dir, total);
}

#[test]
fn sigterm_mid_ingest_leaves_queued_file_lines_for_the_next_start() {
    let mut rng = Rng::from_env();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let feed = dir.path().join("feed.jsonl");
    let total = 100_000;
    let lines: String = (0..total).map(|index| rng.signal(index)).collect();
    std::fs::write(&feed, lines).unwrap();
    let source = format!("file:{}", feed.display());
    let start = || {
        Builder::new()
            .env("STATE_DIR", &state_dir)
            .arg("--source")
            .arg(&source)
            .spawn()
    };

    let mut first = start();
    assert!(
        wait_until(Duration::from_secs(30), || first.decided() >= 1000.0),
        "ingest never started"
    );
    assert!(first.stop().success());
    let drained = first
        .log
        .wait_for("bot loop: drained", Duration::from_secs(1))
        .expect("the drain is logged");
    eprintln!("first run stopped with: {drained}");

    let mut second = start();
    assert!(
        wait_until(Duration::from_secs(60), || decided(&state_dir) >= total),
        "only {} of {total} decided after the restart",
        decided(&state_dir)
    );
    assert!(second.stop().success());
    check_exactly_once(&state_dir, total);
}
