//! The one port's routes (ARCHITECTURE.md, "Design rules": one port), in one table, and what
//! each class needs to be served: the health routes' state, the webhook,
//! the read token with the API and the stream. The webhook's own listener
//! (`WEBHOOK_BIND`) serves the same table with the webhook alone.

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::api::{self, Api};
use super::auth;
use super::health::Health;
use super::query::{Query, QueryError};
use super::response::{text, Body};
use super::route::{self, Auth, Declared, Guard, Handler, Later, Methods, Path, Route};
use super::stream::message::{Kind, Kinds};
use super::stream::{self, SseBody, Subscription};
use super::webhook::Webhook;
use crate::secret::Secret;

/// A response of any route: a whole body, or `/events`' stream.
pub(crate) type RouteBody = Either<Body, SseBody>;

/// The routes of the one port. A new route is one line here and its
/// handler.
const ROUTES: &[Route<Routes, RouteBody>] = &[
    get(
        "/livez",
        Auth::None,
        Handler::Now(|routes, _| routes.health(Health::livez)),
    ),
    get(
        "/readyz",
        Auth::None,
        Handler::Now(|routes, _| routes.health(Health::readyz)),
    ),
    get(
        "/health",
        Auth::None,
        Handler::Now(|routes, _| routes.health(Health::health)),
    ),
    get(
        "/healthz",
        Auth::None,
        Handler::Now(|routes, _| routes.health(Health::health)),
    ),
    get(
        "/",
        Auth::None,
        Handler::Now(|routes, _| routes.health(Health::health)),
    ),
    get(
        "/metrics",
        Auth::None,
        Handler::Now(|routes, request| routes.health(|health| health.metrics(request.headers()))),
    ),
    post(Path::Is("/signals"), Handler::Later(signals)),
    post(
        Path::Below {
            prefix: "/signals/",
            label: "/signals",
        },
        Handler::Later(signals),
    ),
    get(
        "/api/v1/status",
        Auth::Read,
        Handler::Now(|routes, _| routes.api(Api::status)),
    ),
    get(
        "/api/v1/positions",
        Auth::Read,
        Handler::Now(|routes, _| routes.api(Api::positions)),
    ),
    get("/api/v1/fills", Auth::Read, Handler::Later(fills)),
    get("/api/v1/rejects", Auth::Read, Handler::Later(rejects)),
    get("/ws", Auth::Read, Handler::Later(websocket)),
    get("/events", Auth::Read, Handler::Later(events)),
];

const fn get(
    path: &'static str,
    auth: Auth,
    handler: Handler<Routes, RouteBody>,
) -> Route<Routes, RouteBody> {
    Route {
        path: Path::Is(path),
        methods: Methods::Get,
        auth,
        handler,
    }
}

/// The write class's routes: the webhook's.
const fn post(path: Path, handler: Handler<Routes, RouteBody>) -> Route<Routes, RouteBody> {
    Route {
        path,
        methods: Methods::Post,
        auth: Auth::Write,
        handler,
    }
}

/// The one port's routes, as declared.
pub fn declared() -> Vec<Declared> {
    route::declared(ROUTES)
}

/// What the routes are served from; a class whose part is absent is off.
pub(crate) struct Routes {
    pub(crate) health: Option<Health>,
    pub(crate) webhook: Option<Webhook>,
    pub(crate) read: Option<Read>,
}

/// The read token and what it opens.
pub(crate) struct Read {
    pub(crate) token: Secret,
    pub(crate) api: Api,
}

impl Routes {
    /// Answers `request`, and counts it on the health routes' metrics.
    pub(crate) async fn respond(&self, request: Request<Incoming>) -> Response<RouteBody> {
        let (label, response) = route::respond(ROUTES, self, request).await;
        if let Some(health) = &self.health {
            health.count(label, response.status());
        }
        response
    }

    fn health(&self, answer: impl FnOnce(&Health) -> Response<Body>) -> Response<Body> {
        self.health.as_ref().map_or_else(not_found, answer)
    }

