//! What `tradingbot run` is configured with: each module's own settings
//! side by side ([`Config`]), and the daemon's own (the process around the
//! bot). `cli` builds them once from flags and the environment; nothing
//! after that reads either.

use std::path::PathBuf;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Single-instance lock.
    pub(crate) lock_file: PathBuf,
    /// A KEY=VALUE file re-read on SIGHUP.
    pub(crate) env_file: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) daemon: Settings,
    pub(crate) health: crate::health::settings::Settings,
    pub(crate) bot: crate::bot::settings::Settings,
    pub(crate) log: crate::logging::Settings,
    pub(crate) alerts: crate::alerts::Settings,
}
