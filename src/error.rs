//! Every way the binary can fail, and the exit code each maps to — in one place.

use std::path::PathBuf;

use crate::bot::intake::source_test::SourceTestError;
use crate::bot::ledger::query::QueryError;
use crate::bot::BotError;
use crate::exit::Exit;
use crate::health::probe::ProbeError;
use crate::lock::LockError;

/// A command line or a setting that cannot be used: exit 2. Defined
/// here, not in `cli`, so that nothing which reports errors depends on
/// the module that parses flags.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Already one line naming the flag and its env var.
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    #[error("cannot listen for webhooks on --webhook-bind (WEBHOOK_BIND) {addr}: {source}")]
    WebhookBind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Bot(#[from] BotError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error(transparent)]
    SourceTest(#[from] SourceTestError),
}

impl Error {
    /// How a run that failed ends (a stall and a forced stop are the
    /// judge's own, see [`crate::exit`]).
    pub fn exit(&self) -> Exit {
        match self {
            Error::Config(_) => Exit::Usage,
            Error::WebhookBind { .. } => Exit::Usage,
            Error::Bot(error) if error.is_config() => Exit::Usage,
            Error::SourceTest(error) if error.is_config() => Exit::Usage,
            Error::Lock(LockError::Held { .. }) => Exit::Locked,
            _ => Exit::Failure,
        }
    }
}
