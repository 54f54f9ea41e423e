//! Bounded against its input (issue 16): a feed that brings symbol after
//! symbol is refused past the allowlist or `MAX_SYMBOLS`, each refusal
//! journaled and counted like any reject, the same after a restart, and
//! taking no id (the signal is handled once the settings let it be); and
//! `/metrics` keeps a bounded number of series however many symbols the
//! engine holds, the rest summed under `symbol="other"`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::kit::daemon::{stdin_bot, Builder, Daemon};
use crate::kit::journal::{latest_snapshot, signal_line};
use crate::kit::wait::{wait_until, SOON};

/// Series `/metrics` can return besides the per-symbol ones (README,
/// "Figures in /metrics"): 5 health gauges and counters, 18 (path, code)
/// pairs, 4 source kinds × 3 results, 24 reasons, duplicates, last signal,
/// iterations, the account's cash, equity and fees, price updates, the 13
/// series of the fsync histogram, and the ledger's 10.
const FIXED_SERIES: usize = 89;

/// The documented bound on the series of `/metrics`: 5 a symbol (fills by
/// side, position, realized and unrealized PnL).
fn series_bound(metrics_max_symbols: usize) -> usize {
    5 * (metrics_max_symbols + 1) + FIXED_SERIES
}

/// Every series of a Prometheus text exposition: (name, labels) → value.
fn series(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a value");
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            // Symbols here carry no comma, quote or backslash.
            let labels = labels
                .split(',')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').expect("label=value");
                    (key.to_owned(), value.trim_matches('"').to_owned())
                })
                .collect();
            (
                (name.to_owned(), labels),
                value.parse::<f64>().expect("a number"),
            )
        })
        .collect()
}

/// The same from the JSON rendering, which must carry the same series.
fn json_series(body: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let json: serde_json::Value = serde_json::from_str(body).expect("JSON metrics");
    let mut all = BTreeMap::new();
    for (name, value) in json.as_object().expect("an object") {
        let as_number = |value: &serde_json::Value| value.as_f64().unwrap_or(f64::NAN);
        match value.as_array() {
            None => {
                all.insert((name.clone(), BTreeMap::new()), as_number(value));
            }
            Some(list) => {
                for entry in list {
                    let labels = entry["labels"]
                        .as_object()
                        .expect("labels")
                        .iter()
                        .map(|(key, value)| (key.clone(), value.as_str().unwrap().to_owned()))
                        .collect();
                    all.insert((name.clone(), labels), as_number(&entry["value"]));
                }
            }
        }
    }
    all
}

/// Per symbol label: the value of `family` (summed over its other labels).
fn by_symbol(text: &str, family: &str) -> BTreeMap<String, f64> {
    let mut sums = BTreeMap::new();
    for ((name, labels), value) in series(text) {
        if name == format!("tradingbot_{family}") {
            *sums.entry(labels["symbol"].clone()).or_insert(0.0) += value;
        }
    }
    sums
}

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

fn wait_handled(daemon: &Daemon, count: usize, timeout: Duration) {
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
    let snapshot = latest_snapshot(&first.state_dir());
    let positions = snapshot["positions"].as_object().unwrap();
    assert_eq!(positions.len(), 1000);
    assert_eq!(positions["S7"]["qty"], "2");
    assert_eq!(positions["S999"]["qty"], "0");
}

#[test]
fn a_hundred_thousand_symbols_make_a_bounded_metrics_page_that_sums_to_the_journal() {
    const SYMBOLS: usize = 100_000;
    // The stop writes a snapshot of 100,000 positions (11 MB, 3 s measured
    // beside a CI run); a loaded machine can take longer than the default
    // drain, which would make it a forced stop.
    const STOP: Duration = Duration::from_secs(60);
    let builder = Builder::new()
        .env("MAX_SYMBOLS", SYMBOLS.to_string())
        .env("DRAIN_TIMEOUT", "60s");
    let feed = builder.dir().join("feed.jsonl");
    // Every symbol once; the first hundred again, so they are not all alike.
    let mut lines: String = (0..SYMBOLS)
        .map(|index| {
            signal_line(
                &format!("h{index}"),
                &format!("SYM{index}"),
                "buy",
                1.0,
                Some(2.0),
            )
        })
        .collect();
    for index in 0..100 {
        lines.push_str(&signal_line(
            &format!("again{index}"),
            &format!("SYM{index}"),
            "sell",
            3.0,
            Some(4.0),
        ));
    }
    std::fs::write(&feed, lines).unwrap();
    let mut daemon = builder
        .arg("--source")
        .arg(format!("file:{}", feed.display()))
        .spawn();
    daemon.wait_ready();
    wait_handled(&daemon, SYMBOLS + 100, Duration::from_secs(120));

    let text = daemon.metrics();
    let all = series(&text);
    assert!(
        all.len() <= series_bound(100),
        "{} series, over the bound {}",
        all.len(),
        series_bound(100)
    );
    let fills = by_symbol(&text, "fills_total");
    assert_eq!(fills.len(), 101, "100 symbols of their own and other");
    assert!(fills.contains_key("other"));

    // Every fill of the journal is in exactly one series: its symbol's,
    // or other's.
    let journal = daemon.journal();
    let mut journaled: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for record in journal.iter().filter(|record| record["t"] == "fill") {
        let entry = journaled
            .entry(record["symbol"].as_str().unwrap().to_owned())
            .or_default();
        let qty: f64 = record["qty"].as_str().unwrap().parse().unwrap();
        entry.0 += 1.0;
        entry.1 += if record["side"] == "buy" { qty } else { -qty };
    }
    assert_eq!(journaled.len(), SYMBOLS);
    let named: BTreeSet<&String> = fills.keys().filter(|symbol| *symbol != "other").collect();
    let mut other = (0.0, 0.0);
    for (symbol, (count, qty)) in &journaled {
        if named.contains(symbol) {
            assert_eq!(fills[symbol], *count, "fills of {symbol}");
        } else {
            other.0 += count;
            other.1 += qty;
        }
    }
    assert_eq!(fills["other"], other.0);
    assert_eq!(by_symbol(&text, "position")["other"], other.1);
    assert_eq!(
        fills.values().sum::<f64>(),
        (SYMBOLS + 100) as f64,
        "every fill counted once"
    );

    // The JSON rendering carries the same series with the same values
    // (those the loop and the server still move, between two text
    // scrapes around it, aside).
    // Once everything is handled, the per-symbol series no longer move
    // (the loop's own figures, uptime and the scrape counters still do):
    // each must read the same in JSON as in the text around it.
    let before = series(&daemon.metrics());
    let (code, body) = daemon
        .request_with("GET", "/metrics", &[("Accept", "application/json")])
        .unwrap();
    assert_eq!(code, 200);
    let after = series(&daemon.metrics());
    let from_json = json_series(&body);
    assert_eq!(
        from_json.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let mut compared = 0;
    for (key, value) in after.iter().filter(|(key, _)| key.1.contains_key("symbol")) {
        assert_eq!(before.get(key), Some(value), "{key:?} moved after ingest");
        assert_eq!(from_json[key], *value, "{key:?}");
        compared += 1;
    }
    assert_eq!(
        compared,
        5 * 101,
        "five series for each of 100 symbols and other"
    );
    daemon.signal(crate::kit::process::SIGTERM);
    assert!(daemon.wait_exit(STOP).success());
}
