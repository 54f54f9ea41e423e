//! What the routes on the one port, and the webhook's own listener, are
//! configured with. A leaf (std and [`Secret`] only): the command line
//! builds these.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Settings {
    /// The read token of the API and the stream; both are off without one.
    pub(crate) api_token: Option<Secret>,
    /// Present exactly when a webhook source is.
    pub(crate) webhook: Option<WebhookSettings>,
    /// A kept-alive connection older than this is closed after its next
    /// response, which says so (`Connection: close`).
    pub(crate) max_connection_age: Duration,
    /// Stream clients (WebSocket and SSE together); 503 beyond.
    pub(crate) ws_max_clients: usize,
    /// A stream client that takes no byte for this long is dropped.
    pub(crate) ws_send_timeout: Duration,
    /// How often an idle stream is pinged; no answer in twice that, dropped.
    pub(crate) ws_ping_interval: Duration,
}

/// `POST /signals`: where it is served and who may use it.
#[derive(Debug, Clone)]
pub(crate) struct WebhookSettings {
    /// A listener of its own (`WEBHOOK_BIND`); `None`: the main port.
    pub(crate) bind: Option<SocketAddr>,
    pub(crate) token: Secret,
    pub(crate) body_limit: usize,
    /// Networks signals may come from (`WEBHOOK_ALLOW`); empty: any.
    pub(crate) allow: Vec<Cidr>,
    /// Proxies whose forwarding headers say who the client is.
    pub(crate) trusted_proxies: Vec<Cidr>,
}

/// An address or a network: `52.89.214.238`, `10.0.0.0/8`, `2001:db8::/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address or a network like 10.0.0.0/8"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(prefix) => Some(prefix)
                .filter(|digits| (1..=3).contains(&digits.len()))
                .filter(|digits| digits.bytes().all(|byte| byte.is_ascii_digit()))
                .and_then(|digits| digits.parse::<u8>().ok())
                .filter(|prefix| *prefix <= bits)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
        };
        Ok(Cidr { network, prefix })
    }

    /// Whether `address` is in the network (an IPv4 network also holds the
    /// IPv4-mapped IPv6 form of its addresses).
    pub fn contains(&self, address: IpAddr) -> bool {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        match (self.network, address) {
            (IpAddr::V4(network), IpAddr::V4(address)) => same_prefix(
                u32::from(network).into(),
                u32::from(address).into(),
                32,
                self.prefix,
            ),
            (IpAddr::V6(network), IpAddr::V6(address)) => {
                same_prefix(network.into(), address.into(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(network: u128, address: u128, bits: u32, prefix: u8) -> bool {
    let shift = bits - u32::from(prefix);
    shift >= bits || (network ^ address) >> shift == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_hold_their_addresses() {
        let tradingview = Cidr::parse("52.89.214.238").unwrap();
        assert!(tradingview.contains(ip("52.89.214.238")));
        assert!(tradingview.contains(ip("::ffff:52.89.214.238")));
        assert!(!tradingview.contains(ip("52.89.214.239")));
        let private = Cidr::parse(" 10.0.0.0/8 ").unwrap();
        assert!(private.contains(ip("10.255.0.1")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("203.0.113.1")));
        assert!(!Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("2001:db8::1")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("::1")));
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/+8",
            "10.0.0.0/",
            "10.0.0/8",
            "host",
            "10.0.0.0/8/8",
            "10.0.0.0/0008",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        /// A network holds exactly the addresses that agree with it on the
        /// first `prefix` bits.
        #[test]
        fn contains_agrees_with_the_bits(network in proptest::prelude::any::<u32>(), address in proptest::prelude::any::<u32>(), prefix in 0u8..=32) {
            let cidr = Cidr::parse(&format!("{}/{prefix}", std::net::Ipv4Addr::from(network))).unwrap();
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            proptest::prop_assert_eq!(
                cidr.contains(IpAddr::V4(address.into())),
                network & mask == address & mask
            );
        }

        #[test]
        fn parsing_never_panics(text in "[0-9a-f:./ ]{0,45}") {
            let _ = Cidr::parse(&text);
        }
    }
}
