//! tradingbot: a signal-driven paper-trading bot loop run as a Linux service
//! whose health signal tells the truth. See ARCHITECTURE.md for the map.

// Every call Rust cannot check is in `sys`, behind a safe function that
// keeps the call's contract itself.
#![deny(unsafe_code)]

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
#[allow(unsafe_code)]
mod sys;
mod tls;
mod web;

use std::ffi::OsString;
use std::io::{self, Write};

pub use error::Error;
use exit::Exit;
/// The dashboard's routes (`tradingbot web`), as its table declares them.
pub use web::routes as dashboard_routes;

/// Runs what the command line asks for, to its end.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<Exit, Error> {
    match cli::parse(args)? {
        cli::Command::Run(config) => {
            // Parsing starts no thread, so as PID 1 this can still fork
            // the init that reaps orphans.
            reaper::init_if_pid1().map_err(|source| Error::Io {
                what: "cannot fork the PID 1 reaper",
                source,
            })?;
            daemon::run(&config).map(|()| Exit::Clean)
        }
        cli::Command::CheckConfig(text) | cli::Command::Print(text) => answer(|out| {
            out.write_all(text.as_bytes()).map_err(stdout_error)?;
            Ok(Exit::Clean)
        }),
        cli::Command::NotifyTest(settings) => answer(|out| {
            let delivered = alerts::notify_test(&settings, out).map_err(stdout_error)?;
            Ok(if delivered {
                Exit::Clean
            } else {
                Exit::Failure
            })
        }),
        cli::Command::SourceTest(request) => answer(|out| {
            let passed = bot::intake::source_test::run(&request, out)?;
            Ok(if passed { Exit::Clean } else { Exit::Failure })
        }),
        cli::Command::Web(settings) => web::run(&settings).map(|()| Exit::Clean),
        cli::Command::Journal(request) => answer(|out| {
            let answered = bot::ledger::query::run(&request, out)?;
            Ok(if answered { Exit::Clean } else { Exit::Failure })
        }),
        cli::Command::Health(settings) => health::probe::probe(&settings)
            .map(|()| Exit::Clean)
            .map_err(Error::from),
    }
}

/// Runs a subcommand that answers on stdout. A reader that stops early
/// (`tradingbot journal fills | head -1`) has what it wanted: the closed
/// pipe ends the subcommand quietly with exit 0, as ripgrep does, whatever
/// error the write it broke returned on its way up.
fn answer(subcommand: impl FnOnce(&mut dyn Write) -> Result<Exit, Error>) -> Result<Exit, Error> {
    let mut out = Stdout {
        out: io::stdout().lock(),
        reader_gone: false,
    };
    let answered =
        subcommand(&mut out).and_then(|exit| out.flush().map_err(stdout_error).map(|()| exit));
    if out.reader_gone {
        Ok(Exit::Clean)
    } else {
        answered
    }
}

fn stdout_error(source: io::Error) -> Error {
    Error::Io {
        what: "cannot write to stdout",
        source,
    }
}

/// Stdout that remembers a broken pipe (Rust ignores SIGPIPE, so a reader
/// gone comes back as EPIPE from the write).
struct Stdout<'a> {
    out: io::StdoutLock<'a>,
    reader_gone: bool,
}

impl Stdout<'_> {
    fn note<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(error) = &result {
            self.reader_gone |= error.kind() == io::ErrorKind::BrokenPipe;
        }
        result
    }
}

impl Write for Stdout<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let written = self.out.write(bytes);
        self.note(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        let flushed = self.out.flush();
        self.note(flushed)
    }
}
