//! The bot's settings, validated once by `cli`; plain values, so this
//! module depends on nothing else.

use std::path::PathBuf;
use std::time::Duration;

use super::account::Terms;
use super::symbols::SymbolSettings;
use super::{intake, ledger};

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// The journal, the snapshot and the checkpoints.
    pub(crate) state_dir: PathBuf,
    /// The paper account: balance, fees, slippage, shorts, rounding and
    /// the risk limits.
    pub(crate) account: Terms,
    pub(crate) fsync: FsyncPolicy,
    /// No signal for this long shows the feed as degraded.
    pub(crate) max_signal_age: Option<Duration>,
    pub(crate) snapshot_interval: Duration,
    pub(crate) intake: intake::Settings,
    pub(crate) symbols: SymbolSettings,
    /// Segments, the exactly-once window, retention.
    pub(crate) ledger: ledger::settings::Settings,
}

/// When the journal is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FsyncPolicy {
    /// fsync after every signal.
    Always,
    /// One fsync per batch of signals (group commit).
    Batch,
    /// Write to the OS only: survives a crash of the process, not of the machine.
    Never,
}

impl FsyncPolicy {
    pub(crate) const NAMES: [&'static str; 3] = ["always", "batch", "never"];

    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        match text {
            "always" => Ok(FsyncPolicy::Always),
            "batch" => Ok(FsyncPolicy::Batch),
            "never" => Ok(FsyncPolicy::Never),
            _ => Err(format!("{text:?} is not one of always, batch, never")),
        }
    }
}
