//! The health routes' answers (ARCHITECTURE.md, "Design rules": truthful health): what
//! [`crate::health::report`] says, as HTTP, and `http_requests_total`,
//! every request on the port by its route's label and its status code.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hyper::header::{HeaderMap, ACCEPT};
use hyper::{Response, StatusCode};

use super::response::{json_bytes, text, typed, Body};
use crate::health::report;
use crate::health::HealthState;
use crate::metrics::{render_json, render_text, Kind, MetricsSource, Sample};

pub struct Health {
    state: Arc<HealthState>,
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    /// The other routes' figures (the stream's), beside the bot's.
    extra: Option<Arc<dyn MetricsSource>>,
}

impl Health {
    pub fn new(state: Arc<HealthState>, extra: Option<Arc<dyn MetricsSource>>) -> Self {
        Health {
            state,
            requests: Mutex::new(BTreeMap::new()),
            extra,
        }
    }

    pub fn livez(&self) -> Response<Body> {
        match self.state.view().liveness() {
            Ok(()) => text(StatusCode::OK, "alive\n"),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        }
    }

    pub fn readyz(&self) -> Response<Body> {
        match self.state.view().readiness() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        }
    }

    pub fn health(&self) -> Response<Body> {
        let (up, document) = report::document(&self.state, &self.state.view());
        let code = if up {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        json_bytes(code, document)
    }

    /// Prometheus text, or JSON when the client accepts it.
    pub fn metrics(&self, headers: &HeaderMap) -> Response<Body> {
        let wants_json = headers
            .get(ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("application/json"));
        let mut samples = report::samples(&self.state, &self.state.view());
        self.request_samples(&mut samples);
        if let Some(extra) = &self.extra {
            extra.samples(&mut samples);
        }
        if wants_json {
            json_bytes(StatusCode::OK, render_json(&samples))
        } else {
            typed(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                render_text(&samples),
            )
        }
    }

    /// Counts a request under its route's label.
    pub(crate) fn count(&self, label: &'static str, code: StatusCode) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry((label, code.as_u16()))
            .or_default() += 1;
    }

    fn request_samples(&self, samples: &mut Vec<Sample>) {
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for ((path, code), count) in requests.iter() {
            samples.push(
                Sample::new(
                    "http_requests_total",
                    Kind::Counter,
                    "Requests on the port, by path and status code.",
                    *count as f64,
                )
                .label("path", *path)
                .label("code", code.to_string()),
            );
        }
    }
}
