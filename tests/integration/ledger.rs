//! The ledger over a bot's lifetime (issue 11): a state directory of the
//! release before segments taken over with nothing lost; segments rolled
//! and recovery from the newest valid snapshot, falling back loudly past
//! damaged ones; retention that never deletes what recovery needs; the
//! window's refusals; its figures; `tradingbot journal`, run beside the
//! daemon; failures injected at each step of a snapshot and a roll; the
//! state of the release before checksums recovered unchanged; damage
//! named and never replayed; snapshots and `verify` that follow the
//! window the daemon runs with.

use std::path::{Path, PathBuf};

use crate::kit::daemon::{stdin_bot, Builder, Daemon};
use crate::kit::journal::{
    journal_command, journal_command_as_found, latest_snapshot, read_journal, signal_line,
};
use crate::kit::process::SIGKILL;
use crate::kit::wait::{wait_until, SOON};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/old-release-state"
);

/// The state directory of the release before checksums (d8cef8f).
const FIXTURE_D8: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/release-d8cef8f-state"
);

/// `tradingbot journal ARGS` on `state_dir`: (exit code, stdout).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect()
}

fn wait_decided(daemon: &Daemon, count: f64) {
    assert!(
        wait_until(SOON, || daemon.decided() >= count),
        "{} of {count} decided; log:\n{}",
        daemon.decided(),
        daemon.log.all().join("\n")
    );
}

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|entry| entry.path()).collect())
        .unwrap_or_default();
    found.retain(|path| path.extension().is_some_and(|ext| ext == extension));
    found.sort();
    found
}

fn lines(prefix: &str, count: usize) -> String {
    (0..count)
        .map(|index| {
            let symbol = ["BTC", "ETH", "SOL"][index % 3];
            let side = if index % 4 == 3 { "sell" } else { "buy" };
            signal_line(
                &format!("{prefix}-{index}"),
                symbol,
                side,
                1.0,
                Some(100.0 + (index % 7) as f64),
            )
        })
        .collect()
}

