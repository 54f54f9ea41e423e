//! `tradingbot web`'s flags, converted once into [`web::Settings`].

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::run::{LogArgs, ServiceEnv};
use super::values::parse_duration;
use super::{invalid, ConfigError};
use crate::secret::Secret;
use crate::web::settings::{self as web, BotSpec};

/// The dashboard (README, "Dashboard").
#[derive(Debug, Clone, Args)]
pub(crate) struct WebArgs {
    /// A bot to show, as NAME=URL (its health port, where its read API is);
    /// repeat the flag, or separate them with commas in WEB_BOTS.
    #[arg(
        long = "bot",
        env = "WEB_BOTS",
        value_name = "NAME=URL",
        value_delimiter = ','
    )]
    bots: Vec<String>,

    /// File of the bots' read tokens (each bot's API_TOKEN), one NAME=TOKEN
    /// a line ('#' starts a comment line). A bot without one is read
    /// without a token.
    #[arg(long, env = "WEB_BOT_TOKENS_FILE", value_name = "PATH")]
    bot_tokens_file: Option<PathBuf>,

    /// The same as --bot-tokens-file's content, NAME=TOKEN pairs separated
    /// by commas, for platforms without secret files: prefer the file.
    #[arg(long, env = "WEB_BOT_TOKENS", hide_env_values = true, value_parser = Secret::parse, value_name = "NAME=TOKEN,...")]
    bot_tokens: Option<Secret>,

    /// File holding the dashboard's own token. Required unless --bind is a
    /// loopback address: positions are private.
    #[arg(long, env = "WEB_TOKEN_FILE", value_name = "PATH")]
    token_file: Option<PathBuf>,

    /// The dashboard's token itself, for platforms without secret files:
    /// prefer --token-file.
    #[arg(long, env = "WEB_TOKEN", hide_env_values = true, value_parser = Secret::parse, value_name = "TOKEN")]
    token: Option<Secret>,

    /// Port the dashboard listens on (the PaaS convention).
    #[arg(long, env = "PORT", default_value_t = 8080, value_name = "PORT")]
    port: u16,

    /// Address the dashboard binds (0.0.0.0, ::, 127.0.0.1, ...).
    #[arg(long, env = "WEB_BIND", default_value = "0.0.0.0", value_name = "ADDR")]
    bind: IpAddr,

    /// How often each bot's status and positions are read.
    #[arg(long, env = "WEB_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    poll_interval: Duration,

    /// The longest one request to a bot may take before it counts as
    /// unreachable.
    #[arg(long, env = "WEB_BOT_TIMEOUT", default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    bot_timeout: Duration,

    #[command(flatten, next_help_heading = "Logging")]
    log: LogArgs,
}

impl WebArgs {
    pub(super) fn into_settings(self) -> Result<web::Settings, ConfigError> {
        let service = ServiceEnv::from_env()?;
        let mut bots: Vec<BotSpec> = Vec::new();
        for text in self.bots.iter().filter(|text| !text.trim().is_empty()) {
            let spec =
                BotSpec::parse(text).map_err(|problem| invalid("bot", "WEB_BOTS", problem))?;
            if bots.iter().any(|bot| bot.name == spec.name) {
                return Err(invalid(
                    "bot",
                    "WEB_BOTS",
                    format_args!("{} is named twice", spec.name),
                ));
            }
            bots.push(spec);
        }
        if bots.is_empty() {
            return Err(invalid(
                "bot",
                "WEB_BOTS",
                "name at least one bot, as NAME=URL",
            ));
        }
        self.add_bot_tokens(&mut bots)?;
        let token = self.token()?;
        if token.is_none() && !self.bind.is_loopback() {
            return Err(invalid(
                "token-file",
                "WEB_TOKEN_FILE",
                format_args!(
                    "required when --bind (WEB_BIND) {} is not a loopback address: \
                     the dashboard shows positions",
                    self.bind
                ),
            ));
        }
        Ok(web::Settings {
            listen: SocketAddr::new(self.bind, self.port),
            bots,
            token,
            poll_interval: self.poll_interval,
            bot_timeout: self.bot_timeout,
            log: self.log.into_settings(service.journal_stream)?,
            notify_socket: service.notify_socket,
        })
    }

    fn token(&self) -> Result<Option<Secret>, ConfigError> {
        match (&self.token, &self.token_file) {
            (Some(_), Some(_)) => Err(invalid(
                "token",
                "WEB_TOKEN",
                "set either it or --token-file (WEB_TOKEN_FILE), not both",
            )),
            (Some(token), None) => Ok(Some(token.clone())),
            (None, Some(path)) => {
                let text = read(path, "token-file", "WEB_TOKEN_FILE")?;
                Secret::parse(&text)
                    .map(Some)
                    .map_err(|problem| invalid("token-file", "WEB_TOKEN_FILE", problem))
            }
            (None, None) => Ok(None),
        }
    }

