//! The fast way to a signal's fields: one pass over the bytes of a flat
//! JSON object, borrowing every string, for the lines feeds actually send.
//!
//! It knows only that plain shape: string keys and values without escapes,
//! numbers (kept as their own text), `true`, `false`, `null`, no nesting,
//! no repeated field. On
//! anything else it returns `None` and the line goes through serde_json,
//! which has the whole grammar and the precise error. So it may decline any
//! line, but a line it accepts must give exactly the fields serde_json gives
//! (`tests::agrees_with_serde_json`, and the `signal` fuzz target).

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};

use super::{Fields, Raw};
use crate::bot::json_text::Cursor;

pub(super) fn fields(text: &str) -> Option<Fields<'_>> {
    let mut scanner = Scanner(Cursor::new(text));
    let mut fields = Fields::default();
    scanner.skip_space();
    scanner.expect(b'{')?;
    scanner.skip_space();
    if scanner.peek() == Some(b'}') {
        scanner.at += 1;
        return scanner.end().then_some(fields);
    }
    loop {
        scanner.expect(b'"')?;
        let mut ignored = Raw::Absent;
        let slot = match scanner.known_key() {
            Some(Key::Type) => &mut fields.kind,
            Some(Key::Id) => &mut fields.id,
            Some(Key::Ts) => &mut fields.ts,
            Some(Key::Symbol) => &mut fields.symbol,
            Some(Key::Side) => &mut fields.side,
            Some(Key::Qty) => &mut fields.qty,
            Some(Key::Price) => &mut fields.price,
            Some(Key::Source) => &mut fields.source,
            None => {
                scanner.plain_string()?;
                &mut ignored
            }
        };
        if !matches!(slot, Raw::Absent) {
            // serde_json refuses a repeated field; let it say so.
            return None;
        }
        scanner.skip_space();
        scanner.expect(b':')?;
        scanner.skip_space();
        *slot = scanner.value()?;
        scanner.skip_space();
        match scanner.next()? {
            b',' => scanner.skip_space(),
            b'}' => return scanner.end().then_some(fields),
            _ => return None,
        }
    }
}

enum Key {
    Type,
    Id,
    Ts,
    Symbol,
    Side,
    Qty,
    Price,
    Source,
}

/// A cursor with the signal's own steps.
struct Scanner<'a>(Cursor<'a>);

impl<'a> Deref for Scanner<'a> {
    type Target = Cursor<'a>;

    fn deref(&self) -> &Cursor<'a> {
        &self.0
    }
}

impl DerefMut for Scanner<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl<'a> Scanner<'a> {
    /// After a key's opening quote: one of the signal's keys, with its
    /// closing quote, or `None` (and nothing consumed) for any other key.
    /// Comparing against the few keys there are is much cheaper than
    /// scanning for the quote and then comparing.
    fn known_key(&mut self) -> Option<Key> {
        let rest = self.bytes().get(self.at..)?;
        let (key, length) = match rest.first()? {
            b'i' if rest.starts_with(b"id\"") => (Key::Id, 3),
            b't' if rest.starts_with(b"ts\"") => (Key::Ts, 3),
            b't' if rest.starts_with(b"type\"") => (Key::Type, 5),
            b's' if rest.starts_with(b"symbol\"") => (Key::Symbol, 7),
            b's' if rest.starts_with(b"side\"") => (Key::Side, 5),
            b's' if rest.starts_with(b"source\"") => (Key::Source, 7),
            b'q' if rest.starts_with(b"qty\"") => (Key::Qty, 4),
            b'p' if rest.starts_with(b"price\"") => (Key::Price, 6),
            _ => return None,
        };
        self.at += length;
        Some(key)
    }

    fn value(&mut self) -> Option<Raw<'a>> {
        match self.peek()? {
            b'"' => {
                self.at += 1;
                Some(Raw::Str(Cow::Borrowed(self.plain_string()?)))
            }
            b'-' | b'0'..=b'9' => self.number().map(Raw::number),
            b't' => self.word(b"true").then_some(Raw::Other),
            b'f' => self.word(b"false").then_some(Raw::Other),
            b'n' => self.word(b"null").then_some(Raw::Null),
            // An array or an object: rare in a signal, and serde_json's to
            // judge.
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::bot::json_text::strategies::{glued, select};

    use super::*;

    fn general(text: &str) -> Option<Fields<'_>> {
        serde_json::from_str(text).ok()
    }

