//! What must hold after any storm of crashes: every id decided exactly
//! once, and positions equal to a replay of the journal's fills.

use std::collections::BTreeMap;
use std::path::Path;

use crate::kit::decimal;
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
    // Each symbol's quantity and net cash flow, in 10^-12.
    let mut replay: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    for record in &journal {
        if record["t"] == "ckpt" {
            continue;
        }
        *decisions
            .entry(record["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
        if record["t"] == "fill" {
            let sign = if record["side"] == "buy" { 1 } else { -1 };
            let signed = sign * decimal::of(&record["qty"]);
            let entry = replay
                .entry(record["symbol"].as_str().unwrap().to_owned())
                .or_default();
            entry.0 += signed;
            entry.1 -= decimal::times(signed, decimal::of(&record["price"]));
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
    for (symbol, (qty, flow)) in &replay {
        let position = &snapshot["positions"][symbol];
        assert_eq!(
            decimal::of(&position["qty"]),
            *qty,
            "{symbol}: {position} vs qty {}",
            decimal::text(*qty)
        );
        // Under average cost, what a symbol's fills moved is what they
        // realized less what is still held at cost (no fees here).
        let moved = decimal::of(&position["realized_pnl"]) - decimal::of(&position["cost"]);
        assert_eq!(
            moved,
            *flow,
            "{symbol}: {position} vs net cash flow {}",
            decimal::text(*flow)
        );
    }
}
