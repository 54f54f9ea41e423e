//! What the health endpoints report, free of any transport: `/health`'s
//! document and the samples of `/metrics`, each made from one
//! [`HealthView`] taken at the request, never cached. The HTTP side
//! (`http::health`) serves them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::state::{Component, HealthState, HealthView, Verdict};
use crate::metrics::{Kind, Sample};

/// `/health`'s document, and whether it says the daemon is up.
pub(crate) fn document(state: &HealthState, view: &HealthView) -> (bool, Vec<u8>) {
    let verdict = view.verdict();
    let mut bot_figures = Vec::new();
    if let Some(metrics) = state.bot_metrics() {
        metrics.health_fields(&mut bot_figures);
    }
    let body = HealthBody {
        view,
        verdict: &verdict,
        bot_figures: &bot_figures,
    };
    (
        verdict.status.is_up(),
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// The health model's samples (uptime, heartbeat, readiness, each
/// component's status), then the bot's.
pub(crate) fn samples(state: &HealthState, view: &HealthView) -> Vec<Sample> {
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
    if let Some(metrics) = state.bot_metrics() {
        metrics.samples(&mut samples);
    }
    samples
}

/// A duration in seconds as people read it: to the millisecond.
pub(crate) fn seconds(duration: Duration) -> f64 {
    rounded(duration.as_secs_f64(), 3)
}

/// A measured latency in seconds, often below a millisecond (an fsync), to
/// the microsecond: a quantile read off a histogram carries float noise
/// (`0.00030000000000000003`) that means nothing to anyone.
pub(crate) fn fine_seconds(seconds: f64) -> f64 {
    rounded(seconds, 6)
}

/// `value` to `places` decimal places. A whole number of units divided by
/// an exact power of ten is the float nearest that decimal, which JSON
/// prints as the decimal itself.
fn rounded(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
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
        map.serialize_entry("uptime_seconds", &seconds(view.uptime))?;
        map.serialize_entry("bot_ready", &view.ready)?;
        map.serialize_entry("last_heartbeat", &last_heartbeat)?;
        map.serialize_entry("heartbeat_age_seconds", &view.heartbeat_age.map(seconds))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_for_people_carry_no_float_noise() {
        let json = |value: f64| serde_json::to_string(&value).unwrap();
        assert_eq!(json(fine_seconds(0.000_300_000_000_000_000_03)), "0.0003");
        assert_eq!(json(fine_seconds(0.002_345_678_9)), "0.002346");
        assert_eq!(json(seconds(Duration::from_micros(1_234_567))), "1.235");
        assert_eq!(json(seconds(Duration::from_nanos(100_000_001))), "0.1");
    }
}
