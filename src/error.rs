//! Every way the binary can fail, and the exit code each maps to — in one place.

use std::path::PathBuf;

use crate::bot::BotError;
use crate::config::ConfigError;
use crate::health::probe::ProbeError;
use crate::lock::LockError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{what} --state-dir (STATE_DIR) {path}: {source}")]
    StateDir {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bot(#[from] BotError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error("drain did not finish within --drain-timeout (DRAIN_TIMEOUT) {0:?}")]
    DrainTimeout(std::time::Duration),
}

impl Error {
    /// DESIGN.md "Exit codes": 1 runtime failure, 2 usage or configuration,
    /// 75 another instance holds the lock (70, a stall, is the judge's own).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Config(_) => 2,
            Error::Bot(error) if error.is_config() => 2,
            Error::Lock(LockError::Held { .. }) => 75,
            _ => 1,
        }
    }
}
