//! `webhook`: `POST /signals` on a listener of its own (`WEBHOOK_BIND`),
//! served by the shared HTTP machinery on its own thread.
//!
//! A request needs `Authorization: Bearer <token>` (compared in constant
//! time), a body within the limit, and one or more signal lines. It is
//! answered only after the loop has journaled the lines' decisions durably:
//! 202 when every line was a valid signal (filled, rejected by a risk limit,
//! or a duplicate), 400 when some line was not (the others were still
//! handled; the body says which was which), 503 while stopping.

use std::cell::RefCell;
use std::net::TcpListener;
use std::rc::Rc;
use std::time::Duration;

use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::oneshot;

use super::lines::{LineSplitter, Lines};
use super::{Batch, Decision, Outlet, WebhookSettings};
use crate::alerts::RefusedTokens;
use crate::health::api::{json_response, text};
use crate::http::server::{spawn_server_thread, Body, Limits};
use crate::secret::Secret;

/// A body must arrive within this once its head has: a client dribbling
/// one would otherwise hold its connection (and a slot of the cap) for the
/// connection's whole lifetime.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts serving `POST /signals` on `listener` from a thread of its own.
pub(crate) fn spawn(
    outlet: Outlet,
    listener: TcpListener,
    settings: WebhookSettings,
) -> std::io::Result<()> {
    let shutdown = outlet.shutdown.clone();
    let handler = Handler {
        outlet,
        token: settings.token,
        body_limit: settings.body_limit,
        refused: RefCell::default(),
    };
    spawn_server_thread(
        "webhook",
        listener,
        Limits::default(),
        move || {
            let handler = Rc::new(handler);
            move |request| {
                let handler = Rc::clone(&handler);
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

struct Handler {
    outlet: Outlet,
    token: Secret,
    body_limit: usize,
    /// A burst of refused tokens is an alert.
    refused: RefCell<RefusedTokens>,
}

impl Handler {
    async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        if request.uri().path() != "/signals" {
            return text(
                StatusCode::NOT_FOUND,
                "not found: POST signals to /signals\n",
            );
        }
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
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping: not accepting signals\n",
            );
        }
        let authorized = request
            .headers()
            .get(AUTHORIZATION)
            .is_some_and(|value| bearer_matches(value.as_bytes(), self.token.expose().as_bytes()));
        if !authorized {
            if let Some(event) = self.refused.borrow_mut().refused(std::time::Instant::now()) {
                self.outlet.feed.alerts().send(event);
            }
            let mut response = text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
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
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping: not accepting signals\n",
            );
        }
        let mut lines = Lines::default();
        let mut splitter = LineSplitter::default();
        splitter.push(&body, &mut lines);
        splitter.finish(&mut lines);
        if lines.is_empty() {
            return text(
                StatusCode::BAD_REQUEST,
                "empty body: send one signal (JSON object) a line\n",
            );
        }
        let (reply, answer) = oneshot::channel();
        let batch = Batch {
            reply: Some(reply),
            ..Batch::new(self.outlet.index, lines)
        };
        if self.outlet.batches.send(batch).await.is_err() {
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "stopping: not accepting signals\n",
            );
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

/// Whether an `Authorization` header value is `Bearer <token>`.
pub fn bearer_matches(header: &[u8], token: &[u8]) -> bool {
    header
        .strip_prefix(b"Bearer ")
        .is_some_and(|given| same_token(given, token))
}

/// Compares in time that depends on the expected token's length only, so
/// response timing does not reveal how much of a guess was right.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = given.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        let other = given.get(index).copied().unwrap_or(0);
        difference |= usize::from(byte ^ other);
    }
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::same_token;

    #[test]
    fn compares_whole_tokens() {
        assert!(same_token(b"s3cret", b"s3cret"));
        assert!(!same_token(b"s3cre", b"s3cret"));
        assert!(!same_token(b"s3cretX", b"s3cret"));
        assert!(!same_token(b"S3cret", b"s3cret"));
        assert!(!same_token(b"", b"s3cret"));
    }

    /// An early-exit comparison of a 1 MiB token returns ~10^5 times
    /// sooner on a first-byte miss than on a last-byte one; this one must
    /// take about as long for both (bounds generous for a loaded machine).
    #[test]
    fn time_does_not_depend_on_where_the_guess_goes_wrong() {
        let expected: Vec<u8> = (0..1 << 20).map(|index| (index % 251) as u8).collect();
        let mut near = expected.clone();
        *near.last_mut().unwrap() ^= 1;
        let mut far = expected.clone();
        far[0] ^= 1;
        let time = |given: &[u8]| {
            (0..15)
                .map(|_| {
                    let started = std::time::Instant::now();
                    assert!(!same_token(std::hint::black_box(given), &expected));
                    started.elapsed()
                })
                .min()
                .unwrap()
        };
        let (near, far) = (time(&near), time(&far));
        let ratio = near.as_secs_f64() / far.as_secs_f64();
        eprintln!("1 MiB token: last-byte miss {near:?}, first-byte miss {far:?}");
        assert!(
            (0.33..3.0).contains(&ratio),
            "last-byte miss {near:?} vs first-byte miss {far:?}"
        );
    }
}
