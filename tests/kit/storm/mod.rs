//! Storms: SIGKILLs at random instants and floods of clients (the `heavy`
//! target). A seeded RNG picks the instants; the ledger checks say what
//! must hold after any number of crashes.

pub mod ledger;
pub mod rng;

use std::path::Path;

use crate::kit::daemon::Builder;

/// A daemon for a storm on `state_dir`: positions capped at 6, so the
/// random signals are refused by the risk limits now and then (a decision
/// too), and files polled every 10 ms.
pub fn storm_bot(state_dir: &Path) -> Builder {
    Builder::new()
        .env("STATE_DIR", state_dir)
        .env("MAX_POSITION_QTY", "6")
        .env("FILE_POLL_INTERVAL", "10ms")
}
