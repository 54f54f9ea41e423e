//! The lifecycle (DESIGN.md, "Process lifecycle"), in order, and nothing else.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::alerts::{Alerts, Event};
use crate::bot::Bot;
use crate::config::{self, Command, Config, ServiceEnv};
use crate::health::api::HealthApi;
use crate::health::file::HealthFile;
use crate::health::http::{self, Limits};
use crate::health::judge::Judge;
use crate::health::notify::Notifier;
use crate::health::{probe, HealthState};
use crate::signals::Handlers;
use crate::{lock, logging, Error};

/// Parses the command line and runs the chosen subcommand.
pub fn main(args: impl IntoIterator<Item = OsString>) -> Result<ExitCode, Error> {
    let cli = match config::parse_cli(args) {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => return Err(Error::Usage(config::one_line_error(&error))),
    };
    match cli.command.unwrap_or(Command::Run(cli.run)) {
        Command::Run(args) => {
            let config = Config::from_args(args, ServiceEnv::from_env()?)?;
            // Before any thread starts: as PID 1 this forks an init that reaps orphans.
            crate::reaper::init_if_pid1().map_err(|source| Error::Io {
                what: "cannot fork the PID 1 reaper",
                source,
            })?;
            run(config).map(|()| ExitCode::SUCCESS)
        }
        Command::CheckConfig(args) => {
            let config = Config::from_args(args, ServiceEnv::from_env()?)?;
            print!("{}", config.describe());
            Ok(ExitCode::SUCCESS)
        }
        Command::Health(args) => probe::probe(&args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Error::from),
        // Alerts (issue 14): one test message per destination.
        Command::NotifyTest(args) => {
            let settings = args
                .alerts
                .settings()
                .map_err(|line| Error::Config(config::ConfigError::Invalid(line)))?;
            let delivered = crate::alerts::notify_test(&settings, &mut std::io::stdout().lock())
                .map_err(|source| Error::Io {
                    what: "cannot write the notify-test report",
                    source,
                })?;
            Ok(if delivered {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// Runs the daemon until a stop signal has been handled (or init fails).
pub fn run(config: Config) -> Result<(), Error> {
    let (log, sink) = logging::init(&config);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), pid = std::process::id(), sink = ?sink, "starting");

    std::fs::create_dir_all(&config.state_dir).map_err(|source| Error::StateDir {
        what: "cannot create",
        path: config.state_dir.clone(),
        source,
    })?;
    // Read-only at start is a setup mistake, not a passing fault: said
    // here, by name, it is not mistaken for a journal failing at run time.
    rustix::fs::access(&config.state_dir, rustix::fs::Access::WRITE_OK).map_err(|errno| {
        Error::StateDir {
            what: "cannot write to",
            path: config.state_dir.clone(),
            source: errno.into(),
        }
    })?;
    // Before the port: a duplicate must never hide behind a fallback port.
    let _lock = lock::acquire(&config.lock_file)?;
    // Alerts (issue 14): after the lock, so a duplicate instance sends none.
    let alerts = Alerts::start(&config.alerts).map_err(|source| Error::Io {
        what: "cannot start the alert threads",
        source,
    })?;

    let health = HealthState::new(config.stall_timeout, config.startup_grace);
    start_health_server(&config, &health)?;

    let notifier = Arc::new(
        Notifier::new(config.service.notify_socket.as_ref()).unwrap_or_else(|error| {
            tracing::warn!(%error, "NOTIFY_SOCKET is set but unusable; running without sd_notify");
            Notifier::disabled()
        }),
    );
    let shutdown = CancellationToken::new();
    Handlers {
        health: Arc::clone(&health),
        notifier: Arc::clone(&notifier),
        shutdown: shutdown.clone(),
        log,
        env_file: config.env_file.clone(),
        health_file: config.health_file.clone(),
        drain_timeout: config.drain_timeout,
    }
    .install()
    .map_err(|source| Error::Io {
        what: "cannot install signal handlers",
        source,
    })?;

    let (stop_judge, judge_stopped) = std::sync::mpsc::channel();
    let judge = Judge {
        state: Arc::clone(&health),
        notifier: Arc::clone(&notifier),
        file: HealthFile::new(config.health_file.clone()),
        tick: config.tick(),
        watchdog: config.service.watchdog.is_some(),
        stall_exit_after: config.stall_exit_after,
        startup_grace: config.startup_grace,
        alerts: alerts.clone(),
    }
    .spawn(judge_stopped)
    .map_err(|source| Error::Io {
        what: "cannot start the judge thread",
        source,
    })?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bot")
        .on_thread_start(crate::bot::yield_cpu_to_health)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "cannot start the bot runtime",
            source,
        })?;
    let outcome = runtime.block_on(run_bot(&config, &health, &notifier, &alerts, shutdown));

    let _ = stop_judge.send(());
    let _ = judge.join();
    if let Err(error) = HealthFile::new(config.health_file.clone()).remove() {
        tracing::warn!(%error, "could not remove the health file");
    }
    // The bot has drained and flushed by now; what is left (a blocking read
    // of stdin, say) must not hold the exit hostage.
    runtime.shutdown_background();
    match &outcome {
        Ok(()) => tracing::info!("stopped cleanly"),
        Err(error) => tracing::error!(%error, "stopped on error"),
    }
    // Alerts (issue 14): the bot sent "stopped" after its drain; a failure
    // is said here. Either goes out before the exit, within two seconds.
    if let Err(error) = &outcome {
        alerts.send(Event::Exiting {
            code: i32::from(error.exit_code()),
            reason: error.to_string(),
        });
    }
    alerts.flush(std::time::Duration::from_secs(2));
    outcome
}

/// Binds the first free port of the list and serves the health endpoints
/// from their own thread. With no port free, health goes on through the file
/// and sd_notify only.
fn start_health_server(config: &Config, health: &Arc<HealthState>) -> Result<(), Error> {
    let addrs: Vec<SocketAddr> = config
        .ports
        .iter()
        .map(|port| SocketAddr::new(config.health_bind, *port))
        .collect();
    let Some(listener) = http::bind_first(&addrs) else {
        tracing::error!(
            tried = ?config.ports,
            bind = %config.health_bind,
            "NO HEALTH PORT COULD BE BOUND: /health is unreachable; health is reported \
             only through the health file and sd_notify"
        );
        return Ok(());
    };
    let bound = listener.local_addr().map_err(|source| Error::Io {
        what: "cannot read the health listener's address",
        source,
    })?;
    health.set_bound(bound);
    let api = HealthApi::new(Arc::clone(health));
    http::spawn_server_thread(
        "health-http",
        listener,
        Limits::default(),
        move || {
            move |request| {
                let response = api.respond(&request);
                async move { response }
            }
        },
        CancellationToken::new(),
    )
    .map_err(|source| Error::Io {
        what: "cannot start the health server thread",
        source,
    })?;
    tracing::info!(addr = %bound, port = bound.port(), "health server listening");
    Ok(())
}

async fn run_bot(
    config: &Config,
    health: &Arc<HealthState>,
    notifier: &Notifier,
    alerts: &Alerts,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    // Lets tests and rehearsals hold the daemon in its "starting" state.
    fail::fail_point!("daemon::init");
    let bot = Bot::init(config, health, alerts.clone()).await?;
    let mut bot_loop = tokio::spawn(bot.run(health.heartbeat(), shutdown.clone()));
    tokio::select! {
        () = health.first_beat() => {
            if !shutdown.is_cancelled() {
                health.set_ready(true);
                let port = health.bound().map_or_else(|| "no port".to_owned(), |addr| format!("port {}", addr.port()));
                notifier.ready(&format!("ready: {port}"));
                tracing::info!("ready: first loop iteration done");
            }
        }
        joined = &mut bot_loop => return finished(joined),
    }
    finished(bot_loop.await)
}

fn finished(
    joined: Result<Result<(), crate::bot::BotError>, tokio::task::JoinError>,
) -> Result<(), Error> {
    match joined {
        Ok(result) => result.map_err(Error::from),
        Err(error) => Err(Error::Io {
            what: "the bot loop ended abnormally",
            source: std::io::Error::other(error.to_string()),
        }),
    }
}
