//! The one port (DESIGN.md, "One port"): the bounded HTTP/1 server, on a
//! thread of its own, and the routes it serves, each class with its own
//! auth:
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

pub(crate) mod api;
pub mod auth;
pub mod query;
pub mod server;
pub mod settings;
pub(crate) mod stream;

use std::net::TcpListener;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use self::api::Api;
use self::query::{Query, QueryError};
use self::server::{Limits, LongLived};
use self::stream::message::Kinds;
use self::stream::{SseBody, Stream, Subscription, Timing};
use crate::bot::events::Events;
use crate::bot::intake::webhook;
use crate::health::api::{text, HealthApi};
use crate::health::HealthState;
use crate::secret::Secret;

/// A response of any route: a whole body, or `/events`' stream.
pub type RouteBody = Either<Full<Bytes>, SseBody>;

/// What the one port serves, and what it needs to.
pub struct Port<'a> {
    pub listener: TcpListener,
    pub health: &'a Arc<HealthState>,
    pub settings: &'a settings::Settings,
    pub state_dir: &'a Path,
    /// Published by the bot; enabled exactly when `API_TOKEN` is set.
    pub events: &'a Events,
    /// The webhook, when it is on and served here (no `WEBHOOK_BIND`).
    pub webhook: Option<webhook::Route>,
    /// For `/api/v1/status`.
    pub max_signal_age: Option<Duration>,
}

impl Port<'_> {
    /// Starts the stream thread (with `API_TOKEN`) and the server's thread.
    /// What a failed server means is `on_failure`'s to say.
    pub fn start(
        self,
        on_failure: impl FnOnce(std::io::Error) + Send + 'static,
    ) -> std::io::Result<Option<Stream>> {
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
                Some((token.clone(), api))
            }
            _ => None,
        };
        let stream = read.as_ref().map(|(_, api)| api.stream.clone());
        let health = HealthApi::new(
            Arc::clone(self.health),
            stream.as_ref().map(Stream::metrics),
        );
        let webhook = self.webhook;
        server::spawn_server_thread(
            "health-http",
            self.listener,
            Limits::default(),
            move || {
                let routes = Rc::new(Routes {
                    health,
                    webhook,
                    read,
                });
                move |request| {
                    let routes = Rc::clone(&routes);
                    async move { routes.respond(request).await }
                }
            },
            CancellationToken::new(),
            on_failure,
        )?;
        Ok(stream)
    }
}

struct Routes {
    health: Arc<HealthApi>,
    webhook: Option<webhook::Route>,
    /// The read token and the API and stream it opens.
    read: Option<(Secret, Api)>,
}

impl Routes {
    async fn respond(&self, request: Request<Incoming>) -> Response<RouteBody> {
        let path = request.uri().path();
        if HealthApi::serves(path) {
            return self.health.respond(&request).map(Either::Left);
        }
        if let Some(route) = &self.webhook {
            if webhook::token_segment(path).is_some() {
                let response = match route.handler() {
                    Some(handler) => handler.respond(request).await,
                    None => route.unavailable(),
                };
                self.health.count(webhook::PATH, response.status());
                return response.map(Either::Left);
            }
        }
        let label = api::PATHS
            .into_iter()
            .chain(["/ws", "/events"])
            .find(|known| *known == path);
        match (label, &self.read) {
            (Some(label), Some((token, api))) => {
                let response = read_route(label, request, token, api).await;
                self.health.count(label, response.status());
                response
            }
            // Unknown, or the API is off: the health server's 404.
            _ => self.health.respond(&request).map(Either::Left),
        }
    }
}

/// The read routes: GET, the read token, then the route.
async fn read_route(
    label: &'static str,
    request: Request<Incoming>,
    token: &Secret,
    api: &Api,
) -> Response<RouteBody> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed: use GET\n",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response.map(Either::Left);
    }
    let query = match Query::parse(request.uri().query().unwrap_or_default()) {
        Ok(query) => query,
        Err(error) => return api::bad_request(&error).map(Either::Left),
    };
    if !auth::authorized(request.headers(), &query, None, token) {
        return auth::unauthorized().map(Either::Left);
    }
    if label.starts_with("/api/") {
        return api.respond(label, &query).await.map(Either::Left);
    }
    // An EventSource reconnecting says where it was in Last-Event-ID.
    let resumed = request
        .headers()
        .get("last-event-id")
        .and_then(|id| id.to_str().ok()?.trim().parse::<u64>().ok());
    let subscription = match subscription(&query, resumed, api.stream.durable()) {
        Ok(subscription) => subscription,
        Err(error) => return api::bad_request(&error).map(Either::Left),
    };
    drop(query);
    if label == "/ws" {
        return api
            .stream
            .websocket(request, subscription)
            .map(Either::Left);
    }
    let long_lived = request.extensions().get::<LongLived>();
    match api.stream.events(subscription, long_lived) {
        Some(response) => response.map(Either::Right),
        None => stream::busy().map(Either::Left),
    }
}

/// `after` (or the `Last-Event-ID` given, or else `now`) and `types`.
fn subscription(
    query: &Query<'_>,
    resumed: Option<u64>,
    now: u64,
) -> Result<Subscription, QueryError> {
    let after = match query.one("after")? {
        Some(_) => query.number("after", 0, 0..=u64::MAX, "a sequence number (0 or more)")?,
        None => resumed.unwrap_or(now),
    };
    let kinds = match query.one("types")? {
        Some(list) => Kinds::parse(list).map_err(|expected| QueryError::Invalid {
            name: "types",
            expected,
        })?,
        None => Kinds::ALL,
    };
    Ok(Subscription { after, kinds })
}
