//! Metric samples and their two renderings (Prometheus text and JSON).
//!
//! Each part of the daemon owns its figures and lists them as [`Sample`]s
//! when asked; this module only renders. One list feeds both formats, so the
//! text and the JSON can never disagree.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

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

/// Figures one thread publishes whole and others read: the publisher
/// swaps in a new value, a reader takes the value in hand. The lock is
/// held for a pointer copy, never while a reader formats, so a scrape can
/// never make the publisher (the bot loop) wait longer than that.
pub(crate) struct Published<T>(Mutex<Arc<T>>);

impl<T: Default> Default for Published<T> {
    fn default() -> Self {
        Published(Mutex::new(Arc::new(T::default())))
    }
}

impl<T> Published<T> {
    pub(crate) fn publish(&self, value: T) {
        let old = std::mem::replace(&mut *self.slot(), Arc::new(value));
        // The old value is freed here, outside the lock.
        drop(old);
    }

    /// The value last published.
    pub(crate) fn get(&self) -> Arc<T> {
        Arc::clone(&self.slot())
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Arc<T>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Anything that can list its current figures. The HTTP thread calls it on
/// each scrape, so it must not block on the bot's runtime.
pub trait MetricsSource: Send + Sync {
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
/// "value": v}, ...]}` for labelled ones; names and label names in byte
/// order, series of one name in the order listed, non-finite values as
/// null.
///
/// Written straight into one buffer, like the text: building a
/// `serde_json::Value` tree first cost a few allocations a series and
/// several times the text's time, and a tree as large as the answer.
pub fn render_json(samples: &[Sample]) -> Vec<u8> {
    let mut order: Vec<&Sample> = samples.iter().collect();
    // Stable: a name's series keep the order they were listed in.
    order.sort_by(|a, b| compare_names(a, b));
    let mut out = Vec::with_capacity(samples.len() * 112);
    out.push(b'{');
    let mut rest = order.as_slice();
    while let Some(first) = rest.first() {
        let length = rest
            .iter()
            .take_while(|sample| compare_names(sample, first) == Ordering::Equal)
            .count();
        let (series, after) = rest.split_at(length);
        rest = after;
        if out.len() > 1 {
            out.push(b',');
        }
        // Names are identifiers from the code: nothing in them to escape.
        out.push(b'"');
        out.extend_from_slice(PREFIX.as_bytes());
        out.extend_from_slice(first.family.as_bytes());
        out.extend_from_slice(first.suffix.as_bytes());
        out.extend_from_slice(b"\":");
        if series.iter().all(|sample| sample.labels.is_empty()) {
            json_value(&mut out, series[series.len() - 1].value);
            continue;
        }
        out.push(b'[');
        for (index, sample) in series.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"labels\":{");
            json_labels(&mut out, &sample.labels);
            out.extend_from_slice(b"},\"value\":");
            json_value(&mut out, sample.value);
            out.push(b'}');
        }
        out.push(b']');
    }
    out.extend_from_slice(b"}");
    out
}

/// The order of series names (`family` then `suffix`, as one string).
fn compare_names(a: &Sample, b: &Sample) -> Ordering {
    if a.family == b.family {
        return a.suffix.cmp(b.suffix);
    }
    // Families that differ before either ends decide alone: the usual
    // case, and a plain comparison of two strings.
    if !a.family.starts_with(b.family) && !b.family.starts_with(a.family) {
        return a.family.cmp(b.family);
    }
    let name = |sample: &Sample| sample.family.bytes().chain(sample.suffix.bytes());
    name(a).cmp(name(b))
}

/// A sample's labels as JSON members, by name. A sample has two or three,
/// so picking the next smallest each time beats sorting into a new vector.
fn json_labels(out: &mut Vec<u8>, labels: &[(&'static str, String)]) {
    let mut previous: Option<&str> = None;
    while let Some((name, value)) = labels
        .iter()
        .filter(|(name, _)| previous.is_none_or(|previous| *name > previous))
        .min_by_key(|(name, _)| *name)
    {
        if previous.is_some() {
            out.push(b',');
        }
        json_string(out, name);
        out.push(b':');
        json_string(out, value);
        previous = Some(name);
    }
}

fn json_string(out: &mut Vec<u8>, text: &str) {
    // Writing into a vector cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// A finite value as serde_json writes an f64 (`1.0`), anything else as null.
fn json_value(out: &mut Vec<u8>, value: f64) {
    let _ = serde_json::to_writer(&mut *out, &value);
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
        let json: serde_json::Value = serde_json::from_slice(&render_json(&samples)).unwrap();
        assert_eq!(json["tradingbot_ready"], 1.0);
        assert_eq!(
            json["tradingbot_rejects_total"][0]["labels"]["reason"],
            "bad_json"
        );
        assert_eq!(json["tradingbot_rejects_total"][0]["value"], 2.0);
    }

    /// The tree the JSON was built as before it was written straight out:
    /// the reference, byte for byte (serde_json's map keeps keys sorted).
    fn as_tree(samples: &[Sample]) -> serde_json::Value {
        use serde_json::{Map, Value};
        let mut root = Map::new();
        for sample in samples {
            let name = format!("{PREFIX}{}{}", sample.family, sample.suffix);
            let value =
                serde_json::Number::from_f64(sample.value).map_or(Value::Null, Value::Number);
            if sample.labels.is_empty() {
                root.insert(name, value);
                continue;
            }
            let labels: Map<String, Value> = sample
                .labels
                .iter()
                .map(|(label, text)| ((*label).to_owned(), Value::from(text.as_str())))
                .collect();
            let entry = root.entry(name).or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(series) = entry {
                series.push(serde_json::json!({ "labels": labels, "value": value }));
            }
        }
        Value::Object(root)
    }

    proptest::proptest! {
        #[test]
        fn json_is_what_the_tree_would_have_written(
            families in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["b", "a_total", "a", "c_seconds"]),
                    proptest::sample::select(vec!["", "_bucket", "_sum"]),
                    proptest::collection::vec(
                        (
                            proptest::sample::subsequence(vec!["side", "code", "symbol"], 0..=3),
                            "\\PC{0,6}",
                            proptest::num::f64::ANY,
                        ),
                        1..4,
                    ),
                ),
                0..8,
            )
        ) {
            // A name is either unlabelled or labelled throughout, as in the code.
            let mut samples = Vec::new();
            let mut labelled = std::collections::HashMap::new();
            for (family, suffix, series) in families {
                for (names, text, value) in series {
                    let wants = *labelled.entry((family, suffix)).or_insert(!names.is_empty());
                    let mut sample = Sample::new(family, Kind::Gauge, "h", value).suffix(suffix);
                    if wants {
                        for name in if names.is_empty() { vec!["side"] } else { names } {
                            sample = sample.label(name, text.clone());
                        }
                    }
                    samples.push(sample);
                }
            }
            let written = render_json(&samples);
            proptest::prop_assert_eq!(
                String::from_utf8(written).unwrap(),
                serde_json::to_string(&as_tree(&samples)).unwrap()
            );
        }
    }

    #[test]
    fn non_finite_values_render() {
        let text = render_text(&[Sample::new("x", Kind::Gauge, "x", f64::INFINITY)]);
        assert!(text.ends_with("tradingbot_x +Inf\n"));
    }
}
