//! SIGKILL aimed at each phase of a daemon's life. The phase-targeted kills
//! complement `bot_crash`'s random instants: each kill lands in a chosen
//! phase — start-up before READY, recovery of a large journal, steady state,
//! drain after SIGTERM — in turn. `PHASE_KILLS` sets how many (default 52:
//! 13 a phase), `CRASH_SEED` the seed; the long run:
//!
//!     PHASE_KILLS=1000 cargo test --features failpoints --test heavy -- hardening_process::sigkill --nocapture

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::kit::daemon::{Daemon, READY};
use crate::kit::process::{SIGKILL, SIGTERM};
use crate::kit::wait::{wait_until, SOON};
use crate::storm::ledger::{check_exactly_once, decided};
use crate::storm::rng::Rng;
use crate::storm::storm_bot;

fn phase_kills() -> usize {
    std::env::var("PHASE_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(52)
}

/// Fills already in the journal before the first start, so that recovery
/// has real work to be killed in.
const SEEDED: usize = 20_000;

fn seed_journal(state_dir: &Path) {
    std::fs::create_dir_all(state_dir).unwrap();
    let mut journal =
        std::io::BufWriter::new(std::fs::File::create(state_dir.join("journal.jsonl")).unwrap());
    for index in 0..SEEDED {
        let side = ["buy", "sell"][index % 2];
        writeln!(
            journal,
            r#"{{"t":"fill","id":"id-{index}","src":"seed","ts":1,"at":2,"symbol":"BTC","side":"{side}","qty":1.0,"price":100.0}}"#
        )
        .unwrap();
    }
    journal.flush().unwrap();
}

#[derive(Default, Debug)]
struct Tally {
    before_ready: usize,
    in_recovery: usize,
    steady: usize,
    in_drain: usize,
    drained_before_the_kill: usize,
}

fn ready(daemon: &Daemon) -> bool {
    daemon.log.count(READY) > 0
}

#[test]
fn sigkill_in_every_phase_loses_and_doubles_nothing() {
    let mut rng = Rng::from_env();
    let kills = phase_kills();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    seed_journal(&state_dir);
    let feed = dir.path().join("feed.jsonl");
    let fresh = kills * 8;
    let lines: Vec<String> = (SEEDED..SEEDED + fresh)
        .map(|index| rng.signal(index))
        .collect();
    let writer = {
        let feed = feed.clone();
        std::thread::spawn(move || {
            let mut file = std::fs::File::create(&feed).unwrap();
            for chunk in lines.chunks(4) {
                file.write_all(chunk.concat().as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(15));
            }
        })
    };
    let source = format!("file:{}", feed.display());
    let start = |failpoints: Option<&str>| {
        let builder = storm_bot(&state_dir).arg("--source").arg(&source);
        match failpoints {
            Some(failpoints) => builder.env("FAILPOINTS", failpoints),
            None => builder,
        }
        .spawn()
    };

    // How long a start takes, recovery of the seeded journal included: the
    // recovery kills aim inside it.
    let started = Instant::now();
    let mut daemon = start(None);
    daemon.wait_ready();
    let start_up = started.elapsed();
    daemon.signal(SIGKILL);
    daemon.wait_exit(SOON);

    let mut tally = Tally::default();
    for kill in 0..kills {
        match kill % 4 {
            0 => {
                // Held in init, before the journal is even read.
                let mut daemon = start(Some("daemon::init=sleep(300)"));
                std::thread::sleep(Duration::from_millis(rng.below(250)));
                daemon.signal(SIGKILL);
                daemon.wait_exit(SOON);
                assert!(!ready(&daemon), "a start-up kill landed after READY");
                tally.before_ready += 1;
            }
            1 => {
                let mut daemon = start(None);
                let aim = rng.below(start_up.as_millis() as u64 + 1);
                std::thread::sleep(Duration::from_millis(aim));
                daemon.signal(SIGKILL);
                daemon.wait_exit(SOON);
                if ready(&daemon) {
                    tally.steady += 1;
                } else {
                    tally.in_recovery += 1;
                }
            }
            2 => {
                let mut daemon = start(None);
                daemon.wait_ready();
                std::thread::sleep(Duration::from_millis(rng.below(150)));
                daemon.signal(SIGKILL);
                daemon.wait_exit(SOON);
                tally.steady += 1;
            }
            _ => {
                let mut daemon = start(None);
                daemon.wait_ready();
                std::thread::sleep(Duration::from_millis(rng.below(100)));
                daemon.signal(SIGTERM);
                // A drain here takes a few ms: aim inside it.
                std::thread::sleep(Duration::from_micros(rng.below(8000)));
                if daemon.has_exited() {
                    tally.drained_before_the_kill += 1;
                } else {
                    daemon.signal(SIGKILL);
                    daemon.wait_exit(SOON);
                    tally.in_drain += 1;
                }
            }
        }
    }
    writer.join().unwrap();

    let mut last = start(None);
    last.wait_ready();
    let total = SEEDED + fresh;
    assert!(
        wait_until(Duration::from_secs(60), || decided(&state_dir) >= total),
        "only {} of {total} decided",
        decided(&state_dir)
    );
    assert!(last.stop().success());
    check_exactly_once(&state_dir, total);
    eprintln!(
        "phase kills: {kills} SIGKILLs ({tally:?}; a start takes {start_up:?} with \
         {SEEDED} journal records), {total} signals, lost 0, doubled 0"
    );
    assert!(
        tally.before_ready > 0 && tally.in_recovery > 0 && tally.steady > 0 && tally.in_drain > 0,
        "a phase was never hit: {tally:?}"
    );
}
