//! The dashboard's routes, served by the same bounded server as the bot's
//! health port ([`crate::http::server`]):
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

use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, SET_COOKIE, WWW_AUTHENTICATE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::access::{Access, Decision};
use super::fleet::Fleet;
use crate::http::query::{Query, QueryError};
use crate::http::response::{json, text, typed, Body};
use crate::http::route::{self, Auth, Declared, Guard, Handler, Later, Methods, Path, Route};

/// How long a `?wait=` request is held when nothing changes (well inside
/// what a proxy between the page and the dashboard waits for an answer).
const LONG_POLL: Duration = Duration::from_secs(15);

const FLEET_HTML: &str = include_str!("assets/fleet.html");
const BOT_HTML: &str = include_str!("assets/bot.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Everything comes from this server: no inline script, no third party.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

const BOT: Path = Path::Below {
    prefix: "/bot/",
    label: "/bot",
};
const API_BOT: Path = Path::Below {
    prefix: "/api/bot/",
    label: "/api/bot",
};

/// The dashboard's routes. A new route is one line here and its handler.
const ROUTES: &[Route<WebApi, Body>] = &[
    get(
        Path::Is("/health"),
        Auth::None,
        Handler::Now(|web, _| web.health()),
    ),
    get(
        Path::Is("/"),
        Auth::Read,
        Handler::Now(|web, request| web.page(request, FLEET_HTML)),
    ),
    get(BOT, Auth::Read, Handler::Now(WebApi::bot_page)),
    get(
        Path::Is("/assets/app.js"),
        Auth::Read,
        Handler::Now(|_, _| typed(StatusCode::OK, "text/javascript; charset=utf-8", APP_JS)),
    ),
    get(
        Path::Is("/assets/style.css"),
        Auth::Read,
        Handler::Now(|_, _| typed(StatusCode::OK, "text/css; charset=utf-8", STYLE_CSS)),
    ),
    get(Path::Is("/api/fleet"), Auth::Read, Handler::Later(fleet)),
    get(API_BOT, Auth::Read, Handler::Later(bot)),
];

const fn get(path: Path, auth: Auth, handler: Handler<WebApi, Body>) -> Route<WebApi, Body> {
    Route {
        path,
        methods: Methods::Get,
        auth,
        handler,
    }
}

/// The dashboard's routes, as declared.
pub fn declared() -> Vec<Declared> {
    route::declared(ROUTES)
}

pub(crate) struct WebApi {
    pub(crate) fleet: Arc<Fleet>,
    pub(crate) access: Access,
    pub(crate) shutdown: CancellationToken,
}

/// In a request's extensions: it was let in by `?token=` (see
/// [`WebApi::enter`]).
#[derive(Clone, Copy)]
struct ByQuery;

impl WebApi {
    pub(crate) async fn respond(&self, request: Request<Incoming>) -> Response<Body> {
        let (_, mut response) = route::respond(ROUTES, self, request).await;
        let headers = response.headers_mut();
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        // A `?token=` address must not leave in a Referer.
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        response
    }

    fn health(&self) -> Response<Body> {
        json(
            StatusCode::OK,
            &json!({
                "status": "serving",
                "bots": self.fleet.bots.len(),
                "version": env!("CARGO_PKG_VERSION"),
            }),
        )
    }

    fn bot_page(&self, request: &Request<Incoming>) -> Response<Body> {
        let known = BOT
            .segment(request.uri().path())
            .is_some_and(|name| self.fleet.bot(name).is_some());
        if known {
            self.page(request, BOT_HTML)
        } else {
            not_found()
        }
    }

    /// A page (static HTML: the data comes from the API).
    fn page(&self, request: &Request<Incoming>, html: &'static str) -> Response<Body> {
        if request.extensions().get::<ByQuery>().is_some() {
            return self.enter(request);
        }
        let mut response = typed(StatusCode::OK, "text/html; charset=utf-8", html);
        response.headers_mut().insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
        response
    }

    /// A page reached with `?token=` (a bookmark): the cookie, and the page
    /// again without the token in its address (nor in the browser's
    /// history). The cookie is `Secure` when a TLS proxy says the page was
    /// reached over HTTPS.
    fn enter(&self, request: &Request<Incoming>) -> Response<Body> {
        let https = request
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"));
        let mut response = text(StatusCode::SEE_OTHER, "signed in\n");
        let headers = response.headers_mut();
        if let Ok(location) = HeaderValue::from_str(request.uri().path()) {
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
}

impl Guard for WebApi {
    fn serves(&self, _: Auth) -> bool {
        true
    }

    fn refusal(&self, _: Auth, _: Path, request: &mut Request<Incoming>) -> Option<Response<Body>> {
        let query = match Query::parse(request.uri().query().unwrap_or_default()) {
            Ok(query) => query,
            Err(error) => return Some(bad_request(&error)),
        };
        let decision = self
            .access
            .check(request.headers(), query.all("token").next());
        drop(query);
        match decision {
            Decision::Denied => Some(unauthorized()),
            Decision::Allowed => None,
            Decision::AllowedByQuery => {
                request.extensions_mut().insert(ByQuery);
                None
            }
        }
    }
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

fn bad_request(error: &QueryError) -> Response<Body> {
    text(StatusCode::BAD_REQUEST, format!("{error}\n"))
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

/// A whole number from the query string; anything else is as if absent
/// (the page then just asks again).
fn number(request: &Request<Incoming>, name: &'static str) -> Option<u64> {
    let query = Query::parse(request.uri().query().unwrap_or_default()).ok()?;
    let number = query.all(name).next()?.parse().ok();
    number
}

fn fleet(web: &WebApi, request: Request<Incoming>) -> Later<'_, Body> {
    Box::pin(async move {
        let revision = web
            .wait(web.fleet.revision(), number(&request, "wait"))
            .await;
        json(
            StatusCode::OK,
            &json!({"revision": revision, "bots": web.fleet.summaries()}),
        )
    })
}

fn bot(web: &WebApi, request: Request<Incoming>) -> Later<'_, Body> {
    Box::pin(async move {
        let Some(bot) = API_BOT
            .segment(request.uri().path())
            .and_then(|name| web.fleet.bot(name))
        else {
            return not_found();
        };
        let revision = web.wait(bot.revision(), number(&request, "wait")).await;
        let mut detail = bot.detail(number(&request, "after"));
        detail["revision"] = json!(revision);
        json(StatusCode::OK, &detail)
    })
}
