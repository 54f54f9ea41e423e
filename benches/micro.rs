//! Micro-benchmarks of the hot paths: signal parsing, the engine step, a
//! journal record written and read, the health verdict, a whole `/health`
//! answer, and the metrics render.
//!
//!     cargo bench --bench micro

use std::borrow::Cow;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tradingbot::bot::engine::{Engine, PaperExecution};
use tradingbot::bot::ledger::record::{parse as parse_record, write_line, Record};
use tradingbot::bot::signal::{parse, parse_general, Side};
use tradingbot::bot::RiskLimits;
use tradingbot::health::api::HealthApi;
use tradingbot::health::{Component, HealthState};
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

    let api = HealthApi::new(state, None);
    let request = hyper::Request::get("/health").body(()).unwrap();
    c.bench_function("/health response (JSON)", |b| {
        b.iter(|| api.respond(&request))
    });
    let request = hyper::Request::get("/metrics").body(()).unwrap();
    c.bench_function("/metrics response (text)", |b| {
        b.iter(|| api.respond(&request))
    });

    // With as many symbol series as the bound allows (issue 16).
    let state = ready_state();
    state.set_bot_metrics(std::sync::Arc::new(SymbolSeriesAtTheBound));
    let api = HealthApi::new(state, None);
    let text = hyper::Request::get("/metrics").body(()).unwrap();
    c.bench_function("/metrics response, 404 symbol series (text)", |b| {
        b.iter(|| api.respond(&text))
    });
    let json = hyper::Request::get("/metrics")
        .header("accept", "application/json")
        .body(())
        .unwrap();
    c.bench_function("/metrics response, 404 symbol series (JSON)", |b| {
        b.iter(|| api.respond(&json))
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
        b.iter(|| parse_general(FEED_LINE))
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
criterion_main!(benches);
