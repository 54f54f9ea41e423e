//! Signal parsing, rejection reasons, risk limits and PnL, end to end over
//! the stdin source.

use crate::kit::daemon::{stdin_bot, Builder, Daemon};
use crate::kit::journal::{latest_snapshot, signal_line};
use crate::kit::notify::NotifySocket;
use crate::kit::wait::{wait_until, SOON};

#[test]
fn every_rejection_reason_is_counted_and_journaled() {
    let mut daemon = stdin_bot()
        .env("MAX_POSITION_QTY", "10")
        .env("MAX_ORDER_NOTIONAL", "10000")
        .env("MAX_ORDERS_PER_MINUTE", "3")
        .spawn();
    daemon.wait_ready();
    let ok = r#""ts":1714557600000,"symbol":"BTC","side":"buy""#;
    let mut corpus: Vec<(&str, Vec<u8>)> = vec![
        (
            "line_too_long",
            format!("{{\"id\":\"{}\"}}\n", "x".repeat(70_000)).into_bytes(),
        ),
        ("invalid_utf8", b"{\"id\":\"u\xff\"}\n".to_vec()),
        ("not_json", b"buy BTC 1 now\n".to_vec()),
        (
            "not_json",
            format!("{{\"id\":\"nan\",{ok},\"qty\":NaN}}\n").into_bytes(),
        ),
        ("not_object", b"[\"buy\",\"BTC\"]\n".to_vec()),
        (
            "missing_field",
            format!("{{\"id\":\"m\",{ok}}}\n").into_bytes(),
        ),
        (
            "wrong_type",
            format!("{{\"id\":\"w\",{ok},\"qty\":\"one\"}}\n").into_bytes(),
        ),
        (
            "bad_id",
            format!("{{\"id\":\"\",{ok},\"qty\":1}}\n").into_bytes(),
        ),
        (
            "bad_ts",
            br#"{"id":"t","ts":"noon","symbol":"BTC","side":"buy","qty":1}"#.to_vec(),
        ),
        (
            "bad_symbol",
            br#"{"id":"s","ts":1,"symbol":"","side":"buy","qty":1}"#.to_vec(),
        ),
        (
            "bad_side",
            br#"{"id":"d","ts":1,"symbol":"BTC","side":"hold","qty":1}"#.to_vec(),
        ),
        (
            "bad_qty",
            format!("{{\"id\":\"q\",{ok},\"qty\":-2}}\n").into_bytes(),
        ),
        (
            "bad_price",
            format!("{{\"id\":\"p\",{ok},\"qty\":1,\"price\":0}}\n").into_bytes(),
        ),
        (
            "bad_source",
            format!("{{\"id\":\"o\",{ok},\"qty\":1,\"source\":\"\"}}\n").into_bytes(),
        ),
        (
            "no_price",
            signal_line("np", "XYZ", "buy", 1.0, None).into_bytes(),
        ),
        (
            "max_order_notional",
            signal_line("mn", "BTC", "buy", 1.0, Some(20_000.0)).into_bytes(),
        ),
        (
            "max_position_qty",
            signal_line("mp", "BTC", "buy", 11.0, Some(1.0)).into_bytes(),
        ),
    ];
    for line in &mut corpus {
        if !line.1.ends_with(b"\n") {
            line.1.push(b'\n');
        }
    }
    let fills = ["f1", "f2", "f3"].map(|id| signal_line(id, "ETH", "buy", 1.0, Some(100.0)));
    for (_, line) in &corpus {
        daemon.write_stdin(line);
    }
    for line in &fills {
        daemon.write_stdin(line.as_bytes());
    }
    daemon.write_stdin(signal_line("f4", "ETH", "buy", 1.0, Some(100.0)).as_bytes());
    let expected_lines = corpus.len() + fills.len() + 1;
    assert!(
        wait_until(SOON, || daemon.decided() >= expected_lines as f64),
        "only {} of {expected_lines} lines handled",
        daemon.decided()
    );

    let mut expected = std::collections::BTreeMap::<&str, f64>::new();
    for (reason, _) in &corpus {
        *expected.entry(reason).or_default() += 1.0;
    }
    expected.insert("max_orders_per_minute", 1.0);
    for (reason, count) in &expected {
        assert_eq!(
            daemon.metric("rejects_total", &[("reason", reason)]),
            Some(*count),
            "rejects_total{{reason={reason}}}"
        );
    }
    assert_eq!(
        daemon.metric("fills_total", &[("symbol", "ETH"), ("side", "buy")]),
        Some(3.0)
    );
    let journal = daemon.journal();
    let journaled: Vec<&str> = journal
        .iter()
        .filter(|record| record["t"] == "reject")
        .map(|record| record["reason"].as_str().unwrap())
        .collect();
    assert_eq!(journaled.len(), corpus.len() + 1);
    for (reason, _) in &corpus {
        assert!(journaled.contains(reason), "{reason} not journaled");
    }
    let (code, health) = daemon.health();
    assert_eq!(code, 200, "{health}");
    daemon.close_stdin();
    assert!(daemon.stop().success());
}

