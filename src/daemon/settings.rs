//! The daemon's own settings (the process around the bot), validated once
//! by `cli`; plain values, so this module depends on nothing else.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub struct Settings {
    /// Single-instance lock.
    pub lock_file: PathBuf,
    /// A KEY=VALUE file re-read on SIGHUP.
    pub env_file: Option<PathBuf>,
}
