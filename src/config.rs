//! What `tradingbot run` is configured with: each module's own settings,
//! side by side. `cli` builds it once from flags and the environment;
//! nothing after that reads either.

#[derive(Debug, Clone)]
pub struct Config {
    pub daemon: crate::daemon::settings::Settings,
    pub health: crate::health::settings::Settings,
    pub bot: crate::bot::settings::Settings,
    pub log: crate::logging::Settings,
    pub alerts: crate::alerts::Settings,
    pub http: crate::http::settings::Settings,
}