#[test]
fn risk_limits_and_pnl_match_a_hand_computed_scenario_and_survive_a_restart() {
    let scenario = [
        signal_line("b1", "BTC", "buy", 2.0, Some(100.0)), // long 2 @ 100
        signal_line("b2", "BTC", "buy", 1.0, Some(130.0)), // long 3 @ 110
        signal_line("s1", "BTC", "sell", 4.0, Some(120.0)), // closes 3: +30; short 1 @ 120
        signal_line("s2", "BTC", "sell", 3.0, Some(120.0)), // short 4 > 3: rejected
        signal_line("n1", "BTC", "buy", 10.0, Some(200.0)), // notional 2000 > 1000: rejected
        signal_line("b3", "BTC", "buy", 1.0, None),        // at last price 120: flat, +0
        signal_line("e1", "ETH", "buy", 1.0, Some(10.0)),  // long 1 @ 10
        signal_line("e2", "ETH", "sell", 1.0, Some(15.0)), // flat, +5
        signal_line("b1", "BTC", "buy", 2.0, Some(100.0)), // duplicate id
    ];
    let limits = |builder: Builder| {
        builder
            .env("MAX_POSITION_QTY", "3")
            .env("MAX_ORDER_NOTIONAL", "1000")
    };
    let mut first = limits(stdin_bot()).spawn();
    first.wait_ready();
    for line in &scenario {
        first.write_stdin(line.as_bytes());
    }
    first.wait_metric("duplicates_total", &[], 1.0);
    let check = |daemon: &Daemon| {
        assert_eq!(daemon.metric("position", &[("symbol", "BTC")]), Some(0.0));
        assert_eq!(daemon.metric("position", &[("symbol", "ETH")]), Some(0.0));
        assert_eq!(
            daemon.metric("realized_pnl", &[("symbol", "BTC")]),
            Some(30.0)
        );
        assert_eq!(
            daemon.metric("realized_pnl", &[("symbol", "ETH")]),
            Some(5.0)
        );
        // Flat, so every fill's cash flow is realized: -200 - 130 + 480 -
        // 120 on BTC, -10 + 15 on ETH.
        assert_eq!(daemon.metric("cash", &[]), Some(35.0));
        assert_eq!(daemon.metric("equity", &[]), Some(35.0));
    };
    check(&first);
    assert_eq!(
        first.metric("fills_total", &[("symbol", "BTC"), ("side", "buy")]),
        Some(3.0)
    );
    assert_eq!(
        first.metric("rejects_total", &[("reason", "max_position_qty")]),
        Some(1.0)
    );
    assert_eq!(
        first.metric("rejects_total", &[("reason", "max_order_notional")]),
        Some(1.0)
    );
    first.close_stdin();
    assert!(first.stop().success());
    let snapshot = latest_snapshot(&first.state_dir());
    assert_eq!(snapshot["positions"]["BTC"]["realized_pnl"], "30");
    assert_eq!(snapshot["positions"]["BTC"]["cost"], "0");

    // The journal rebuilds positions and the dedupe index: the same feed
    // again is all duplicates, and nothing moves.
    let mut second = limits(stdin_bot())
        .env("STATE_DIR", first.state_dir())
        .spawn();
    second.wait_ready();
    check(&second);
    for line in &scenario {
        second.write_stdin(line.as_bytes());
    }
    second.wait_metric("duplicates_total", &[], scenario.len() as f64);
    check(&second);
    second.close_stdin();
    assert!(second.stop().success());
    let records = first.journal();
    assert_eq!(
        records.len(),
        8,
        "a restart on the same journal must add nothing: {records:?}"
    );
}

#[test]
fn live_trading_is_refused_with_exit_2() {
    let output = Builder::new().env("LIVE_TRADING", "true").output();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LIVE_TRADING"), "{stderr}");
    assert!(stderr.contains("not supported yet"), "{stderr}");
}

#[test]
fn a_quiet_feed_shows_as_degraded_until_a_signal_comes() {
    let mut daemon = stdin_bot().env("MAX_SIGNAL_AGE", "300ms").spawn();
    daemon.wait_ready();
    let feed_check = |daemon: &Daemon| daemon.health().1["checks"]["feed"].clone();
    assert!(
        wait_until(SOON, || feed_check(&daemon)["status"] == "degraded"),
        "{}",
        feed_check(&daemon)
    );
    let (code, health) = daemon.health();
    assert_eq!(code, 200, "degraded is still up: {health}");
    assert!(health["checks"]["feed"]["reason"]
        .as_str()
        .unwrap()
        .contains("MAX_SIGNAL_AGE"));
    assert_eq!(health["last_signal_age_seconds"], serde_json::Value::Null);
    daemon.write_stdin(signal_line("q1", "BTC", "buy", 1.0, Some(1.0)).as_bytes());
    assert!(wait_until(SOON, || feed_check(&daemon)["status"] == "ok"));
    assert!(daemon.health().1["last_signal_age_seconds"].is_number());
    daemon.close_stdin();
    assert!(daemon.stop().success());
}

#[test]
fn status_line_carries_the_bot_figures() {
    let notify = NotifySocket::path();
    let mut daemon = stdin_bot().env("NOTIFY_SOCKET", &notify.env_value).spawn();
    daemon.wait_ready();
    daemon.write_stdin(signal_line("st1", "BTC", "buy", 1.0, Some(5.0)).as_bytes());
    daemon.write_stdin(b"garbage\n");
    let status = notify.wait_for(SOON, |message| {
        message.contains("2 signals, 1 fills, 1 rejected")
    });
    assert!(status.is_some(), "no STATUS= with the figures");
    assert!(status.unwrap().0.contains("last signal"));
    daemon.close_stdin();
    assert!(daemon.stop().success());
}
