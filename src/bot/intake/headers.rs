//! A remote source's `headers_file`: the HTTP headers its requests and
//! WebSocket handshakes carry (an API key, `Authorization: Bearer …`). One
//! `Name: value` a line; blank lines and lines starting with `#` are
//! skipped. The values are credentials: kept as [`Secret`]s, and no error
//! quotes one.

use std::path::Path;

use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};

use crate::secret::Secret;

/// Headers the clients write themselves: one from a file would contradict
/// them or break the request.
const RESERVED: &[&str] = &[
    "host",
    "connection",
    "upgrade",
    "content-length",
    "transfer-encoding",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
];

#[derive(Clone, Debug, Default)]
pub(crate) struct Headers(Vec<Header>);

#[derive(Clone, Debug)]
pub(crate) struct Header {
    /// Lower case, as HTTP/2 and the `http` crate spell it.
    pub(crate) name: String,
    pub(crate) value: Secret,
}

impl Headers {
    /// Reads `path`; the error says which line is wrong and why.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        Self::parse(&text).map_err(|error| format!("{}: {error}", path.display()))
    }

    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut headers = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let header =
                parse_line(line).map_err(|error| format!("line {}: {error}", index + 1))?;
            headers.push(header);
        }
        Ok(Headers(headers))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }
}

fn parse_line(line: &str) -> Result<Header, String> {
    let Some((name, value)) = line.split_once(':') else {
        return Err("not a header: write it as Name: value".into());
    };
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| "the name before ':' is not a valid header name".to_owned())?;
    if RESERVED.contains(&name.as_str()) {
        return Err(format!("{name} is set by the client itself"));
    }
    let value = Secret::parse(value).map_err(|error| format!("the value of {name} {error}"))?;
    HeaderValue::from_str(value.expose())
        .map_err(|_| format!("the value of {name} holds a character a header cannot carry"))?;
    Ok(Header {
        name: name.as_str().to_owned(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values_one_a_line() {
        let headers =
            Headers::parse("# the feed's key\nAuthorization: Bearer abc:def\n\nX-Api-Key:  k1 \n")
                .unwrap();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|header| (header.name.as_str(), header.value.expose()))
            .collect();
        assert_eq!(
            pairs,
            [("authorization", "Bearer abc:def"), ("x-api-key", "k1")]
        );
    }

    #[test]
    fn a_wrong_line_is_named_and_its_value_never_quoted() {
        for (text, expected) in [
            ("Authorization Bearer s3cretvalue", "line 1: not a header"),
            ("\nBad Name: s3cretvalue", "line 2: the name before ':'"),
            (
                "Host: s3cretvalue",
                "line 1: host is set by the client itself",
            ),
            ("X-Key:   ", "line 1: the value of x-key must not be empty"),
            (
                "X-Key: s3cret\u{7f}value",
                "line 1: the value of x-key holds a character",
            ),
        ] {
            let error = Headers::parse(text).unwrap_err();
            assert!(error.starts_with(expected), "{text:?}: {error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
    }

    #[test]
    fn a_value_is_redacted_in_debug() {
        let headers = Headers::parse("X-Key: s3cretvalue").unwrap();
        assert!(!format!("{headers:?}").contains("s3cret"));
    }
}
