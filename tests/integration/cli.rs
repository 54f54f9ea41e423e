//! What a newcomer meets first: the README's first command on the shipped
//! sample, and every subcommand's answer piped into a reader that stops
//! early (`| head -1`).

use std::process::{Command, Output, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::kit::daemon::{Builder, Daemon, BIN};
use crate::kit::shipped::shipped;
use crate::kit::wait::{wait_until, SOON};

/// `tradingbot ARGS | true`, with `true` gone before tradingbot starts:
/// every write to its stdout meets a pipe closed at the other end.
fn into_closed_pipe(args: &[&str], state_dir: &std::path::Path) -> Output {
    let mut reader = Command::new("true")
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn true");
    let pipe = reader.stdin.take().expect("the pipe's write end");
    assert!(reader.wait().unwrap().success());
    Command::new(BIN)
        .env_clear()
        .env("STATE_DIR", state_dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(pipe)
        .stderr(Stdio::piped())
        .output()
        .expect("run tradingbot")
}

#[test]
fn a_closed_pipe_ends_every_subcommand_quietly_with_exit_0() {
    let (bot, _) = decide_the_sample();
    for args in [
        &["check-config"][..],
        &["--help"],
        &["--version"],
        &["journal", "--help"],
        &["web", "--help"],
        &["journal", "fills"],
        &["journal", "--json", "fills"],
        &["journal", "rejects"],
        &["journal", "positions"],
        &["journal", "pnl"],
        &["journal", "verify"],
        // Exits 1 with a reader: no destination is configured.
        &["notify-test"],
    ] {
        let output = into_closed_pipe(args, &bot.state_dir());
        assert_eq!(
            (
                output.status.code(),
                String::from_utf8_lossy(&output.stderr)
            ),
            (Some(0), "".into()),
            "tradingbot {args:?} | (closed)"
        );
    }
}

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
