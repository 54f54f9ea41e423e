//! Who may use a route: tokens (compared in constant time, from the
//! `Authorization` header, the query string or, for intake, the path) and
//! the webhook's address allow-list (with the client's address taken from
//! `X-Forwarded-For` or `Forwarded` only when a trusted proxy sent them).
//!
//! Nothing here logs or echoes what it was given.

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};

use super::query::Query;
use super::response::{text, Body};
use super::settings::Cidr;
use crate::secret::{self, Secret};

/// Whether any credential the request carries is `token`: the bearer
/// header, a `token` query parameter, or (`path_token`) the last path
/// segment. Each is compared in full, so timing tells nothing of which.
pub(crate) fn authorized(
    headers: &HeaderMap,
    query: &Query<'_>,
    path_token: Option<&[u8]>,
    token: &Secret,
) -> bool {
    let mut matched = false;
    if let Some(header) = headers.get(AUTHORIZATION) {
        matched |= bearer_matches(header.as_bytes(), token.expose().as_bytes());
    }
    for given in query.all("token") {
        matched |= token.matches(given.as_bytes());
    }
    if let Some(given) = path_token {
        matched |= token.matches(given);
    }
    matched
}

/// Whether an `Authorization` header value is `Bearer <token>`.
pub fn bearer_matches(header: &[u8], token: &[u8]) -> bool {
    header
        .strip_prefix(b"Bearer ")
        .is_some_and(|given| secret::same(given, token))
}

/// The one answer to a missing or a wrong token: which it was is not said.
pub(crate) fn unauthorized() -> Response<Body> {
    let mut response = text(StatusCode::UNAUTHORIZED, "missing or wrong token\n");
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// The webhook's address rule: with no networks listed, everyone.
#[derive(Clone, Debug, Default)]
pub struct Allow {
    pub networks: Vec<Cidr>,
    pub trusted_proxies: Vec<Cidr>,
}

impl Allow {
    pub fn permits(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        self.networks.is_empty() || {
            let client = self.client(peer, headers);
            self.networks.iter().any(|network| network.contains(client))
        }
    }

    /// The client's address: the peer's, unless the peer is a trusted
    /// proxy; then the nearest address in the forwarding chain that is not
    /// itself a trusted proxy (a client can write anything at the far end
    /// of the chain, so it is read from the near end). An unreadable chain
    /// from a trusted proxy counts as the proxy itself.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_chain(headers);
        let Some(chain) = chain else {
            return peer;
        };
        chain
            .iter()
            .rev()
            .copied()
            .find(|hop| !self.trusts(*hop))
            .or_else(|| chain.first().copied())
            .unwrap_or(peer)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|network| network.contains(address))
    }
}

/// An IPv4 client of a dual-stack (`::`) listener is seen as `::ffff:a.b.c.d`.
pub(crate) fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses of `Forwarded` (RFC 7239, its `for=` parameters) or else
/// `X-Forwarded-For`, client first, every header line in order. `None` if
/// there is neither or any hop cannot be read (an obfuscated or `unknown`
/// node included): a chain that is partly understood is not trusted.
pub(crate) fn forwarded_chain(headers: &HeaderMap) -> Option<Vec<IpAddr>> {
    let mut chain = Vec::new();
    let forwarded = headers.get_all("forwarded");
    if forwarded.iter().next().is_some() {
        for value in forwarded {
            for element in value.to_str().ok()?.split(',') {
                let node = element.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.eq_ignore_ascii_case("for").then_some(value)
                })?;
                chain.push(forwarded_node(node)?);
            }
        }
        return Some(chain);
    }
    for value in headers.get_all("x-forwarded-for") {
        for hop in value.to_str().ok()?.split(',') {
            chain.push(canonical(hop.trim().parse().ok()?));
        }
    }
    (!chain.is_empty()).then_some(chain)
}

/// One `for=` node: `192.0.2.1`, `"192.0.2.1:4711"`, `"[2001:db8::1]"` or
/// `"[2001:db8::1]:4711"`.
fn forwarded_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    let node = match node.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"')?,
        None => node,
    };
    if let Some(bracketed) = node.strip_prefix('[') {
        let (address, rest) = bracketed.split_once(']')?;
        if !(rest.is_empty() || port_suffix(rest)) {
            return None;
        }
        return address.parse().ok().map(canonical);
    }
    let address = match node.split_once(':') {
        Some((address, port)) if port_suffix(&format!(":{port}")) => address,
        Some(_) => return None,
        None => node,
    };
    address.parse().ok().map(canonical)
}

