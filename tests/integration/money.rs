//! Exact money and the paper account on the real binary (issue 21): 0.1
//! and 0.2 under a limit of 0.3; a position bought in two parts and sold
//! in one exactly flat; PAPER_BALANCE, insufficient_funds,
//! insufficient_position and ALLOW_SHORT; a fee and a slipped price on a
//! fill, and MAX_ORDER_NOTIONAL on the slipped price; price updates that
//! move unrealized PnL and equity with no fill and no record, and marks
//! kept across a restart; MONEY_DECIMALS, recorded on the fills it
//! rounded, so a replay under another setting is the same; the settings'
//! checks.

use std::path::Path;

use serde_json::Value;

use crate::kit::daemon::{stdin_bot, Builder, Daemon};
use crate::kit::journal::{journal_command, journal_records};

const API_TOKEN: &str = "money-read-token";

/// A signal line with numbers written as given (their own text).
fn order(id: &str, symbol: &str, side: &str, qty: &str, price: Option<&str>) -> String {
    let price = price.map_or(String::new(), |price| format!(",\"price\":{price}"));
    format!(
        "{{\"id\":\"{id}\",\"ts\":1714557600000,\"symbol\":\"{symbol}\",\"side\":\"{side}\",\"qty\":{qty}{price}}}\n"
    )
}

fn price_update(symbol: &str, price: &str) -> String {
    format!("{{\"type\":\"price\",\"symbol\":\"{symbol}\",\"price\":\"{price}\",\"ts\":1714557600000}}\n")
}

/// Writes `lines` and waits until they are all handled.
fn feed(daemon: &mut Daemon, lines: &[String]) {
    let before = daemon.decided();
    for line in lines {
        daemon.write_stdin(line.as_bytes());
    }
    daemon.wait_decided(before + lines.len() as f64);
}

/// `tradingbot journal positions --json`, by symbol.
fn journal_positions(state: &Path) -> serde_json::Map<String, Value> {
    let (code, text) = journal_command(state, &["positions", "--json"]);
    assert_eq!(code, 0, "{text}");
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| Some((line.get("symbol")?.as_str()?.to_owned(), line)))
        .collect()
}

/// The read API's positions, as the loop last published them.
fn api_positions(daemon: &Daemon) -> serde_json::Map<String, Value> {
    let (code, body) = daemon
        .request_with(
            "GET",
            "/api/v1/positions",
            &[("Authorization", &format!("Bearer {API_TOKEN}"))],
        )
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let document: Value = serde_json::from_str(&body).unwrap();
    document["positions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|position| {
            (
                position["symbol"].as_str().unwrap().to_owned(),
                position.clone(),
            )
        })
        .collect()
}

/// A JSON string's text; "-" for anything else.
fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("-")
}

fn rejects(daemon: &Daemon, reason: &str) -> Option<f64> {
    daemon.metric("rejects_total", &[("reason", reason)])
}

#[test]
fn a_tenth_and_two_tenths_fill_under_three_tenths_and_close_exactly_flat() {
    let mut daemon = stdin_bot().env("MAX_POSITION_QTY", "0.3").spawn();
    daemon.wait_ready();
    feed(
        &mut daemon,
        &[
            order("b1", "BTC", "buy", "0.1", Some("64000")),
            order("b2", "BTC", "buy", "0.2", Some("64000")),
            order("b3", "BTC", "buy", "0.000000000000000001", Some("64000")),
            // ETH bought in two parts, sold in one: exactly flat.
            order("e1", "ETH", "buy", "0.1", Some("3000.1")),
            order("e2", "ETH", "buy", "\"0.2\"", Some("\"3000.2\"")),
            order("e3", "ETH", "sell", "0.3", Some("3000.3")),
        ],
    );
    let fills = daemon.records("fill");
    assert_eq!(fills.len(), 5, "{fills:?}");
    let limit = &daemon.records("reject")[0];
    assert_eq!(limit["reason"], "max_position_qty");
    assert_eq!(
        limit["detail"],
        "position in BTC would be 0.300000000000000001, beyond MAX_POSITION_QTY 0.3"
    );
    assert_eq!(
        (text(&fills[3]["qty"]), text(&fills[3]["price"])),
        ("0.2", "3000.2"),
        "written as the exact decimal strings they were sent as"
    );
    daemon.close_stdin();
    assert!(daemon.stop().success());

    let positions = journal_positions(&daemon.state_dir());
    assert_eq!(positions["BTC"]["qty"], "0.3");
    let eth = &positions["ETH"];
    assert_eq!(
        ["qty", "cost", "avg_price"].map(|field| text(&eth[field])),
        ["0", "0", "0"]
    );
    // 900.09 received for what cost 300.01 + 600.04.
    assert_eq!(eth["realized_pnl"], "0.04");
}

