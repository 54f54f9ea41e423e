//! The file, exec and poll sources, end to end.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use crate::kit::daemon::{Builder, Daemon};
use crate::kit::feeds::paged::Paged;
use crate::kit::journal::signal_line;
use crate::kit::sources::whop_sources;
use crate::kit::wait::{wait_until, SOON};

fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

fn line(id: &str) -> String {
    signal_line(id, "BTC", "buy", 1.0, Some(100.0))
}

fn filled(daemon: &Daemon) -> f64 {
    daemon
        .metric("signals_total", &[("result", "filled")])
        .unwrap_or(0.0)
}

/// Ids of fill records, in journal order.
fn filled_ids(daemon: &Daemon) -> Vec<String> {
    daemon
        .records("fill")
        .iter()
        .map(|record| record["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn file_source_follows_partial_lines_rotation_truncation_and_resumes_from_its_checkpoint() {
    let builder = Builder::new().env("FILE_POLL_INTERVAL", "20ms");
    let feed = builder.dir().join("feed.jsonl");
    append(&feed, &(line("a1") + &line("a2")));
    let source = format!("file:{}", feed.display());
    let mut daemon = builder.arg("--source").arg(&source).spawn();
    daemon.wait_ready();
    daemon.wait_metric("signals_total", &[("result", "filled")], 2.0);

    // A partial line waits for its newline, however many iterations pass.
    let partial = line("p1");
    append(&feed, &partial[..20]);
    let iterations = daemon.metric("loop_iterations_total", &[]).unwrap();
    daemon.wait_metric("loop_iterations_total", &[], iterations + 5.0);
    assert_eq!(filled(&daemon), 2.0);
    append(&feed, &partial[20..]);
    daemon.wait_metric("signals_total", &[("result", "filled")], 3.0);

    // Rotation: the writer appends once more to the old file after the
    // rename, then starts a new one. Both are read.
    let rotated = feed.with_extension("jsonl.1");
    std::fs::rename(&feed, &rotated).unwrap();
    append(&rotated, &line("late"));
    append(&feed, &line("r1"));
    daemon.wait_metric("signals_total", &[("result", "filled")], 5.0);

    // Truncation: the file starts over, shorter than what was read.
    append(&feed, &(line("r2") + &line("r3")));
    daemon.wait_metric("signals_total", &[("result", "filled")], 7.0);
    std::fs::write(&feed, line("t1")).unwrap();
    daemon.wait_metric("signals_total", &[("result", "filled")], 8.0);
    assert!(daemon.stop().success());

    // Written while the bot was down, then rotated away, then a new file:
    // the old one is finished from the checkpoint on, then the new one read.
    append(&feed, &line("c1"));
    let rotated_while_down = feed.with_extension("jsonl.2");
    std::fs::rename(&feed, &rotated_while_down).unwrap();
    append(&rotated_while_down, &line("c2"));
    append(&feed, &line("n1"));
    let mut restarted = Builder::new()
        .env("FILE_POLL_INTERVAL", "20ms")
        .env("STATE_DIR", daemon.state_dir())
        .arg("--source")
        .arg(&source)
        .spawn();
    restarted.wait_ready();
    restarted.wait_metric("signals_total", &[("result", "filled")], 3.0);
    assert_eq!(restarted.metric("duplicates_total", &[]), Some(0.0));
    assert!(restarted.stop().success());
    assert_eq!(
        filled_ids(&daemon),
        ["a1", "a2", "p1", "late", "r1", "r2", "r3", "t1", "c1", "c2", "n1"]
    );
    let checkpoints = daemon
        .journal()
        .iter()
        .filter(|record| record["t"] == "ckpt")
        .count();
    assert!(checkpoints >= 5, "{checkpoints} checkpoints");
}

#[test]
fn exec_feed_is_restarted_after_it_dies_with_feed_degraded_and_its_group_killed_on_stop() {
    let builder = Builder::new()
        .env("EXEC_BACKOFF", "1s")
        .env("EXEC_BACKOFF_MAX", "1s");
    let script = builder.dir().join("feed.sh");
    // Runs 1 and 2 print one signal and die; run 3 prints one and stays up
    // (with a child of its own, which must die with the group on stop).
    std::fs::write(
        &script,
        r#"#!/bin/sh
n=$(cat runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > runs
echo "{\"id\":\"x$n\",\"ts\":1714557600000,\"symbol\":\"SOL\",\"side\":\"buy\",\"qty\":1,\"price\":150}"
echo "feed run $n" >&2
if [ "$n" -lt 3 ]; then exit 3; fi
sleep 300 &
echo $! > sleeper.pid
wait
"#,
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut daemon = builder
        .arg("--source")
        .arg(format!("exec:{}", script.display()))
        .spawn();
    daemon.wait_ready();
    daemon.wait_metric("signals_total", &[("result", "filled")], 1.0);
    assert!(
        wait_until(SOON, || {
            let (_, health) = daemon.health();
            health["checks"]["feed"]["status"] == "degraded"
                && health["checks"]["feed"]["reason"]
                    .as_str()
                    .is_some_and(|reason| reason.contains("exited"))
        }),
        "feed never showed as degraded"
    );
    daemon.wait_metric("signals_total", &[("result", "filled")], 3.0);
    assert!(wait_until(SOON, || daemon.health().1["checks"]["feed"]
        ["status"]
        == "ok"));
    assert!(daemon.log.wait_for("feed run 2", SOON).is_some());
    let sleeper_file = daemon.dir().join("sleeper.pid");
    assert!(wait_until(SOON, || sleeper_file.exists()));
    let sleeper = std::fs::read_to_string(&sleeper_file).unwrap();
    let sleeper = Path::new("/proc").join(sleeper.trim());
    assert!(sleeper.exists());
    assert!(daemon.stop().success());
    assert!(
        wait_until(SOON, || !sleeper.exists()
            || std::fs::read_to_string(sleeper.join("stat"))
                .is_ok_and(|stat| stat.contains(") Z "))),
        "the feed's child outlived the stop"
    );
}

#[test]
fn a_missing_file_degrades_the_feed_until_it_appears() {
    let builder = Builder::new().env("FILE_POLL_INTERVAL", "20ms");
    let feed = builder.dir().join("later.jsonl");
    let mut daemon = builder
        .arg("--source")
        .arg(format!("file:{}", feed.display()))
        .spawn();
    daemon.wait_ready();
    let feed_check = |daemon: &Daemon| daemon.health().1["checks"]["feed"].clone();
    assert!(wait_until(SOON, || feed_check(&daemon)["reason"]
        .as_str()
        .is_some_and(|reason| reason.contains("cannot open"))));
    assert_eq!(
        daemon.health().0,
        200,
        "a missing file degrades, it does not fail"
    );
    append(&feed, &line("m1"));
    daemon.wait_metric("signals_total", &[("result", "filled")], 1.0);
    assert!(wait_until(SOON, || feed_check(&daemon)["status"] == "ok"));
    assert!(daemon.stop().success());
}

#[test]
fn poll_source_resumes_from_its_journaled_cursor_and_fills_nothing_twice() {
    let fake = Paged::start(2);
    for number in 1..=5 {
        fake.post(&format!("BUY {number} BTC-USD @ 100"));
    }
    let builder = Builder::new();
    let sources = whop_sources(builder.dir(), &fake.url());
    let mut daemon = builder.env("SOURCES_FILE", &sources).spawn();
    daemon.wait_ready();
    daemon.wait_metric("signals_total", &[("result", "filled")], 5.0);
    // Rounds go on from the last cursor; it is journaled once, not at each.
    let asked = fake.asked().len();
    fake.wait("more rounds", |seen| seen.len() >= asked + 3);
    assert!(daemon.stop().success());
    let cursors: Vec<String> = daemon
        .records("ckpt")
        .iter()
        .map(|record| record["cursor"].as_str().unwrap().to_owned())
        .collect();
    // One an iteration at most, only when it moved, the last where it stopped.
    assert_eq!(cursors.last().map(String::as_str), Some("5"), "{cursors:?}");
    let mut moved = cursors.clone();
    moved.dedup();
    assert_eq!(moved, cursors, "journaled again without moving");

    // Posted while the bot was down: read from the cursor, nothing before it.
    fake.post("SELL 6 BTC-USD @ 101");
    fake.post("SELL 7 BTC-USD @ 102");
    let asked = fake.asked().len();
    let mut restarted = Builder::new()
        .env("STATE_DIR", daemon.state_dir())
        .env("SOURCES_FILE", &sources)
        .spawn();
    restarted.wait_ready();
    restarted.wait_metric("signals_total", &[("result", "filled")], 2.0);
    assert_eq!(
        fake.asked()[asked].cursor.as_deref(),
        Some("5"),
        "the first request after the restart"
    );
    assert_eq!(restarted.metric("duplicates_total", &[]), Some(0.0));
    assert!(restarted.stop().success());
    assert_eq!(
        filled_ids(&daemon),
        ["msg_1", "msg_2", "msg_3", "msg_4", "msg_5", "msg_6", "msg_7"]
    );
}
