//! SIGTERM, SIGINT and SIGHUP, handled on an OS thread of their own so that
//! a stop signal is seen even when the bot's runtime is wedged.
//!
//! This thread only records what was asked and tells the judge, which is
//! the one that talks to systemd, keeps the health file and ends the
//! process.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio_util::sync::CancellationToken;

use crate::health::judge::{Inbox, Request};
use crate::health::HealthState;
use crate::logging::LogControl;

/// A second stop signal forces the exit only this long after the first,
/// like "press Ctrl-C again to force". Wrappers such as `timeout`, and many
/// entrypoint scripts, signal the child and its process group together:
/// two signals microseconds apart are one request to stop, not two.
const FORCE_AFTER: Duration = Duration::from_secs(1);

pub(crate) struct Handlers {
    pub(crate) health: Arc<HealthState>,
    pub(crate) judge: Inbox,
    pub(crate) shutdown: CancellationToken,
    pub(crate) log: LogControl,
    pub(crate) env_file: Option<PathBuf>,
}

impl Handlers {
    /// Installs the handlers now and serves them from a new thread.
    pub(crate) fn install(self) -> std::io::Result<()> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                let mut first_stop: Option<Instant> = None;
                for signal in signals.forever() {
                    match (signal, first_stop) {
                        (SIGHUP, _) => self.reload(),
                        (_, None) => {
                            first_stop = Some(Instant::now());
                            self.stop(signal);
                        }
                        (_, Some(first)) => self.stop_again(first.elapsed()),
                    }
                }
            })?;
        Ok(())
    }

    fn stop(&self, signal: i32) {
        let name = if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        tracing::info!(signal = name, "stopping: intake stops, the bot drains");
        self.health.set_stopping();
        // The judge hears of the stop before the bot does: an idle bot
        // drains in well under a millisecond, and its `Finished`, queued
        // first, would end the judge before it sent STOPPING=1.
        self.judge.send(Request::Stop);
        self.shutdown.cancel();
    }

    fn stop_again(&self, since_first: Duration) {
        if since_first >= FORCE_AFTER {
            self.judge.send(Request::ForceStop);
        } else {
            tracing::info!(
                since_first_ms = since_first.as_millis() as u64,
                "another stop signal right after the first: still draining \
                 (one sent a second or more later forces the exit)"
            );
        }
    }

    /// Re-reads the env file (RUST_LOG) between RELOADING=1 and READY=1.
    /// The judge announces both unless the daemon is not ready yet: a
    /// READY=1 then would claim an init that has not finished.
    fn reload(&self) {
        self.judge.send(Request::Reloading);
        match &self.env_file {
            None => tracing::info!("reload: no ENV_FILE configured; nothing to re-read"),
            Some(path) => match read_env_value(path, "RUST_LOG") {
                Ok(Some(filter)) => match self.log.set_filter(&filter) {
                    Ok(()) => tracing::info!(filter = %filter, "reload: log filter changed"),
                    Err(error) => tracing::warn!(
                        path = %path.display(),
                        %error,
                        "reload: RUST_LOG in ENV_FILE is invalid; log filter unchanged"
                    ),
                },
                Ok(None) => {
                    tracing::info!(path = %path.display(), "reload: no RUST_LOG in ENV_FILE")
                }
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "reload: cannot read ENV_FILE")
                }
            },
        }
        self.judge.send(Request::Reloaded);
    }
}

/// The value of `KEY=VALUE` (quotes optional, `#` comments) in an env file.
fn read_env_value(path: &std::path::Path, key: &str) -> std::io::Result<Option<String>> {
    Ok(env_value(&std::fs::read_to_string(path)?, key))
}

/// The value of the last `KEY=VALUE` line for `key` in an env file's text.
pub fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines().rev().find_map(|line| {
        let (name, value) = line.trim().split_once('=')?;
        (name.trim().trim_start_matches("export ") == key).then(|| {
            value
                .trim()
                .trim_matches(|quote| quote == '"' || quote == '\'')
                .to_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_last_assignment() {
        let path = std::env::temp_dir().join(format!("tb-env-{}", std::process::id()));
        std::fs::write(
            &path,
            "# comment\nRUST_LOG=info\nPORT=1\nRUST_LOG=\"debug\"\n",
        )
        .unwrap();
        assert_eq!(
            read_env_value(&path, "RUST_LOG").unwrap(),
            Some("debug".into())
        );
        assert_eq!(read_env_value(&path, "NOPE").unwrap(), None);
    }
}