    fn add_bot_tokens(&self, bots: &mut [BotSpec]) -> Result<(), ConfigError> {
        let (text, flag, env) = match (&self.bot_tokens, &self.bot_tokens_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "bot-tokens",
                    "WEB_BOT_TOKENS",
                    "set either it or --bot-tokens-file (WEB_BOT_TOKENS_FILE), not both",
                ))
            }
            (Some(tokens), None) => (
                tokens.expose().replace(',', "\n"),
                "bot-tokens",
                "WEB_BOT_TOKENS",
            ),
            (None, Some(path)) => (
                read(path, "bot-tokens-file", "WEB_BOT_TOKENS_FILE")?,
                "bot-tokens-file",
                "WEB_BOT_TOKENS_FILE",
            ),
            (None, None) => return Ok(()),
        };
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Never quote the line: it holds a token.
            let problem =
                |what: &str| invalid(flag, env, format_args!("entry {}: {what}", number + 1));
            let (name, token) = line
                .split_once('=')
                .ok_or_else(|| problem("is not NAME=TOKEN"))?;
            let bot = bots
                .iter_mut()
                .find(|bot| bot.name == name.trim())
                .ok_or_else(|| problem("names no --bot (WEB_BOTS)"))?;
            bot.token = Some(
                Secret::parse(token).map_err(|reason| problem(&format!("the token {reason}")))?,
            );
        }
        Ok(())
    }
}

fn read(path: &std::path::Path, flag: &str, env: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| {
        invalid(
            flag,
            env,
            format_args!("cannot read {}: {error}", path.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Only {
        #[command(flatten)]
        web: WebArgs,
    }

    fn settings(args: &[&str]) -> Result<web::Settings, String> {
        let mut argv = vec!["web"];
        argv.extend(args);
        Only::try_parse_from(argv)
            .map_err(|error| error.to_string())?
            .web
            .into_settings()
            .map_err(|error| error.to_string())
    }

    #[test]
    fn positions_are_private_off_loopback() {
        let error = settings(&["--bot", "a=http://127.0.0.1:9"]).unwrap_err();
        assert!(error.contains("--token-file (WEB_TOKEN_FILE)"), "{error}");
        let open = settings(&["--bot", "a=http://127.0.0.1:9", "--bind", "127.0.0.1"]).unwrap();
        assert!(open.token.is_none());
        assert_eq!(open.listen, "127.0.0.1:8080".parse().unwrap());
        let guarded = settings(&["--bot", "a=http://127.0.0.1:9", "--token", "t0ken"]).unwrap();
        assert_eq!(guarded.token.unwrap().expose(), "t0ken");
    }

    #[test]
    fn bots_and_their_tokens() {
        let settings = settings(&[
            "--bind",
            "::1",
            "--bot",
            "a=http://127.0.0.1:9,b=https://b.example.com/",
            "--bot",
            "c=http://10.0.0.3:8080",
            "--bot-tokens",
            "a=ta, c = tc ",
        ])
        .unwrap();
        let tokens: Vec<(&str, Option<&str>)> = settings
            .bots
            .iter()
            .map(|bot| (bot.name.as_str(), bot.token.as_ref().map(Secret::expose)))
            .collect();
        assert_eq!(tokens, [("a", Some("ta")), ("b", None), ("c", Some("tc"))]);
        assert_eq!(settings.bots[1].url, "https://b.example.com");
    }

    #[test]
    fn mistakes_name_the_flag_and_never_a_token() {
        for (args, flag) in [
            (vec!["--bind", "127.0.0.1"], "--bot (WEB_BOTS)"),
            (
                vec!["--bind", "127.0.0.1", "--bot", "a=http://h,a=http://g"],
                "--bot (WEB_BOTS)",
            ),
            (
                vec!["--bind", "127.0.0.1", "--bot", "a b=http://h"],
                "--bot (WEB_BOTS)",
            ),
            (
                vec![
                    "--bind",
                    "127.0.0.1",
                    "--bot",
                    "a=http://h",
                    "--bot-tokens",
                    "z=secretvalue",
                ],
                "--bot-tokens (WEB_BOT_TOKENS)",
            ),
            (
                vec![
                    "--bind",
                    "127.0.0.1",
                    "--bot",
                    "a=http://h",
                    "--bot-tokens",
                    "secretvalue",
                ],
                "--bot-tokens (WEB_BOT_TOKENS)",
            ),
            (
                vec![
                    "--bot",
                    "a=http://h",
                    "--token",
                    "x",
                    "--token-file",
                    "/nonexistent",
                ],
                "--token (WEB_TOKEN)",
            ),
            (
                vec!["--bot", "a=http://h", "--token-file", "/nonexistent"],
                "--token-file (WEB_TOKEN_FILE)",
            ),
        ] {
            let error = settings(&args).unwrap_err();
            assert!(error.contains(flag), "{args:?}: {error}");
            assert!(!error.contains("secretvalue"), "{error}");
        }
    }
}
