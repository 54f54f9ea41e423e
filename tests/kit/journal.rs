//! The daemon's journal (`STATE_DIR/journal/`, one JSONL file a segment)
//! and its snapshots read from outside, and the signal lines that feed it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::daemon::{Daemon, BIN};

/// A valid signal line (with its newline). Its `ts` is of 2024: the
/// builder's `DEDUPE_WINDOW` reaches back that far.
pub fn signal_line(id: &str, symbol: &str, side: &str, qty: f64, price: Option<f64>) -> String {
    let price = price.map_or(String::new(), |price| format!(",\"price\":{price}"));
    format!(
        "{{\"id\":\"{id}\",\"ts\":1714557600000,\"symbol\":\"{symbol}\",\"side\":\"{side}\",\"qty\":{qty}{price}}}\n"
    )
}

/// `tradingbot journal ARGS` on `state_dir`, read-only beside any daemon,
/// given the builder's DEDUPE_WINDOW: its exit code and what it printed.
pub fn journal_command(state_dir: &Path, args: &[&str]) -> (i32, String) {
    run_journal(state_dir, args, Some("36500d"))
}

/// `tradingbot journal ARGS` with no DEDUPE_WINDOW: the state's own.
pub fn journal_command_as_found(state_dir: &Path, args: &[&str]) -> (i32, String) {
    run_journal(state_dir, args, None)
}

fn run_journal(state_dir: &Path, args: &[&str], dedupe_window: Option<&str>) -> (i32, String) {
    let mut command = Command::new(BIN);
    command.env_clear().env("STATE_DIR", state_dir);
    if let Some(window) = dedupe_window {
        command.env("DEDUPE_WINDOW", window);
    }
    let output = command
        .arg("journal")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tradingbot journal");
    (
        output.status.code().expect("killed by a signal"),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The journal's segment files in `state_dir`, in order (an earlier
/// release's single `journal.jsonl` before it is taken over).
pub fn journal_segments(state_dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(state_dir.join("journal"))
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    if segments.is_empty() && state_dir.join("journal.jsonl").exists() {
        segments.push(state_dir.join("journal.jsonl"));
    }
    segments
}

/// The segment being appended to.
pub fn active_segment(state_dir: &Path) -> PathBuf {
    journal_segments(state_dir)
        .pop()
        .unwrap_or_else(|| state_dir.join("journal/00000000000000000001.jsonl"))
}

/// The whole journal's text, segment after segment.
pub fn journal_text(state_dir: &Path) -> String {
    journal_segments(state_dir)
        .iter()
        .map(|path| std::fs::read_to_string(path).unwrap_or_default())
        .collect()
}

/// The header (first line) of the newest snapshot in `state_dir`.
pub fn latest_snapshot(state_dir: &Path) -> serde_json::Value {
    let mut snapshots: Vec<PathBuf> = std::fs::read_dir(state_dir.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "snap"))
        .collect();
    snapshots.sort();
    let bytes = std::fs::read(snapshots.last().expect("a snapshot")).unwrap();
    let header = bytes.split(|byte| *byte == b'\n').next().unwrap();
    serde_json::from_slice(header).unwrap()
}

/// The records of the journal in `state_dir`; panics on a corrupt line.
pub fn read_journal(state_dir: &Path) -> Vec<serde_json::Value> {
    parse_journal(&journal_text(state_dir))
}

/// The records of type `t` (`fill`, `reject`, `ckpt`) of the journal in
/// `state_dir`, in journal order.
pub fn journal_records(state_dir: &Path, t: &str) -> Vec<serde_json::Value> {
    read_journal(state_dir)
        .into_iter()
        .filter(|record| record["t"] == t)
        .collect()
}

pub fn parse_journal(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("corrupt journal line {line:?}"))
        })
        .collect()
}

impl Daemon {
    /// Every record of the journal (all its segments).
    pub fn journal(&self) -> Vec<serde_json::Value> {
        read_journal(&self.state_dir())
    }

    /// The journal's records of type `t`, in journal order.
    pub fn records(&self, t: &str) -> Vec<serde_json::Value> {
        journal_records(&self.state_dir(), t)
    }
}