#[test]
fn a_balance_refuses_what_the_cash_cannot_pay_and_what_is_not_held() {
    let builder = stdin_bot().env("PAPER_BALANCE", "1000");
    let check = Builder::new()
        .env("PAPER_BALANCE", "1000")
        .arg("check-config")
        .output();
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(
        shown.lines().any(|line| line == "ALLOW_SHORT=false"),
        "a funded account is a cash account: {shown}"
    );
    let mut daemon = builder.spawn();
    daemon.wait_ready();
    feed(
        &mut daemon,
        &[
            order("b1", "BTC", "buy", "9", Some("100")),
            order("b2", "BTC", "buy", "2", Some("100")),
            order("s1", "BTC", "sell", "10", Some("110")),
            order("s2", "BTC", "sell", "9", Some("110")),
            // Decided once: a resend is a duplicate.
            order("b2", "BTC", "buy", "2", Some("100")),
        ],
    );
    assert_eq!(rejects(&daemon, "insufficient_funds"), Some(1.0));
    assert_eq!(rejects(&daemon, "insufficient_position"), Some(1.0));
    assert_eq!(daemon.metric("duplicates_total", &[]), Some(1.0));
    let refused = daemon.records("reject");
    assert_eq!(
        refused
            .iter()
            .map(|reject| (
                reject["id"].as_str().unwrap(),
                reject["detail"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [
            (
                "b2",
                "a buy of 2 BTC at 100 costs 200 with fees, more than the cash 100"
            ),
            (
                "s1",
                "a sell of 10 BTC is more than the 9 held, and ALLOW_SHORT is off"
            ),
        ]
    );
    // 1000 - 900 + 990.
    assert_eq!(daemon.metric("cash", &[]), Some(1090.0));
    assert_eq!(daemon.metric("equity", &[]), Some(1090.0));
    daemon.close_stdin();
    assert!(daemon.stop().success());
}

#[test]
fn shorts_fill_without_a_balance_and_with_one_only_when_allowed() {
    for (builder, short) in [
        (stdin_bot(), "filled"),
        (stdin_bot().env("PAPER_BALANCE", "10"), "rejected"),
        (
            stdin_bot()
                .env("PAPER_BALANCE", "10")
                .env("ALLOW_SHORT", "true"),
            "filled",
        ),
    ] {
        let mut daemon = builder.spawn();
        daemon.wait_ready();
        feed(
            &mut daemon,
            &[order("s1", "ETH", "sell", "1.5", Some("2000"))],
        );
        let got = daemon.metric("signals_total", &[("result", short)]);
        assert_eq!(got, Some(1.0), "{short}");
        daemon.close_stdin();
        assert!(daemon.stop().success());
        if short == "filled" {
            assert_eq!(journal_positions(&daemon.state_dir())["ETH"]["qty"], "-1.5");
        }
    }
}

#[test]
fn a_fill_carries_its_fee_and_slipped_price_and_the_notional_limit_binds_on_it() {
    let mut daemon = stdin_bot()
        .env("FEE_BPS", "10")
        .env("SLIPPAGE_BPS", "5")
        .env("MAX_ORDER_NOTIONAL", "1000")
        .spawn();
    daemon.wait_ready();
    feed(
        &mut daemon,
        &[
            // 1000 asked, but 1000.5 at the slipped 100.05.
            order("n1", "BTC", "buy", "10", Some("100")),
            order("b1", "BTC", "buy", "9", Some("100")),
            order("s1", "BTC", "sell", "9", Some("100")),
        ],
    );
    let refused = &daemon.records("reject")[0];
    assert_eq!(refused["reason"], "max_order_notional");
    assert_eq!(
        refused["detail"],
        "order notional 1000.5 (at 100.05: 100 and 5 bps of slippage) is over MAX_ORDER_NOTIONAL 1000"
    );
    let fills = daemon.records("fill");
    let shown: Vec<[&str; 4]> = fills
        .iter()
        .map(|fill| ["qty", "price", "asked", "fee"].map(|field| text(&fill[field])))
        .collect();
    assert_eq!(
        shown,
        [
            ["9", "100.05", "100", "0.90045"],
            ["9", "99.95", "100", "0.89955"]
        ]
    );
    assert_eq!(
        daemon.metric("realized_pnl", &[("symbol", "BTC")]),
        Some(-0.9)
    );
    assert_eq!(daemon.metric("fees_total", &[]), Some(1.8));
    assert_eq!(daemon.metric("cash", &[]), Some(-2.7));
    daemon.close_stdin();
    assert!(daemon.stop().success());
}

#[test]
fn price_updates_move_unrealized_pnl_and_equity_with_no_record_and_outlive_a_restart() {
    let start = || {
        stdin_bot()
            .env("API_TOKEN", API_TOKEN)
            .env("PAPER_BALANCE", "100000")
    };
    let builder = start();
    let state = builder.dir().join("state");
    let mut daemon = builder.spawn();
    daemon.wait_ready();
    feed(
        &mut daemon,
        &[order("b1", "BTC-USD", "buy", "0.5", Some("64000"))],
    );
    let journaled = daemon.journal().len();
    daemon.write_stdin(price_update("BTC-USD", "64410.5").as_bytes());
    daemon.write_stdin(price_update("SOL-USD", "150.25").as_bytes());
    daemon.wait_metric("price_updates_total", &[], 2.0);
    assert_eq!(
        daemon.journal().len(),
        journaled,
        "price updates are not journaled"
    );
    assert_eq!(
        daemon.metric("unrealized_pnl", &[("symbol", "BTC-USD")]),
        Some(205.25)
    );
    assert_eq!(daemon.metric("equity", &[]), Some(100_205.25));
    assert_eq!(daemon.metric("cash", &[]), Some(68_000.0));
    let btc = &api_positions(&daemon)["BTC-USD"];
    assert_eq!(
        (text(&btc["mark_price"]), text(&btc["unrealized_pnl"])),
        ("64410.5", "205.25")
    );
    daemon.close_stdin();
    assert!(daemon.stop().success());

    // The stop's snapshot keeps the marks: a signal without a price fills
    // at the last one seen, though no record holds it.
    let mut restarted = start().env("STATE_DIR", &state).spawn();
    restarted.wait_ready();
    assert_eq!(api_positions(&restarted)["SOL-USD"]["mark_price"], "150.25");
    assert_eq!(restarted.metric("equity", &[]), Some(100_205.25));
    feed(&mut restarted, &[order("s1", "SOL-USD", "buy", "2", None)]);
    let fill = journal_records(&state, "fill").pop().unwrap();
    assert_eq!((text(&fill["id"]), text(&fill["price"])), ("s1", "150.25"));
    restarted.close_stdin();
    assert!(restarted.stop().success());
}

#[test]
fn money_decimals_round_where_a_fill_needs_it_and_a_replay_rounds_as_it_did() {
    let builder = stdin_bot().env("MONEY_DECIMALS", "2").env("FEE_BPS", "7.5");
    let state = builder.dir().join("state");
    let mut daemon = builder.spawn();
    daemon.wait_ready();
    feed(
        &mut daemon,
        &[
            order("b1", "ETH", "buy", "1", Some("100")),
            order("b2", "ETH", "buy", "2", Some("101")),
            order("s1", "ETH", "sell", "1", Some("102")),
        ],
    );
    let fills = daemon.records("fill");
    // 7.5 bps of 202 is 0.1515: 0.15, to 2 places, half to even.
    assert_eq!(fills[1]["fee"], "0.15");
    assert!(fills.iter().all(|fill| fill["places"] == 2), "{fills:?}");
    daemon.close_stdin();
    assert!(daemon.stop().success());
    // (100 + 202) / 3 = 100.666…, 100.67 to 2 places: 1 sold at 102
    // realizes 1.33.
    let expected = journal_positions(&daemon.state_dir());
    assert_eq!(expected["ETH"]["avg_price"], "100.67");
    assert_eq!(expected["ETH"]["realized_pnl"], "1.33");

    // Restarted with the default places and no snapshot: the replay rounds
    // each fill as it was decided.
    std::fs::remove_dir_all(state.join("snapshots")).unwrap();
    let mut restarted = stdin_bot().env("STATE_DIR", &state).spawn();
    restarted.wait_ready();
    assert_eq!(
        restarted.metric("realized_pnl", &[("symbol", "ETH")]),
        Some(1.33)
    );
    restarted.close_stdin();
    assert!(restarted.stop().success());
    assert_eq!(journal_positions(&state), expected);
}

#[test]
fn bad_money_settings_are_refused_naming_flag_and_env() {
    for (env, value, flag, problem) in [
        ("PAPER_BALANCE", "-5", "--paper-balance", "below zero"),
        (
            "PAPER_BALANCE",
            "lots",
            "--paper-balance",
            "not a decimal number",
        ),
        ("FEE_BPS", "0.001", "--fee-bps", "at most 2 decimal places"),
        (
            "SLIPPAGE_BPS",
            "10000",
            "--slippage-bps",
            "up to (not including) 10000",
        ),
        ("ALLOW_SHORT", "maybe", "--allow-short", "maybe"),
        ("MONEY_DECIMALS", "19", "--money-decimals", "19"),
        (
            "MAX_POSITION_QTY",
            "0.0000000000000000001",
            "--max-position-qty",
            "more than 18 decimal places",
        ),
        (
            "MAX_ORDER_NOTIONAL",
            "0",
            "--max-order-notional",
            "above zero",
        ),
    ] {
        let output = Builder::new().env(env, value).arg("check-config").output();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{env}={value}: {stderr}");
        for named in [env, flag, problem] {
            assert!(
                stderr.contains(named),
                "{env}={value}: {named} not in {stderr}"
            );
        }
    }
}
