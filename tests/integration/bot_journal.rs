//! The journal when the disk says no: a file-size limit (EFBIG, as a full
//! disk would give ENOSPC) and a journal that refuses writes. Both make
//! the daemon unhealthy with the error, pause intake without losing what
//! was received, and recover when the cause goes; and a torn last line is
//! cut on start.

use std::path::Path;
use std::process::Command;

use crate::kit::daemon::{stdin_bot, Builder, Daemon};
use crate::kit::journal::{active_segment, signal_line};
use crate::kit::wait::{wait_until, SOON};

fn journal_check(daemon: &Daemon) -> serde_json::Value {
    daemon.health().1["checks"]["journal"].clone()
}

fn ids(daemon: &Daemon) -> Vec<String> {
    daemon
        .journal()
        .iter()
        .filter_map(|record| record["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_file_size_limit_fails_the_journal_until_lifted_and_nothing_is_lost() {
    let mut daemon = stdin_bot().spawn();
    daemon.wait_ready();
    daemon.write_stdin(signal_line("before", "BTC", "buy", 1.0, Some(10.0)).as_bytes());
    daemon.wait_metric("signals_total", &[("result", "filled")], 1.0);
    let size = std::fs::metadata(active_segment(&daemon.state_dir()))
        .unwrap()
        .len();
    let pid = daemon.pid();
    let prlimit = |limit: &str| {
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(pid.to_string())
            // The soft limit only: raising it back needs no CAP_SYS_RESOURCE.
            .arg(format!("--fsize={limit}:"))
            .status()
            .expect("prlimit (util-linux)");
        assert!(status.success());
    };
    prlimit(&(size + 100).to_string());
    let batch: String = (0..5)
        .map(|index| signal_line(&format!("limited-{index}"), "BTC", "buy", 1.0, Some(10.0)))
        .collect();
    daemon.write_stdin(batch.as_bytes());
    assert!(
        wait_until(SOON, || {
            let check = journal_check(&daemon);
            check["status"] == "failed"
                && check["reason"]
                    .as_str()
                    .is_some_and(|reason| reason.contains("File too large"))
        }),
        "journal never failed: {}",
        journal_check(&daemon)
    );
    let (code, _) = daemon.health();
    assert_eq!(code, 503);
    assert!(
        daemon.wait_status("/livez", 200),
        "the loop must keep beating"
    );

    prlimit("unlimited");
    assert!(wait_until(SOON, || journal_check(&daemon)["status"] == "ok"));
    assert!(daemon.wait_status("/health", 200));
    let mut expected = vec!["before".to_owned()];
    expected.extend((0..5).map(|index| format!("limited-{index}")));
    assert_eq!(ids(&daemon), expected);
    daemon.close_stdin();
    assert!(daemon.stop().success());
}

/// `chattr +i`: even root cannot write to the file or create one in the directory.
struct Immutable<'a>(&'a Path);

impl<'a> Immutable<'a> {
    fn set(path: &'a Path) -> Option<Self> {
        let status = Command::new("chattr").arg("+i").arg(path).status().ok()?;
        status.success().then_some(Immutable(path))
    }
}

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(self.0).status();
    }
}

#[test]
fn a_journal_made_unwritable_at_run_time_fails_until_writable() {
    let mut daemon = stdin_bot().spawn();
    daemon.wait_ready();
    daemon.write_stdin(signal_line("before", "BTC", "buy", 1.0, Some(10.0)).as_bytes());
    daemon.wait_metric("signals_total", &[("result", "filled")], 1.0);
    // Immutable refuses writes even through the descriptor already open.
    let journal = active_segment(&daemon.state_dir());
    let Some(guard) = Immutable::set(&journal) else {
        crate::kit::needs::skip(
            "a_journal_made_unwritable_at_run_time_fails_until_writable",
            "chattr +i on the state directory's file system",
        );
        return;
    };
    daemon.write_stdin(signal_line("held", "BTC", "buy", 1.0, Some(10.0)).as_bytes());
    assert!(
        wait_until(SOON, || journal_check(&daemon)["status"] == "failed"),
        "journal never failed: {}",
        journal_check(&daemon)
    );
    let reason = journal_check(&daemon)["reason"].to_string();
    assert!(reason.contains("00000000000000000001.jsonl"), "{reason}");
    assert_eq!(daemon.health().0, 503);
    assert!(
        daemon.wait_status("/livez", 200),
        "the loop must keep beating"
    );

    drop(guard);
    daemon.wait_metric("signals_total", &[("result", "filled")], 2.0);
    assert!(daemon.wait_status("/health", 200));
    assert_eq!(ids(&daemon), ["before", "held"]);
    daemon.close_stdin();
    assert!(daemon.stop().success());
}

#[test]
fn a_torn_last_line_is_cut_on_start_and_logged() {
    let builder = Builder::new();
    let state = builder.dir().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let whole = r#"{"t":"fill","id":"k1","src":"stdin","ts":1,"at":2,"symbol":"BTC","side":"buy","qty":1.0,"price":10.0}"#;
    std::fs::write(
        state.join("journal.jsonl"),
        format!("{whole}\n{{\"t\":\"fill\",\"id\":\"k2\",\"sr"),
    )
    .unwrap();
    let mut daemon = builder.arg("--source").arg("stdin").piped_stdin().spawn();
    daemon.wait_ready();
    assert!(daemon.log.dump().contains("torn line"));
    daemon.write_stdin(signal_line("k1", "BTC", "buy", 1.0, Some(10.0)).as_bytes());
    daemon.write_stdin(signal_line("k2", "BTC", "buy", 1.0, Some(10.0)).as_bytes());
    daemon.wait_metric("signals_total", &[("result", "filled")], 1.0);
    assert_eq!(daemon.metric("duplicates_total", &[]), Some(1.0));
    assert_eq!(daemon.metric("position", &[("symbol", "BTC")]), Some(2.0));
    assert_eq!(ids(&daemon), ["k1", "k2"]);
    daemon.close_stdin();
    assert!(daemon.stop().success());
}

#[test]
fn fsync_policy_sets_how_often_the_journal_is_synced() {
    for (policy, expect_syncs) in [("always", true), ("never", false)] {
        let mut daemon = Builder::new()
            .env("FSYNC", policy)
            .arg("--source")
            .arg("stdin")
            .piped_stdin()
            .spawn();
        daemon.wait_ready();
        let lines: String = (0..3)
            .map(|index| signal_line(&format!("{policy}-{index}"), "BTC", "buy", 1.0, Some(10.0)))
            .collect();
        daemon.write_stdin(lines.as_bytes());
        daemon.wait_metric("signals_total", &[("result", "filled")], 3.0);
        let syncs = daemon.metric("journal_fsync_seconds_count", &[]).unwrap();
        if expect_syncs {
            assert!(
                syncs >= 3.0,
                "FSYNC=always synced {syncs} times for 3 signals"
            );
        } else {
            assert_eq!(syncs, 0.0, "FSYNC=never synced");
        }
        daemon.close_stdin();
        assert!(daemon.stop().success());
    }
}

#[test]
fn a_corrupt_journal_line_refuses_to_start_rather_than_guess() {
    let builder = Builder::new();
    let state = builder.dir().join("state");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("journal.jsonl"), "{\"t\":\"fill\",\"id\n{}\n").unwrap();
    let mut daemon = builder.spawn();
    let status = daemon.wait_exit(SOON);
    assert_eq!(status.code(), Some(1));
    assert!(daemon.log.dump().contains("corrupt at line 1"));
}
