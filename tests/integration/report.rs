//! The trade report on the real binary: fills fed through stdin, the round
//! trips and their figures worked out here from the fills the read API
//! gives (in scaled integers, apart from the daemon's code: `kit::decimal`),
//! and compared with `tradingbot journal report --json` and
//! `GET /api/v1/report`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::kit::daemon::{stdin_bot, Daemon};
use crate::kit::decimal::{divided, of, ratio, scaled, text, times, PLACES_4, PLACES_8};
use crate::kit::journal::journal_command;
use crate::kit::wait::{wait_until, SOON};

const API_TOKEN: &str = "report-Re4d-t0ken-0123456789";

fn get(daemon: &Daemon, path: &str) -> (u16, Value) {
    daemon.read_api(API_TOKEN, path)
}

fn line(id: &str, symbol: &str, side: &str, qty: &str, price: &str) -> String {
    format!(
        "{{\"id\":\"{id}\",\"ts\":1714557600000,\"symbol\":\"{symbol}\",\"side\":\"{side}\",\"qty\":\"{qty}\",\"price\":{price}}}\n"
    )
}

/// A fill as the read API gives it.
struct Fill {
    at: i64,
    symbol: String,
    buy: bool,
    qty: i128,
    asked: i128,
    price: i128,
    fee: i128,
}

impl Fill {
    fn from(item: &Value) -> Fill {
        let decimal = |field: &str| {
            scaled(
                item[field]
                    .as_str()
                    .unwrap_or_else(|| panic!("{field} is not a string: {item}")),
            )
        };
        Fill {
            at: item["at"].as_i64().unwrap(),
            symbol: item["symbol"].as_str().unwrap().to_owned(),
            buy: item["side"] == "buy",
            qty: decimal("qty"),
            asked: decimal("asked"),
            price: decimal("price"),
            fee: decimal("fee"),
        }
    }
}

/// A round trip in progress: entries and exits so far.
#[derive(Default)]
struct Trip {
    long: bool,
    opened: i64,
    held: i128,
    entry_qty: i128,
    entry: i128,
    exit: i128,
    fees: i128,
}

impl Trip {
    fn closed(&self, symbol: &str, closed: i64) -> Value {
        let gain = if self.long {
            self.exit - self.entry
        } else {
            self.entry - self.exit
        };
        json!({
            "symbol": symbol,
            "direction": if self.long { "long" } else { "short" },
            "opened_at": self.opened,
            "closed_at": closed,
            "duration_ms": closed - self.opened,
            "qty": text(self.entry_qty),
            "entry_price": text(ratio(self.entry, self.entry_qty, PLACES_8)),
            "exit_price": text(ratio(self.exit, self.entry_qty, PLACES_8)),
            "entry_notional": text(self.entry),
            "exit_notional": text(self.exit),
            "fees": text(self.fees),
            "pnl": text(gain - self.fees),
        })
    }
}

/// One symbol as the model follows it.
#[derive(Default)]
struct Book {
    qty: i128,
    flow: i128,
    mark: i128,
    trip: Option<Trip>,
}

/// The round trips that closed at or after `since`, of `only` if given,
/// and the total's figures, as the report must give them.
fn expected(fills: &[Fill], since: i64, only: Option<&str>) -> (Vec<Value>, Value) {
    let mut books: BTreeMap<&str, Book> = BTreeMap::new();
    let mut trips = Vec::new();
    let (mut peak, mut drawdown): (Option<i128>, i128) = (None, 0);
    let equity = |books: &BTreeMap<&str, Book>| {
        books
            .values()
            .map(|book| book.flow + times(book.qty, book.mark))
            .sum::<i128>()
    };
    for fill in fills
        .iter()
        .filter(|fill| only.is_none_or(|only| only == fill.symbol))
    {
        let was = equity(&books);
        let book = books.entry(&fill.symbol).or_default();
        let signed = if fill.buy { fill.qty } else { -fill.qty };
        book.flow -= times(signed, fill.price) + fill.fee;
        book.qty += signed;
        book.mark = fill.asked;
        let (mut qty, mut fee) = (fill.qty, fill.fee);
        if let Some(trip) = book.trip.as_mut().filter(|trip| trip.long != fill.buy) {
            let exited = qty.min(trip.held);
            let exit_fee = if exited == qty {
                fee
            } else {
                ratio(times(fee, exited), qty, PLACES_8)
            };
            trip.held -= exited;
            trip.exit += times(exited, fill.price);
            trip.fees += exit_fee;
            qty -= exited;
            fee -= exit_fee;
            if trip.held == 0 {
                if fill.at >= since {
                    trips.push(trip.closed(&fill.symbol, fill.at));
                }
                book.trip = None;
            }
        }
        if qty > 0 {
            let trip = book.trip.get_or_insert(Trip {
                long: fill.buy,
                opened: fill.at,
                ..Trip::default()
            });
            trip.held += qty;
            trip.entry_qty += qty;
            trip.entry += times(qty, fill.price);
            trip.fees += fee;
        }
        let now = equity(&books);
        if fill.at >= since {
            let top = *peak.get_or_insert(was);
            if now > top {
                peak = Some(now);
            } else {
                drawdown = drawdown.max(top - now);
            }
        }
    }
    let pnls: Vec<i128> = trips.iter().map(|trip| of(&trip["pnl"])).collect();
    let wins: Vec<i128> = pnls.iter().copied().filter(|pnl| *pnl > 0).collect();
    let losses: Vec<i128> = pnls.iter().copied().filter(|pnl| *pnl < 0).collect();
    let (profit, loss) = (wins.iter().sum::<i128>(), losses.iter().sum::<i128>());
    let fees: i128 = trips.iter().map(|trip| of(&trip["fees"])).sum();
    let count = |items: &[i128]| items.len() as i128;
    let total = json!({
        "trades": trips.len(),
        "wins": wins.len(),
        "losses": losses.len(),
        "win_rate": (!trips.is_empty()).then(|| text(ratio(count(&wins), count(&pnls), PLACES_4))),
        "pnl": text(profit + loss),
        "profit_factor": (!losses.is_empty()).then(|| text(ratio(profit, -loss, PLACES_4))),
        "avg_win": (!wins.is_empty()).then(|| text(divided(profit, count(&wins), PLACES_8))),
        "avg_loss": (!losses.is_empty()).then(|| text(divided(loss, count(&losses), PLACES_8))),
        "largest_win": wins.iter().max().map(|win| text(*win)),
        "largest_loss": losses.iter().min().map(|loss| text(*loss)),
        "max_drawdown": text(drawdown),
        "fees": text(fees),
    });
    (trips, total)
}

