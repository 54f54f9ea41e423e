//! What the one port's new routes parse from a client, each against an
//! oracle: a query string (what it decodes must re-encode to what it
//! read), a webhook body (its signals hold no byte the body did not, and a
//! body that is one JSON document stays one signal), the forwarding
//! headers (an untrusted peer is always its own client), and a network.
//! The first byte picks which; the rest is the input.

use hyper::header::{HeaderMap, HeaderValue};
use tradingbot::bot::intake::lines::Line;
use tradingbot::bot::intake::submit::split_body;
use tradingbot::http::auth::Allow;
use tradingbot::http::query::Query;
use tradingbot::http::settings::Cidr;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&which, input)) = data.split_first() else {
            return;
        };
        match which % 4 {
            0 => query(input),
            1 => body(input),
            2 => forwarded(input),
            _ => {
                if let Ok(text) = std::str::from_utf8(input) {
                    let _ = Cidr::parse(text);
                }
            }
        }
    });
}

fn query(input: &[u8]) {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let Ok(query) = Query::parse(text) else {
        return;
    };
    // Every pair found was spelled in the text, escapes decoded.
    for name in ["token", "after", "limit", "types"] {
        for value in query.all(name) {
            let encoded: String = value.bytes().map(|byte| format!("%{byte:02X}")).collect();
            let again = format!("{name}={encoded}");
            let reparsed = Query::parse(&again).unwrap();
            assert_eq!(reparsed.one(name).unwrap(), Some(value));
        }
    }
}

fn body(input: &[u8]) {
    let lines = split_body(input);
    let kept: usize = lines
        .iter()
        .map(|line| match line {
            Line::Bytes(bytes) => bytes.len(),
            Line::TooLong(length) => length,
        })
        .sum();
    assert!(kept <= input.len());
    if serde_json::from_slice::<serde::de::IgnoredAny>(input).is_ok() {
        assert_eq!(lines.len(), 1);
    }
}

fn forwarded(input: &[u8]) {
    let Some((&kind, value)) = input.split_first() else {
        return;
    };
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(if kind % 2 == 0 { "forwarded" } else { "x-forwarded-for" }, value);
    let allow = Allow {
        networks: vec![Cidr::parse("192.0.2.0/24").unwrap()],
        trusted_proxies: vec![Cidr::parse("127.0.0.0/8").unwrap()],
    };
    let _ = allow.client("127.0.0.1".parse().unwrap(), &headers);
    let untrusted = "198.51.100.7".parse().unwrap();
    assert_eq!(allow.client(untrusted, &headers), untrusted);
}
