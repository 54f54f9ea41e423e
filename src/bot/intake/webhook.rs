//! `webhook`: `POST /signals` (or `/signals/<token>`), served on the main
//! port by default (the one port a platform gives) or on a listener of its
//! own (`WEBHOOK_BIND`). One [`Handler`] serves either.
//!
//! A request needs the write token, as `Authorization: Bearer <token>`, as
//! `?token=<token>` or as the last path segment (TradingView can send no
//! header); with `WEBHOOK_ALLOW`, it must also come from an allowed
//! address. The body is one signal when it is one JSON document (however
//! many lines it spans: TradingView's templates are pretty-printed), and
//! JSONL otherwise; a signal without an `id` gets one derived from its
//! content, so a retried delivery is a duplicate. It is answered only
//! after the loop has journaled the decisions durably: 202 when every
//! signal was valid (filled, rejected by a risk limit, or a duplicate),
//! 400 when one was not (the others were still handled; the body says
//! which was which), 503 while stopping.

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::oneshot;

use super::{Batch, Decision, Outlet, WebhookSettings};
use crate::alerts::RefusedTokens;
use crate::health::api::{json_response, text};
use crate::http::auth::{self, Allow};
use crate::http::query::Query;
use crate::http::server::{spawn_server_thread, Body, Limits, Peer};
use crate::secret::Secret;

/// A body must arrive within this once its head has: a client dribbling
/// one would otherwise hold its connection (and a slot of the cap) for the
/// connection's whole lifetime.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The path the webhook answers on (and below it, one segment: the token).
pub(crate) const PATH: &str = "/signals";

/// Starts serving `handler` on `listener` (`WEBHOOK_BIND`) from a thread of
/// its own; the thread, and with it the handler's outlet, ends once the
/// requests in flight at the stop are answered.
pub(crate) fn spawn(handler: Handler, listener: TcpListener) -> std::io::Result<()> {
    let shutdown = handler.outlet.shutdown.clone();
    spawn_server_thread(
        "webhook",
        listener,
        Limits::default(),
        move || {
            let handler = Arc::new(handler);
            move |request| {
                let handler = Arc::clone(&handler);
                async move { handler.respond(request).await }
            }
        },
        shutdown,
        |error| {
            tracing::error!(%error, "webhook server failed; webhook signals are not received");
        },
    )?;
    Ok(())
}

pub(crate) struct Handler {
    outlet: Outlet,
    token: Secret,
    body_limit: usize,
    allow: Allow,
    /// A burst of refused tokens is an alert.
    refused: Mutex<RefusedTokens>,
}

impl Handler {
    pub(crate) fn new(outlet: Outlet, settings: WebhookSettings) -> Self {
        Handler {
            outlet,
            token: settings.token,
            body_limit: settings.body_limit,
            allow: Allow {
                networks: settings.allow,
                trusted_proxies: settings.trusted_proxies,
            },
            refused: Mutex::default(),
        }
    }

