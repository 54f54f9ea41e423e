//! The health endpoints: `/health` (`/healthz`, `/`), `/livez`, `/readyz`
//! and `/metrics`. Each answer is computed from one [`HealthView`] taken at
//! the request, never cached.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use super::http::Body;
use super::state::{Component, HealthState, HealthView, Verdict};
use crate::metrics::{render_json, render_text, Kind, Sample};

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
        let view = self.state.view();
        match path {
            "/livez" => match view.liveness() {
                Ok(()) => text(StatusCode::OK, "alive\n"),
                Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
            },
            "/readyz" => match view.readiness() {
                Ok(()) => text(StatusCode::OK, "ready\n"),
                Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
            },
            "/metrics" => {
                let wants_json = request
                    .headers()
                    .get(ACCEPT)
                    .and_then(|accept| accept.to_str().ok())
                    .is_some_and(|accept| accept.contains("application/json"));
                let samples = self.samples(&view);
                if wants_json {
                    json_bytes(StatusCode::OK, render_json(&samples))
                } else {
                    with_type(
                        Response::new(Full::new(Bytes::from(render_text(&samples)))),
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                }
            }
            _ => self.health(&view),
        }
    }

    fn health(&self, view: &HealthView) -> Response<Body> {
        let verdict = view.verdict();
        let code = if verdict.status.is_up() {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        let mut bot_figures = Vec::new();
        if let Some(metrics) = self.state.bot_metrics() {
            metrics.health_fields(&mut bot_figures);
        }
        let body = HealthBody {
            view,
            verdict: &verdict,
            bot_figures: &bot_figures,
        };
        json_bytes(code, serde_json::to_vec(&body).unwrap_or_default())
    }

    fn samples(&self, view: &HealthView) -> Vec<Sample> {
        let mut samples = vec![
            Sample::new(
                "uptime_seconds",
                Kind::Gauge,
                "Seconds since the daemon started.",
                view.uptime.as_secs_f64(),
            ),
            Sample::new(
                "heartbeat_age_seconds",
                Kind::Gauge,
                "Seconds since the bot loop last completed an iteration (NaN before the first).",
                view.heartbeat_age.map_or(f64::NAN, |age| age.as_secs_f64()),
            ),
            Sample::new(
                "heartbeats_total",
                Kind::Counter,
                "Bot loop heartbeats since start.",
                view.beats as f64,
            ),
            Sample::new(
                "ready",
                Kind::Gauge,
                "1 once init and the first loop iteration are done, until stopping.",
                f64::from(u8::from(view.readiness().is_ok())),
            ),
            Sample::new(
                "healthy",
                Kind::Gauge,
                "1 while /health answers 200.",
                f64::from(u8::from(view.verdict().status.is_up())),
            ),
        ];
        // One series per component and status, 1 for the current one: an
        // alert on the journal (or the feed) needs no parsing of /health.
        for (name, component) in &view.components {
            let current = match component {
                Component::Ok => "ok",
                Component::Degraded(_) => "degraded",
                Component::Failed(_) => "failed",
            };
            for status in ["ok", "degraded", "failed"] {
                samples.push(
                    Sample::new(
                        "component_status",
                        Kind::Gauge,
                        "1 for each component's current status (ok, degraded, failed), 0 for the others.",
                        f64::from(u8::from(status == current)),
                    )
                    .label("component", *name)
                    .label("status", status),
                );
            }
        }
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

/// The `/health` body, serialized straight from the view: building a
/// `serde_json::Value` first cost more than half of each request's work.
struct HealthBody<'a> {
    view: &'a HealthView,
    verdict: &'a Verdict,
    bot_figures: &'a [(&'static str, Option<f64>)],
}

impl Serialize for HealthBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let view = self.view;
        let last_heartbeat = view.heartbeat_age.and_then(|age| {
            SystemTime::now()
                .checked_sub(age)
                .map(|at| humantime::format_rfc3339_millis(at).to_string())
        });
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("status", &self.verdict.status)?;
        map.serialize_entry("reasons", &self.verdict.reasons)?;
        map.serialize_entry("uptime_seconds", &round3(view.uptime.as_secs_f64()))?;
        map.serialize_entry("bot_ready", &view.ready)?;
        map.serialize_entry("last_heartbeat", &last_heartbeat)?;
        map.serialize_entry(
            "heartbeat_age_seconds",
            &view.heartbeat_age.map(|age| round3(age.as_secs_f64())),
        )?;
        map.serialize_entry("heartbeats", &view.beats)?;
        map.serialize_entry("stall_timeout_seconds", &view.stall_timeout.as_secs_f64())?;
        map.serialize_entry("checks", &Checks(view))?;
        map.serialize_entry("version", env!("CARGO_PKG_VERSION"))?;
        map.serialize_entry("pid", &std::process::id())?;
        map.serialize_entry("port", &view.bound.map(|addr| addr.port()))?;
        for (name, figure) in self.bot_figures {
            map.serialize_entry(name, figure)?;
        }
        map.end()
    }
}

/// `checks`: the heartbeat, then one entry per component.
struct Checks<'a>(&'a HealthView);

impl Serialize for Checks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let view = self.0;
        let mut map = serializer.serialize_map(Some(view.components.len() + 1))?;
        match (view.ready, view.stall_reason()) {
            (true, Some(reason)) => map.serialize_entry("heartbeat", &Component::Failed(reason))?,
            // Before ready, no heartbeat yet is not a failure.
            (false, Some(_)) => {
                map.serialize_entry("heartbeat", &BTreeMap::from([("status", "starting")]))?
            }
            (_, None) => map.serialize_entry("heartbeat", &Component::Ok)?,
        }
        for (name, component) in &view.components {
            map.serialize_entry(name, component)?;
        }
        map.end()
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

pub(crate) fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = with_type(
        Response::new(Full::new(body.into())),
        "text/plain; charset=utf-8",
    );
    *response.status_mut() = code;
    response
}

pub(crate) fn json_response(code: StatusCode, body: &Value) -> Response<Body> {
    json_bytes(code, serde_json::to_vec(body).unwrap_or_default())
}

/// A JSON document already written, with the newline every body ends with.
fn json_bytes(code: StatusCode, mut bytes: Vec<u8>) -> Response<Body> {
    bytes.push(b'\n');
    let mut response = with_type(
        Response::new(Full::new(Bytes::from(bytes))),
        "application/json",
    );
    *response.status_mut() = code;
    response
}
