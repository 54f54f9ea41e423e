//! The answers every route is built from: whole bodies with their type,
//! never to be stored by a cache (every answer is of the moment).

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// A whole body, sent at once.
pub type Body = Full<Bytes>;

/// `body` as `content_type`.
pub(crate) fn typed(
    code: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = code;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub(crate) fn text(code: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    typed(code, "text/plain; charset=utf-8", body)
}

pub(crate) fn json(code: StatusCode, body: &impl Serialize) -> Response<Body> {
    json_bytes(code, serde_json::to_vec(body).unwrap_or_default())
}

/// A JSON document already written, with the newline every body ends with.
pub(crate) fn json_bytes(code: StatusCode, mut bytes: Vec<u8>) -> Response<Body> {
    bytes.push(b'\n');
    typed(code, "application/json", bytes)
}
