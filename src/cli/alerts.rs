//! The notifier's flags, converted once into [`alerts::Settings`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::values::parse_duration;
use super::{invalid, ConfigError};
use crate::alerts::{self, TELEGRAM_API};
use crate::secret::Secret;

/// Alerts to Discord, Slack, Telegram or any JSON receiver (README, "Alerts").
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Alerts")]
pub(crate) struct AlertArgs {
    /// Where alerts go, separated by ';': a Discord webhook URL
    /// (https://discord.com/api/webhooks/ID/TOKEN), a Slack incoming-webhook
    /// URL (https://hooks.slack.com/services/...), tgram://BOT_TOKEN/CHAT_ID,
    /// or json://HOST[:PORT]/PATH (jsons:// for HTTPS) for the event as JSON.
    /// Each may end in ?events=LIST (health, lifecycle, trading, sources,
    /// or single events such as stalled,fill) and &min_interval=DURATION
    /// (fills, rejects and source changes: one message per interval,
    /// default 1m). The URLs are secrets: prefer --notify-urls-file.
    #[arg(long, env = "NOTIFY_URLS", hide_env_values = true, value_parser = Secret::parse, value_name = "URL;...")]
    pub(crate) notify_urls: Option<Secret>,

    /// File of destination URLs, one a line ('#' starts a comment line).
    #[arg(long, env = "NOTIFY_URLS_FILE", value_name = "PATH")]
    pub(crate) notify_urls_file: Option<PathBuf>,

    /// Key of the HMAC-SHA256 signature sent with json:// and jsons:// alerts:
    /// X-Tradingbot-Signature: sha256=HEX of "TIMESTAMP.BODY", TIMESTAMP
    /// being the X-Tradingbot-Timestamp header (Unix seconds).
    #[arg(long, env = "NOTIFY_SIGNING_SECRET", hide_env_values = true, value_parser = Secret::parse, value_name = "SECRET")]
    pub(crate) notify_signing_secret: Option<Secret>,

    /// Longest one delivery attempt takes (connect, TLS, answer); failed
    /// attempts are retried with backoff, each destination on its own.
    #[arg(long, env = "NOTIFY_TIMEOUT", default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) notify_timeout: Duration,

    /// PEM file of CA certificates trusted besides the bundled Mozilla
    /// roots (a self-hosted receiver behind a private CA).
    #[arg(long, env = "NOTIFY_CA_FILE", value_name = "PATH")]
    pub(crate) notify_ca_file: Option<PathBuf>,

    /// Base URL of the Telegram Bot API (a self-hosted Bot API server, say).
    #[arg(long, env = "NOTIFY_TELEGRAM_API", default_value = TELEGRAM_API, value_name = "URL")]
    pub(crate) notify_telegram_api: String,

    /// Which bot this is, at the head of every alert [default: the host name].
    #[arg(long, env = "NOTIFY_NAME", value_name = "NAME")]
    pub(crate) notify_name: Option<String>,
}

impl AlertArgs {
    /// The validated settings; the error is one line that names the flag
    /// and env var and never repeats a URL or a secret.
    pub(crate) fn settings(&self) -> Result<alerts::Settings, ConfigError> {
        let name = self.notify_name.clone().unwrap_or_else(host_name);
        let mut settings =
            alerts::Settings::new(&name, self.notify_timeout, &self.notify_telegram_api).map_err(
                |problem| {
                    if self.notify_name.as_deref() == Some(name.as_str()) {
                        invalid("notify-name", "NOTIFY_NAME", problem)
                    } else {
                        invalid("notify-telegram-api", "NOTIFY_TELEGRAM_API", problem)
                    }
                },
            )?;
        if let Some(secret) = &self.notify_signing_secret {
            settings.set_signing_secret(secret.expose());
        }
        match (&self.notify_urls, &self.notify_urls_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "notify-urls",
                    "NOTIFY_URLS",
                    "set either it or --notify-urls-file (NOTIFY_URLS_FILE), not both",
                ))
            }
            (Some(urls), None) => settings
                .add_destinations(urls.expose())
                .map_err(|problem| invalid("notify-urls", "NOTIFY_URLS", problem))?,
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    invalid(
                        "notify-urls-file",
                        "NOTIFY_URLS_FILE",
                        format_args!("cannot read {}: {error}", path.display()),
                    )
                })?;
                settings.add_destinations(&text).map_err(|problem| {
                    invalid(
                        "notify-urls-file",
                        "NOTIFY_URLS_FILE",
                        format_args!("{}: {problem}", path.display()),
                    )
                })?;
            }
            (None, None) => {}
        }
        if let Some(path) = &self.notify_ca_file {
            let pem = std::fs::read(path).map_err(|error| {
                invalid(
                    "notify-ca-file",
                    "NOTIFY_CA_FILE",
                    format_args!("cannot read {}: {error}", path.display()),
                )
            })?;
            settings
                .add_ca_file(path.clone(), &pem)
                .map_err(|problem| {
                    invalid(
                        "notify-ca-file",
                        "NOTIFY_CA_FILE",
                        format_args!("{}: {problem}", path.display()),
                    )
                })?;
        }
        settings.validate().map_err(|problem| {
            invalid("notify-signing-secret", "NOTIFY_SIGNING_SECRET", problem)
        })?;
        Ok(settings)
    }
}

/// The kernel's host name (a container's is its id unless set), read
/// without a libc call; "tradingbot" if it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "tradingbot".to_owned())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::AlertArgs;

    #[derive(Parser)]
    struct Only {
        #[command(flatten)]
        alerts: AlertArgs,
    }

    fn settings(args: &[&str]) -> Result<crate::alerts::Settings, String> {
        Only::try_parse_from(std::iter::once("tradingbot").chain(args.iter().copied()))
            .unwrap()
            .alerts
            .settings()
            .map_err(|error| error.to_string())
    }

    #[test]
    fn errors_name_the_flag_and_env_var_and_hide_the_url() {
        let error =
            settings(&["--notify-urls", "https://example.com/hidden-secret-path"]).unwrap_err();
        assert!(
            error.starts_with("invalid --notify-urls (NOTIFY_URLS): destination 1: "),
            "{error}"
        );
        assert!(!error.contains("hidden-secret-path"), "{error}");
        let error = settings(&["--notify-ca-file", "/nonexistent/ca.pem"]).unwrap_err();
        assert!(error.starts_with("invalid --notify-ca-file (NOTIFY_CA_FILE): cannot read"));
        let error = settings(&["--notify-telegram-api", "telegram"]).unwrap_err();
        assert!(error.starts_with("invalid --notify-telegram-api (NOTIFY_TELEGRAM_API)"));
    }

    #[test]
    fn no_url_means_alerts_off() {
        assert!(!settings(&[]).unwrap().is_enabled());
        assert!(settings(&["--notify-urls", "discord://1/abc"])
            .unwrap()
            .is_enabled());
    }
}
