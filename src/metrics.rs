//! Metric samples and their two renderings (Prometheus text and JSON).
//!
//! Each part of the daemon owns its figures and lists them as [`Sample`]s
//! when asked; this module only renders. One list feeds both formats, so the
//! text and the JSON can never disagree.

use std::fmt::Write as _;

use serde_json::{Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One series value. Samples of one family must be listed together;
/// histogram samples carry the `_bucket`, `_sum` or `_count` suffix.
#[derive(Clone, Debug)]
pub struct Sample {
    pub(crate) family: &'static str,
    pub(crate) suffix: &'static str,
    pub(crate) help: &'static str,
    pub(crate) kind: Kind,
    pub(crate) labels: Vec<(&'static str, String)>,
    pub(crate) value: f64,
}

impl Sample {
    pub fn new(family: &'static str, kind: Kind, help: &'static str, value: f64) -> Self {
        Sample {
            family,
            suffix: "",
            help,
            kind,
            labels: Vec::new(),
            value,
        }
    }

    pub fn label(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.labels.push((name, value.into()));
        self
    }

    pub(crate) fn suffix(mut self, suffix: &'static str) -> Self {
        self.suffix = suffix;
        self
    }
}

/// Anything that can list its current figures. The HTTP thread calls it on
/// each scrape, so it must not block on the bot's runtime.
pub(crate) trait MetricsSource: Send + Sync {
    fn samples(&self, out: &mut Vec<Sample>);

    /// A few words of live figures for `STATUS=`, e.g. "1234 signals, 1200 fills".
    fn summary(&self) -> Option<String> {
        None
    }

    /// Extra figures for the `/health` body, e.g. `last_signal_age_seconds`
    /// (`None` renders as null). Figures only: `/health` reveals nothing else.
    fn health_fields(&self, _out: &mut Vec<(&'static str, Option<f64>)>) {}
}

/// Several sources listed as one, in order; the first summary wins. Lets
/// the bot's slot carry other parts' figures too (alerts, issue 14).
pub(crate) struct Combined(pub Vec<std::sync::Arc<dyn MetricsSource>>);

impl MetricsSource for Combined {
    fn samples(&self, out: &mut Vec<Sample>) {
        for source in &self.0 {
            source.samples(out);
        }
    }

    fn summary(&self) -> Option<String> {
        self.0.iter().find_map(|source| source.summary())
    }

    fn health_fields(&self, out: &mut Vec<(&'static str, Option<f64>)>) {
        for source in &self.0 {
            source.health_fields(out);
        }
    }
}

/// Every metric name is prefixed so it cannot collide with an exporter's.
const PREFIX: &str = "tradingbot_";

pub fn render_text(samples: &[Sample]) -> String {
    let mut out = String::with_capacity(samples.len() * 96);
    let mut current_family = "";
    for sample in samples {
        if sample.family != current_family {
            current_family = sample.family;
            let _ = writeln!(out, "# HELP {PREFIX}{} {}", sample.family, sample.help);
            let _ = writeln!(
                out,
                "# TYPE {PREFIX}{} {}",
                sample.family,
                sample.kind.as_str()
            );
        }
        out.push_str(PREFIX);
        out.push_str(sample.family);
        out.push_str(sample.suffix);
        if !sample.labels.is_empty() {
            out.push('{');
            for (index, (name, value)) in sample.labels.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(name);
                out.push_str("=\"");
                escape_label_value(&mut out, value);
                out.push('"');
            }
            out.push('}');
        }
        out.push(' ');
        write_value(&mut out, sample.value);
        out.push('\n');
    }
    out
}

fn escape_label_value(out: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}

fn write_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{value}");
    }
}

/// `{"name": value}` for unlabelled series, `{"name": [{"labels": {...},
/// "value": v}, ...]}` for labelled ones.
pub(crate) fn render_json(samples: &[Sample]) -> Value {
    let mut root = Map::new();
    for sample in samples {
        let name = format!("{PREFIX}{}{}", sample.family, sample.suffix);
        let value = serde_json::Number::from_f64(sample.value).map_or(Value::Null, Value::Number);
        if sample.labels.is_empty() {
            root.insert(name, value);
            continue;
        }
        let labels: Map<String, Value> = sample
            .labels
            .iter()
            .map(|(label, label_value)| ((*label).to_owned(), Value::from(label_value.as_str())))
            .collect();
        let entry = root.entry(name).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(series) = entry {
            series.push(serde_json::json!({ "labels": labels, "value": value }));
        }
    }
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_groups_families_and_escapes_labels() {
        let samples = vec![
            Sample::new("http_requests_total", Kind::Counter, "HTTP requests.", 3.0)
                .label("path", "/health")
                .label("code", "200"),
            Sample::new("http_requests_total", Kind::Counter, "HTTP requests.", 1.0)
                .label("path", "a\"b\\c\nd")
                .label("code", "404"),
            Sample::new("ready", Kind::Gauge, "1 when ready.", 1.0),
        ];
        let text = render_text(&samples);
        assert_eq!(
            text,
            "# HELP tradingbot_http_requests_total HTTP requests.\n\
             # TYPE tradingbot_http_requests_total counter\n\
             tradingbot_http_requests_total{path=\"/health\",code=\"200\"} 3\n\
             tradingbot_http_requests_total{path=\"a\\\"b\\\\c\\nd\",code=\"404\"} 1\n\
             # HELP tradingbot_ready 1 when ready.\n\
             # TYPE tradingbot_ready gauge\n\
             tradingbot_ready 1\n"
        );
    }

    #[test]
    fn json_keeps_labels() {
        let samples = vec![
            Sample::new("ready", Kind::Gauge, "1 when ready.", 1.0),
            Sample::new("rejects_total", Kind::Counter, "Rejects.", 2.0)
                .label("reason", "bad_json"),
        ];
        let json = render_json(&samples);
        assert_eq!(json["tradingbot_ready"], 1.0);
        assert_eq!(
            json["tradingbot_rejects_total"][0]["labels"]["reason"],
            "bad_json"
        );
        assert_eq!(json["tradingbot_rejects_total"][0]["value"], 2.0);
    }

    #[test]
    fn non_finite_values_render() {
        let text = render_text(&[Sample::new("x", Kind::Gauge, "x", f64::INFINITY)]);
        assert!(text.ends_with("tradingbot_x +Inf\n"));
    }
}