    fn api(&self, answer: impl FnOnce(&Api) -> Response<Body>) -> Response<Body> {
        self.read
            .as_ref()
            .map_or_else(not_found, |read| answer(&read.api))
    }
}

impl Guard for Routes {
    fn serves(&self, auth: Auth) -> bool {
        match auth {
            Auth::None => self.health.is_some(),
            Auth::Write => self.webhook.is_some(),
            Auth::Read => self.read.is_some(),
        }
    }

    fn refusal(
        &self,
        auth: Auth,
        path: Path,
        request: &mut Request<Incoming>,
    ) -> Option<Response<Body>> {
        match (auth, &self.webhook, &self.read) {
            (Auth::None, ..) => None,
            (Auth::Write, Some(webhook), _) => webhook.refusal(path, request),
            (Auth::Read, _, Some(read)) => {
                let query = match Query::parse(request.uri().query().unwrap_or_default()) {
                    Ok(query) => query,
                    Err(error) => return Some(api::bad_request(&error)),
                };
                (!auth::authorized(request.headers(), &query, None, &read.token))
                    .then(auth::unauthorized)
            }
            _ => Some(not_found()),
        }
    }
}

fn not_found() -> Response<Body> {
    text(StatusCode::NOT_FOUND, "not found\n")
}

fn whole(response: Response<Body>) -> Response<RouteBody> {
    response.map(Either::Left)
}

fn signals(routes: &Routes, request: Request<Incoming>) -> Later<'_, RouteBody> {
    Box::pin(async move {
        match &routes.webhook {
            Some(webhook) => whole(webhook.respond(request).await),
            None => whole(not_found()),
        }
    })
}

fn fills(routes: &Routes, request: Request<Incoming>) -> Later<'_, RouteBody> {
    page(routes, request, Kind::Fill)
}

fn rejects(routes: &Routes, request: Request<Incoming>) -> Later<'_, RouteBody> {
    page(routes, request, Kind::Reject)
}

fn page(routes: &Routes, request: Request<Incoming>, kind: Kind) -> Later<'_, RouteBody> {
    Box::pin(async move {
        let Some(read) = &routes.read else {
            return whole(not_found());
        };
        match Query::parse(request.uri().query().unwrap_or_default()) {
            Ok(query) => whole(read.api.page(kind, &query).await),
            Err(error) => whole(api::bad_request(&error)),
        }
    })
}

fn websocket(routes: &Routes, request: Request<Incoming>) -> Later<'_, RouteBody> {
    Box::pin(async move {
        let Some(read) = &routes.read else {
            return whole(not_found());
        };
        match subscription(&request, read) {
            Ok(subscription) => whole(read.api.stream.websocket(request, subscription)),
            Err(error) => whole(api::bad_request(&error)),
        }
    })
}

fn events(routes: &Routes, request: Request<Incoming>) -> Later<'_, RouteBody> {
    Box::pin(async move {
        let Some(read) = &routes.read else {
            return whole(not_found());
        };
        let subscription = match subscription(&request, read) {
            Ok(subscription) => subscription,
            Err(error) => return whole(api::bad_request(&error)),
        };
        match read.api.stream.events(subscription) {
            Some(response) => response.map(Either::Right),
            None => whole(stream::busy()),
        }
    })
}

/// `after` (or the `Last-Event-ID` an `EventSource` reconnecting sends,
/// or else the durable seq now) and `types`.
fn subscription(request: &Request<Incoming>, read: &Read) -> Result<Subscription, QueryError> {
    let query = Query::parse(request.uri().query().unwrap_or_default())?;
    let after = match query.one("after")? {
        Some(_) => query.number("after", 0, 0..=u64::MAX, "a sequence number (0 or more)")?,
        None => request
            .headers()
            .get("last-event-id")
            .and_then(|id| id.to_str().ok()?.trim().parse::<u64>().ok())
            .unwrap_or_else(|| read.api.stream.durable()),
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