fn port_suffix(text: &str) -> bool {
    text.strip_prefix(':')
        .is_some_and(|port| !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn any_of_the_three_places_carries_the_token() {
        let token = Secret::parse("t0k").unwrap();
        let none = Query::parse("").unwrap();
        let with = Query::parse("a=1&token=t0k").unwrap();
        let wrong = Query::parse("token=t0").unwrap();
        let bearer = headers(&[("authorization", "Bearer t0k")]);
        assert!(authorized(&bearer, &none, None, &token));
        assert!(authorized(&HeaderMap::new(), &with, None, &token));
        assert!(authorized(&HeaderMap::new(), &none, Some(b"t0k"), &token));
        assert!(!authorized(&HeaderMap::new(), &wrong, Some(b"x"), &token));
        assert!(!authorized(
            &headers(&[("authorization", "t0k")]),
            &none,
            None,
            &token
        ));
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_says_otherwise() {
        let allow = Allow {
            networks: vec![Cidr::parse("52.89.214.238").unwrap()],
            trusted_proxies: vec![Cidr::parse("10.0.0.0/8").unwrap()],
        };
        let from_tv = headers(&[("x-forwarded-for", "52.89.214.238")]);
        // Straight from TradingView, or through the trusted proxy.
        assert!(allow.permits(ip("52.89.214.238"), &HeaderMap::new()));
        assert!(allow.permits(ip("::ffff:52.89.214.238"), &HeaderMap::new()));
        assert!(allow.permits(ip("10.1.2.3"), &from_tv));
        // A header from an untrusted peer is ignored.
        assert!(!allow.permits(ip("203.0.113.9"), &from_tv));
        // A forged far end does not help: the hop the proxy saw decides.
        let forged = headers(&[("x-forwarded-for", "52.89.214.238, 203.0.113.9")]);
        assert!(!allow.permits(ip("10.1.2.3"), &forged));
        let chained = headers(&[
            ("x-forwarded-for", "52.89.214.238"),
            ("x-forwarded-for", "10.9.9.9"),
        ]);
        assert!(allow.permits(ip("10.1.2.3"), &chained));
        // Forwarded wins over X-Forwarded-For; every node form is read.
        for node in [
            "for=52.89.214.238",
            "for=\"52.89.214.238:4711\"",
            "proto=https;for=52.89.214.238;by=10.0.0.1",
            "for=\"[::ffff:52.89.214.238]:443\"",
        ] {
            let forwarded = headers(&[("forwarded", node), ("x-forwarded-for", "1.2.3.4")]);
            assert!(allow.permits(ip("10.1.2.3"), &forwarded), "{node}");
        }
        for unreadable in ["for=unknown", "for=_hidden", "by=10.0.0.1", "for=\"[::1\""] {
            let forwarded = headers(&[("forwarded", unreadable)]);
            assert_eq!(
                allow.client(ip("10.1.2.3"), &forwarded),
                ip("10.1.2.3"),
                "{unreadable}"
            );
        }
        assert!(Allow::default().permits(ip("203.0.113.9"), &HeaderMap::new()));
    }

    proptest::proptest! {
        /// Any header the client sends is read without a panic, and an
        /// untrusted peer is always its own client.
        #[test]
        fn forwarding_headers_never_panic(value in "[ -~]{0,80}", forwarded in proptest::prelude::any::<bool>()) {
            let Ok(value) = HeaderValue::from_str(&value) else { return Ok(()) };
            let mut map = HeaderMap::new();
            map.insert(if forwarded { "forwarded" } else { "x-forwarded-for" }, value);
            let allow = Allow {
                networks: vec![Cidr::parse("192.0.2.0/24").unwrap()],
                trusted_proxies: vec![Cidr::parse("127.0.0.1").unwrap()],
            };
            let _ = allow.client(ip("127.0.0.1"), &map);
            proptest::prop_assert_eq!(allow.client(ip("198.51.100.1"), &map), ip("198.51.100.1"));
        }
    }
}
