//! The webhook source from outside: a bot that listens for signals on a
//! port held for it, and a client that posts to it.

use std::net::SocketAddr;

use super::daemon::Builder;
use super::http::http_with_body;
use super::port::Reserved;

/// `builder` with the webhook source on a free loopback port (held until
/// the spawn) and the address to post to. The token is the caller's to set
/// (`WEBHOOK_TOKEN` or `WEBHOOK_TOKEN_FILE`).
pub fn webhook_bot(builder: Builder) -> (Builder, SocketAddr) {
    let reserved = Reserved::loopback();
    let addr = reserved.addr();
    let builder = builder
        .arg("--source")
        .arg("webhook")
        .bind_env("WEBHOOK_BIND", reserved);
    (builder, addr)
}

/// `POST /signals` with `Authorization: Bearer TOKEN`: (status, body).
pub fn post_signals(addr: SocketAddr, token: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    let bearer = format!("Bearer {token}");
    http_with_body(
        addr,
        "POST",
        "/signals",
        &[("Authorization", &bearer)],
        body,
    )
}
