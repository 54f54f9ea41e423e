//! What `tradingbot web` is configured with, validated once by `cli`.

use std::net::SocketAddr;
use std::time::Duration;

use crate::health::settings::NotifySocket;
use crate::logging;
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    /// In the order given: the fleet page shows them in this order.
    pub(crate) bots: Vec<BotSpec>,
    /// Required unless `listen` is a loopback address (positions are private).
    pub(crate) token: Option<Secret>,
    /// How often each bot's status and positions are read.
    pub(crate) poll_interval: Duration,
    /// The longest one request to a bot may take (the event stream's
    /// connect and first answer included).
    pub(crate) bot_timeout: Duration,
    pub(crate) log: logging::Settings,
    pub(crate) notify_socket: Option<NotifySocket>,
}

/// One bot, as `NAME=URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BotSpec {
    /// Letters, digits, `-` and `_`: it is a path segment (`/bot/NAME`).
    pub(crate) name: String,
    /// `http://host:port` or `https://host[:port][/prefix]`, without a
    /// trailing slash; the API's paths are appended to it.
    pub(crate) url: String,
    /// The bot's read token (`API_TOKEN`), if it has one.
    pub(crate) token: Option<Secret>,
}

const MAX_NAME: usize = 64;

impl BotSpec {
    /// Parses `NAME=URL`; the error says what is wrong in a few words.
    pub(crate) fn parse(text: &str) -> Result<BotSpec, String> {
        let (name, url) = text
            .trim()
            .split_once('=')
            .ok_or_else(|| format!("{text:?} is not NAME=URL"))?;
        let name = name.trim();
        if name.is_empty()
            || name.len() > MAX_NAME
            || !name
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        {
            return Err(format!(
                "bot name {name:?} must be 1 to {MAX_NAME} letters, digits, '-' or '_'"
            ));
        }
        Ok(BotSpec {
            name: name.to_owned(),
            url: parse_base_url(url.trim()).map_err(|problem| format!("bot {name}: {problem}"))?,
            token: None,
        })
    }
}

/// Checks a bot's base URL: http or https, a host, no credentials, query
/// or fragment (the read token goes in a file, never in a URL).
fn parse_base_url(text: &str) -> Result<String, String> {
    let uri: hyper::Uri = text.parse().map_err(|_| format!("{text:?} is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(format!("{text:?} must start with http:// or https://")),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{text:?} has no host"))?;
    if authority.as_str().contains('@') {
        return Err("a URL must not carry credentials: put the read token in a file".into());
    }
    if authority.host().is_empty() {
        return Err(format!("{text:?} has no host"));
    }
    if uri.query().is_some() || text.contains('#') {
        return Err(format!("{text:?} must not have a query or a fragment"));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bot_specs() {
        let spec = BotSpec::parse("alpha=http://10.0.0.5:8080/").unwrap();
        assert_eq!(spec.name, "alpha");
        assert_eq!(spec.url, "http://10.0.0.5:8080");
        let spec = BotSpec::parse("b_2=https://bots.example.com/alpha").unwrap();
        assert_eq!(spec.url, "https://bots.example.com/alpha");
        for bad in [
            "alpha",
            "=http://h",
            "al/pha=http://h",
            "a b=http://h",
            "a=ftp://h",
            "a=h:8080",
            "a=http://user:pw@h",
            "a=http://h/?token=x",
            "a=http://h/#x",
            "a=",
        ] {
            assert!(BotSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
