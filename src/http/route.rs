//! A port's routes as one table: each route's path, methods, auth class
//! and handler in one declaration, from which the rest follows. A path no
//! route declares is 404 and a method its route does not take is 405 with
//! `Allow`; `HEAD` is answered wherever `GET` is (hyper sends the head
//! without the body); a request is counted under its route's label, or
//! [`UNKNOWN`]; and a route of class [`Auth::None`] never reaches the
//! port's guard, so no token is ever asked of it. Nothing answers for a
//! path but the route that declares it.

use std::future::Future;
use std::pin::Pin;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW};
use hyper::{Method, Request, Response, StatusCode};

use super::response::{text, Body};

/// The label of a request no route declares: what a client writes in a
/// path never makes a series of its own.
pub(crate) const UNKNOWN: &str = "other";

/// One route of a port whose context is `C` and whose bodies are `B`.
pub(crate) struct Route<C: 'static, B: 'static> {
    pub(crate) path: Path,
    pub(crate) methods: Methods,
    pub(crate) auth: Auth,
    pub(crate) handler: Handler<C, B>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// This path exactly.
    Is(&'static str),
    /// One segment below `prefix`, not empty and without a `/`
    /// (`/bot/NAME`, `/signals/TOKEN`); counted under `label`, since the
    /// segment may be a name a client made up, or a token.
    Below {
        prefix: &'static str,
        label: &'static str,
    },
}

impl Path {
    /// The segment of `path` below this one (`Below`); `None` if `path` is
    /// not this one or this one has no segment.
    pub(crate) fn segment(self, path: &str) -> Option<&str> {
        match self {
            Path::Is(_) => None,
            Path::Below { prefix, .. } => path
                .strip_prefix(prefix)
                .filter(|segment| !segment.is_empty() && !segment.contains('/')),
        }
    }

    /// Whether this is `path`.
    pub fn matches(self, path: &str) -> bool {
        match self {
            Path::Is(exact) => path == exact,
            Path::Below { .. } => self.segment(path).is_some(),
        }
    }

    /// What requests on it are counted under.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Path::Is(path) => path,
            Path::Below { label, .. } => label,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Methods {
    /// `GET`, and so `HEAD`.
    Get,
    Post,
}

impl Methods {
    fn allow(self, method: &Method) -> bool {
        match self {
            Methods::Get => method == Method::GET || method == Method::HEAD,
            Methods::Post => method == Method::POST,
        }
    }

    /// The `Allow` header's value.
    pub fn allowed(self) -> &'static str {
        match self {
            Methods::Get => "GET, HEAD",
            Methods::Post => "POST",
        }
    }
}

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    /// Anyone, ever: the health routes.
    None,
    /// The write token (the webhook's, with its address rule).
    Write,
    /// The read token.
    Read,
}

/// An answer still to come (the body is read, the loop or the stream
/// thread is asked).
pub(crate) type Later<'a, B> = Pin<Box<dyn Future<Output = Response<B>> + 'a>>;

pub(crate) enum Handler<C: 'static, B: 'static> {
    /// Answered at once from what is at hand.
    Now(fn(&C, &Request<Incoming>) -> Response<Body>),
    Later(for<'a> fn(&'a C, Request<Incoming>) -> Later<'a, B>),
}

/// A port's access rules, by class.
pub(crate) trait Guard {
    /// Whether the port serves routes of class `auth` at all (their token
    /// is set, the webhook is on): a route whose class is off is not found.
    fn serves(&self, auth: Auth) -> bool;

    /// For a request to a route of class `auth` (not [`Auth::None`]), the
    /// answer it gets instead of the route's, if it may not use it: 401,
    /// 403, 400 for a query string that cannot be read. It may leave a
    /// mark in the request's extensions for the route.
    fn refusal(
        &self,
        auth: Auth,
        path: Path,
        request: &mut Request<Incoming>,
    ) -> Option<Response<Body>>;
}

/// A body type that can carry a whole body (a port whose routes may also
/// stream).
pub(crate) trait Whole {
    fn whole(body: Body) -> Self;
}

impl Whole for Body {
    fn whole(body: Body) -> Self {
        body
    }
}

impl<S> Whole for Either<Body, S> {
    fn whole(body: Body) -> Self {
        Either::Left(body)
    }
}

/// Answers `request` by the route of `routes` that declares its path, and
/// says which label it counts under.
pub(crate) async fn respond<C: Guard, B: Whole>(
    routes: &'static [Route<C, B>],
    port: &C,
    mut request: Request<Incoming>,
) -> (&'static str, Response<B>) {
    let path = request.uri().path();
    let Some(route) = routes
        .iter()
        .find(|route| route.path.matches(path))
        .filter(|route| port.serves(route.auth))
    else {
        return (
            UNKNOWN,
            text(StatusCode::NOT_FOUND, "not found\n").map(B::whole),
        );
    };
    let label = route.path.label();
    if !route.methods.allow(request.method()) {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method not allowed: use {}\n", route.methods.allowed()),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(route.methods.allowed()));
        return (label, response.map(B::whole));
    }
    if route.auth != Auth::None {
        if let Some(refused) = port.refusal(route.auth, route.path, &mut request) {
            return (label, refused.map(B::whole));
        }
    }
    let response = match route.handler {
        Handler::Now(handler) => handler(port, &request).map(B::whole),
        Handler::Later(handler) => handler(port, request).await,
    };
    (label, response)
}

/// What a table declares of a route, for the tests that walk a port's
/// routes on the real binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Declared {
    pub path: Path,
    pub methods: Methods,
    pub auth: Auth,
}

pub(crate) fn declared<C, B>(routes: &[Route<C, B>]) -> Vec<Declared> {
    routes
        .iter()
        .map(|route| Declared {
            path: route.path,
            methods: route.methods,
            auth: route.auth,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_below_has_exactly_one_segment() {
        let below = Path::Below {
            prefix: "/signals/",
            label: "/signals",
        };
        assert_eq!(below.segment("/signals/abc"), Some("abc"));
        for other in [
            "/signals",
            "/signals/",
            "/signals/a/b",
            "/signalsx",
            "/health",
        ] {
            assert!(!below.matches(other), "{other}");
        }
        assert!(Path::Is("/health").matches("/health"));
        assert!(!Path::Is("/health").matches("/health/"));
        assert_eq!(below.label(), "/signals");
    }

    #[test]
    fn get_takes_head_and_nothing_else_does() {
        assert!(Methods::Get.allow(&Method::HEAD));
        assert!(!Methods::Get.allow(&Method::POST));
        assert!(!Methods::Post.allow(&Method::HEAD));
        assert!(!Methods::Post.allow(&Method::GET));
    }
}