/// The state directory a release without segments left (its journal
/// ending in a torn line): taken over on the first start, every position
/// and decided id kept, numbering on, `journal verify` clean.
#[test]
fn an_old_release_state_dir_is_taken_over_with_nothing_lost() {
    let builder = Builder::new();
    let state = builder.dir().join("state");
    std::fs::create_dir_all(&state).unwrap();
    for file in ["journal.jsonl", "snapshot.json"] {
        std::fs::copy(Path::new(FIXTURE).join(file), state.join(file)).unwrap();
    }
    let old: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(FIXTURE).join("snapshot.json")).unwrap(),
    )
    .unwrap();
    let mut daemon = builder
        .env("MAX_POSITION_QTY", "5")
        .arg("--source")
        .arg("stdin")
        .piped_stdin()
        .spawn();
    daemon.wait_ready();
    let log = daemon.log.all().join("\n");
    assert!(
        log.contains("took over the journal of an earlier release"),
        "{log}"
    );
    assert!(log.contains("torn line"), "{log}");
    assert!(!state.join("journal.jsonl").exists());
    assert!(
        !state.join("snapshot.json").exists(),
        "the old snapshot is not kept to mislead"
    );
    assert!(state.join("journal/00000000000000000001.jsonl").is_file());
    for (symbol, position) in old["positions"].as_object().unwrap() {
        assert_eq!(
            daemon.metric("position", &[("symbol", symbol)]),
            position["qty"].as_f64(),
            "{symbol}"
        );
        assert_eq!(
            daemon.metric("realized_pnl", &[("symbol", symbol)]),
            position["realized_pnl"].as_f64(),
            "{symbol}"
        );
    }
    assert_eq!(daemon.metric("journal_last_seq", &[]), Some(11.0));

    // The whole old feed again: every id the old release decided is a
    // duplicate (old-2 twice), but the overflowing order, which takes no
    // id, and the malformed lines are decided again as such.
    let feed = std::fs::read_to_string(Path::new(FIXTURE).join("feed.jsonl")).unwrap();
    daemon.write_stdin(feed.as_bytes());
    wait_decided(&daemon, 11.0);
    assert_eq!(daemon.metric("duplicates_total", &[]), Some(8.0));
    assert_eq!(
        daemon.metric("rejects_total", &[("reason", "bad_qty")]),
        Some(1.0)
    );
    daemon.write_stdin(signal_line("new-1", "BTC-USD", "buy", 0.1, Some(65000.0)).as_bytes());
    wait_decided(&daemon, 12.0);
    assert_eq!(daemon.metric("journal_last_seq", &[]), Some(15.0));
    daemon.close_stdin();
    assert!(daemon.stop().success());

    let (code, verdict) = journal_command(&state, &["verify"]);
    assert_eq!(code, 0, "{verdict}");
    let (code, positions) = journal_command(&state, &["positions"]);
    assert_eq!(code, 0, "{positions}");
    assert!(positions.contains("matches the replay"), "{positions}");
    let (_, fills) = journal_command(&state, &["--json", "fills"]);
    let ids: Vec<String> = json_lines(&fills)
        .iter()
        .map(|fill| format!("{}:{}", fill["seq"], fill["id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ids,
        ["1:old-1", "2:old-2", "3:old-3", "9:old-8", "10:old-9", "15:new-1"]
    );
}

/// Small segments roll; a restart reads the newest snapshot and replays
/// nothing before it; a damaged snapshot is set aside loudly for an older
/// one, and with none left the whole journal is replayed: the same state
/// every time.
#[test]
fn recovery_trusts_the_newest_valid_snapshot_and_falls_back_loudly() {
    let start = |state: &Path| {
        Builder::new()
            .env("STATE_DIR", state)
            .env("JOURNAL_SEGMENT_SIZE", "2KiB")
            .env("SNAPSHOT_INTERVAL", "100ms")
            .arg("--source")
            .arg("stdin")
            .piped_stdin()
            .spawn()
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut daemon = start(&state);
    daemon.wait_ready();
    daemon.write_stdin(lines("a", 60).as_bytes());
    wait_decided(&daemon, 60.0);
    daemon.expect_log("snapshot written");
    daemon.write_stdin(lines("b", 60).as_bytes());
    wait_decided(&daemon, 120.0);
    let segments = daemon.metric("journal_segments", &[]).unwrap();
    assert!(segments >= 5.0, "{segments} segments");
    let on_disk: u64 = files(&state.join("journal"), "jsonl")
        .iter()
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum();
    assert_eq!(daemon.metric("journal_bytes", &[]), Some(on_disk as f64));
    assert_eq!(daemon.metric("dedupe_window_ids", &[]), Some(120.0));
    assert!(daemon.metric("snapshot_age_seconds", &[]).is_some());
    let expected: Vec<Option<f64>> = ["BTC", "ETH", "SOL"]
        .iter()
        .map(|symbol| daemon.metric("position", &[("symbol", symbol)]))
        .collect();
    daemon.close_stdin();
    assert!(daemon.stop().success());
    let snapshots = files(&state.join("snapshots"), "snap");
    assert!(snapshots.len() >= 2, "{snapshots:?}");

    let restart = |expect: &str| {
        let mut daemon = start(&state);
        daemon.wait_ready();
        let recovered = daemon
            .log
            .all()
            .into_iter()
            .find(|line| line.contains("journal recovered"))
            .expect("recovery is logged");
        assert!(recovered.contains(expect), "{recovered}");
        let positions: Vec<Option<f64>> = ["BTC", "ETH", "SOL"]
            .iter()
            .map(|symbol| daemon.metric("position", &[("symbol", symbol)]))
            .collect();
        assert_eq!(positions, expected);
        daemon.write_stdin(signal_line("a-7", "BTC", "buy", 1.0, Some(1.0)).as_bytes());
        daemon.wait_metric("duplicates_total", &[], 1.0);
        assert_eq!(daemon.metric("dedupe_window_ids", &[]), Some(120.0));
        let replayed = daemon.metric("recovery_records", &[]).unwrap();
        daemon.close_stdin();
        assert!(daemon.stop().success());
        (daemon, replayed)
    };
    let (_, replayed) = restart("Some(120)");
    assert_eq!(replayed, 0.0);

    // Damaged: one byte flipped in the newest (the one the stop wrote).
    let newest = files(&state.join("snapshots"), "snap").pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&newest, bytes).unwrap();
    let (daemon, replayed) = restart("Some(");
    let log = daemon.log.all().join("\n");
    assert!(
        log.contains("SNAPSHOT UNUSABLE") && log.contains("checksum mismatch"),
        "{log}"
    );
    assert!(replayed > 0.0, "an older snapshot leaves records to replay");
    assert!(PathBuf::from(format!("{}.bad", newest.display())).exists());

    // Truncated, every one: the whole journal is replayed.
    for snapshot in files(&state.join("snapshots"), "snap") {
        let length = std::fs::metadata(&snapshot).unwrap().len();
        std::fs::File::options()
            .write(true)
            .open(&snapshot)
            .unwrap()
            .set_len(length / 2)
            .unwrap();
    }
    let (daemon, replayed) = restart("None");
    assert!(daemon.log.all().join("\n").contains("NO USABLE SNAPSHOT"));
    assert_eq!(replayed, 120.0);
    let (code, verdict) = journal_command(&state, &["verify"]);
    assert_eq!(code, 0, "{verdict}");
}

/// Retention deletes closed segments that every kept snapshot has moved
/// past, never one recovery needs; with the journal's start gone, a state
/// directory without a usable snapshot refuses to start rather than guess.
#[test]
fn retention_deletes_what_no_recovery_needs_and_no_more() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let start = || {
        Builder::new()
            .env("STATE_DIR", &state)
            .env("JOURNAL_SEGMENT_SIZE", "1KiB")
            .env("JOURNAL_RETENTION", "300ms")
            .env("SNAPSHOT_INTERVAL", "50ms")
            .arg("--source")
            .arg("stdin")
            .piped_stdin()
            .spawn()
    };
    let mut daemon = start();
    daemon.wait_ready();
    daemon.write_stdin(lines("r", 40).as_bytes());
    wait_decided(&daemon, 40.0);
    // Old enough only as time passes: a trickle of signals brings the
    // snapshots that apply retention.
    let mut sent = 40;
    let first = state.join("journal/00000000000000000001.jsonl");
    assert!(
        wait_until(SOON, || {
            daemon.write_stdin(lines(&format!("t{sent}"), 4).as_bytes());
            sent += 4;
            !first.exists()
        }),
        "segment 1 never deleted; log:\n{}",
        daemon.log.all().join("\n")
    );
    wait_decided(&daemon, sent as f64);
    assert!(
        wait_until(SOON, || daemon.metric("journal_segments", &[])
            == Some(files(&state.join("journal"), "jsonl").len() as f64)),
        "the segments metric never matched the files"
    );
    let (code, verdict) = journal_command(&state, &["verify"]);
    assert_eq!(code, 0, "verify beside the running daemon: {verdict}");
    let position = daemon.metric("position", &[("symbol", "BTC")]);
    daemon.close_stdin();
    assert!(daemon.stop().success());
    let mut daemon = start();
    daemon.wait_ready();
    assert_eq!(daemon.metric("position", &[("symbol", "BTC")]), position);
    daemon.close_stdin();
    assert!(daemon.stop().success());

    for snapshot in files(&state.join("snapshots"), "snap") {
        std::fs::remove_file(snapshot).unwrap();
    }
    let mut daemon = start();
    assert_eq!(daemon.wait_exit(SOON).code(), Some(1));
    let log = daemon.log.all().join("\n");
    assert!(
        log.contains("older segments were deleted") && log.contains("no snapshot"),
        "{log}"
    );
}

