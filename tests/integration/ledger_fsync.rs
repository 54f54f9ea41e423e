//! A failed fsync, for each source. The fail point `ledger::fsync` makes
//! the third fsync return EIO after overwriting what it was to make
//! durable, as a disk that dropped those pages shows them on a later read
//! (`return(lose)`). A daemon that trusted the file, or retried the fsync,
//! would keep those bytes; this one must cut them, write them again from
//! memory, acknowledge nothing before a later fsync succeeds, and go on:
//! every signal decided exactly once, every acknowledged one there after
//! a SIGKILL, `tradingbot journal verify` clean.

use std::io::Write;

use crate::kit::daemon::Builder;
use crate::kit::journal::{journal_command, read_journal, signal_line};
use crate::kit::process::SIGKILL;
use crate::kit::wait::{wait_until, SOON};
use crate::kit::webhook::{post_signals, webhook_bot};

const WAVES: usize = 6;
const PER_WAVE: usize = 5;
const TOKEN: &str = "fsync-test-token";

#[derive(Clone, Copy, Debug)]
enum Source {
    File,
    Exec,
    Stdin,
    Webhook,
}

fn wave(index: usize) -> String {
    (0..PER_WAVE)
        .map(|line| {
            let id = format!("w{index}-{line}");
            signal_line(&id, ["BTC", "ETH"][line % 2], "buy", 1.0, Some(100.0))
        })
        .collect()
}

fn through(source: Source) {
    let builder = Builder::new()
        .env("FAILPOINTS", "ledger::fsync=2*off->1*return(lose)->off")
        .env("FILE_POLL_INTERVAL", "10ms");
    let dir = builder.dir().to_owned();
    let state = dir.join("state");
    let feed = dir.join("feed.jsonl");
    let mut webhook = None;
    let builder = match source {
        Source::File => {
            std::fs::write(&feed, "").unwrap();
            builder
                .arg("--source")
                .arg(format!("file:{}", feed.display()))
        }
        Source::Exec => {
            // The whole feed, a wave every 150 ms, then quiet (a restart
            // would only resend duplicates).
            let script = dir.join("feed.sh");
            let waves: String = (0..WAVES)
                .map(|index| format!("printf '%s' '{}'\nsleep 0.15\n", wave(index)))
                .collect();
            std::fs::write(&script, format!("#!/bin/sh\n{waves}exec sleep 600\n")).unwrap();
            std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            builder
                .arg("--source")
                .arg(format!("exec:{}", script.display()))
        }
        Source::Stdin => builder.arg("--source").arg("stdin").piped_stdin(),
        Source::Webhook => {
            let (builder, addr) = webhook_bot(builder.env("WEBHOOK_TOKEN", TOKEN));
            webhook = Some(addr);
            builder
        }
    };
    let mut daemon = builder.spawn();
    daemon.wait_ready();
    let mut acknowledged = 0;
    for index in 0..WAVES {
        match source {
            Source::File => {
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&feed)
                    .unwrap();
                file.write_all(wave(index).as_bytes()).unwrap();
            }
            Source::Exec => {}
            Source::Stdin => daemon.write_stdin(wave(index).as_bytes()),
            Source::Webhook => {
                let addr = webhook.expect("the webhook's address");
                // The wave waiting on the failed fsync is answered 503 (not
                // recorded yet): sent again once the journal is writable, it
                // is decided once all the same.
                loop {
                    let (code, body) = post_signals(addr, TOKEN, wave(index).as_bytes()).unwrap();
                    if code == 202 {
                        break;
                    }
                    assert_eq!(code, 503, "{body}");
                    assert!(daemon.wait_status("/health", 200), "never writable again");
                }
                acknowledged += PER_WAVE;
            }
        }
        let target = ((index + 1) * PER_WAVE) as f64;
        assert!(
            wait_until(SOON, || daemon.decided() >= target),
            "{source:?}: wave {index} never decided; log:\n{}",
            daemon.log.all().join("\n")
        );
    }
    daemon.expect_log("journal fsync failed");
    let cut = daemon.expect_log("cut back to its last fsynced length");
    assert!(cut.contains("writing_again"), "{cut}");
    assert_eq!(
        daemon.metric("journal_fsync_failures_total", &[]),
        Some(1.0)
    );
    assert!(
        daemon.wait_status("/health", 200),
        "{source:?}: never healthy again"
    );
    // Durable means durable: killed now, nothing acknowledged is missing.
    daemon.signal(SIGKILL);
    daemon.wait_exit(SOON);
    let (code, verdict) = journal_command(&state, &["verify"]);
    assert_eq!(code, 0, "{source:?}: {verdict}");
    let mut ids: Vec<String> = read_journal(&state)
        .iter()
        .filter(|record| record["t"] == "fill")
        .map(|record| record["id"].as_str().unwrap().to_owned())
        .collect();
    let fills = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(fills, ids.len(), "{source:?}: an id filled twice");
    assert_eq!(ids.len(), WAVES * PER_WAVE, "{source:?}: {ids:?}");
    if let Source::Webhook = source {
        assert_eq!(acknowledged, WAVES * PER_WAVE);
    }
    eprintln!("{source:?}: fsync failed once (EIO, pages lost), cut and written again; {fills} fills, each once");
}

#[test]
fn a_failed_fsync_through_a_file_source_loses_and_doubles_nothing() {
    through(Source::File);
}

#[test]
fn a_failed_fsync_through_an_exec_feed_loses_and_doubles_nothing() {
    through(Source::Exec);
}

#[test]
fn a_failed_fsync_through_stdin_loses_and_doubles_nothing() {
    through(Source::Stdin);
}

#[test]
fn a_failed_fsync_through_the_webhook_acknowledges_only_what_is_durable() {
    through(Source::Webhook);
}
