//! The dashboard's routes, served by the same bounded server as the bot's
//! health port ([`crate::health::http`]):
//!
//! | route | what |
//! |---|---|
//! | `/health` | 200 while it serves (no auth, for probes) |
//! | `/`, `/bot/NAME` | the fleet page, one bot's page (static HTML; the data comes from the API) |
//! | `/assets/…` | the page's script and style, embedded in the binary |
//! | `/api/fleet` | every bot's figures; `?wait=REVISION` answers once they change |
//! | `/api/bot/NAME` | one bot's figures, charts and table; `?after=SEQ` for the rows after SEQ |
//!
//! `?wait=` is a long poll: the page asks again as soon as it has an
//! answer, so a change reaches it within a poll of the bot, without a
//! streaming body (the server's bodies are whole).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION,
    REFERRER_POLICY, SET_COOKIE, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::access::{Access, Decision};
use super::fleet::Fleet;
use crate::health::api::{json_response, text};
use crate::health::http::Body;

/// How long a `?wait=` request is held when nothing changes (well inside
/// the server's maximum connection age).
const LONG_POLL: Duration = Duration::from_secs(15);

const FLEET_HTML: &str = include_str!("assets/fleet.html");
const BOT_HTML: &str = include_str!("assets/bot.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Everything comes from this server: no inline script, no third party.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

pub(crate) struct WebApi {
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) access: Access,
    pub(crate) shutdown: CancellationToken,
}

impl WebApi {
    pub(crate) async fn respond<B>(&self, request: Request<B>) -> Response<Body> {
        let mut response = self.route(&request).await;
        let headers = response.headers_mut();
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        // A `?token=` address must not leave in a Referer.
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        response
    }

    async fn route<B>(&self, request: &Request<B>) -> Response<Body> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let path = request.uri().path();
        if path == "/health" {
            return json_response(
                StatusCode::OK,
                &json!({
                    "status": "serving",
                    "bots": self.fleet.bots.len(),
                    "version": env!("CARGO_PKG_VERSION"),
                }),
            );
        }
        let query = parse_query(request.uri().query().unwrap_or_default());
        let page = match path {
            "/" => Some(FLEET_HTML),
            _ => path
                .strip_prefix("/bot/")
                .filter(|name| self.fleet.bot(name).is_some())
                .map(|_| BOT_HTML),
        };
        match self
            .access
            .check(request.headers(), query.get("token").map(String::as_str))
        {
            Decision::Denied => return unauthorized(),
            Decision::AllowedByQuery if page.is_some() => {
                let https = request
                    .headers()
                    .get("x-forwarded-proto")
                    .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
                return self.enter(path, https);
            }
            Decision::Allowed | Decision::AllowedByQuery => {}
        }
        if let Some(html) = page {
            let mut response = with_type(text(StatusCode::OK, html), "text/html; charset=utf-8");
            response.headers_mut().insert(
                CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_POLICY),
            );
            return response;
        }
        let number = |name: &str| query.get(name).and_then(|value| value.parse::<u64>().ok());
        match path {
            "/assets/app.js" => with_type(
                text(StatusCode::OK, APP_JS),
                "text/javascript; charset=utf-8",
            ),
            "/assets/style.css" => {
                with_type(text(StatusCode::OK, STYLE_CSS), "text/css; charset=utf-8")
            }
            "/api/fleet" => {
                let revision = self.wait(self.fleet.revision(), number("wait")).await;
                json_response(
                    StatusCode::OK,
                    &json!({"revision": revision, "bots": self.fleet.summaries()}),
                )
            }
            _ => match path
                .strip_prefix("/api/bot/")
                .and_then(|name| self.fleet.bot(name))
            {
                Some(bot) => {
                    let revision = self.wait(bot.revision(), number("wait")).await;
                    let mut detail = bot.detail(number("after"));
                    detail["revision"] = json!(revision);
                    json_response(StatusCode::OK, &detail)
                }
                None => text(StatusCode::NOT_FOUND, "not found\n"),
            },
        }
    }

    /// With `seen`, waits until `revision` moves past it (or the long
    /// poll ends, or the server stops); returns the revision the answer
    /// shows.
    async fn wait(&self, revision: &watch::Sender<u64>, seen: Option<u64>) -> u64 {
        let mut receiver = revision.subscribe();
        let current = *receiver.borrow_and_update();
        if seen == Some(current) {
            tokio::select! {
                _ = receiver.changed() => {}
                () = tokio::time::sleep(LONG_POLL) => {}
                () = self.shutdown.cancelled() => {}
            }
        }
        // Read before the figures: a change after this shows next time.
        let current = *receiver.borrow_and_update();
        current
    }

    /// `?token=` on a page: the cookie, and the page again without the
    /// token in its address (nor in the browser's history).
    fn enter(&self, path: &str, https: bool) -> Response<Body> {
        let mut response = text(StatusCode::SEE_OTHER, "signed in\n");
        let headers = response.headers_mut();
        if let Ok(location) = HeaderValue::from_str(path) {
            headers.insert(LOCATION, location);
        }
        if let Some(cookie) = self
            .access
            .set_cookie(https)
            .and_then(|cookie| HeaderValue::from_str(&cookie).ok())
        {
            headers.insert(SET_COOKIE, cookie);
        }
        response
    }
}

fn unauthorized() -> Response<Body> {
    let mut response = text(
        StatusCode::UNAUTHORIZED,
        "the dashboard needs its token (README, \"Dashboard\")\n",
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"tradingbot web\", charset=\"UTF-8\""),
    );
    response
}

fn with_type(mut response: Response<Body>, content_type: &'static str) -> Response<Body> {
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // The assets are embedded: a new binary must bring its own at once.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `a=1&b=x%20y` → {a: "1", b: "x y"}; the first of a repeated name wins.
fn parse_query(query: &str) -> HashMap<String, String> {
    let mut pairs = HashMap::new();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        pairs
            .entry(percent_decode(name))
            .or_insert_with(|| percent_decode(value));
    }
    pairs
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| {
            bytes
                .get(at)
                .and_then(|byte| (*byte as char).to_digit(16))
                .map(|digit| digit as u8)
        };
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push(high << 4 | low);
                index += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                index += 1;
            }
            (byte, ..) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let query = parse_query("token=a%2Bb%3D&after=12&x&token=second&bad=%zz%4");
        assert_eq!(query["token"], "a+b=");
        assert_eq!(query["after"], "12");
        assert_eq!(query["x"], "");
        assert_eq!(query["bad"], "%zz%4");
        assert_eq!(percent_decode("%ff%fe"), "\u{fffd}\u{fffd}");
    }
}
