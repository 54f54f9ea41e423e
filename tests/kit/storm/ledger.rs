//! What must hold after any storm of crashes: every id decided exactly
//! once, and positions equal to a replay of the journal's fills.

use std::collections::BTreeMap;
use std::path::Path;

use crate::kit::journal::{journal_text, latest_snapshot, parse_journal, read_journal};

/// The records of a running daemon's journal up to its last whole line:
/// the daemon may be halfway through writing the next one.
pub fn read_journal_so_far(state_dir: &Path) -> Vec<serde_json::Value> {
    let text = journal_text(state_dir);
    parse_journal(&text[..text.rfind('\n').map_or(0, |end| end + 1)])
}

/// Signals decided so far (checkpoints aside) by a daemon that may still be running.
pub fn decided(state_dir: &Path) -> usize {
    read_journal_so_far(state_dir)
        .iter()
        .filter(|record| record["t"] != "ckpt")
        .count()
}

/// Every id `id-0` .. `id-{total-1}` decided exactly once, and no other;
/// the snapshot's positions equal a replay of the journal's fills.
pub fn check_exactly_once(state_dir: &Path, total: usize) {
    let journal = read_journal(state_dir);
    let mut decisions: BTreeMap<String, usize> = BTreeMap::new();
    let mut replay: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for record in &journal {
        if record["t"] == "ckpt" {
            continue;
        }
        *decisions
            .entry(record["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
        if record["t"] == "fill" {
            let sign = if record["side"] == "buy" { 1.0 } else { -1.0 };
            let signed = sign * record["qty"].as_f64().unwrap();
            let entry = replay
                .entry(record["symbol"].as_str().unwrap().to_owned())
                .or_default();
            entry.0 += signed;
            entry.1 -= signed * record["price"].as_f64().unwrap();
        }
    }
    let twice: Vec<_> = decisions.iter().filter(|(_, count)| **count != 1).collect();
    assert!(twice.is_empty(), "ids decided more than once: {twice:?}");
    for index in 0..total {
        assert!(
            decisions.contains_key(&format!("id-{index}")),
            "id-{index} was never decided"
        );
    }
    assert_eq!(decisions.len(), total);
    let snapshot = latest_snapshot(state_dir);
    for (symbol, (qty, cash)) in &replay {
        let position = &snapshot["positions"][symbol];
        let held = position["qty"].as_f64().unwrap();
        assert!(
            (held - qty).abs() < 1e-9,
            "{symbol}: {position} vs qty {qty}"
        );
        let spent = position["cash"].as_f64().unwrap();
        assert!(
            (spent - cash).abs() < 1e-6,
            "{symbol}: {position} vs cash {cash}"
        );
    }
}
