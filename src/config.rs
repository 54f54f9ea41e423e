//! What `tradingbot run` is configured with: each module's own settings,
//! side by side. `cli` builds it once from flags and the environment;
//! nothing after that reads either.

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) daemon: crate::daemon::settings::Settings,
    pub(crate) health: crate::health::settings::Settings,
    pub(crate) bot: crate::bot::settings::Settings,
    pub(crate) log: crate::logging::Settings,
    pub(crate) alerts: crate::alerts::Settings,
}
