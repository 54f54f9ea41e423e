//! The one port (DESIGN.md, "One port"): the bounded HTTP/1 server, on a
//! thread of its own, and the routes it serves, each class with its own
//! auth:
//!
//! | route | auth |
//! |---|---|
//! | `/livez` `/readyz` `/health` `/healthz` `/` `/metrics` | none, ever |
//! | `POST /signals`, `/signals/<token>` | the write token (`WEBHOOK_TOKEN`) |
//!
//! The health routes answer from shared state, as before; nothing another
//! route does can make them wait (the webhook waits on the loop only in
//! its own task).

pub mod auth;
pub mod query;
pub mod server;
pub mod settings;

use std::net::TcpListener;
use std::rc::Rc;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};
use tokio_util::sync::CancellationToken;

use self::server::{Body, Limits};
use crate::bot::intake::webhook;
use crate::health::api::HealthApi;
use crate::health::HealthState;

/// What the one port serves, and what it needs to.
pub struct Port<'a> {
    pub listener: TcpListener,
    pub health: &'a Arc<HealthState>,
    /// The webhook, when it is on and served here (no `WEBHOOK_BIND`).
    pub webhook: Option<webhook::Route>,
}

impl Port<'_> {
    /// Starts the server's thread. What a failed server means is
    /// `on_failure`'s to say.
    pub fn start(
        self,
        on_failure: impl FnOnce(std::io::Error) + Send + 'static,
    ) -> std::io::Result<()> {
        let health = HealthApi::new(Arc::clone(self.health));
        let webhook = self.webhook;
        server::spawn_server_thread(
            "health-http",
            self.listener,
            Limits::default(),
            move || {
                let routes = Rc::new(Routes { health, webhook });
                move |request| {
                    let routes = Rc::clone(&routes);
                    async move { routes.respond(request).await }
                }
            },
            CancellationToken::new(),
            on_failure,
        )?;
        Ok(())
    }
}

struct Routes {
    health: Arc<HealthApi>,
    webhook: Option<webhook::Route>,
}

impl Routes {
    async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        let path = request.uri().path();
        if HealthApi::serves(path) {
            return self.health.respond(&request);
        }
        if let Some(route) = &self.webhook {
            if webhook::token_segment(path).is_some() {
                let response = match route.handler() {
                    Some(handler) => handler.respond(request).await,
                    None => route.unavailable(),
                };
                self.health.count(webhook::PATH, response.status());
                return response;
            }
        }
        // Unknown: the health server's 404.
        self.health.respond(&request)
    }
}
