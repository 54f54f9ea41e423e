//! A bot's sources as the dashboard shows them: a row each, from
//! `/api/v1/status`'s `sources` and, between polls, the stream's `source`
//! events, so a source going down shows at once. Their text is the bot's,
//! clipped as it arrives.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::client::truncate;
use super::fleet::Level;

/// Rows kept per bot: a page of hundreds of sources helps nobody.
const MAX_SOURCES: usize = 100;

/// Characters kept of a source's name, status and last error, from a poll
/// or a `source` event alike: an event finds its row by the clipped name.
pub(crate) const NAME_CHARS: usize = 64;
pub(crate) const STATUS_CHARS: usize = 20;
pub(crate) const ERROR_CHARS: usize = 300;

/// One source, as `/api/v1/status` lists it.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub(crate) struct SourceRow {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) kind: String,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) last_message_age_seconds: Option<f64>,
    #[serde(default)]
    pub(crate) last_signal_age_seconds: Option<f64>,
    #[serde(default)]
    pub(crate) reconnects: u64,
    #[serde(default)]
    pub(crate) last_error: Option<String>,
}

impl SourceRow {
    fn clipped(mut self) -> Self {
        self.name = truncate(&self.name, NAME_CHARS);
        self.kind = truncate(&self.kind, 12);
        self.status = truncate(&self.status, STATUS_CHARS);
        self.last_error = self.last_error.map(|error| truncate(&error, ERROR_CHARS));
        self
    }
}

/// A poll's rows, clipped.
pub(crate) fn clip(rows: Vec<SourceRow>) -> Vec<SourceRow> {
    rows.into_iter()
        .take(MAX_SOURCES)
        .map(SourceRow::clipped)
        .collect()
}

/// A `source` event (its text clipped as it arrived, `web::client`): the
/// named row takes its status at once (and a down source's error); the
/// next poll brings the rest.
pub(crate) fn apply(rows: &mut [SourceRow], source: &str, status: &str, problem: Option<&str>) {
    let Some(row) = rows.iter_mut().find(|row| row.name == source) else {
        return;
    };
    row.status = status.to_owned();
    if status == "down" {
        if let Some(problem) = problem {
            let error = problem.strip_prefix("down: ").unwrap_or(problem);
            row.last_error = Some(error.to_owned());
        }
    }
}

/// The rows for the page, their ages counted on from the poll
/// `since_poll` seconds ago, each with its level: down is red, quiet and
/// connecting amber.
pub(crate) fn rows(rows: &[SourceRow], since_poll: f64) -> Value {
    let age = |age: Option<f64>| age.map(|age| age + since_poll);
    Value::Array(
        rows.iter()
            .map(|row| {
                json!({
                    "name": row.name,
                    "kind": row.kind,
                    "status": row.status,
                    "level": level(&row.status),
                    "last_message_age_seconds": age(row.last_message_age_seconds),
                    "last_signal_age_seconds": age(row.last_signal_age_seconds),
                    "reconnects": row.reconnects,
                    "last_error": row.last_error,
                })
            })
            .collect(),
    )
}

fn level(status: &str) -> Level {
    match status {
        "up" => Level::Ok,
        "down" => Level::Bad,
        _ => Level::Warn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, status: &str) -> SourceRow {
        serde_json::from_value(json!({"name": name, "kind": "ws", "status": status,
            "last_message_age_seconds": 1.5, "last_signal_age_seconds": null, "reconnects": 2}))
        .unwrap()
    }

    #[test]
    fn down_is_red_quiet_amber_and_an_event_moves_its_row() {
        let mut table = vec![row("rtds", "up"), row("whop", "quiet")];
        let shown = rows(&table, 0.5);
        assert_eq!(shown[0]["level"], "ok");
        assert_eq!(shown[0]["last_message_age_seconds"], 2.0);
        assert_eq!(shown[0]["last_signal_age_seconds"], Value::Null);
        assert_eq!(shown[1]["level"], "warn");

        apply(&mut table, "rtds", "down", Some("down: no frame for 15s"));
        apply(&mut table, "nobody", "down", Some("down: x"));
        let shown = rows(&table, 0.0);
        assert_eq!(shown[0]["status"], "down");
        assert_eq!(shown[0]["level"], "bad");
        assert_eq!(shown[0]["last_error"], "no frame for 15s");
        assert_eq!(shown.as_array().unwrap().len(), 2);
    }

    #[test]
    fn a_bot_cannot_grow_the_rows_or_their_text() {
        let many: Vec<SourceRow> = (0..500)
            .map(|number| {
                let mut row = row(&format!("s{number}{}", "x".repeat(200)), "up");
                row.last_error = Some("e".repeat(10_000));
                row
            })
            .collect();
        let clipped = clip(many);
        assert_eq!(clipped.len(), MAX_SOURCES);
        assert!(clipped[0].name.chars().count() <= 65);
        assert!(clipped[0].last_error.as_ref().unwrap().chars().count() <= 301);
    }
}
