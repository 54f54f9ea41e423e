//! Bounded against its input (issue 16): a feed that brings symbol after
//! symbol is refused past the allowlist or `MAX_SYMBOLS`, each refusal
//! journaled and counted like any reject, the same after a restart, and
//! taking no id (the signal is handled once the settings let it be).

use crate::common::{signal_line, stdin_bot, wait_until, Daemon, SOON};

fn rejects(daemon: &Daemon, reason: &str) -> f64 {
    daemon
        .metric("rejects_total", &[("reason", reason)])
        .unwrap_or(0.0)
}

fn handled(daemon: &Daemon) -> f64 {
    ["filled", "rejected", "duplicate"]
        .iter()
        .map(|result| {
            daemon
                .metric("signals_total", &[("result", result)])
                .unwrap_or(0.0)
        })
        .sum()
}

fn wait_handled(daemon: &Daemon, count: usize, timeout: std::time::Duration) {
    assert!(
        wait_until(timeout, || handled(daemon) >= count as f64),
        "{} of {count} signals handled; log:\n{}",
        handled(daemon),
        daemon.log.all().join("\n")
    );
}

/// The journal's reject records with `reason`, as (id, detail).
fn journaled_rejects(daemon: &Daemon, reason: &str) -> Vec<(String, String)> {
    daemon
        .journal()
        .iter()
        .filter(|record| record["t"] == "reject" && record["reason"] == reason)
        .map(|record| {
            (
                record["id"].as_str().unwrap_or_default().to_owned(),
                record["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn an_allowlist_rejects_other_symbols_and_the_verdict_outlives_a_restart() {
    let mut first = stdin_bot().env("SYMBOLS", "BTC,ETH").spawn();
    first.wait_ready();
    for line in [
        signal_line("a1", "BTC", "buy", 1.0, Some(10.0)),
        signal_line("a2", "DOGE", "buy", 1.0, Some(10.0)),
        signal_line("a2", "DOGE", "buy", 1.0, Some(10.0)),
    ] {
        first.write_stdin(line.as_bytes());
    }
    wait_handled(&first, 3, SOON);
    // Refused twice: a refused symbol takes no id.
    assert_eq!(rejects(&first, "unknown_symbol"), 2.0);
    assert_eq!(first.metric("duplicates_total", &[]), Some(0.0));
    let journaled = journaled_rejects(&first, "unknown_symbol");
    assert_eq!(journaled.len(), 2, "{journaled:?}");
    assert_eq!(journaled[0].0, "a2");
    assert!(journaled[0].1.contains("DOGE"), "{journaled:?}");
    first.close_stdin();
    assert!(first.stop().success());

    // The same settings after a restart: the same verdict.
    let mut second = stdin_bot()
        .env("SYMBOLS", "BTC,ETH")
        .env("STATE_DIR", first.state_dir())
        .spawn();
    second.wait_ready();
    second.write_stdin(signal_line("a2", "DOGE", "buy", 1.0, Some(10.0)).as_bytes());
    wait_handled(&second, 1, SOON);
    assert_eq!(rejects(&second, "unknown_symbol"), 1.0);
    second.close_stdin();
    assert!(second.stop().success());

    // DOGE listed now: the refused signal is handled, once.
    let mut third = stdin_bot()
        .env("SYMBOLS", "BTC,ETH,DOGE")
        .env("STATE_DIR", first.state_dir())
        .spawn();
    third.wait_ready();
    for id in ["a2", "a2", "a3"] {
        third.write_stdin(signal_line(id, "DOGE", "buy", 1.0, Some(10.0)).as_bytes());
    }
    wait_handled(&third, 3, SOON);
    assert_eq!(third.metric("duplicates_total", &[]), Some(1.0));
    assert_eq!(third.metric("position", &[("symbol", "DOGE")]), Some(2.0));
    third.close_stdin();
    assert!(third.stop().success());
}

#[test]
fn the_1001st_symbol_is_rejected_journaled_and_still_after_a_restart() {
    let mut first = stdin_bot().spawn();
    first.wait_ready();
    let feed: String = (0..=1000)
        .map(|index| {
            signal_line(
                &format!("m{index}"),
                &format!("S{index}"),
                "buy",
                1.0,
                Some(5.0),
            )
        })
        .collect();
    first.write_stdin(feed.as_bytes());
    wait_handled(&first, 1001, SOON);
    assert_eq!(
        first.metric("signals_total", &[("result", "filled")]),
        Some(1000.0)
    );
    assert_eq!(rejects(&first, "too_many_symbols"), 1.0);
    let journaled = journaled_rejects(&first, "too_many_symbols");
    assert_eq!(journaled.len(), 1, "{journaled:?}");
    assert_eq!(journaled[0].0, "m1000");
    assert!(journaled[0].1.contains("MAX_SYMBOLS"), "{journaled:?}");
    first.close_stdin();
    assert!(first.stop().success());
    let records = first.journal().len();

    // Replay rebuilds the 1,000 symbols: the same verdicts for the same
    // signals.
    let mut second = stdin_bot().env("STATE_DIR", first.state_dir()).spawn();
    second.wait_ready();
    for line in [
        signal_line("m1000", "S1000", "buy", 1.0, Some(5.0)),
        signal_line("n1", "S1000", "buy", 1.0, Some(5.0)),
        signal_line("n2", "S7", "buy", 1.0, Some(5.0)),
    ] {
        second.write_stdin(line.as_bytes());
    }
    wait_handled(&second, 3, SOON);
    assert_eq!(rejects(&second, "too_many_symbols"), 2.0);
    assert_eq!(
        second.metric("signals_total", &[("result", "filled")]),
        Some(1.0)
    );
    second.close_stdin();
    assert!(second.stop().success());
    let journal = first.journal();
    assert_eq!(journal.len(), records + 3, "two rejects and a fill added");

    // A smaller MAX_SYMBOLS than the journal was written with: every
    // position recovers, held symbols trade, no new one is admitted.
    let mut third = stdin_bot()
        .env("MAX_SYMBOLS", "10")
        .env("STATE_DIR", first.state_dir())
        .spawn();
    third.wait_ready();
    assert_eq!(third.log.count("more symbols than MAX_SYMBOLS"), 1);
    third.write_stdin(signal_line("o1", "S999", "sell", 1.0, Some(5.0)).as_bytes());
    third.write_stdin(signal_line("o2", "NEW", "buy", 1.0, Some(5.0)).as_bytes());
    wait_handled(&third, 2, SOON);
    assert_eq!(
        third.metric("signals_total", &[("result", "filled")]),
        Some(1.0)
    );
    assert_eq!(rejects(&third, "too_many_symbols"), 1.0);
    third.close_stdin();
    assert!(third.stop().success());
    let snapshot: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(first.state_dir().join("snapshot.json")).unwrap(),
    )
    .unwrap();
    let positions = snapshot["positions"].as_object().unwrap();
    assert_eq!(positions.len(), 1000);
    assert_eq!(positions["S7"]["qty"], 2.0);
    assert_eq!(positions["S999"]["qty"], 0.0);
}
