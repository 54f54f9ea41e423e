//! Micro-benchmarks of the hot paths: signal parsing, the engine step, a
//! journal record written and read, the health verdict, a whole `/health`
//! answer, and the metrics render.
//!
//!     cargo bench --bench micro

use std::borrow::Cow;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tradingbot::bot::engine::{Engine, PaperExecution};
use tradingbot::bot::intake::map::{Map, Mapped};
use tradingbot::bot::ledger::record::{parse as parse_record, write_line, Record};
use tradingbot::bot::signal::{parse, parse_general, Arrival, Side};
use tradingbot::bot::RiskLimits;
use tradingbot::health::{Component, HealthState};
use tradingbot::http::health::Health;
use tradingbot::metrics::{render_json, render_text, Kind, MetricsSource, Sample};

fn ready_state() -> std::sync::Arc<HealthState> {
    let state = HealthState::new(Duration::from_secs(10), Duration::from_secs(60));
    state.set_component("feed", Component::Ok);
    state.set_component("journal", Component::Ok);
    state.set_bound("127.0.0.1:8080".parse().unwrap());
    state.set_ready(true);
    state
}

fn health(c: &mut Criterion) {
    let state = ready_state();
    c.bench_function("snapshot + verdict", |b| b.iter(|| state.view().verdict()));

    let api = Health::new(state, None);
    c.bench_function("/health response (JSON)", |b| b.iter(|| api.health()));
    let text = hyper::HeaderMap::new();
    c.bench_function("/metrics response (text)", |b| {
        b.iter(|| api.metrics(&text))
    });

    // With as many symbol series as the bound allows (issue 16).
    let state = ready_state();
    state.set_bot_metrics(std::sync::Arc::new(SymbolSeriesAtTheBound));
    let api = Health::new(state, None);
    c.bench_function("/metrics response, 404 symbol series (text)", |b| {
        b.iter(|| api.metrics(&text))
    });
    let mut json = hyper::HeaderMap::new();
    json.insert("accept", "application/json".parse().unwrap());
    c.bench_function("/metrics response, 404 symbol series (JSON)", |b| {
        b.iter(|| api.metrics(&json))
    });
}

/// The per-symbol series of a bot at the default bound: 100 symbols and
/// "other", four series each.
struct SymbolSeriesAtTheBound;

impl MetricsSource for SymbolSeriesAtTheBound {
    fn samples(&self, out: &mut Vec<Sample>) {
        let symbols = (0..100)
            .map(|index| format!("SYM{index}"))
            .chain(["other".to_owned()]);
        let symbols: Vec<String> = symbols.collect();
        for (index, symbol) in symbols.iter().enumerate() {
            for side in ["buy", "sell"] {
                out.push(
                    Sample::new("fills_total", Kind::Counter, "Paper fills.", index as f64)
                        .label("symbol", symbol.clone())
                        .label("side", side),
                );
            }
        }
        for (family, help) in [("position", "Position."), ("realized_pnl", "PnL.")] {
            for (index, symbol) in symbols.iter().enumerate() {
                out.push(
                    Sample::new(family, Kind::Gauge, help, index as f64 * 1.5)
                        .label("symbol", symbol.clone()),
                );
            }
        }
    }
}

const LINE: &[u8] = br#"{"id":"tv-20240501-0007","ts":"2024-05-01T12:00:00Z","symbol":"BTC-USD","side":"buy","qty":0.25,"price":64250.5,"source":"tradingview"}"#;

/// The shape of the harness's ingest feed: epoch milliseconds, no source.
const FEED_LINE: &[u8] =
    br#"{"id":"bench-123456","ts":1714564800000,"symbol":"SYM6","side":"buy","qty":1,"price":104.5}"#;

