//! `tradingbot source-test`'s flags: the source's name, how many messages
//! and how long, beside every flag of `run`, so the source is the one the
//! service would start.

use std::time::Duration;

use clap::Args;

use super::run::RunArgs;
use super::values::parse_duration;
use super::ConfigError;
use crate::bot::intake::source_test::Request;

#[derive(Debug, Clone, Args)]
pub(crate) struct SourceTestArgs {
    /// The source: its name in SOURCES_FILE, or for --source
    /// (SIGNAL_SOURCE) its kind (ws, poll, file, file-2, ...).
    #[arg(value_name = "NAME")]
    name: String,

    /// Messages to show; the test passes (exit 0) once they have come.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000), value_name = "N")]
    count: u32,

    /// The longest the test takes: exit 1 if the source could not connect,
    /// or sent fewer messages, within it.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: Duration,

    #[command(flatten)]
    run: RunArgs,
}

impl SourceTestArgs {
    /// The named source with the service's settings, all of them checked
    /// as `run` checks them.
    pub(super) fn into_request(self) -> Result<Request, ConfigError> {
        let config = self.run.into_config()?;
        let intake = config.bot.intake;
        let names: Vec<&str> = intake
            .sources
            .iter()
            .map(|source| source.name.as_str())
            .collect();
        let Some(source) = intake
            .sources
            .iter()
            .find(|source| source.name == self.name)
        else {
            return Err(ConfigError::Invalid(format!(
                "source-test: no source is named {:?}; the sources are: {} \
                 (SOURCES_FILE, or --source / SIGNAL_SOURCE)",
                self.name,
                names.join(", ")
            )));
        };
        Ok(Request {
            source: source.clone(),
            count: self.count as usize,
            timeout: self.timeout,
            file_poll_interval: intake.file_poll_interval,
            body_limit: config.http.webhook.map_or(0, |webhook| webhook.body_limit),
        })
    }
}
