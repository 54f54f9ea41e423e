//! The command line: clap's definitions, a group per module they configure,
//! turned once into each module's plain settings (see [`crate::daemon::settings::Config`]).
//!
//! Every flag has an env var. Errors are one line naming the flag and its
//! env var. Nothing after [`parse`] reads the environment.

mod alerts;
mod describe;
mod journal;
mod run;
mod source_test;
mod values;
mod web;

use std::ffi::OsString;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::daemon::settings::Config;
pub(crate) use crate::error::ConfigError;
use crate::health::settings::ProbeSettings;
pub(crate) use run::RunArgs;
use values::parse_duration;

const ABOUT: &str = "A signal-driven paper-trading bot that runs as a first-class Linux service.";

const LONG_ABOUT: &str = "\
A signal-driven paper-trading bot that runs as a first-class Linux service.

Its health signal tells the truth: /health, the health file and the systemd
watchdog are green only while the bot loop is making progress. The health port
is bound before anything slow, so a platform probe never races the start-up.

Every flag can be set with the environment variable shown beside it.
Durations take a unit: 500ms, 5s, 2m.

Exit codes: 0 clean stop, 1 runtime failure, 2 usage or configuration error,
70 stalled past --stall-exit-after, 75 another instance holds the lock.";

#[derive(Debug, Parser)]
#[command(
    name = "tradingbot",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Subcommands>,

    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Subcommands {
    /// Run the bot (the default when no subcommand is given).
    Run(RunArgs),
    /// Probe a running daemon through its health file (for HEALTHCHECK).
    ///
    /// Exits 0 when the health file is a regular file no older than
    /// --max-age (and, with --http, /health answers 200; with --addr, only
    /// that); exits 1 with one line on stderr saying why otherwise.
    Health(ProbeArgs),
    /// Validate the configuration, print it, and exit (0 valid, 2 invalid).
    ///
    /// Prints KEY=VALUE lines (an env file), grouped by where each value
    /// came from: a flag, the environment, or the default; secrets redacted.
    CheckConfig(RunArgs),
    /// Send a test alert to every NOTIFY_URLS destination and print, per
    /// destination, the outcome (HTTP status, latency, the service's
    /// error); exit 1 if any failed. Reads the same settings as `run`.
    NotifyTest(RunArgs),
    /// Connect to one source with the same settings as `run` and print its
    /// next messages raw, each beside what it maps to: a signal's fields,
    /// ignored and why, or the reject and why. The way to write a mapping.
    ///
    /// Trades nothing and writes nothing (no journal, no lock, no health
    /// file, no port). Exits 0 once --count messages have come (or the
    /// input piped to a stdin or webhook source ended), 1 if the source
    /// could not connect or sent fewer within --timeout, 2 for an unknown
    /// name or a bad setting. A webhook source reads one body from stdin.
    SourceTest(source_test::SourceTestArgs),
    /// Serve the dashboard: one page for one bot or many, read through
    /// their read API (a separate process; README, "Dashboard").
    Web(web::WebArgs),
    /// Read the journal: fills, rejects, positions, PnL, or verify it.
    ///
    /// Read-only and without the lock, so safe while the daemon runs; over
    /// the live, rolled and retained segments. Tables for people, --json
    /// for one JSON object a line.
    Journal(journal::JournalArgs),
}

/// What the command line asks for, validated.
#[derive(Debug)]
pub(crate) enum Command {
    Run(Box<Config>),
    Health(ProbeSettings),
    /// The report to print.
    CheckConfig(String),
    /// `--help` or `--version`: the text to print.
    Print(String),
    NotifyTest(Box<crate::alerts::Settings>),
    SourceTest(Box<crate::bot::intake::source_test::Request>),
    Web(Box<crate::web::Settings>),
    Journal(crate::bot::ledger::query::Request),
}

