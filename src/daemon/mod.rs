//! The lifecycle (ARCHITECTURE.md, "Design rules": lifecycle), in order, and nothing else.

pub(crate) mod settings;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::alerts::{Alerts, Event};
use crate::bot::events::Events;
use crate::bot::intake::Submit;
use crate::bot::Bot;
use crate::health::file::HealthFile;
use crate::health::judge::{Inbox, Judge, Request};
use crate::health::notify::Notifier;
use crate::health::HealthState;
use crate::http::webhook::Webhook;
use crate::http::{self, server, Server, Serving};
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
    // What the bot publishes for the read API and the stream: nothing
    // without a read token, so nothing is kept for nobody.
    let events = match config.http.api_token {
        Some(_) => Events::enabled(),
        None => Events::default(),
    };
    // The webhook's bodies go to the intake through this, from the main
    // port or from a listener of the webhook's own.
    let submit = Submit::default();
    let webhook = config.http.webhook.as_ref().map(|settings| {
        let webhook = Webhook::new(settings, submit.clone(), alerts.clone());
        (settings.bind, webhook)
    });
    let (on_main_port, own_listener) = match webhook {
        Some((Some(addr), webhook)) => (None, Some((addr, webhook))),
        Some((None, webhook)) => (Some(webhook), None),
        None => (None, None),
    };
    let shutdown = CancellationToken::new();
    let port = start_http_server(config, &health, judge.inbox(), &events, on_main_port)?;
    let webhook_server = match own_listener {
        Some((addr, webhook)) => Some(start_webhook_listener(
            config,
            addr,
            webhook,
            shutdown.clone(),
        )?),
        None => None,
    };

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
        // The one blocking task is the stdin source's read (at most one
        // stdin source, one read in flight); tokio's default of 512 would
        // let a race between two reads start a second thread.
        .max_blocking_threads(1)
        .thread_name("bot")
        .on_thread_start(crate::bot::yield_cpu_to_health)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            what: "cannot start the bot runtime",
            source,
        })?;
    let outcome = runtime.block_on(run_bot(
        config,
        &health,
        &judge.inbox(),
        &alerts,
        (events, submit),
        shutdown,
    ));
    if let Some(server) = webhook_server {
        server.finish();
    }
    if let Some(port) = port {
        port.finish();
    }
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

/// Binds the first free port of the list and serves every route on it
/// (health, intake, API, stream) from threads of their own. With no port
/// free, health goes on through the file and sd_notify only.
fn start_http_server(
    config: &Config,
    health: &Arc<HealthState>,
    judge: Inbox,
    events: &Events,
    webhook: Option<Webhook>,
) -> Result<Option<Serving>, Error> {
    let settings = &config.health;
    let addrs: Vec<SocketAddr> = settings
        .ports
        .iter()
        .map(|port| SocketAddr::new(settings.bind, *port))
        .collect();
    let Some(listener) = server::bind_first(&addrs) else {
        tracing::error!(
            tried = ?settings.ports,
            bind = %settings.bind,
            "NO HEALTH PORT COULD BE BOUND: /health is unreachable; health is reported \
             only through the health file and sd_notify"
        );
        return Ok(None);
    };
    let bound = listener.local_addr().map_err(|source| Error::Io {
        what: "cannot read the health listener's address",
        source,
    })?;
    health.set_bound(bound);
    let port = http::Port {
        listener,
        health,
        settings: &config.http,
        state_dir: &config.bot.state_dir,
        events,
        webhook,
        max_signal_age: config.bot.max_signal_age,
    }
    .start(
        // A daemon whose health server is gone would run on unseen.
        move |error| judge.send(Request::Fatal(format!("the health server failed: {error}"))),
    )
    .map_err(|source| Error::Io {
        what: "cannot start the health server thread",
        source,
    })?;
    tracing::info!(
        addr = %bound,
        port = bound.port(),
        api = port.stream.is_some(),
        "health server listening"
    );
    Ok(Some(port))
}

/// Binds the webhook's own listener (`WEBHOOK_BIND`; an address that
/// cannot be bound is a configuration mistake) and serves it until the stop.
fn start_webhook_listener(
    config: &Config,
    asked: SocketAddr,
    webhook: Webhook,
    shutdown: CancellationToken,
) -> Result<Server, Error> {
    let listener = TcpListener::bind(asked).map_err(|source| Error::WebhookBind {
        addr: asked,
        source,
    })?;
    // The address bound, not the one asked for: port 0 picks one.
    let addr = listener.local_addr().unwrap_or(asked);
    let server =
        http::serve_webhook(listener, webhook, &config.http, shutdown).map_err(|source| {
            Error::Io {
                what: "cannot start the webhook's server thread",
                source,
            }
        })?;
    tracing::info!(%addr, port = addr.port(), "webhook listening on POST /signals (WEBHOOK_BIND)");
    Ok(server)
}

async fn run_bot(
    config: &Config,
    health: &Arc<HealthState>,
    judge: &Inbox,
    alerts: &Alerts,
    (events, submit): (Events, Submit),
    shutdown: CancellationToken,
) -> Result<(), Error> {
    // Lets tests and rehearsals hold the daemon in its "starting" state.
    fail::fail_point!("daemon::init");
    let bot = Bot::init(
        &config.bot,
        config.health.heartbeat_interval,
        health,
        alerts.clone(),
        events,
        submit,
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