    #[test]
    fn takes_the_plain_shape_and_declines_the_rest() {
        let plain = r#" {"id":"a1", "ts":1714557600250,"symbol":"BTC-USD","side":"buy","qty":0.5,"price":64000,"x":true,"source":null} "#;
        let scanned = fields(plain).unwrap();
        assert_eq!(Some(&scanned), general(plain).as_ref());
        assert!(matches!(scanned.id, Raw::Str(Cow::Borrowed("a1"))));
        // A number is its own text, however many digits it has.
        let exact = r#"{"qty":0.1000000000000000055,"price":-1e999,"ts":99999999999999999999}"#;
        let scanned = fields(exact).unwrap();
        assert_eq!(Some(&scanned), general(exact).as_ref());
        assert_eq!(scanned.qty, Raw::Number("0.1000000000000000055"));
        assert_eq!(scanned.price, Raw::Number("-1e999"));
        for declined in [
            r#"{"id":"a\"1"}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"qty":01}"#,
            r#"{"qty":-01}"#,
            r#"{"qty":-}"#,
            r#"{"qty":1.}"#,
            r#"{"qty":1e}"#,
            r#"{"qty":1e+}"#,
            r#"{"qty":.5}"#,
            r#"{"x":[1]}"#,
            r#"{"id":"a"} x"#,
            r#"{"id":"a",}"#,
            r#"{"id":nul}"#,
            "{\"id\":\"a\tb\"}",
            "[1]",
            "",
        ] {
            assert_eq!(fields(declined), None, "{declined}");
        }
    }

    /// Flat objects of signal-like members: the shape the scanner takes.
    fn plain_object() -> impl Strategy<Value = String> {
        let space = || select(&["", " ", "\t", "\r\n"]);
        let key = select(&[
            "\"id\"",
            "\"ts\"",
            "\"symbol\"",
            "\"side\"",
            "\"qty\"",
            "\"price\"",
            "\"source\"",
            "\"type\"",
            "\"x\"",
            "\"\"",
            "\"é\"",
        ]);
        let value = select(&[
            "\"a1\"",
            "\"\"",
            "\"buy\"",
            "\"sell\"",
            "\"é✓\"",
            "\"\u{7f}\u{85}\"",
            "0",
            "7",
            "1714557600250",
            "0.1",
            "64000.25",
            "1e3",
            "2E-2",
            "1.5e+300",
            "1e-400",
            "9223372036854775807",
            "0.30000000000000004",
            "2.2250738585072014e-308",
            "true",
            "false",
            "null",
            "\"2024-05-01T12:00:00Z\"",
            "\"price\"",
            "-0",
            "-12.5e-3",
            "0.1000000000000000055",
            "1e999",
        ]);
        prop::collection::vec((space(), key, space(), value, space()), 0..9).prop_map(|members| {
            let members: Vec<String> = members
                .into_iter()
                .map(|(a, key, b, value, c)| format!("{a}{key}{b}:{c}{value}"))
                .collect();
            format!("{{{}}}", members.join(","))
        })
    }

    /// Pieces of signal lines glued at random: the near misses the scanner
    /// must decline.
    fn glued_pieces() -> impl Strategy<Value = String> {
        glued(&[
            "{",
            "}",
            ",",
            ":",
            " ",
            "\"",
            "\\",
            "\"id\"",
            "\"qty\"",
            "\"a1\"",
            "\"buy\"",
            "0",
            "1",
            "-",
            "-0",
            ".",
            "e",
            "+",
            "1714557600250",
            "9223372036854775808",
            "true",
            "null",
            "[",
            "]",
        ])
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json(text in prop_oneof![plain_object(), glued_pieces()]) {
            if let Some(scanned) = fields(&text) {
                prop_assert_eq!(Some(scanned), general(&text), "{}", text);
            }
        }

        #[test]
        fn reads_numbers_as_serde_json_does(
            mantissa in any::<u64>(),
            fraction in any::<u32>(),
            exponent in -330i32..330,
            short in 0u64..10_000_000,
            zeros in 0usize..12,
        ) {
            let (whole, decimals) = (short / 1000, short % 1000);
            for text in [
                format!(r#"{{"qty":{mantissa}}}"#),
                format!(r#"{{"qty":{mantissa}.{fraction}}}"#),
                format!(r#"{{"qty":{whole}.{}{decimals}}}"#, "0".repeat(zeros)),
                format!(r#"{{"qty":{short}.{mantissa}}}"#),
                format!(r#"{{"qty":{}}}"#, mantissa % 10u64.pow(zeros as u32 + 7)),
                format!(r#"{{"qty":{mantissa}.{fraction}e{exponent}}}"#),
                format!(r#"{{"qty":-{mantissa}.{fraction}E+{}}}"#, exponent.abs()),
                format!(r#"{{"qty":{}}}"#, f64::from_bits(mantissa).abs()),
            ] {
                if let Some(scanned) = fields(&text) {
                    prop_assert_eq!(Some(scanned), general(&text), "{}", text);
                }
            }
        }
    }
}
