//! tradingbot: a signal-driven paper-trading bot loop run as a Linux service
//! whose health signal tells the truth. See ARCHITECTURE.md for the map.

mod alerts;
mod backoff;
pub mod bot;
mod cli;
mod daemon;
pub mod error;
pub mod exit;
pub mod health;
pub mod http;
mod lock;
mod logging;
pub mod metrics;
pub mod os_signals;
mod reaper;
mod secret;
mod sys;
mod web;

use std::ffi::OsString;

pub use error::Error;
use exit::Exit;
/// The dashboard's routes (`tradingbot web`), as its table declares them.
pub use web::routes as dashboard_routes;

/// Runs what the command line asks for, to its end.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit, Error> {
    match cli::parse(args)? {
        cli::Command::Run(config) => {
            // SAFETY: no thread has started yet (parsing starts none); as
            // PID 1 this forks an init that reaps orphans.
            unsafe { reaper::init_if_pid1() }.map_err(|source| Error::Io {
                what: "cannot fork the PID 1 reaper",
                source,
            })?;
            daemon::run(&config).map(|()| Exit::Clean)
        }
        cli::Command::CheckConfig(report) => {
            print!("{report}");
            Ok(Exit::Clean)
        }
        cli::Command::Print(text) => {
            print!("{text}");
            Ok(Exit::Clean)
        }
        cli::Command::NotifyTest(settings) => {
            let delivered = alerts::notify_test(&settings, &mut std::io::stdout().lock()).map_err(
                |source| Error::Io {
                    what: "cannot write the notify-test report",
                    source,
                },
            )?;
            Ok(if delivered {
                Exit::Clean
            } else {
                Exit::Failure
            })
        }
        cli::Command::Web(settings) => web::run(&settings).map(|()| Exit::Clean),
        cli::Command::Journal(request) => {
            let answered = bot::ledger::query::run(&request, &mut std::io::stdout().lock())?;
            Ok(if answered { Exit::Clean } else { Exit::Failure })
        }
        cli::Command::Health(settings) => health::probe::probe(&settings)
            .map(|()| Exit::Clean)
            .map_err(Error::from),
    }
}
