//! Who may see the dashboard. Positions are private: with a token set,
//! every route but `/health` needs it; without one, `cli` lets the server
//! listen on loopback only.
//!
//! The one token is accepted four ways, so that a browser, a script and a
//! reverse proxy can all use it: `Authorization: Bearer TOKEN`, basic auth
//! with any user name and the token as the password (the browser's own
//! prompt), `?token=TOKEN` (a bookmark; the page then sets a cookie and
//! drops the token from its address), and that cookie.

use base64::Engine as _;
use hyper::header::{HeaderMap, AUTHORIZATION, COOKIE};

use crate::secret::Secret;

const COOKIE_NAME: &str = "tradingbot_web";

pub(crate) struct Access {
    token: Option<Secret>,
    /// The cookie's value: a digest of the token, so the cookie holds no
    /// character a cookie cannot, and the token itself is never stored
    /// by the browser.
    cookie: Option<Secret>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Allowed,
    /// Allowed by `?token=`: a page answers with the cookie and a redirect
    /// to its address without the token.
    AllowedByQuery,
    Denied,
}

impl Access {
    pub(crate) fn new(token: Option<Secret>) -> Self {
        let cookie = token.as_ref().and_then(|token| {
            let mut input = b"tradingbot-web\0".to_vec();
            input.extend_from_slice(token.expose().as_bytes());
            let digest = ring::digest::digest(&ring::digest::SHA256, &input);
            let hex: String = digest
                .as_ref()
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            Secret::parse(&hex).ok()
        });
        Access { token, cookie }
    }

    pub(crate) fn check(&self, headers: &HeaderMap, query_token: Option<&str>) -> Decision {
        let (Some(token), Some(cookie)) = (&self.token, &self.cookie) else {
            return Decision::Allowed;
        };
        let by_header = headers.get_all(AUTHORIZATION).iter().any(|value| {
            let value = value.as_bytes();
            if let Some(given) = value.strip_prefix(b"Bearer ") {
                return token.matches(given);
            }
            value.strip_prefix(b"Basic ").is_some_and(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
                    .and_then(|decoded| {
                        let colon = decoded.iter().position(|byte| *byte == b':')?;
                        Some(token.matches(&decoded[colon + 1..]))
                    })
                    .unwrap_or(false)
            })
        });
        let by_cookie = headers.get_all(COOKIE).iter().any(|value| {
            value
                .as_bytes()
                .split(|byte| *byte == b';')
                .filter_map(|pair| pair.trim_ascii().strip_prefix(COOKIE_NAME.as_bytes()))
                .filter_map(|rest| rest.strip_prefix(b"="))
                .any(|given| cookie.matches(given))
        });
        if by_header || by_cookie {
            Decision::Allowed
        } else if query_token.is_some_and(|given| token.matches(given.as_bytes())) {
            Decision::AllowedByQuery
        } else {
            Decision::Denied
        }
    }

    /// The `Set-Cookie` value that lets a browser in from now on.
    /// `secure` when the page was reached over HTTPS (a TLS proxy says so).
    pub(crate) fn set_cookie(&self, secure: bool) -> Option<String> {
        let cookie = self.cookie.as_ref()?;
        Some(format!(
            "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000{}",
            cookie.expose(),
            if secure { "; Secure" } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&hyper::header::HeaderName, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| ((*name).clone(), value.parse().unwrap()))
            .collect()
    }

    #[test]
    fn a_token_is_accepted_four_ways_and_nothing_else() {
        let access = Access::new(Some(Secret::parse("s3cret").unwrap()));
        let basic = base64::engine::general_purpose::STANDARD.encode("anyone:s3cret");
        let cookie = access.set_cookie(false).unwrap();
        let cookie = cookie.split(';').next().unwrap();
        for allowed in [
            headers(&[(&AUTHORIZATION, "Bearer s3cret")]),
            headers(&[(&AUTHORIZATION, &format!("Basic {basic}"))]),
            headers(&[(&COOKIE, &format!("theme=dark; {cookie}"))]),
        ] {
            assert_eq!(
                access.check(&allowed, None),
                Decision::Allowed,
                "{allowed:?}"
            );
        }
        assert_eq!(
            access.check(&HeaderMap::new(), Some("s3cret")),
            Decision::AllowedByQuery
        );
        let wrong_basic = base64::engine::general_purpose::STANDARD.encode("s3cret:nope");
        for denied in [
            headers(&[]),
            headers(&[(&AUTHORIZATION, "Bearer s3cre")]),
            headers(&[(&AUTHORIZATION, "s3cret")]),
            headers(&[(&AUTHORIZATION, &format!("Basic {wrong_basic}"))]),
            headers(&[(&AUTHORIZATION, "Basic !!!")]),
            headers(&[(&COOKIE, "tradingbot_web=s3cret")]),
            headers(&[(&COOKIE, "tradingbot_webx=1")]),
        ] {
            assert_eq!(
                access.check(&denied, Some("wrong")),
                Decision::Denied,
                "{denied:?}"
            );
        }
        let open = Access::new(None);
        assert_eq!(open.check(&HeaderMap::new(), None), Decision::Allowed);
        assert_eq!(open.set_cookie(true), None);
    }
}
