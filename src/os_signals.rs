//! SIGTERM, SIGINT and SIGHUP, handled on an OS thread of their own so that
//! a second signal ends the process at once even when the bot's runtime is
//! wedged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio_util::sync::CancellationToken;

use crate::health::file::HealthFile;
use crate::health::notify::Notifier;
use crate::health::HealthState;
use crate::logging::LogControl;

/// Exit code when a stop is forced (second signal, drain deadline).
pub const EXIT_FORCED: i32 = 1;

pub struct Handlers {
    pub health: Arc<HealthState>,
    pub notifier: Arc<Notifier>,
    pub shutdown: CancellationToken,
    pub log: LogControl,
    pub env_file: Option<PathBuf>,
    pub health_file: PathBuf,
    pub drain_timeout: Duration,
}

impl Handlers {
    /// Installs the handlers now and serves them from a new thread.
    pub fn install(self) -> std::io::Result<()> {
        let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    match signal {
                        SIGHUP => self.reload(),
                        _ if self.shutdown.is_cancelled() => self.force_exit("second stop signal"),
                        _ => self.stop(signal),
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
        self.shutdown.cancel();
        let deadline = self.drain_timeout;
        let health_file = self.health_file.clone();
        let _ = std::thread::Builder::new()
            .name("drain-deadline".into())
            .spawn(move || {
                std::thread::sleep(deadline);
                tracing::error!(
                    drain_timeout_ms = deadline.as_millis() as u64,
                    "drain did not finish within DRAIN_TIMEOUT; exiting {EXIT_FORCED}"
                );
                let _ = HealthFile::new(health_file).remove();
                std::process::exit(EXIT_FORCED);
            });
        self.notifier.stopping();
    }

    fn force_exit(&self, why: &str) -> ! {
        tracing::error!("{why}: exiting {EXIT_FORCED} without finishing the drain");
        let _ = HealthFile::new(self.health_file.clone()).remove();
        std::process::exit(EXIT_FORCED);
    }

    /// Re-reads the env file (RUST_LOG) between RELOADING=1 and READY=1.
    /// Before the daemon is ready, the reload happens without the two
    /// notifications: a READY=1 then would claim an init that has not finished.
    fn reload(&self) {
        let announce = self.health.snapshot().readiness().is_ok();
        if announce {
            self.notifier.reloading();
        }
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
        if announce {
            self.notifier.ready("ready: reloaded");
        }
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