/// The figures of `total` that [`expected`] works out.
fn figures(total: &Value) -> Value {
    let names = [
        "trades",
        "wins",
        "losses",
        "win_rate",
        "pnl",
        "profit_factor",
        "avg_win",
        "avg_loss",
        "largest_win",
        "largest_loss",
        "max_drawdown",
        "fees",
    ];
    Value::Object(
        names
            .into_iter()
            .map(|name| (name.to_owned(), total[name].clone()))
            .collect(),
    )
}

fn fills(daemon: &Daemon) -> Vec<Fill> {
    let (code, page) = get(daemon, "/api/v1/fills?limit=1000");
    assert_eq!(code, 200, "{page}");
    page["fills"]
        .as_array()
        .unwrap()
        .iter()
        .map(Fill::from)
        .collect()
}

fn wait_for_seq(daemon: &Daemon, seq: u64) {
    assert!(
        wait_until(SOON, || get(daemon, "/api/v1/status").1["last_seq"] == seq),
        "the journal never reached seq {seq}; log:\n{}",
        daemon.log.dump()
    );
}

/// A long built in two parts and sold in one; a long sold through zero
/// into a short and the short bought back; a short closed in two buys; a
/// long left open. Then, a millisecond later, one more round trip, so a
/// window can start between the two.
#[test]
fn the_report_is_the_round_trips_worked_out_from_the_fills() {
    let mut daemon = stdin_bot()
        .env("API_TOKEN", API_TOKEN)
        .env("FEE_BPS", "7.5")
        .env("SLIPPAGE_BPS", "3")
        .spawn();
    daemon.wait_ready();
    let first = [
        line("b1", "BTC", "buy", "0.5", "64000"),
        line("b2", "BTC", "buy", "0.25", "\"64400.5\""),
        line("b3", "BTC", "sell", "0.75", "64800"),
        line("e1", "ETH", "buy", "2", "3000"),
        line("e2", "ETH", "sell", "3", "2900.25"),
        line("e3", "ETH", "buy", "1", "2950"),
        line("s1", "SOL", "sell", "10", "150"),
        line("s2", "SOL", "buy", "4", "140"),
        line("s3", "SOL", "buy", "6", "145.5"),
        line("s4", "SOL", "buy", "3", "100"),
    ]
    .concat();
    daemon.write_stdin(first.as_bytes());
    wait_for_seq(&daemon, 10);
    let last_at = fills(&daemon).last().unwrap().at;
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    assert!(wait_until(SOON, || now_ms() > last_at));
    let second = [
        line("b4", "BTC", "sell", "0.1", "65000"),
        line("b5", "BTC", "buy", "0.1", "64000.01"),
    ]
    .concat();
    daemon.write_stdin(second.as_bytes());
    wait_for_seq(&daemon, 12);

    let fills = fills(&daemon);
    assert_eq!(fills.len(), 12);
    assert!(
        fills
            .iter()
            .any(|fill| fill.fee > 0 && fill.price != fill.asked),
        "every fill pays a fee and slips"
    );
    let since = fills[10].at;
    let state = daemon.state_dir();
    let cases: [(String, Vec<String>, i64, Option<&str>); 3] = [
        (String::new(), vec![], i64::MIN, None),
        (
            "?symbol=ETH".into(),
            vec!["--symbol".into(), "ETH".into()],
            i64::MIN,
            Some("ETH"),
        ),
        (
            format!("?since={since}"),
            vec!["--since".into(), since.to_string()],
            since,
            None,
        ),
    ];
    for (query, args, since, only) in cases {
        let (trips, total) = expected(&fills, since, only);
        let (code, api) = get(&daemon, &format!("/api/v1/report{query}"));
        assert_eq!(code, 200, "{api}");
        assert_eq!(api["round_trips"], json!(trips), "{query}");
        assert_eq!(figures(&api["total"]), total, "{query}");
        assert_eq!(api["last_seq"], 12);

        let mut command = vec!["report", "--json"];
        command.extend(args.iter().map(String::as_str));
        let (code, printed) = journal_command(&state, &command);
        assert_eq!(code, 0, "{printed}");
        let cli: Value = serde_json::from_str(&printed).unwrap();
        assert_eq!(cli, api, "the journal's report and the API's are one");
    }

    let (_, all) = get(&daemon, "/api/v1/report");
    assert_eq!(all["round_trips"].as_array().unwrap().len(), 5);
    assert_eq!(all["by_symbol"]["ETH"]["trades"], 2);
    assert_eq!(all["open"][0]["symbol"], "SOL");
    assert_eq!(all["open"][0]["qty"], "3");
    let (_, since) = get(&daemon, &format!("/api/v1/report?since={since}"));
    assert_eq!(since["round_trips"].as_array().unwrap().len(), 1);

    let (code, table) = journal_command(&state, &["report"]);
    assert_eq!(code, 0, "{table}");
    for header in [
        "WIN RATE",
        "PROFIT FACTOR",
        "MAX DRAWDOWN",
        "PNL NET OF FEES",
        "DURATION",
    ] {
        assert!(table.contains(header), "{header} missing:\n{table}");
    }
    let total_row = table.lines().find(|row| row.starts_with("total")).unwrap();
    assert!(
        total_row.ends_with(all["total"]["pnl"].as_str().unwrap()),
        "{total_row}"
    );

    for bad in ["since=yesterday", "since=1&since=2", "symbol=A&symbol=B"] {
        let (code, body) = get(&daemon, &format!("/api/v1/report?{bad}"));
        assert_eq!(code, 400, "{bad}: {body}");
        assert!(body["error"].as_str().is_some(), "{body}");
    }
    let (code, _) = daemon.get("/api/v1/report");
    assert_eq!(code, 401, "the read token is required");
}

