//! What a newcomer meets first: the README's first command on the shipped
//! sample.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::kit::daemon::{Builder, Daemon};
use crate::kit::shipped::shipped;
use crate::kit::wait::{wait_until, SOON};

/// The README's first command, `--source file:samples/signals.jsonl` and
/// nothing else (the default exactly-once window), run until it has
/// decided every line and stopped; and when it started, in epoch ms.
fn decide_the_sample() -> (Daemon, i64) {
    let sample = shipped("samples/signals.jsonl");
    let lines = std::fs::read_to_string(&sample).unwrap().lines().count();
    let started = now_ms();
    let mut bot = Builder::new()
        .remove_env("DEDUPE_WINDOW")
        .arg("--source")
        .arg(format!("file:{}", sample.display()))
        .spawn();
    assert!(
        wait_until(SOON, || bot.decided() == lines as f64),
        "decided {} of {lines} lines; log:\n{}",
        bot.decided(),
        bot.log.dump()
    );
    assert_eq!(bot.metric("duplicates_total", &[]), Some(1.0));
    assert!(bot.stop().success());
    (bot, started)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The sample's lines carry ids and no `ts`, so each is of its arrival and
/// the default window takes them all: they fill, but for the four bad ones
/// and the one sent twice.
#[test]
fn the_readme_first_command_decides_the_sample_with_the_default_window() {
    let (bot, started) = decide_the_sample();
    let ended = now_ms();
    let journal = bot.journal();
    let fills: Vec<&str> = journal
        .iter()
        .filter(|record| record["t"] == "fill")
        .map(|record| record["id"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (1..=40).map(|n| format!("sig-{n:04}")).collect();
    assert_eq!(fills, expected);
    assert!(journal
        .iter()
        .filter(|record| record["t"] == "fill")
        .all(|fill| (started..=ended).contains(&fill["ts"].as_i64().unwrap())));
    let mut rejects: Vec<(Option<&str>, &str)> = journal
        .iter()
        .filter(|record| record["t"] == "reject")
        .map(|record| (record["id"].as_str(), record["reason"].as_str().unwrap()))
        .collect();
    rejects.sort();
    assert_eq!(
        rejects,
        [
            (None, "not_json"),
            (Some("bad-qty"), "bad_qty"),
            (Some("bad-side"), "bad_side"),
            (Some("no-qty"), "missing_field"),
        ]
    );
}