/// `tradingbot journal` beside a running daemon: the listings and their
/// filters, PnL, positions against the snapshot; then `verify` naming a
/// corrupt record, a sequence gap and an id decided twice.
#[test]
fn the_journal_command_answers_beside_the_daemon_and_verify_names_problems() {
    let mut daemon = stdin_bot()
        .env("JOURNAL_SEGMENT_SIZE", "1KiB")
        .env("MAX_POSITION_QTY", "2")
        .spawn();
    daemon.wait_ready();
    let state = daemon.state_dir();
    let ahead = now_ms() + 86_400_000;
    let mut feed = [
        signal_line("p1", "BTC", "buy", 2.0, Some(100.0)),
        signal_line("p2", "BTC", "sell", 1.0, Some(110.0)),
        signal_line("p3", "ETH", "buy", 1.0, Some(50.0)),
        signal_line("p4", "BTC", "buy", 5.0, Some(100.0)),
        format!("{{\"id\":\"p5\",\"ts\":{ahead},\"symbol\":\"BTC\",\"side\":\"buy\",\"qty\":1,\"price\":1}}\n"),
        signal_line("p6", "ETH", "sell", 1.0, Some(40.0)),
    ]
    .concat();
    // Enough after them to roll a few segments.
    for index in 0..20 {
        let side = if index % 2 == 0 { "buy" } else { "sell" };
        feed.push_str(&signal_line(
            &format!("f{index}"),
            "XRP",
            side,
            1.0,
            Some(1.0),
        ));
    }
    daemon.write_stdin(feed.as_bytes());
    wait_decided(&daemon, 26.0);
    assert_eq!(
        daemon.metric("rejects_total", &[("reason", "ts_in_future")]),
        Some(1.0)
    );

    let (code, fills) = journal_command(&state, &["fills", "--json", "--symbol", "BTC"]);
    assert_eq!(code, 0);
    let fills = json_lines(&fills);
    assert_eq!(fills.len(), 2);
    assert_eq!(fills[0]["id"], "p1");
    assert_eq!(fills[1]["seq"], 2);
    for field in [
        "seq", "id", "ts", "at", "symbol", "side", "qty", "price", "src",
    ] {
        assert!(fills[0].get(field).is_some(), "{field} in {}", fills[0]);
    }
    let at = fills[1]["at"].as_i64().unwrap();
    let (_, none) = journal_command(
        &state,
        &["--json", "fills", "--since", &(at + 60_000).to_string()],
    );
    assert_eq!(none, "");
    let (_, table) = journal_command(&state, &["fills", "--until", "1h"]);
    assert_eq!(table.lines().count(), 1, "the header only: {table}");
    let (_, rejects) = journal_command(
        &state,
        &["rejects", "--json", "--reason", "max_position_qty"],
    );
    let rejects = json_lines(&rejects);
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0]["id"], "p4");
    let (code, _) = journal_command(&state, &["rejects", "--reason", "no_such_reason"]);
    assert_eq!(code, 2);

    let (_, pnl) = journal_command(&state, &["--json", "pnl"]);
    let pnl = json_lines(&pnl);
    let realized = |symbol: &str| {
        pnl.iter()
            .find(|row| row["symbol"] == symbol)
            .map(|row| row["realized_pnl"].as_f64().unwrap())
    };
    assert_eq!(realized("BTC"), Some(10.0));
    assert_eq!(realized("ETH"), Some(-10.0));
    let (_, by_day) = journal_command(&state, &["pnl", "--by", "day"]);
    assert!(
        by_day
            .lines()
            .any(|line| line.starts_with("total") && line.contains("0.0000")),
        "{by_day}"
    );

    daemon.close_stdin();
    assert!(daemon.stop().success());
    let (code, positions) = journal_command(&state, &["positions", "--json"]);
    assert_eq!(code, 0, "{positions}");
    assert!(positions.contains("\"matches\":true"), "{positions}");
    let (code, verdict) = journal_command(&state, &["verify"]);
    assert_eq!(code, 0, "{verdict}");

    // An id decided twice: a copy of the first fill appended by hand.
    let segments = files(&state.join("journal"), "jsonl");
    assert!(segments.len() >= 3, "{segments:?}");
    let last = segments.last().unwrap();
    let first_line = std::fs::read_to_string(&segments[0])
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let kept = std::fs::read(last).unwrap();
    std::fs::write(
        last,
        [kept.clone(), format!("{first_line}\n").into_bytes()].concat(),
    )
    .unwrap();
    let (code, verdict) = journal_command(&state, &["verify"]);
    assert_eq!(code, 1, "{verdict}");
    assert!(verdict.contains("\"p1\" is decided again"), "{verdict}");
    std::fs::write(last, &kept).unwrap();

    // A corrupt record in a closed segment.
    let middle = &segments[1];
    let text = std::fs::read(middle).unwrap();
    std::fs::write(middle, [b"{garbage}\n".to_vec(), text.clone()].concat()).unwrap();
    let (code, verdict) = journal_command(&state, &["verify"]);
    assert_eq!(code, 1, "{verdict}");
    assert!(verdict.contains("is corrupt at line 1"), "{verdict}");
    std::fs::write(middle, &text).unwrap();

    // A segment gone from the middle.
    std::fs::remove_file(middle).unwrap();
    let (code, verdict) = journal_command(&state, &["--json", "verify"]);
    assert_eq!(code, 1, "{verdict}");
    assert!(verdict.contains("sequence gap"), "{verdict}");
}