fn bot(c: &mut Criterion) {
    c.bench_function("parse a signal line (RFC 3339 ts)", |b| {
        b.iter(|| parse(LINE))
    });
    c.bench_function("parse a feed line (epoch ms ts)", |b| {
        b.iter(|| parse(FEED_LINE))
    });
    c.bench_function("parse a line through serde_json only", |b| {
        b.iter(|| parse_general(FEED_LINE, Arrival::Now))
    });
    c.bench_function("parse a rejected line (bad side)", |b| {
        b.iter(|| parse(br#"{"id":"x1","ts":1714564800000,"symbol":"BTC","side":"hold","qty":1}"#))
    });

    let signal = parse(LINE).unwrap();
    let limits = RiskLimits {
        max_position_qty: Some(1e12),
        max_order_notional: Some(1e12),
        max_orders_per_minute: None,
    };
    let mut engine = Engine::new(limits, Box::new(PaperExecution));
    let mut now_ms = 1_714_564_800_000_i64;
    c.bench_function("engine step (limits, paper fill, position)", |b| {
        b.iter(|| {
            now_ms += 1;
            engine.decide(&signal, now_ms)
        })
    });
}

/// A fill as the harness's ingest feed makes them, and a reject of a line
/// with a bad side: what the loop journals, and recovery reads back, most.
fn journal(c: &mut Criterion) {
    let fill = Record::Fill {
        id: Cow::Borrowed("bench-123456"),
        src: Cow::Borrowed("file:/var/lib/tradingbot/feed.jsonl"),
        ts: 1_714_564_800_000,
        at: 1_714_564_800_250,
        symbol: Cow::Borrowed("SYM6"),
        side: Side::Buy,
        qty: 1.0,
        price: 104.5,
        source: None,
    };
    let reject = Record::Reject {
        id: Some("x1".into()),
        src: Cow::Borrowed("file:/var/lib/tradingbot/feed.jsonl"),
        ts: None,
        at: 1_714_564_800_250,
        reason: "bad_side".into(),
        detail: "\"side\" must be \"buy\" or \"sell\"".into(),
        line: r#"{"id":"x1","ts":1714564800000,"symbol":"BTC","side":"hold","qty":1}"#.into(),
    };
    for (name, record) in [("fill", &fill), ("reject", &reject)] {
        let mut out = Vec::with_capacity(1024);
        c.bench_function(&format!("journal: write a {name} record"), |b| {
            b.iter(|| {
                out.clear();
                write_line(record, &mut out);
            })
        });
        let line = &out[..out.len() - 1];
        c.bench_function(&format!("journal: read a {name} record"), |b| {
            b.iter(|| parse_record(line))
        });
    }
}

fn metrics(c: &mut Criterion) {
    let samples: Vec<Sample> = (0..50)
        .map(|index| {
            Sample::new("fills_total", Kind::Counter, "Fills.", index as f64)
                .label("symbol", format!("SYM{index}"))
                .label("side", "buy")
        })
        .collect();
    c.bench_function("render_text, 50 labelled series", |b| {
        b.iter(|| render_text(&samples))
    });
    c.bench_function("render_json, 50 labelled series", |b| {
        b.iter(|| render_json(&samples))
    });
}

criterion_group!(benches, bot, journal, health, metrics);

/// Issue 22: one RTDS trade message mapped to a signal by the shipped
/// sample's mapping.
fn feed_mapping(c: &mut Criterion) {
    let sample = include_str!("../samples/sources/polymarket-rtds.toml");
    let map = Map::from_toml(sample.split("[source.map]").nth(1).unwrap()).unwrap();
    const TRADE: &[u8] = br#"{"topic":"activity","type":"trades","timestamp":1750000000123,"connection_id":"Nx1gGd2yLPECE1w=","payload":{"asset":"21742633143463906290569050155826241533067272736897614950488156847949938836455","bio":"","conditionId":"0xdd22472e552920b8438158ea7238bfadfa4f736aa4cee91a6b86c39ead110917","eventSlug":"fed-decision-in-june","icon":"https://polymarket-upload.s3.us-east-2.amazonaws.com/fed.png","name":"trader","outcome":"Yes","outcomeIndex":0,"price":0.53,"profileImage":"","proxyWallet":"0x1111111111111111111111111111111111111111","pseudonym":"Quiet-Trader","side":"BUY","size":12.5,"slug":"fed-cut-june","timestamp":1750000000,"title":"Fed cuts rates in June?","transactionHash":"0x8f1c9e3a5b7d2f4e6a8c0b1d3f5e7a9c2b4d6f8e0a1c3e5f7b9d1f3a5c7e9b0d"}}"#;
    c.bench_function("map an RTDS trade message to a signal", |b| {
        b.iter(|| {
            let mut mapped = 0;
            map.map(TRADE, &mut |outcome| {
                mapped += usize::from(matches!(outcome, Mapped::Message { signal: Ok(_), .. }));
            });
            mapped
        })
    });
}

criterion_group!(feeds, feed_mapping);

/// Issue 21: the money types (fixed-point i128 at 18 places) beside
/// rust_decimal, the alternative they were chosen over, and beside the
/// f64 of today, for what the engine does per fill: read a signal's qty
/// and price, add, multiply qty × price, compare with a limit, write.
fn money(c: &mut Criterion) {
    use std::fmt::Write;
    use std::hint::black_box;
    use std::str::FromStr;

    use rust_decimal::Decimal as RustDecimal;
    use tradingbot::bot::money::{Amount, BasisPoints, Price, Quantity, Rounding};

    const QTY: &str = "0.25";
    const PRICE: &str = "64415.13";

    let mut group = c.benchmark_group("money");
    group.bench_function("parse qty and price: f64 (today)", |b| {
        b.iter(|| {
            (
                black_box(QTY).parse::<f64>(),
                black_box(PRICE).parse::<f64>(),
            )
        })
    });
    group.bench_function("parse qty and price: fixed i128", |b| {
        b.iter(|| {
            (
                Quantity::parse(black_box(QTY)),
                Price::parse(black_box(PRICE)),
            )
        })
    });
    group.bench_function("parse qty and price: rust_decimal", |b| {
        b.iter(|| {
            (
                RustDecimal::from_str_exact(black_box(QTY)),
                RustDecimal::from_str_exact(black_box(PRICE)),
            )
        })
    });

    let (qty_f, price_f) = (0.25_f64, 64415.13_f64);
    let (qty, price) = (Quantity::parse(QTY).unwrap(), Price::parse(PRICE).unwrap());
    let (qty_d, price_d) = (
        RustDecimal::from_str(QTY).unwrap(),
        RustDecimal::from_str(PRICE).unwrap(),
    );
    let cash = Amount::parse("-22109.75").unwrap();
    let cash_d = RustDecimal::from_str("-22109.75").unwrap();

    group.bench_function("add: f64", |b| b.iter(|| black_box(qty_f) + black_box(0.1)));
    let tenth = Quantity::parse("0.1").unwrap();
    group.bench_function("add: fixed i128", |b| {
        b.iter(|| black_box(qty).checked_add(black_box(tenth)))
    });
    let tenth_d = RustDecimal::from_str("0.1").unwrap();
    group.bench_function("add: rust_decimal", |b| {
        b.iter(|| black_box(qty_d).checked_add(black_box(tenth_d)))
    });

    group.bench_function("qty × price, added to cash: f64", |b| {
        b.iter(|| black_box(-22109.75) + black_box(qty_f) * black_box(price_f))
    });
    group.bench_function("qty × price, added to cash: fixed i128", |b| {
        b.iter(|| {
            black_box(qty)
                .times(black_box(price))
                .and_then(|notional| black_box(cash).checked_add(notional))
        })
    });
    group.bench_function("qty × price, added to cash: rust_decimal", |b| {
        b.iter(|| {
            black_box(qty_d)
                .checked_mul(black_box(price_d))
                .and_then(|notional| black_box(cash_d).checked_add(notional))
        })
    });

    group.bench_function("compare: f64", |b| {
        b.iter(|| black_box(price_f) > black_box(64000.0))
    });
    let limit = Price::parse("64000").unwrap();
    group.bench_function("compare: fixed i128", |b| {
        b.iter(|| black_box(price) > black_box(limit))
    });
    let limit_d = RustDecimal::from_str("64000").unwrap();
    group.bench_function("compare: rust_decimal", |b| {
        b.iter(|| black_box(price_d) > black_box(limit_d))
    });

    // What a fill rounds: its fee (10 bps of the notional) and the new
    // average price (the cost over the quantity), half-to-even to 8 places.
    let fee = BasisPoints::parse("10").unwrap();
    let (cost, held) = (
        Amount::parse("96622.695").unwrap(),
        Quantity::parse("1.5").unwrap(),
    );
    group.bench_function("fee and average price, rounded: f64", |b| {
        b.iter(|| {
            (
                black_box(16103.7825) * black_box(10.0) / 10_000.0,
                black_box(96622.695) / black_box(1.5),
            )
        })
    });
    group.bench_function("fee and average price, rounded: fixed i128", |b| {
        b.iter(|| {
            (
                black_box(cash).bps(black_box(fee), Rounding::DEFAULT),
                black_box(cost).per(black_box(held), Rounding::DEFAULT),
            )
        })
    });
    let (fee_d, cost_d, held_d) = (
        RustDecimal::from_str("0.001").unwrap(),
        RustDecimal::from_str("96622.695").unwrap(),
        RustDecimal::from_str("1.5").unwrap(),
    );
    group.bench_function("fee and average price, rounded: rust_decimal", |b| {
        b.iter(|| {
            let even = rust_decimal::RoundingStrategy::MidpointNearestEven;
            (
                black_box(cash_d)
                    .checked_mul(black_box(fee_d))
                    .map(|fee| fee.round_dp_with_strategy(8, even)),
                black_box(cost_d)
                    .checked_div(black_box(held_d))
                    .map(|average| average.round_dp_with_strategy(8, even)),
            )
        })
    });

    let mut text = String::with_capacity(64);
    group.bench_function("format a price: f64 (zmij, as the journal does)", |b| {
        b.iter(|| {
            text.clear();
            text.push_str(zmij::Buffer::new().format_finite(black_box(price_f)));
            text.len()
        })
    });
    group.bench_function("format a price: fixed i128", |b| {
        b.iter(|| {
            text.clear();
            let _ = write!(text, "{}", black_box(price));
            text.len()
        })
    });
    group.bench_function("format a price: rust_decimal", |b| {
        b.iter(|| {
            text.clear();
            let _ = write!(text, "{}", black_box(price_d));
            text.len()
        })
    });
    group.finish();
}

criterion_group!(money_benches, money);

criterion_main!(benches, feeds, money_benches);
