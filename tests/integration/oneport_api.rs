//! The read API on the main port: status, positions, fills and rejects by
//! journal sequence number, behind the read token only, bounded pages.

use serde_json::Value;

use crate::kit::daemon::{stdin_bot, Builder, Daemon};
use crate::kit::journal::signal_line;

const API_TOKEN: &str = "api-Re4d-t0ken-0123456789";
const WEBHOOK_TOKEN: &str = "hook-Wr1te-t0ken-9876543210";

fn get(daemon: &Daemon, path: &str) -> (u16, Value) {
    daemon.read_api(API_TOKEN, path)
}

fn seqs(page: &Value, name: &str) -> Vec<u64> {
    page[name]
        .as_array()
        .unwrap_or_else(|| panic!("no {name}: {page}"))
        .iter()
        .map(|item| item["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn status_positions_fills_and_rejects_by_sequence_number() {
    let mut daemon = stdin_bot().env("API_TOKEN", API_TOKEN).spawn();
    daemon.wait_ready();
    let (code, status) = get(&daemon, "/api/v1/status");
    assert_eq!(code, 200, "{status}");
    assert_eq!(
        status["last_signal_age_seconds"],
        Value::Null,
        "no signal yet"
    );
    assert_eq!(status["last_seq"], 0);

    // 1, 2 fills; 3 a reject; 4 a fill; 5 a duplicate (no record); 6 a reject.
    let mut feed = signal_line("a", "BTC", "buy", 2.0, Some(100.0));
    feed += &signal_line("b", "ETH", "buy", 1.0, Some(10.0));
    feed += "not json\n";
    feed += &signal_line("c", "BTC", "sell", 1.0, Some(110.0));
    feed += &signal_line("a", "BTC", "buy", 2.0, Some(100.0));
    feed += "{\"id\":\"d\"}\n";
    daemon.write_stdin(feed.as_bytes());
    assert!(crate::kit::wait::wait_until(crate::kit::wait::SOON, || {
        get(&daemon, "/api/v1/status").1["last_seq"] == 5
    }));

    let (_, status) = get(&daemon, "/api/v1/status");
    for field in [
        "version",
        "status",
        "reasons",
        "uptime_seconds",
        "heartbeat_age_seconds",
        "last_signal_age_seconds",
        "max_signal_age_seconds",
        "stall_timeout_seconds",
        "signals_total",
        "fills_total",
        "rejects_total",
        "duplicates_total",
        "last_seq",
        "fsync_seconds",
    ] {
        assert!(status.get(field).is_some(), "{field} missing: {status}");
    }
    assert_eq!(status["status"], "healthy");
    assert_eq!(
        (
            &status["signals_total"],
            &status["fills_total"],
            &status["rejects_total"],
            &status["duplicates_total"]
        ),
        (
            &Value::from(6),
            &Value::from(3),
            &Value::from(2),
            &Value::from(1)
        )
    );
    assert!(
        status["fsync_seconds"]["p99"].as_f64().is_some(),
        "{status}"
    );
    // Figures for people carry no float noise: seconds to the microsecond.
    for quantile in ["p50", "p99"] {
        let text = status["fsync_seconds"][quantile].to_string();
        let places = text
            .split_once('.')
            .map_or(0, |(_, fraction)| fraction.len());
        assert!(places <= 6, "{quantile} {text}");
    }

    let (code, positions) = get(&daemon, "/api/v1/positions");
    assert_eq!(code, 200);
    let btc = positions["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|position| position["symbol"] == "BTC")
        .unwrap();
    // Exact decimals, as strings: 1 held of 2 bought at 100, 1 sold at 110.
    assert_eq!(
        (&btc["qty"], &btc["avg_price"], &btc["cost"]),
        (&"1".into(), &"100".into(), &"100".into())
    );
    assert_eq!(
        (&btc["mark_price"], &btc["unrealized_pnl"]),
        (&"110".into(), &"10".into())
    );
    assert_eq!(btc["realized_pnl"], "10");
    // The account: paid 200 + 10, got 110; BTC and ETH at their marks.
    assert_eq!(
        (
            &positions["cash"],
            &positions["equity"],
            &positions["realized_pnl"],
            &positions["unrealized_pnl"],
            &positions["fees"]
        ),
        (
            &"-100".into(),
            &"20".into(),
            &"10".into(),
            &"10".into(),
            &"0".into()
        )
    );
    assert!(
        positions.get("starting_balance").is_none(),
        "no PAPER_BALANCE"
    );
    assert_eq!(positions["last_seq"], 5);

    let (_, page) = get(&daemon, "/api/v1/fills");
    assert_eq!(seqs(&page, "fills"), [1, 2, 4]);
    assert_eq!(page["next"], 4);
    let fill = &page["fills"][0];
    for field in [
        "seq", "id", "ts", "at", "symbol", "side", "qty", "price", "asked", "fee", "src",
    ] {
        assert!(fill.get(field).is_some(), "{field} missing: {fill}");
    }
    assert_eq!(
        (&fill["qty"], &fill["price"], &fill["asked"], &fill["fee"]),
        (&"2".into(), &"100".into(), &"100".into(), &"0".into())
    );
    assert_eq!(
        (fill["id"].as_str(), fill["src"].as_str()),
        (Some("a"), Some("stdin"))
    );
    let (_, page) = get(&daemon, "/api/v1/fills?after=1&limit=1");
    assert_eq!(
        (seqs(&page, "fills"), &page["next"]),
        (vec![2], &Value::from(2))
    );
    let (_, page) = get(&daemon, "/api/v1/fills?after=4");
    assert_eq!(
        (seqs(&page, "fills"), &page["next"]),
        (vec![], &Value::from(4))
    );
    let (_, page) = get(&daemon, "/api/v1/rejects?after=0&limit=1000");
    assert_eq!(seqs(&page, "rejects"), [3, 5]);
    assert_eq!(page["rejects"][1]["reason"], "missing_field");
    assert_eq!(page["rejects"][1]["id"], "d");
    assert!(
        page["rejects"][0].get("line").is_none(),
        "the raw line stays in the journal"
    );

    // Bad pages are refused with a reason, never guessed at.
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "after=-1",
        "after=1&after=2",
        "after=%zz",
    ] {
        let (code, answer) = get(&daemon, &format!("/api/v1/fills?{bad}"));
        assert_eq!(code, 400, "{bad}: {answer}");
        assert!(answer["error"].is_string(), "{bad}: {answer}");
    }
    assert!(daemon.stop().success());
}

#[test]
fn only_the_read_token_opens_the_api_and_never_the_health_routes() {
    let daemon = Builder::new()
        .arg("--source")
        .arg("webhook")
        .env("WEBHOOK_TOKEN", WEBHOOK_TOKEN)
        .env("API_TOKEN", API_TOKEN)
        .env("RUST_LOG", "trace")
        .spawn();
    daemon.wait_ready();
    let status = "/api/v1/status";
    let (missing, missing_body) = daemon.request("GET", status).unwrap();
    let (wrong, wrong_body) = daemon
        .request_with("GET", status, &[("Authorization", "Bearer nope")])
        .unwrap();
    assert_eq!((missing, wrong), (401, 401));
    assert_eq!(missing_body, wrong_body, "missing and wrong look the same");
    let write = format!("Bearer {WEBHOOK_TOKEN}");
    assert_eq!(
        daemon
            .request_with("GET", status, &[("Authorization", &write)])
            .unwrap()
            .0,
        401,
        "the write token does not read"
    );
    let (code, _) = daemon
        .request("GET", &format!("{status}?token={API_TOKEN}"))
        .unwrap();
    assert_eq!(code, 200);
    let (code, _) = crate::kit::http::http_with_body(
        daemon.addr(),
        "POST",
        &format!("/signals/{API_TOKEN}"),
        &[],
        signal_line("x", "BTC", "buy", 1.0, Some(1.0)).as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 401, "the read token does not write");
    assert_eq!(daemon.request("POST", status).unwrap().0, 405);
    // The health routes need nothing, whatever else is on.
    for path in ["/health", "/livez", "/readyz", "/metrics"] {
        assert_eq!(daemon.get(path).0, 200, "{path}");
    }
    let metrics = daemon.metrics();
    assert!(
        metrics.contains("path=\"/api/v1/status\",code=\"401\""),
        "{metrics}"
    );
    let mut daemon = daemon;
    assert!(daemon.stop().success());
    let log = daemon.log.all().join("\n");
    for token in [API_TOKEN, WEBHOOK_TOKEN] {
        assert!(!log.contains(token) && !metrics.contains(token));
    }
}

#[test]
fn without_a_read_token_the_api_is_off_and_the_token_is_checked_and_redacted() {
    let daemon = Builder::new().spawn();
    daemon.wait_ready();
    for path in ["/api/v1/status", "/ws", "/events"] {
        assert_eq!(daemon.get(path).0, 404, "{path}");
    }
    let token_file = Builder::new();
    let path = token_file.dir().join("api-token");
    std::fs::write(&path, format!("{API_TOKEN}\n")).unwrap();
    let output = Builder::new()
        .env("API_TOKEN", API_TOKEN)
        .env("API_TOKEN_FILE", &path)
        .output();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("API_TOKEN_FILE"));
    let output = Builder::new()
        .arg("check-config")
        .env("API_TOKEN", API_TOKEN)
        .env("WS_MAX_CLIENTS", "7")
        .output();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("API_TOKEN=(set, redacted)"), "{stdout}");
    assert!(stdout.contains("WS_MAX_CLIENTS=7"), "{stdout}");
    assert!(!stdout.contains(API_TOKEN));
    let from_file = Builder::new().env("API_TOKEN_FILE", &path).spawn();
    from_file.wait_ready();
    let (code, _) = from_file
        .request("GET", &format!("/api/v1/positions?token={API_TOKEN}"))
        .unwrap();
    assert_eq!(code, 200);
}
