//! Query strings (`after=120&limit=50&types=fill,reject&token=…`): pairs
//! split on `&` and the first `=`, percent-decoded (RFC 3986; a `+` stays
//! a `+`, so a token holding one needs no escaping). Anything malformed is
//! an error the route answers 400 to, never a panic.

use std::borrow::Cow;

#[derive(Debug, Default)]
pub struct Query<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Why a query string or one of its values was refused. Never holds the
/// value itself: it may be a token.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query string has a bad percent escape or is not UTF-8")]
    Encoding,
    #[error("{name} is given twice")]
    Repeated { name: &'static str },
    #[error("{name} must be {expected}")]
    Invalid {
        name: &'static str,
        expected: &'static str,
    },
}

impl<'a> Query<'a> {
    pub fn parse(query: &'a str) -> Result<Query<'a>, QueryError> {
        let mut pairs = Vec::new();
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((decode(name)?, decode(value)?));
        }
        Ok(Query { pairs })
    }

    /// Every value given for `name`, in order.
    pub fn all<'q>(&'q self, name: &'q str) -> impl Iterator<Item = &'q str> + 'q {
        self.pairs
            .iter()
            .filter(move |(key, _)| key == name)
            .map(|(_, value)| value.as_ref())
    }

    /// The one value of `name`, if given; given twice is an error (which
    /// one was meant?).
    pub fn one(&self, name: &'static str) -> Result<Option<&str>, QueryError> {
        let mut values = self.all(name);
        let first = values.next();
        match values.next() {
            Some(_) => Err(QueryError::Repeated { name }),
            None => Ok(first),
        }
    }

    /// `name` as a whole number within `range`, or `default` when absent.
    pub(crate) fn number(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
        expected: &'static str,
    ) -> Result<u64, QueryError> {
        let Some(text) = self.one(name)? else {
            return Ok(default);
        };
        text.parse::<u64>()
            .ok()
            .filter(|value| range.contains(value) && text.bytes().all(|byte| byte.is_ascii_digit()))
            .ok_or(QueryError::Invalid { name, expected })
    }
}

/// Percent-decodes one name or value; `%` not followed by two hex digits,
/// or bytes that are not UTF-8, are an error.
pub(crate) fn decode(text: &str) -> Result<Cow<'_, str>, QueryError> {
    if !text.contains('%') {
        return Ok(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = bytes.get(at + 1..at + 3).ok_or(QueryError::Encoding)?;
            let hex = std::str::from_utf8(hex).map_err(|_| QueryError::Encoding)?;
            if !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Err(QueryError::Encoding);
            }
            decoded.push(u8::from_str_radix(hex, 16).map_err(|_| QueryError::Encoding)?);
            at += 3;
        } else {
            decoded.push(bytes[at]);
            at += 1;
        }
    }
    String::from_utf8(decoded)
        .map(Cow::Owned)
        .map_err(|_| QueryError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pairs_and_decodes() {
        let query = Query::parse("after=12&limit=&&token=a%2Bb+c&types=fill,reject&x").unwrap();
        assert_eq!(query.one("after"), Ok(Some("12")));
        assert_eq!(query.one("limit"), Ok(Some("")));
        assert_eq!(query.one("token"), Ok(Some("a+b+c")));
        assert_eq!(query.one("x"), Ok(Some("")));
        assert_eq!(query.one("missing"), Ok(None));
        assert_eq!(query.number("after", 0, 0..=u64::MAX, "n"), Ok(12));
        assert_eq!(query.number("missing", 7, 0..=9, "n"), Ok(7));
        assert!(query.number("limit", 1, 1..=1000, "1 to 1000").is_err());
        let twice = Query::parse("after=1&after=2").unwrap();
        assert_eq!(
            twice.one("after"),
            Err(QueryError::Repeated { name: "after" })
        );
        for bad in ["a=%", "a=%4", "a=%zz", "a=%ff", "%c3%28=1"] {
            assert_eq!(
                Query::parse(bad).unwrap_err(),
                QueryError::Encoding,
                "{bad}"
            );
        }
        for number in ["-1", "+1", " 1", "1e3", "18446744073709551616", "0x1"] {
            let query = Query::parse(&format!("after={number}"))
                .map(|query| query.number("after", 0, 0..=u64::MAX, "a sequence number"));
            assert!(matches!(query, Ok(Err(_)) | Err(_)), "{number}");
        }
    }

    proptest::proptest! {
        /// Any query string is read or refused, never a panic; what it
        /// reads back decodes what an encoder wrote.
        #[test]
        fn any_query_string(text in "[a-z0-9=&%+,._~-]{0,64}", value in "\\PC{0,16}") {
            let _ = Query::parse(&text);
            let encoded: String = value
                .bytes()
                .map(|byte| format!("%{byte:02X}"))
                .collect();
            let query = format!("v={encoded}");
            let parsed = Query::parse(&query).unwrap();
            proptest::prop_assert_eq!(parsed.one("v").unwrap(), Some(value.as_str()));
        }
    }
}
