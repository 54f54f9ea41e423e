//! The health endpoints: `/health` (`/healthz`, `/`), `/livez`, `/readyz`
//! and `/metrics`. Each answer is computed from one [`Snapshot`] taken at
//! the request, never cached.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::http::Body;
use super::metrics::{render_json, render_text, Kind, Sample};
use super::state::{Component, HealthState, Snapshot};

/// Paths with their own label in `http_requests_total`; anything else is
/// counted as "other", so scanners cannot grow the series without bound.
const KNOWN_PATHS: [&str; 6] = ["/", "/health", "/healthz", "/livez", "/readyz", "/metrics"];

pub struct HealthApi {
    state: Arc<HealthState>,
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl HealthApi {
    pub fn new(state: Arc<HealthState>) -> Arc<Self> {
        Arc::new(HealthApi {
            state,
            requests: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn respond<B>(&self, request: &Request<B>) -> Response<Body> {
        let path = request.uri().path();
        let label = KNOWN_PATHS
            .iter()
            .find(|known| **known == path)
            .copied()
            .unwrap_or("other");
        let response = if label == "other" {
            text(StatusCode::NOT_FOUND, "not found\n")
        } else if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            response
        } else {
            self.route(label, request)
        };
        *self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry((label, response.status().as_u16()))
            .or_default() += 1;
        response
    }

    fn route<B>(&self, path: &str, request: &Request<B>) -> Response<Body> {
        let snapshot = self.state.snapshot();
        match path {
            "/livez" => match snapshot.liveness() {
                Ok(()) => text(StatusCode::OK, "alive\n"),
                Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
            },
            "/readyz" => match snapshot.readiness() {
                Ok(()) => text(StatusCode::OK, "ready\n"),
                Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
            },
            "/metrics" => {
                let wants_json = request
                    .headers()
                    .get(ACCEPT)
                    .and_then(|accept| accept.to_str().ok())
                    .is_some_and(|accept| accept.contains("application/json"));
                let samples = self.samples(&snapshot);
                if wants_json {
                    json_response(StatusCode::OK, &render_json(&samples))
                } else {
                    with_type(
                        Response::new(Full::new(Bytes::from(render_text(&samples)))),
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                }
            }
            _ => self.health(&snapshot),
        }
    }

    fn health(&self, snapshot: &Snapshot) -> Response<Body> {
        let verdict = snapshot.verdict();
        let code = if verdict.status.is_up() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let last_heartbeat = snapshot.heartbeat_age.and_then(|age| {
            SystemTime::now()
                .checked_sub(age)
                .map(|at| humantime::format_rfc3339_millis(at).to_string())
        });
        let mut checks = serde_json::Map::new();
        checks.insert(
            "heartbeat".into(),
            match (snapshot.ready, snapshot.stall_reason()) {
                (true, Some(reason)) => json!({ "status": "failed", "reason": reason }),
                (false, Some(_)) => json!({ "status": "starting" }),
                (_, None) => json!({ "status": "ok" }),
            },
        );
        for (name, component) in &snapshot.components {
            checks.insert((*name).into(), component_json(component));
        }
        let mut body = json!({
            "status": verdict.status,
            "reasons": verdict.reasons,
            "uptime_seconds": round3(snapshot.uptime.as_secs_f64()),
            "bot_ready": snapshot.ready,
            "last_heartbeat": last_heartbeat,
            "heartbeat_age_seconds": snapshot.heartbeat_age.map(|age| round3(age.as_secs_f64())),
            "heartbeats": snapshot.beats,
            "stall_timeout_seconds": snapshot.stall_timeout.as_secs_f64(),
            "checks": checks,
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "port": snapshot.bound.map(|addr| addr.port()),
        });
        if let (Some(metrics), Value::Object(fields)) = (self.state.bot_metrics(), &mut body) {
            metrics.health_fields(fields);
        }
        json_response(code, &body)
    }

    fn samples(&self, snapshot: &Snapshot) -> Vec<Sample> {
        let mut samples =
            vec![
            Sample::new(
                "uptime_seconds",
                Kind::Gauge,
                "Seconds since the daemon started.",
                snapshot.uptime.as_secs_f64(),
            ),
            Sample::new(
                "heartbeat_age_seconds",
                Kind::Gauge,
                "Seconds since the bot loop last completed an iteration (NaN before the first).",
                snapshot.heartbeat_age.map_or(f64::NAN, |age| age.as_secs_f64()),
            ),
            Sample::new(
                "heartbeats_total",
                Kind::Counter,
                "Bot loop heartbeats since start.",
                snapshot.beats as f64,
            ),
            Sample::new(
                "ready",
                Kind::Gauge,
                "1 once init and the first loop iteration are done, until stopping.",
                f64::from(u8::from(snapshot.readiness().is_ok())),
            ),
            Sample::new(
                "healthy",
                Kind::Gauge,
                "1 while /health answers 200.",
                f64::from(u8::from(snapshot.verdict().status.is_up())),
            ),
        ];
        for ((path, code), count) in self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
        {
            samples.push(
                Sample::new(
                    "http_requests_total",
                    Kind::Counter,
                    "Health server requests by path and status code.",
                    *count as f64,
                )
                .label("path", *path)
                .label("code", code.to_string()),
            );
        }
        if let Some(metrics) = self.state.bot_metrics() {
            metrics.samples(&mut samples);
        }
        samples
    }
}

fn component_json(component: &Component) -> Value {
    match component {
        Component::Ok => json!({ "status": "ok" }),
        Component::Degraded(reason) => json!({ "status": "degraded", "reason": reason }),
        Component::Failed(reason) => json!({ "status": "failed", "reason": reason }),
    }
}

fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

fn with_type(mut response: Response<Body>, content_type: &'static str) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = with_type(
        Response::new(Full::new(body.into())),
        "text/plain; charset=utf-8",
    );
    *response.status_mut() = code;
    response
}

pub fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    let mut bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes.push(b'\n');
    let mut response = with_type(
        Response::new(Full::new(Bytes::from(bytes))),
        "application/json",
    );
    *response.status_mut() = code;
    response
}