/// Retention deletes the journal's start while a position is open: the
/// report reads on from the oldest snapshot, whose position opens the
/// round trip that the later sale closes, at its exact cost.
#[test]
fn a_position_opened_before_retention_closes_its_round_trip_from_the_snapshot() {
    let mut daemon = stdin_bot()
        .env("API_TOKEN", API_TOKEN)
        .env("JOURNAL_SEGMENT_SIZE", "1KiB")
        .env("JOURNAL_RETENTION", "300ms")
        .env("SNAPSHOT_INTERVAL", "50ms")
        .spawn();
    daemon.wait_ready();
    daemon.write_stdin(line("open-1", "BTC", "buy", "0.5", "100").as_bytes());
    daemon.write_stdin(line("open-2", "BTC", "buy", "1", "101.25").as_bytes());
    // A trickle of flat ETH trades rolls segments and brings the
    // snapshots that apply retention.
    let first = daemon
        .state_dir()
        .join("journal/00000000000000000001.jsonl");
    let mut sent = 0;
    assert!(
        wait_until(SOON, || {
            let pair = [
                line(&format!("e{sent}"), "ETH", "buy", "1", "10"),
                line(&format!("e{sent}x"), "ETH", "sell", "1", "10"),
            ];
            daemon.write_stdin(pair.concat().as_bytes());
            sent += 1;
            !first.exists()
        }),
        "segment 1 never deleted; log:\n{}",
        daemon.log.dump()
    );
    daemon.write_stdin(line("close", "BTC", "sell", "1.5", "110").as_bytes());
    let closed = 2 + 2 * sent as u64 + 1;
    wait_for_seq(&daemon, closed);

    let (code, report) = get(&daemon, "/api/v1/report?symbol=BTC");
    assert_eq!(code, 200, "{report}");
    let carried = report["carried_from_seq"].as_u64().expect("carried");
    assert!((2..closed).contains(&carried), "{report}");
    let [trip] = report["round_trips"].as_array().unwrap().as_slice() else {
        panic!("{report}");
    };
    // 0.5 at 100 and 1 at 101.25 cost 151.25; sold at 110: 165.
    assert_eq!(
        (
            &trip["qty"],
            &trip["entry_notional"],
            &trip["exit_notional"]
        ),
        (&"1.5".into(), &"151.25".into(), &"165".into())
    );
    assert_eq!(
        (&trip["entry_price"], &trip["pnl"]),
        (&"100.83333333".into(), &"13.75".into())
    );
    let (code, printed) = journal_command(&daemon.state_dir(), &["report", "--symbol", "BTC"]);
    assert_eq!(code, 0, "{printed}");
    assert!(
        printed.contains(&format!(
            "positions held then open their round trips at snapshot seq {carried}"
        )),
        "{printed}"
    );
}
