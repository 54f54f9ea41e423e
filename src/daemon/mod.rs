//! The lifecycle (DESIGN.md, "Process lifecycle"), in order, and nothing else.

pub(crate) mod settings;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::alerts::{Alerts, Event};
use crate::bot::Bot;
use crate::health::api::HealthApi;
use crate::health::file::HealthFile;
use crate::health::http::{self, Limits};
use crate::health::judge::{Inbox, Judge, Request};
use crate::health::notify::Notifier;
use crate::health::{settings as health, HealthState};
use crate::os_signals::Handlers;
use crate::{lock, logging, Error};
use settings::Config;

/// Runs the daemon until a stop signal has been handled (or init fails).
pub(crate) fn run(config: &Config) -> Result<(), Error> {
    let (log, sink) = logging::init(&config.log);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), pid = std::process::id(), sink = ?sink, "starting");

    std::fs::create_dir_all(&config.bot.state_dir).map_err(|source| Error::StateDir {
        what: "cannot create",
        path: config.bot.state_dir.clone(),
        source,
    })?;
    // Read-only at start is a setup mistake, not a passing fault: said
    // here, by name, it is not mistaken for a journal failing at run time.
    rustix::fs::access(&config.bot.state_dir, rustix::fs::Access::WRITE_OK).map_err(|errno| {
        Error::StateDir {
            what: "cannot write to",
            path: config.bot.state_dir.clone(),
            source: errno.into(),
        }
    })?;
    // Before the port: a duplicate must never hide behind a fallback port.
    let _lock = lock::acquire(&config.daemon.lock_file)?;
    // After the lock, so a duplicate instance sends none.
    let alerts = Alerts::start(&config.alerts).map_err(|source| Error::Io {
        what: "cannot start the alert threads",
        source,
    })?;

    let health = HealthState::new(config.health.stall_timeout, config.health.startup_grace);
    // Before the port: the health server reports its own failure to it.
    let notifier = Notifier::new(config.health.notify_socket.as_ref()).unwrap_or_else(|error| {
        tracing::warn!(%error, "NOTIFY_SOCKET is set but unusable; running without sd_notify");
        Notifier::disabled()
    });
    let judge = Judge {
        state: Arc::clone(&health),
        notifier,
        file: HealthFile::new(config.health.file.clone()),
        tick: config.health.tick(),
        watchdog: config.health.watchdog.is_some(),
        stall_exit_after: config.health.stall_exit_after,
        startup_grace: config.health.startup_grace,
        drain_timeout: config.health.drain_timeout,
        alerts: alerts.clone(),
    }
    .spawn()
    .map_err(|source| Error::Io {
        what: "cannot start the judge thread",
        source,
    })?;
    start_health_server(&config.health, &health, judge.inbox())?;

    // Past RLIMIT_FSIZE a write must fail with EFBIG, which the journal
    // reports and retries, instead of SIGXFSZ killing the process.
    signal_hook::flag::register(
        signal_hook::consts::SIGXFSZ,
        Arc::new(std::sync::atomic::AtomicBool::new(false)),
    )
    .map_err(|source| Error::Io {
        what: "cannot install the SIGXFSZ handler",
        source,
    })?;
    let shutdown = CancellationToken::new();
    Handlers {
        health: Arc::clone(&health),
        judge: judge.inbox(),
        shutdown: shutdown.clone(),
        log,
        env_file: config.daemon.env_file.clone(),
    }
    .install()
    .map_err(|source| Error::Io {
        what: "cannot install signal handlers",
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
    let outcome = runtime.block_on(run_bot(config, &health, &judge.inbox(), &alerts, shutdown));
    judge.finish();
    // The bot has drained and flushed by now; what is left (a blocking read
    // of stdin, say) must not hold the exit hostage.
    runtime.shutdown_background();
    match &outcome {
        Ok(()) => tracing::info!("stopped cleanly"),
        Err(error) => tracing::error!(%error, "stopped on error"),
    }
    // The bot said "stopped" after its drain; a failure is said here.
    // Either goes out before the exit, within two seconds.
    if let Err(error) = &outcome {
        alerts.send(Event::Exiting {
            code: i32::from(error.exit().code()),
            reason: error.to_string(),
        });
    }
    alerts.flush(std::time::Duration::from_secs(2));
    outcome
}

/// Binds the first free port of the list and serves the health endpoints
/// from their own thread. With no port free, health goes on through the file
/// and sd_notify only.
fn start_health_server(
    settings: &health::Settings,
    health: &Arc<HealthState>,
    judge: Inbox,
) -> Result<(), Error> {
    let addrs: Vec<SocketAddr> = settings
        .ports
        .iter()
        .map(|port| SocketAddr::new(settings.bind, *port))
        .collect();
    let Some(listener) = http::bind_first(&addrs) else {
        tracing::error!(
            tried = ?settings.ports,
            bind = %settings.bind,
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
        // A daemon whose health server is gone would run on unseen.
        move |error| judge.send(Request::Fatal(format!("the health server failed: {error}"))),
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
    judge: &Inbox,
    alerts: &Alerts,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    // Lets tests and rehearsals hold the daemon in its "starting" state.
    fail::fail_point!("daemon::init");
    let bot = Bot::init(
        &config.bot,
        config.health.heartbeat_interval,
        health,
        alerts.clone(),
    )
    .await?;
    let mut bot_loop = tokio::spawn(bot.run(health.heartbeat(), shutdown.clone()));
    tokio::select! {
        () = health.first_beat() => {
            if !shutdown.is_cancelled() {
                health.set_ready(true);
                judge.send(Request::Ready);
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
