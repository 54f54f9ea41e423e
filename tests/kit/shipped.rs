//! Files shipped in the repository (unit, Dockerfile, manifests, Cargo.toml),
//! which the tests hold to the binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::daemon::BIN;
use super::process::ok;

pub fn shipped(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Fails unless every env var that `tradingbot SUBCOMMAND --help` shows
/// (at least `at_least` of them) is documented in the shipped `env_file`.
pub fn assert_env_file_documents(subcommand: &str, env_file: &str, at_least: usize) {
    // Help text wraps anywhere, "[env:" and the name included.
    let help = ok(Command::new(BIN).args([subcommand, "--help"]))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let text = std::fs::read_to_string(shipped(env_file)).unwrap();
    let documented: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim_start_matches('#').split_once('='))
        .map(|(key, _)| key)
        .collect();
    let variables: Vec<&str> = help
        .split("[env: ")
        .skip(1)
        .map(|rest| {
            // `[env: NAME=value]`, or `[env: NAME]` for a hidden value.
            let end = rest
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect();
    assert!(
        variables.len() >= at_least,
        "too few env vars in `tradingbot {subcommand} --help`:\n{help}"
    );
    for variable in variables {
        assert!(
            documented.contains(&variable),
            "{variable} (in `tradingbot {subcommand} --help`) is not in {env_file}"
        );
    }
}