/// An error injected at each step of a snapshot write and of a segment
/// roll, once: the snapshot is tried again, the roll too (the journal
/// failing meanwhile), and every signal is decided exactly once.
#[cfg(feature = "failpoints")]
#[test]
fn a_failure_at_any_step_of_a_snapshot_or_a_roll_is_survived() {
    let steps = [
        "ledger::snapshot::create",
        "ledger::snapshot::write",
        "ledger::snapshot::fsync",
        "ledger::snapshot::rename",
        "ledger::snapshot::fsync_dir",
        "ledger::roll::create",
        "ledger::roll::fsync_dir",
    ];
    for step in steps {
        let mut daemon = stdin_bot()
            .env("JOURNAL_SEGMENT_SIZE", "1KiB")
            .env("SNAPSHOT_INTERVAL", "10ms")
            .env("FAILPOINTS", format!("{step}=1*return"))
            .spawn();
        daemon.wait_ready();
        for wave in 0..4 {
            daemon.write_stdin(lines(&format!("w{wave}"), 10).as_bytes());
            wait_decided(&daemon, 10.0 * (wave + 1) as f64);
        }
        let failed = if step.contains("snapshot") {
            assert!(
                wait_until(SOON, || daemon.health().1["checks"]["snapshot"]["status"]
                    == "ok"),
                "{step}: the snapshot check never came back: {}",
                daemon.health().1
            );
            daemon.expect_log("cannot write the snapshot")
        } else {
            daemon.expect_log("journal write failed")
        };
        assert!(failed.contains("fail point"), "{step}: {failed}");
        assert!(
            daemon.wait_status("/health", 200),
            "{step}: never healthy again"
        );
        daemon.close_stdin();
        assert!(daemon.stop().success(), "{step}");
        let state = daemon.state_dir();
        let (code, verdict) = journal_command(&state, &["verify"]);
        assert_eq!(code, 0, "{step}: {verdict}");
        let (_, fills) = journal_command(&state, &["--json", "fills"]);
        let mut ids: Vec<String> = json_lines(&fills)
            .iter()
            .map(|fill| fill["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 40, "{step}");
        assert_eq!(json_lines(&fills).len(), 40, "{step}");
    }
}

/// The window's bound, end to end: a resend within it is a duplicate; a
/// signal older than it, or further ahead than MAX_CLOCK_SKEW, is refused
/// with its reason, journaled and counted, and takes no id.
#[test]
fn the_window_refuses_signals_too_old_or_too_far_ahead() {
    let mut daemon = stdin_bot()
        .env("DEDUPE_WINDOW", "1h")
        .env("MAX_CLOCK_SKEW", "1m")
        .spawn();
    daemon.wait_ready();
    let now = now_ms();
    let line = |id: &str, ts: i64| {
        format!("{{\"id\":\"{id}\",\"ts\":{ts},\"symbol\":\"BTC\",\"side\":\"buy\",\"qty\":1,\"price\":10}}\n")
    };
    let feed = [
        line("fresh", now),
        line("fresh", now),
        line("stale", now - 2 * 3_600_000),
        line("ahead", now + 10 * 60_000),
        line("ahead", now),
    ]
    .concat();
    daemon.write_stdin(feed.as_bytes());
    wait_decided(&daemon, 5.0);
    assert_eq!(daemon.metric("duplicates_total", &[]), Some(1.0));
    assert_eq!(
        daemon.metric("rejects_total", &[("reason", "too_old")]),
        Some(1.0)
    );
    assert_eq!(
        daemon.metric("rejects_total", &[("reason", "ts_in_future")]),
        Some(1.0)
    );
    assert_eq!(
        daemon.metric("signals_total", &[("result", "filled")]),
        Some(2.0)
    );
    assert_eq!(daemon.metric("dedupe_window_ids", &[]), Some(2.0));
    let reasons: Vec<String> = daemon
        .journal()
        .iter()
        .filter_map(|record| record["reason"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(reasons, ["too_old", "ts_in_future"]);
    daemon.close_stdin();
    assert!(daemon.stop().success());
}

/// The line of the log so far that holds `needle`.
fn logged(daemon: &Daemon, needle: &str) -> String {
    daemon
        .log
        .all()
        .into_iter()
        .find(|line| line.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{}", daemon.log.dump()))
}

/// The files of `from` into `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// The state directory the release before checksums left (four segments,
/// three snapshots, a file checkpoint, fills of float numbers): `verify`
/// clean on it, recovered from its newest snapshot with every position,
/// decided id and seq as it was and nothing to warn of; what this release
/// adds carries checksums, and `verify` is clean after it too, with the
/// window the new snapshot records.
#[test]
fn a_state_dir_of_the_release_before_checksums_recovers_unchanged() {
    let builder = Builder::new();
    let state = builder.dir().join("state");
    for part in ["journal", "snapshots"] {
        copy_dir(&Path::new(FIXTURE_D8).join(part), &state.join(part));
    }
    let (code, verdict) = journal_command(&state, &["verify"]);
    assert_eq!(code, 0, "{verdict}");
    assert!(
        verdict.contains("3 snapshots consistent")
            && verdict.contains("19 records without a checksum (written before checksums)"),
        "{verdict}"
    );
    let old = latest_snapshot(&state);
    let mut daemon = builder
        .env("MAX_POSITION_QTY", "5")
        .arg("--source")
        .arg("stdin")
        .piped_stdin()
        .spawn();
    daemon.wait_ready();
    let recovered = logged(&daemon, "journal recovered");
    assert!(recovered.contains("Some(19)"), "{recovered}");
    for (symbol, position) in old["positions"].as_object().unwrap() {
        for (metric, field) in [("position", "qty"), ("realized_pnl", "realized_pnl")] {
            assert_eq!(
                daemon.metric(metric, &[("symbol", symbol)]),
                position[field].as_f64(),
                "{metric} of {symbol}"
            );
        }
    }
    assert_eq!(daemon.metric("journal_last_seq", &[]), Some(19.0));
    assert_eq!(daemon.metric("dedupe_window_ids", &[]), Some(13.0));
    assert_eq!(daemon.metric("recovery_records", &[]), Some(0.0));
    let log = daemon.log.all().join("\n");
    for alarm in [
        "UNUSABLE",
        "NO USABLE",
        "without a checksum",
        "torn",
        "corrupt",
    ] {
        assert!(!log.contains(alarm), "{alarm}: {log}");
    }

    // The whole feed again: the 13 ids it decided, and its 3 resends, are
    // duplicates; its 3 malformed lines are refused again.
    let feed = std::fs::read_to_string(Path::new(FIXTURE_D8).join("feed.jsonl")).unwrap();
    daemon.write_stdin(feed.as_bytes());
    wait_decided(&daemon, 19.0);
    assert_eq!(daemon.metric("duplicates_total", &[]), Some(16.0));
    daemon.write_stdin(signal_line("new-1", "BTC-USD", "buy", 0.1, Some(65000.0)).as_bytes());
    wait_decided(&daemon, 20.0);
    assert_eq!(daemon.metric("journal_last_seq", &[]), Some(23.0));
    daemon.close_stdin();
    assert!(daemon.stop().success());

    let records = read_journal(&state);
    assert_eq!(records.len(), 23);
    assert!(records[..19]
        .iter()
        .all(|record| record.get("crc").is_none()));
    assert!(records[19..].iter().all(|record| record["crc"].is_string()));
    let (code, verdict) = journal_command_as_found(&state, &["verify"]);
    assert_eq!(code, 0, "{verdict}");
    assert!(
        verdict.contains("(as snapshot seq 23 records it)"),
        "{verdict}"
    );
    let (code, positions) = journal_command(&state, &["positions"]);
    assert_eq!(code, 0, "{positions}");
}

/// One digit changed on disk in a closed segment. Behind the newest
/// snapshot, the start does not read it (the snapshot stands in for it,
/// checked by its own SHA-256) and recovers the same positions; `verify`
/// names it. With no snapshot to stand in for it, the start refuses,
/// naming it, rather than replay a fill that was not made.
#[test]
fn a_digit_changed_in_a_closed_segment_is_named_and_never_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let start = || {
        stdin_bot()
            .env("STATE_DIR", &state)
            .env("JOURNAL_SEGMENT_SIZE", "1KiB")
            .spawn()
    };
    let positions = |daemon: &Daemon| -> Vec<Option<f64>> {
        ["BTC", "ETH", "SOL"]
            .iter()
            .map(|symbol| daemon.metric("position", &[("symbol", symbol)]))
            .collect()
    };
    let mut daemon = start();
    daemon.wait_ready();
    daemon.write_stdin(lines("d", 30).as_bytes());
    wait_decided(&daemon, 30.0);
    let expected = positions(&daemon);
    daemon.close_stdin();
    assert!(daemon.stop().success());

    let segments = files(&state.join("journal"), "jsonl");
    assert!(segments.len() >= 3, "{segments:?}");
    let closed = &segments[1];
    let text = std::fs::read_to_string(closed).unwrap();
    let first_line = text.lines().next().unwrap();
    let second_line = text.lines().nth(1).unwrap();
    assert!(second_line.contains("\"price\":10"), "{second_line}");
    let damaged = second_line.replacen("\"price\":10", "\"price\":70", 1);
    std::fs::write(closed, text.replacen(second_line, &damaged, 1)).unwrap();
    let name = closed.file_name().unwrap().to_string_lossy().into_owned();
    let seq = name.trim_end_matches(".jsonl").parse::<u64>().unwrap() + 1;
    let named = format!(
        "{name} is corrupt at line 2, byte {}: record seq {seq}: checksum mismatch",
        first_line.len() + 1
    );
    let (code, verdict) = journal_command(&state, &["verify"]);
    assert_eq!(code, 1, "{verdict}");
    assert!(verdict.contains(&named), "{verdict}");

    let mut daemon = start();
    daemon.wait_ready();
    assert_eq!(positions(&daemon), expected);
    daemon.close_stdin();
    assert!(daemon.stop().success());

    std::fs::remove_dir_all(state.join("snapshots")).unwrap();
    let mut daemon = start();
    assert_eq!(daemon.wait_exit(SOON).code(), Some(1));
    let log = daemon.log.all().join("\n");
    assert!(log.contains(&named), "{log}");
}

/// A signal line of `id` whose `ts` is `ts`.
fn line_at(id: &str, ts: i64) -> String {
    format!(
        "{{\"id\":\"{id}\",\"ts\":{ts},\"symbol\":\"BTC\",\"side\":\"buy\",\"qty\":1,\"price\":10}}\n"
    )
}

/// `tradingbot journal verify` run as an operator would, on the state
/// directory of a daemon whose DEDUPE_WINDOW is not the default and
/// without it: the window is the one the snapshots record, so the ids the
/// daemon forgot are no reported damage. Given another, it checks with
/// the snapshots' from the first on; with no snapshot, it says which
/// window it assumed.
#[test]
fn verify_checks_with_the_window_the_state_records() {
    let mut daemon = stdin_bot().env("DEDUPE_WINDOW", "1s").spawn();
    daemon.wait_ready();
    let state = daemon.state_dir();
    let now = now_ms();
    let burst: String = (0..5)
        .map(|index| line_at(&format!("w{index}"), now))
        .collect();
    daemon.write_stdin(burst.as_bytes());
    wait_decided(&daemon, 5.0);
    // Forgotten as the wall clock moves on, with no signal to move it.
    assert!(
        wait_until(SOON, || daemon.metric("dedupe_window_ids", &[])
            == Some(0.0)),
        "the window kept its ids: {:?}",
        daemon.metric("dedupe_window_ids", &[])
    );
    daemon.close_stdin();
    assert!(daemon.stop().success());
    let header = latest_snapshot(&state);
    assert_eq!(header["dedupe_window_ms"], 1000);
    assert_eq!(header["max_clock_skew_ms"], 300_000);

    let (code, verdict) = journal_command_as_found(&state, &["verify"]);
    assert_eq!(code, 0, "{verdict}");
    assert!(
        verdict.contains("within DEDUPE_WINDOW 1s (as snapshot seq 5 records it)"),
        "{verdict}"
    );
    let (code, verdict) = journal_command(&state, &["verify"]);
    assert_eq!(code, 0, "{verdict}");
    assert!(
        verdict.contains("checked within DEDUPE_WINDOW 1s from snapshot seq 5 on"),
        "{verdict}"
    );
    std::fs::remove_dir_all(state.join("snapshots")).unwrap();
    let (code, verdict) = journal_command_as_found(&state, &["verify"]);
    assert_eq!(code, 0, "{verdict}");
    assert!(verdict.contains("7days (assumed"), "{verdict}");
}

/// After a burst has left the window, a start holds none of its ids: not
/// when killed with them all in its last snapshot (they are skipped as it
/// loads), and the snapshot it writes then holds none either.
#[test]
fn snapshots_and_restarts_follow_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let start = || {
        stdin_bot()
            .env("STATE_DIR", &state)
            .env("DEDUPE_WINDOW", "1s")
            .env("SNAPSHOT_INTERVAL", "100ms")
            .spawn()
    };
    let mut daemon = start();
    daemon.wait_ready();
    // A few seconds ahead (within MAX_CLOCK_SKEW), so they stay in the
    // window until the snapshot that holds them all is written.
    let ts = now_ms() + 5_000;
    let burst: String = (0..200)
        .map(|index| line_at(&format!("b{index}"), ts))
        .collect();
    daemon.write_stdin(burst.as_bytes());
    wait_decided(&daemon, 200.0);
    assert!(
        wait_until(SOON, || !files(&state.join("snapshots"), "snap").is_empty()
            && latest_snapshot(&state)["window_ids"] == 200),
        "no snapshot of the burst; log:\n{}",
        daemon.log.all().join("\n")
    );
    daemon.signal(SIGKILL);
    daemon.wait_exit(SOON);
    // Time is the subject: the burst's ids leave the window 1 s after ts.
    assert!(wait_until(SOON, || now_ms() > ts + 1_100));

    let mut daemon = start();
    daemon.wait_ready();
    let recovered = logged(&daemon, "journal recovered");
    assert!(recovered.contains("\"decided_ids\":0"), "{recovered}");
    assert_eq!(daemon.metric("dedupe_window_ids", &[]), Some(0.0));
    daemon.close_stdin();
    assert!(daemon.stop().success());
    let header = latest_snapshot(&state);
    assert_eq!(header["seq"], 200);
    assert_eq!(header["window_ids"], 0);
}
