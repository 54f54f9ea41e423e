//! `check-config`'s report, generated from the flag definitions themselves,
//! so a new flag shows up in it without being listed twice.

use clap::parser::ValueSource;
use clap::{ArgMatches, Command};

use crate::bot::intake::sources_file;
use crate::daemon::settings::Config;

/// KEY=VALUE lines (an env file), grouped by where each value came from;
/// secrets redacted; then the values derived from them.
pub(super) fn report(definitions: &Command, matches: &ArgMatches, config: &Config) -> String {
    let mut groups: [(&str, Vec<String>); 4] = [
        ("set by a flag", Vec::new()),
        ("set in the environment", Vec::new()),
        ("defaults", Vec::new()),
        ("not set (off)", Vec::new()),
    ];
    for arg in definitions.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(key) = arg
            .get_env()
            .map(|env| env.to_string_lossy().into_owned())
            .or_else(|| arg.get_long().map(|long| format!("--{long}")))
        else {
            continue;
        };
        if matches!(id, "help" | "version") {
            continue;
        }
        let group = match matches.value_source(id) {
            Some(ValueSource::CommandLine) => 0,
            Some(ValueSource::EnvVariable) => 1,
            Some(ValueSource::DefaultValue) => 2,
            _ => {
                groups[3].1.push(format!("# {key}"));
                continue;
            }
        };
        let value = if arg.is_hide_env_values_set() {
            "(set, redacted)".to_owned()
        } else {
            let separator = arg.get_value_delimiter().unwrap_or(' ').to_string();
            matches
                .get_raw(id)
                .into_iter()
                .flatten()
                .map(|raw| raw.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(&separator)
        };
        groups[group].1.push(format!("{key}={value}"));
    }

    let mut report = String::new();
    for (title, lines) in groups.iter().filter(|(_, lines)| !lines.is_empty()) {
        report.push_str(&format!("# {title}\n"));
        for line in lines {
            report.push_str(line);
            report.push('\n');
        }
    }
    report.push_str("# derived\n");
    for (key, value) in derived(config) {
        report.push_str(&format!("{key}={value}\n"));
    }
    report.push_str("# sources, as a SOURCES_FILE would list them (secrets redacted)\n");
    report.push_str(&sources_file::describe(&config.bot.intake.sources));
    report
}

/// What the daemon will do with those values, where that is not the value
/// itself.
fn derived(config: &Config) -> Vec<(&'static str, String)> {
    let duration = |value| humantime::format_duration(value).to_string();
    let mut derived = vec![
        ("PORTS", format!("{:?}", config.health.ports)),
        ("LOCK_FILE", config.daemon.lock_file.display().to_string()),
        (
            "WATCHDOG",
            config
                .health
                .watchdog
                .map_or("off".into(), |watchdog| duration(watchdog.timeout)),
        ),
        ("TICK", duration(config.health.tick())),
        // Its default follows PAPER_BALANCE: the value in effect.
        ("ALLOW_SHORT", config.bot.account.allow_short.to_string()),
    ];
    // Labels and options only, never a URL.
    derived.extend(config.alerts.describe());
    derived
}
