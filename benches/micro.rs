//! Micro-benchmarks of the hot paths: the health verdict, a whole `/health`
//! answer, and the metrics render.
//!
//!     cargo bench --bench micro

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tradingbot::health::api::HealthApi;
use tradingbot::health::metrics::{render_text, Kind, Sample};
use tradingbot::health::{Component, HealthState};

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
    c.bench_function("snapshot + verdict", |b| {
        b.iter(|| state.snapshot().verdict())
    });

    let api = HealthApi::new(state);
    let request = hyper::Request::get("/health").body(()).unwrap();
    c.bench_function("/health response (JSON)", |b| {
        b.iter(|| api.respond(&request))
    });
    let request = hyper::Request::get("/metrics").body(()).unwrap();
    c.bench_function("/metrics response (text)", |b| {
        b.iter(|| api.respond(&request))
    });
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
}

criterion_group!(benches, health, metrics);
criterion_main!(benches);
