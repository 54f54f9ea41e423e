//! The daemon's own settings (the process around the bot), validated once
//! by `cli`; plain values, so this module depends on nothing else.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Single-instance lock.
    pub(crate) lock_file: PathBuf,
    /// A KEY=VALUE file re-read on SIGHUP.
    pub(crate) env_file: Option<PathBuf>,
}