    pub(crate) async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        let Some(path_token) = token_segment(request.uri().path()) else {
            return text(
                StatusCode::NOT_FOUND,
                "not found: POST signals to /signals\n",
            );
        };
        if request.method() != Method::POST {
            let mut response = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed: use POST\n",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        if self.outlet.shutdown.is_cancelled() {
            return stopping();
        }
        let peer = request
            .extensions()
            .get::<Peer>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |peer| peer.0.ip());
        if !self.allow.permits(peer, request.headers()) {
            return text(
                StatusCode::FORBIDDEN,
                "forbidden: this address may not send signals (WEBHOOK_ALLOW)\n",
            );
        }
        let Ok(query) = Query::parse(request.uri().query().unwrap_or_default()) else {
            return text(StatusCode::BAD_REQUEST, "bad query string\n");
        };
        let path_token = match path_token.map(percent_decoded) {
            Some(None) => return auth::unauthorized(),
            Some(Some(token)) => Some(token),
            None => None,
        };
        if !auth::authorized(
            request.headers(),
            &query,
            path_token.as_deref(),
            &self.token,
        ) {
            if let Some(event) = self.refused().refused(std::time::Instant::now()) {
                self.outlet.feed.alerts().send(event);
            }
            return auth::unauthorized();
        }
        drop(query);
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.body_limit as u64) {
            return self.too_large();
        }
        let body = match tokio::time::timeout(
            BODY_TIMEOUT,
            Limited::new(request.into_body(), self.body_limit).collect(),
        )
        .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(error)) if error.is::<LengthLimitError>() => return self.too_large(),
            Err(_) => {
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("body not received within {}s\n", BODY_TIMEOUT.as_secs()),
                )
            }
            Ok(Err(error)) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("cannot read the body: {error}\n"),
                )
            }
        };
        // A body that finished arriving after the stop began is refused
        // rather than raced against the drain.
        if self.outlet.shutdown.is_cancelled() {
            return stopping();
        }
        let items = self.outlet.decoder.message(&body);
        if items.is_empty() {
            return text(
                StatusCode::BAD_REQUEST,
                "empty body: send a signal (a JSON object), or one a line\n",
            );
        }
        let (reply, answer) = oneshot::channel();
        let batch = Batch {
            reply: Some(reply),
            ..Batch::of(self.outlet.index, items)
        };
        if self.outlet.batches.send(batch).await.is_err() {
            return stopping();
        }
        let Ok(outcomes) = answer.await else {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping: signals not recorded\n",
            );
        };
        let code = if outcomes
            .iter()
            .any(|outcome| outcome.result == Decision::Invalid)
        {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::ACCEPTED
        };
        json_response(code, &json!({ "results": outcomes }))
    }

    fn refused(&self) -> MutexGuard<'_, RefusedTokens> {
        self.refused
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn too_large(&self) -> Response<Body> {
        text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body over the {}-byte limit (WEBHOOK_BODY_LIMIT)\n",
                self.body_limit
            ),
        )
    }
}

fn stopping() -> Response<Body> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "stopping: not accepting signals\n",
    )
}

/// For a webhook path, its token segment: `/signals` is `Some(None)`,
/// `/signals/<token>` is `Some(Some(token))`; any other path is `None`.
pub(crate) fn token_segment(path: &str) -> Option<Option<&str>> {
    let rest = path.strip_prefix(PATH)?;
    if rest.is_empty() {
        return Some(None);
    }
    let token = rest.strip_prefix('/')?;
    (!token.is_empty() && !token.contains('/')).then_some(Some(token))
}

/// A path segment, percent-decoded; `None` if it cannot be.
fn percent_decoded(segment: &str) -> Option<Vec<u8>> {
    crate::http::query::decode(segment)
        .ok()
        .map(|decoded| decoded.into_owned().into_bytes())
}

/// The main port's `POST /signals`: the intake installs its handler once
/// the loop's channel exists and takes it away when it stops, so the
/// handler's sender (which keeps the loop's channel open) lives no longer
/// than the requests in flight at the stop.
#[derive(Clone, Default)]
pub struct Route(Arc<Mutex<RouteState>>);

#[derive(Default)]
enum RouteState {
    #[default]
    Starting,
    Ready(Arc<Handler>),
    Stopped,
}

impl Route {
    /// The handler, if it is serving.
    pub(crate) fn handler(&self) -> Option<Arc<Handler>> {
        match &*self.state() {
            RouteState::Ready(handler) => Some(Arc::clone(handler)),
            RouteState::Starting | RouteState::Stopped => None,
        }
    }

    /// The answer while there is no handler: before the intake started,
    /// or after it stopped.
    pub(crate) fn unavailable(&self) -> Response<Body> {
        match &*self.state() {
            RouteState::Stopped => stopping(),
            _ => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "starting: not accepting signals yet\n",
            ),
        }
    }

    /// Serves `handler` until the intake stops. Inside the bot's runtime.
    pub(crate) fn install(&self, handler: Handler) {
        let shutdown = handler.outlet.shutdown.clone();
        *self.state() = RouteState::Ready(Arc::new(handler));
        let route = self.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            *route.state() = RouteState::Stopped;
        });
    }

    fn state(&self) -> MutexGuard<'_, RouteState> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signals_paths_carry_a_token() {
        assert_eq!(token_segment("/signals"), Some(None));
        assert_eq!(token_segment("/signals/abc"), Some(Some("abc")));
        assert_eq!(token_segment("/signals/"), None);
        assert_eq!(token_segment("/signals/a/b"), None);
        assert_eq!(token_segment("/signalsx"), None);
        assert_eq!(token_segment("/health"), None);
        assert_eq!(percent_decoded("a%2Fb").as_deref(), Some(&b"a/b"[..]));
        assert_eq!(percent_decoded("a%zz"), None);
    }
}
