//! Crash consistency: signals flow in while the daemon is SIGKILLed at
//! random instants and restarted on the same state dir. Afterwards every id
//! has exactly one decision (fill or reject) in the journal, every
//! acknowledged webhook signal is among them, and the positions equal a
//! replay of the journal's fills.
//!
//! `CRASH_KILLS` sets the number of kills (default 30), `CRASH_SEED` the
//! random seed; for the long run:
//!
//!     CRASH_KILLS=1000 cargo test --features failpoints -- bot_crash --nocapture

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{
    free_port, http_with_body, latest_snapshot, read_journal, read_journal_so_far, signal_line,
    wait_until, Builder, Daemon, SIGKILL,
};

/// xorshift64*: enough randomness for kill instants, reproducible by seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env() -> Self {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|seed| seed.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("CRASH_SEED={seed}");
        Rng(seed)
    }

    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound
    }
}

fn kills() -> usize {
    std::env::var("CRASH_KILLS")
        .ok()
        .and_then(|kills| kills.parse().ok())
        .unwrap_or(30)
}

pub(crate) fn signal(rng: &mut Rng, index: usize) -> String {
    let symbol = ["BTC", "ETH"][rng.below(2) as usize];
    let side = ["buy", "sell"][rng.below(2) as usize];
    let qty = (1 + rng.below(3)) as f64;
    let price = (rng.below(4) != 0).then(|| (90 + rng.below(20)) as f64);
    signal_line(&format!("id-{index}"), symbol, side, qty, price)
}

pub(crate) fn bot(state_dir: &Path, extra: impl Fn(Builder) -> Builder) -> Daemon {
    extra(
        Builder::new()
            .env("STATE_DIR", state_dir)
            .env("MAX_POSITION_QTY", "6")
            .env("FILE_POLL_INTERVAL", "10ms"),
    )
    .spawn()
}

/// Kills `kills` daemons at random instants, restarting each time.
fn kill_repeatedly(rng: &mut Rng, kills: usize, start: impl Fn() -> Daemon) {
    for _ in 0..kills {
        let mut daemon = start();
        std::thread::sleep(Duration::from_millis(10 + rng.below(240)));
        daemon.signal(SIGKILL);
        daemon.wait_exit(Duration::from_secs(10));
    }
}

/// Every id decided exactly once; positions equal a replay of the fills.
pub(crate) fn check_journal(state_dir: &Path, total: usize) {
    let journal = read_journal(state_dir);
    let mut decisions: BTreeMap<String, usize> = BTreeMap::new();
    let mut replay: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for record in &journal {
        if record["t"] == "ckpt" {
            continue;
        }
        *decisions
            .entry(record["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
        if record["t"] == "fill" {
            let sign = if record["side"] == "buy" { 1.0 } else { -1.0 };
            let signed = sign * record["qty"].as_f64().unwrap();
            let entry = replay
                .entry(record["symbol"].as_str().unwrap().to_owned())
                .or_default();
            entry.0 += signed;
            entry.1 -= signed * record["price"].as_f64().unwrap();
        }
    }
    let twice: Vec<_> = decisions.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "ids decided more than once: {twice:?}");
    for index in 0..total {
        assert!(
            decisions.contains_key(&format!("id-{index}")),
            "id-{index} was never decided"
        );
    }
    assert_eq!(decisions.len(), total);
    let snapshot = latest_snapshot(state_dir);
    for (symbol, (qty, cash)) in &replay {
        let position = &snapshot["positions"][symbol];
        let held = position["qty"].as_f64().unwrap();
        assert!(
            (held - qty).abs() < 1e-9,
            "{symbol}: {position} vs qty {qty}"
        );
        let spent = position["cash"].as_f64().unwrap();
        assert!(
            (spent - cash).abs() < 1e-6,
            "{symbol}: {position} vs cash {cash}"
        );
    }
}

/// Signals decided so far by a daemon that may still be running.
pub(crate) fn decided(state_dir: &Path) -> usize {
    read_journal_so_far(state_dir)
        .iter()
        .filter(|record| record["t"] != "ckpt")
        .count()
}

#[test]
fn file_source_under_random_sigkills_decides_every_signal_exactly_once() {
    let mut rng = Rng::from_env();
    let kills = kills();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let feed: PathBuf = dir.path().join("feed.jsonl");
    let total = kills * 12;
    let lines: Vec<String> = (0..total).map(|index| signal(&mut rng, index)).collect();
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
    let with_source = |builder: Builder| builder.arg("--source").arg(&source);
    kill_repeatedly(&mut rng, kills, || bot(&state_dir, with_source));
    writer.join().unwrap();

    let mut last = bot(&state_dir, with_source);
    last.wait_ready();
    assert!(
        wait_until(Duration::from_secs(30), || decided(&state_dir) >= total),
        "only {} of {total} decided",
        decided(&state_dir)
    );
    assert!(last.stop().success());
    check_journal(&state_dir, total);
}

#[test]
fn webhook_under_random_sigkills_loses_no_acknowledged_signal_and_doubles_none() {
    let mut rng = Rng::from_env();
    let kills = kills();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let total = kills * 6;
    let lines: Vec<String> = (0..total).map(|index| signal(&mut rng, index)).collect();
    let with_webhook = |builder: Builder| {
        builder
            .arg("--source")
            .arg("webhook")
            .env("WEBHOOK_BIND", addr.to_string())
            .env("WEBHOOK_TOKEN", "crash-test-token")
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
    kill_repeatedly(&mut rng, kills, || bot(&state_dir, with_webhook));

    let mut last = bot(&state_dir, with_webhook);
    last.wait_ready();
    let all_acked = wait_until(Duration::from_secs(60), || client.is_finished());
    give_up.store(true, Ordering::SeqCst);
    let acked = client.join().unwrap();
    assert!(all_acked, "only {} of {total} acknowledged", acked.len());
    assert_eq!(acked.len(), total);
    assert!(last.stop().success());
    check_journal(&state_dir, total);
}

/// Signals decided so far, over every source and result, from `/metrics`
/// (0 until the health port answers).
fn decided_by_metrics(daemon: &Daemon) -> f64 {
    let Ok((_, text)) = daemon.request("GET", "/metrics") else {
        return 0.0;
    };
    text.lines()
        .filter(|line| line.starts_with("tradingbot_signals_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn sigterm_mid_ingest_leaves_queued_file_lines_for_the_next_start() {
    let mut rng = Rng::from_env();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let feed = dir.path().join("feed.jsonl");
    let total = 100_000;
    let lines: String = (0..total).map(|index| signal(&mut rng, index)).collect();
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
        wait_until(Duration::from_secs(30), || decided_by_metrics(&first)
            >= 1000.0),
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
    check_journal(&state_dir, total);
}
