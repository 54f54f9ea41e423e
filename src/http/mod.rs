//! The one port (ARCHITECTURE.md, "Design rules": one port): the bounded HTTP/1 server, on a
//! thread of its own, and the routes it serves ([`routes`]), each class
//! with its own auth:
//!
//! | route | auth |
//! |---|---|
//! | `/livez` `/readyz` `/health` `/healthz` `/` `/metrics` | none, ever |
//! | `POST /signals`, `/signals/<token>` | the write token (`WEBHOOK_TOKEN`) |
//! | `/api/v1/…`, `/ws`, `/events` | the read token (`API_TOKEN`) |
//!
//! The health routes answer from shared state, as before; nothing another
//! route does can make them wait (the stream and the journal reads run on
//! the stream thread, the webhook waits on the loop only in its own task).
//! Every HTTP concern is here: the bot is handed bodies ([`Submit`]) and
//! the health model is asked for its report; neither knows HTTP.
//!
//! [`Submit`]: crate::bot::intake::Submit

pub(crate) mod api;
pub mod auth;
pub mod health;
pub mod query;
pub(crate) mod response;
pub mod route;
pub mod routes;
pub mod server;
pub mod settings;
pub(crate) mod stream;
pub(crate) mod webhook;

use std::net::TcpListener;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use self::api::Api;
use self::health::Health;
use self::routes::{Read, Routes};
use self::server::Limits;
use self::stream::{Stream, Timing};
use self::webhook::Webhook;
use crate::bot::events::Events;
use crate::health::HealthState;

/// What the one port serves, and what it needs to.
pub(crate) struct Port<'a> {
    pub(crate) listener: TcpListener,
    pub(crate) health: &'a Arc<HealthState>,
    pub(crate) settings: &'a settings::Settings,
    pub(crate) state_dir: &'a Path,
    /// Published by the bot; enabled exactly when `API_TOKEN` is set.
    pub(crate) events: &'a Events,
    /// The webhook, when it is on and served here (no `WEBHOOK_BIND`).
    pub(crate) webhook: Option<Webhook>,
    /// For `/api/v1/status`.
    pub(crate) max_signal_age: Option<Duration>,
}

impl Port<'_> {
    /// Starts the stream thread (with `API_TOKEN`) and the server's thread.
    /// What a failed server means is `on_failure`'s to say.
    pub(crate) fn start(
        self,
        on_failure: impl FnOnce(std::io::Error) + Send + 'static,
    ) -> std::io::Result<Serving> {
        let read = match (&self.settings.api_token, self.events.shared()) {
            (Some(token), Some(events)) => {
                let stream = Stream::spawn(
                    self.state_dir,
                    Arc::clone(events),
                    Arc::clone(self.health),
                    self.settings.ws_max_clients,
                    Timing {
                        send_timeout: self.settings.ws_send_timeout,
                        ping_interval: self.settings.ws_ping_interval,
                    },
                )?;
                let api = Api {
                    health: Arc::clone(self.health),
                    events: Arc::clone(events),
                    stream: stream.clone(),
                    max_signal_age: self.max_signal_age,
                };
                Some(Read {
                    token: token.clone(),
                    api,
                })
            }
            _ => None,
        };
        let stream = read.as_ref().map(|read| read.api.stream.clone());
        let health = Health::new(
            Arc::clone(self.health),
            stream.as_ref().map(Stream::metrics),
        );
        let routes = Routes {
            health: Some(health),
            webhook: self.webhook,
            read,
        };
        let server = serve(
            "health-http",
            self.listener,
            limits(self.settings),
            routes,
            CancellationToken::new(),
            on_failure,
        )?;
        Ok(Serving { stream, server })
    }
}

/// The one port, serving.
pub(crate) struct Serving {
    /// The stream thread, with `API_TOKEN`.
    pub(crate) stream: Option<Stream>,
    server: Server,
}

impl Serving {
    /// At the very end: stream clients get what the drain made durable and
    /// a close frame, and the requests in flight are answered before the
    /// port closes.
    pub(crate) fn finish(self) {
        if let Some(stream) = self.stream {
            stream.finish(Duration::from_millis(500));
        }
        self.server.finish();
    }
}

/// A server's thread.
pub(crate) struct Server {
    shutdown: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

impl Server {
    /// Stops accepting and waits until the requests in flight are answered
    /// (at most [`Limits::drain`]): a client never gets a reset for an
    /// answer the process had.
    pub(crate) fn finish(self) {
        self.shutdown.cancel();
        let _ = self.thread.join();
    }
}

/// Serves the webhook alone on its own listener (`WEBHOOK_BIND`), from a
/// thread of its own, until `shutdown`; the requests in flight then are
/// answered.
pub(crate) fn serve_webhook(
    listener: TcpListener,
    webhook: Webhook,
    settings: &settings::Settings,
    shutdown: CancellationToken,
) -> std::io::Result<Server> {
    let routes = Routes {
        health: None,
        webhook: Some(webhook),
        read: None,
    };
    serve(
        "webhook",
        listener,
        limits(settings),
        routes,
        shutdown,
        |error| {
            tracing::error!(%error, "webhook server failed; webhook signals are not received");
        },
    )
}

fn limits(settings: &settings::Settings) -> Limits {
    Limits {
        max_connection_age: settings.max_connection_age,
        ..Limits::default()
    }
}

fn serve(
    name: &str,
    listener: TcpListener,
    limits: Limits,
    routes: Routes,
    shutdown: CancellationToken,
    on_failure: impl FnOnce(std::io::Error) + Send + 'static,
) -> std::io::Result<Server> {
    let thread = server::spawn_server_thread(
        name,
        listener,
        limits,
        move || {
            let routes = Rc::new(routes);
            move |request| {
                let routes = Rc::clone(&routes);
                async move { routes.respond(request).await }
            }
        },
        shutdown.clone(),
        on_failure,
    )?;
    Ok(Server { shutdown, thread })
}
