//! The daemon's journal (`STATE_DIR/journal.jsonl`) read from outside, and
//! the signal lines that feed it.

use std::path::Path;

use super::daemon::Daemon;

/// A valid signal line (with its newline).
pub fn signal_line(id: &str, symbol: &str, side: &str, qty: f64, price: Option<f64>) -> String {
    let price = price.map_or(String::new(), |price| format!(",\"price\":{price}"));
    format!(
        "{{\"id\":\"{id}\",\"ts\":1714557600000,\"symbol\":\"{symbol}\",\"side\":\"{side}\",\"qty\":{qty}{price}}}\n"
    )
}

/// The records of the journal in `state_dir`; panics on a corrupt line.
pub fn read_journal(state_dir: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(state_dir.join("journal.jsonl")).unwrap_or_default();
    parse_journal(&text)
}

pub fn parse_journal(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("corrupt journal line {line:?}"))
        })
        .collect()
}

impl Daemon {
    /// Every record of `STATE_DIR/journal.jsonl`.
    pub fn journal(&self) -> Vec<serde_json::Value> {
        read_journal(&self.state_dir())
    }
}
