//! Process faults: SIGKILL aimed at each phase of a daemon's life, a
//! SIGSTOP longer than the stall timeout, and an exec feed that crashes in
//! a loop.
//!
//! The phase-targeted kills complement `bot_crash`'s random instants: each
//! kill lands in a chosen phase — start-up before READY, recovery of a large
//! journal, steady state, drain after SIGTERM — in turn. `PHASE_KILLS` sets
//! how many (default 52: 13 a phase), `CRASH_SEED` the seed; the long run:
//!
//!     PHASE_KILLS=1000 cargo test --features failpoints -- hardening_process::sigkill --nocapture

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::bot_crash::{bot, check_journal, decided, signal, Rng};
use crate::common::*;

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
    daemon.log.count("ready: first loop iteration done") > 0
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
        .map(|index| signal(&mut rng, index))
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
        bot(&state_dir, |builder| {
            let builder = builder.arg("--source").arg(&source);
            match failpoints {
                Some(failpoints) => builder.env("FAILPOINTS", failpoints),
                None => builder,
            }
        })
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
                if daemon.child.try_wait().unwrap().is_some() {
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
    check_journal(&state_dir, total);
    eprintln!(
        "phase kills: {kills} SIGKILLs ({tally:?}; a start takes {start_up:?} with \
         {SEEDED} journal records), {total} signals, lost 0, doubled 0"
    );
    assert!(
        tally.before_ready > 0 && tally.in_recovery > 0 && tally.steady > 0 && tally.in_drain > 0,
        "a phase was never hit: {tally:?}"
    );
}

fn age(path: &Path) -> Duration {
    std::fs::metadata(path)
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .unwrap_or_default()
}

#[test]
fn sigstop_past_the_stall_timeout_goes_stale_and_sigcont_recovers_on_its_own() {
    let daemon = Builder::new().env("STALL_TIMEOUT", "1s").spawn();
    daemon.wait_ready();
    let path = daemon.health_file();
    assert!(wait_path(&path, true));
    assert!(daemon.wait_status("/health", 200));

    daemon.signal(SIGSTOP);
    // Frozen longer than the stall timeout, as the file's age shows.
    let aged = wait_until(SOON, || age(&path) > Duration::from_millis(1500));
    let (code, stderr) = probe(&path, &["--max-age", "1s"]);
    // Queued in the listen backlog while frozen, answered after SIGCONT.
    let mut queued = std::net::TcpStream::connect(daemon.addr()).unwrap();
    queued
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    daemon.signal(SIGCONT);
    assert!(aged, "the health file never aged while frozen");
    assert_eq!(code, 1, "a frozen daemon's file passed the probe");
    assert!(stderr.contains("stale"), "{stderr}");

    // Whatever the race after SIGCONT, the answer to the request made
    // during the freeze is the truth: 503, or 200 on a beat made since.
    queued.set_read_timeout(Some(SOON)).unwrap();
    let mut response = String::new();
    queued.read_to_string(&mut response).unwrap();
    let code: u16 = response[9..12].parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    let heartbeat_age = body["heartbeat_age_seconds"].as_f64().unwrap();
    assert!(
        code == 503 || heartbeat_age < 1.0,
        "{code} with a heartbeat {heartbeat_age} s old: {body}"
    );
    eprintln!(
        "request queued during a 1.5 s freeze answered {code} (heartbeat age {heartbeat_age} s)"
    );

    assert!(daemon.wait_status("/health", 200), "never healthy again");
    assert!(
        wait_until(SOON, || probe(&path, &["--max-age", "1s"]).0 == 0),
        "health file not fresh again after SIGCONT"
    );
    assert_eq!(health_record(&path)["pid"], daemon.pid());
}

/// The daemon's child processes right now.
fn children(pid: i32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| std::fs::read_to_string(entry.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            stat.rsplit_once(") ")
                .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<i32>().ok())
                == Some(pid)
        })
        .count()
}

/// A JSON log line's timestamp, in epoch milliseconds: when the daemon
/// did it, not when the test got to read it.
fn log_time(line: &str) -> i64 {
    let record: serde_json::Value = serde_json::from_str(line).unwrap();
    let stamp = record["timestamp"].as_str().unwrap();
    let time = humantime::parse_rfc3339(stamp).unwrap();
    time.duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn an_exec_feed_crashing_in_a_loop_backs_off_to_the_cap_without_a_fork_bomb() {
    let builder = Builder::new()
        .env("EXEC_BACKOFF", "100ms")
        .env("EXEC_BACKOFF_MAX", "400ms");
    let script = builder.dir().join("crash.sh");
    std::fs::write(&script, "#!/bin/sh\necho 'crashing' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let daemon = builder
        .arg("--source")
        .arg(format!("exec:{}", script.display()))
        .spawn();
    daemon.wait_ready();

    // From the whole log: the first start comes before READY.
    let starts = 9;
    let mut most_children = 0;
    let mut health_seen = Vec::new();
    let started = wait_until(SOON, || {
        most_children = most_children.max(children(daemon.pid()));
        health_seen.push(daemon.health());
        daemon.log.count("exec source: feed process started") >= starts
    });
    assert!(started, "fewer than {starts} starts");
    for (code, health) in &health_seen {
        assert_eq!(*code, 200, "a crashing feed failed health: {health}");
        assert_ne!(health["checks"]["feed"]["status"], "failed", "{health}");
    }
    let at: Vec<i64> = daemon
        .log
        .all()
        .iter()
        .filter(|line| line.contains("exec source: feed process started"))
        .take(starts)
        .map(|line| log_time(line))
        .collect();
    let gaps: Vec<i64> = at.windows(2).map(|pair| pair[1] - pair[0]).collect();
    eprintln!("exec feed crash loop: {starts} starts, gaps {gaps:?} ms (backoff 100 ms doubling to 400 ms), at most {most_children} child at once");
    for (index, gap) in gaps.iter().enumerate() {
        let backoff = (100 << index).min(400);
        assert!(
            *gap >= backoff - 5 && *gap < backoff + 1500,
            "start {} came {gap} ms after the one before; backoff was {backoff} ms",
            index + 1
        );
    }
    assert!(most_children <= 1, "{most_children} feed processes at once");
    assert!(wait_until(SOON, || {
        let (code, health) = daemon.health();
        code == 200
            && health["status"] == "degraded"
            && health["checks"]["feed"]["status"] == "degraded"
    }));
}
