//! `POST /signals` (or `/signals/<token>`): the webhook's HTTP side,
//! served on the main port by default (the one port a platform gives) or
//! on a listener of its own (`WEBHOOK_BIND`), by the same routes.
//!
//! A request needs the write token, as `Authorization: Bearer <token>`, as
//! `?token=<token>` or as the last path segment (TradingView can send no
//! header); with `WEBHOOK_ALLOW`, it must also come from an allowed
//! address. Its body goes whole to the intake's [`Submit`] handle, which
//! makes signals of it and answers once the loop has journaled their
//! decisions durably: 202 when every signal was valid (filled, rejected
//! by a risk limit, or a duplicate), 400 when one was not (the others were
//! still handled; the body says which was which). When the intake cannot
//! take it (starting, stopping, or paused because the journal cannot be
//! written) the answer is 503 with `Retry-After` at once, and nothing was
//! recorded: a resend is never decided twice.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use super::auth::{self, Allow};
use super::query::Query;
use super::response::{json, text, Body};
use super::route::Path;
use super::server::Peer;
use super::settings::WebhookSettings;
use crate::alerts::{Alerts, RefusedTokens};
use crate::bot::intake::{Decision, Submit, Unavailable};
use crate::secret::Secret;

/// A body must arrive within this once its head has: a client dribbling
/// one would otherwise hold its connection (and a slot of the cap) for the
/// connection's whole lifetime.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// What a 503 asks of the client: send again in a second.
const RETRY_SECONDS: &str = "1";

pub(crate) struct Webhook {
    submit: Submit,
    token: Secret,
    body_limit: usize,
    allow: Allow,
    /// A burst of refused tokens is an alert.
    refused: Mutex<RefusedTokens>,
    alerts: Alerts,
}

impl Webhook {
    pub(crate) fn new(settings: &WebhookSettings, submit: Submit, alerts: Alerts) -> Self {
        Webhook {
            submit,
            token: settings.token.clone(),
            body_limit: settings.body_limit,
            allow: Allow {
                networks: settings.allow.clone(),
                trusted_proxies: settings.trusted_proxies.clone(),
            },
            refused: Mutex::default(),
            alerts,
        }
    }

    /// The write class's rule, and the answer when a request breaks it: an
    /// address not allowed (403), a query string that cannot be read
    /// (400), no token or a wrong one in all three places (401, the same
    /// answer for both).
    pub(crate) fn refusal(
        &self,
        path: Path,
        request: &Request<Incoming>,
    ) -> Option<Response<Body>> {
        let peer = request
            .extensions()
            .get::<Peer>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |peer| peer.0.ip());
        if !self.allow.permits(peer, request.headers()) {
            return Some(text(
                StatusCode::FORBIDDEN,
                "forbidden: this address may not send signals (WEBHOOK_ALLOW)\n",
            ));
        }
        let Ok(query) = Query::parse(request.uri().query().unwrap_or_default()) else {
            return Some(text(StatusCode::BAD_REQUEST, "bad query string\n"));
        };
        let path_token = match path.segment(request.uri().path()).map(percent_decoded) {
            Some(None) => return Some(auth::unauthorized()),
            Some(Some(token)) => Some(token),
            None => None,
        };
        if auth::authorized(
            request.headers(),
            &query,
            path_token.as_deref(),
            &self.token,
        ) {
            return None;
        }
        if let Some(event) = self.refused().refused(Instant::now()) {
            self.alerts.send(event);
        }
        Some(auth::unauthorized())
    }

    /// An admitted request: its body, then what became of its signals.
    pub(crate) async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        // Before the body is read: a client is never held while the
        // intake cannot take what it sends.
        let _in_flight = match self.submit.ready() {
            Ok(in_flight) => in_flight,
            Err(unavailable) => return refused(&unavailable),
        };
        let body = match self.body(request).await {
            Ok(body) => body,
            Err(response) => return response,
        };
        match self.submit.submit(body).await {
            Ok(outcomes) if outcomes.is_empty() => text(
                StatusCode::BAD_REQUEST,
                "empty body: send a signal (a JSON object), or one a line\n",
            ),
            Ok(outcomes) => {
                let invalid = outcomes
                    .iter()
                    .any(|outcome| outcome.result == Decision::Invalid);
                let code = if invalid {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::ACCEPTED
                };
                json(code, &json!({ "results": outcomes }))
            }
            Err(unavailable) => refused(&unavailable),
        }
    }

    /// The whole body, within the size limit and [`BODY_TIMEOUT`].
    async fn body(&self, request: Request<Incoming>) -> Result<Bytes, Response<Body>> {
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.body_limit as u64) {
            return Err(self.too_large());
        }
        let collected = tokio::time::timeout(
            BODY_TIMEOUT,
            Limited::new(request.into_body(), self.body_limit).collect(),
        )
        .await;
        match collected {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(error)) if error.is::<LengthLimitError>() => Err(self.too_large()),
            Ok(Err(error)) => Err(text(
                StatusCode::BAD_REQUEST,
                format!("cannot read the body: {error}\n"),
            )),
            Err(_) => Err(text(
                StatusCode::REQUEST_TIMEOUT,
                format!("body not received within {}s\n", BODY_TIMEOUT.as_secs()),
            )),
        }
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

/// 503, and when to send again.
fn refused(unavailable: &Unavailable) -> Response<Body> {
    let message = match unavailable {
        Unavailable::Starting => "starting: not accepting signals yet\n".to_owned(),
        Unavailable::Stopping => "stopping: not accepting signals\n".to_owned(),
        Unavailable::Paused(reason) => format!(
            "paused: {reason}; nothing was recorded: send it again (a resend is never decided twice)\n"
        ),
    };
    let mut response = text(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static(RETRY_SECONDS));
    response
}

/// A path segment, percent-decoded; `None` if it cannot be.
fn percent_decoded(segment: &str) -> Option<Vec<u8>> {
    super::query::decode(segment)
        .ok()
        .map(|decoded| decoded.into_owned().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_token_is_percent_decoded() {
        assert_eq!(percent_decoded("a%2Fb").as_deref(), Some(&b"a/b"[..]));
        assert_eq!(percent_decoded("a%zz"), None);
    }
}