/// Parses the command line and the environment into a validated command.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, ConfigError> {
    let matches = match Cli::command().try_get_matches_from(args) {
        Ok(matches) => matches,
        // `--help` and `--version` are answers, not errors.
        Err(error) if !error.use_stderr() => return Ok(Command::Print(error.to_string())),
        Err(error) => return Err(ConfigError::Invalid(one_line_error(&error))),
    };
    let cli = Cli::from_arg_matches(&matches)
        .map_err(|error| ConfigError::Invalid(one_line_error(&error)))?;
    match cli.command {
        None => Ok(Command::Run(Box::new(cli.run.into_config()?))),
        Some(Subcommands::Run(args)) => Ok(Command::Run(Box::new(args.into_config()?))),
        Some(Subcommands::Health(args)) => Ok(Command::Health(args.into_settings())),
        Some(Subcommands::Web(args)) => Ok(Command::Web(Box::new(args.into_settings()?))),
        Some(Subcommands::Journal(args)) => Ok(Command::Journal(args.into_request())),
        Some(Subcommands::NotifyTest(args)) => {
            Ok(Command::NotifyTest(Box::new(args.into_config()?.alerts)))
        }
        Some(Subcommands::SourceTest(args)) => {
            Ok(Command::SourceTest(Box::new(args.into_request()?)))
        }
        Some(Subcommands::CheckConfig(args)) => {
            let config = args.into_config()?;
            let matches = matches
                .subcommand_matches("check-config")
                .unwrap_or(&matches);
            let command = Cli::command();
            let definitions = command.find_subcommand("check-config").unwrap_or(&command);
            Ok(Command::CheckConfig(describe::report(
                definitions,
                matches,
                &config,
            )))
        }
    }
}

/// Turns a clap error into one line that names the flag and, where it has
/// one, its env var (clap's own message names only the flag).
fn one_line_error(error: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let rendered = error.to_string();
    let first_line = rendered
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ")
        .to_owned();
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return first_line;
    };
    let long = arg
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_start_matches("--");
    let command = Cli::command();
    let env = command
        .get_subcommands()
        .chain(std::iter::once(&command))
        .flat_map(|command| command.get_arguments())
        .find(|candidate| candidate.get_long() == Some(long))
        .and_then(|candidate| candidate.get_env())
        .map(|env| env.to_string_lossy().into_owned());
    match env {
        Some(env) if !first_line.contains(&format!("(env {env})")) => {
            format!("{first_line} (env {env})")
        }
        _ => first_line,
    }
}

/// The flag's one-line error, as every settings check words it.
fn invalid(flag: &str, env: &str, problem: impl std::fmt::Display) -> ConfigError {
    ConfigError::Invalid(format!("invalid --{flag} ({env}): {problem}"))
}

#[derive(Debug, Clone, Args)]
struct ProbeArgs {
    /// The health file the daemon keeps.
    #[arg(
        long,
        env = "HEALTH_FILE",
        default_value = "/tmp/bot_healthy",
        value_name = "PATH"
    )]
    file: std::path::PathBuf,

    /// Oldest acceptable health file [default: three heartbeat intervals].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    max_age: Option<std::time::Duration>,

    /// Used for the default --max-age.
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value = "1s", value_parser = parse_duration, value_name = "DURATION")]
    heartbeat_interval: std::time::Duration,

    /// Also GET /health on the address recorded in the health file.
    #[arg(long)]
    http: bool,

    /// Timeout of the HTTP probe.
    #[arg(long, default_value = "2s", value_parser = parse_duration, value_name = "DURATION")]
    timeout: std::time::Duration,

    /// Only GET /health on this address, without a health file (for
    /// `tradingbot web`, which keeps none).
    #[arg(long, value_name = "IP:PORT", conflicts_with_all = ["http", "max_age"])]
    addr: Option<std::net::SocketAddr>,
}

impl ProbeArgs {
    fn into_settings(self) -> ProbeSettings {
        ProbeSettings {
            max_age: self.max_age.unwrap_or(self.heartbeat_interval * 3),
            file: self.file,
            http: self.http,
            timeout: self.timeout,
            addr: self.addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_value_names_flag_and_env() {
        let error =
            Cli::try_parse_from(["tradingbot", "--heartbeat-interval", "soon"]).unwrap_err();
        let line = one_line_error(&error);
        assert!(line.contains("--heartbeat-interval"), "{line}");
        assert!(line.contains("HEARTBEAT_INTERVAL"), "{line}");
        assert!(!line.contains('\n'));
    }
}
