//! `tradingbot web`: the dashboard, a process of its own (ARCHITECTURE.md,
//! "Design rules"). It reads bots only through their read API and event
//! stream, so it works across machines and services that
//! share no disk; it writes nothing, takes no lock, and its failures and
//! restarts never touch a bot.
//!
//! Threads: `web-http` (the bounded server, [`crate::http::server`]), two
//! per bot (`poll:NAME`, `stream:NAME`, see [`poller`]), `web-signals`, and
//! main, which waits for a stop signal or a server failure.

mod access;
mod api;
mod client;
mod fleet;
mod poller;
pub(crate) mod settings;
mod sources;

use std::sync::{mpsc, Arc};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tokio_util::sync::CancellationToken;

pub use api::declared as routes;
pub(crate) use settings::Settings;

use crate::health::notify::Notifier;
use crate::http::server::{self as http, Limits};
use crate::{logging, Error};

/// Why the dashboard stops.
enum Stop {
    Signal(i32),
    ServerFailed(std::io::Error),
}

/// Serves the dashboard until SIGTERM or SIGINT.
pub(crate) fn run(settings: &Settings) -> Result<(), Error> {
    let io = |what| move |source| Error::Io { what, source };
    let _log = logging::init(&settings.log);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        pid = std::process::id(),
        bots = settings.bots.len(),
        "starting the dashboard"
    );
    let listener = std::net::TcpListener::bind(settings.listen).map_err(io(
        "cannot bind the dashboard's --bind (WEB_BIND) and --port (PORT)",
    ))?;
    let address = listener
        .local_addr()
        .map_err(io("cannot read the bound address"))?;

    let fleet = Arc::new(fleet::Fleet::new(
        settings
            .bots
            .iter()
            .map(|spec| (spec.name.clone(), spec.url.clone())),
    ));
    for (bot, spec) in fleet.bots.iter().zip(&settings.bots) {
        poller::start(bot, spec, settings.poll_interval, settings.bot_timeout)
            .map_err(io("cannot start a bot's poller threads"))?;
    }

    let (stops, stopped) = mpsc::channel();
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).map_err(io("cannot install signal handlers"))?;
    let signal_stops = stops.clone();
    std::thread::Builder::new()
        .name("web-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = signal_stops.send(Stop::Signal(signal));
            }
        })
        .map_err(io("cannot start the signal thread"))?;

    let shutdown = CancellationToken::new();
    let api = Arc::new(api::WebApi {
        fleet,
        access: access::Access::new(settings.token.clone()),
        shutdown: shutdown.clone(),
    });
    let server = http::spawn_server_thread(
        "web-http",
        listener,
        Limits::default(),
        move || {
            move |request| {
                let api = Arc::clone(&api);
                async move { api.respond(request).await }
            }
        },
        shutdown.clone(),
        move |error| {
            let _ = stops.send(Stop::ServerFailed(error));
        },
    )
    .map_err(io("cannot start the dashboard's server thread"))?;

    let notifier = Notifier::new(settings.notify_socket.as_ref()).unwrap_or_else(|error| {
        tracing::warn!(%error, "NOTIFY_SOCKET is set but unusable; running without sd_notify");
        Notifier::disabled()
    });
    // The port is said once bound (PORT=0 picks one): tests and operators
    // read it here.
    tracing::info!(
        %address,
        port = address.port(),
        bots = settings.bots.len(),
        open = settings.token.is_none(),
        "dashboard listening"
    );
    notifier.ready(&format!(
        "serving {} bots on {address}",
        settings.bots.len()
    ));

    let outcome = match stopped.recv() {
        Ok(Stop::Signal(signal)) => {
            tracing::info!(signal, "stopping the dashboard");
            Ok(())
        }
        Ok(Stop::ServerFailed(source)) => Err(Error::Io {
            what: "the dashboard's server failed",
            source,
        }),
        Err(_) => Ok(()),
    };
    notifier.stopping();
    shutdown.cancel();
    let _ = server.join();
    outcome
}
