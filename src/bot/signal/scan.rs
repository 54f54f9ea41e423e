//! The fast way to a signal's fields: one pass over the bytes of a flat
//! JSON object, borrowing every string, for the lines feeds actually send.
//!
//! It knows only that plain shape: string keys and values without escapes,
//! numbers, `true`, `false`, `null`, no nesting, no repeated field. On
//! anything else it returns `None` and the line goes through serde_json,
//! which has the whole grammar and the precise error. So it may decline any
//! line, but a line it accepts must give exactly the fields serde_json gives
//! (`tests::agrees_with_serde_json`, and the `signal` fuzz target).

use std::borrow::Cow;

use super::{Fields, Raw};

pub(super) fn fields(text: &str) -> Option<Fields<'_>> {
    let mut scanner = Scanner { text, at: 0 };
    let mut fields = Fields::default();
    scanner.skip_space();
    scanner.expect(b'{')?;
    scanner.skip_space();
    if scanner.peek()? == b'}' {
        scanner.at += 1;
        return scanner.end().then_some(fields);
    }
    loop {
        let key = scanner.string()?;
        scanner.skip_space();
        scanner.expect(b':')?;
        scanner.skip_space();
        let value = scanner.value()?;
        let mut ignored = Raw::Absent;
        // Byte patterns compile to a few compares; `str` patterns to
        // `memcmp` calls, a tenth of the whole parse.
        let slot = match key.as_bytes() {
            [b'i', b'd'] => &mut fields.id,
            [b't', b's'] => &mut fields.ts,
            [b's', b'y', b'm', b'b', b'o', b'l'] => &mut fields.symbol,
            [b's', b'i', b'd', b'e'] => &mut fields.side,
            [b'q', b't', b'y'] => &mut fields.qty,
            [b'p', b'r', b'i', b'c', b'e'] => &mut fields.price,
            [b's', b'o', b'u', b'r', b'c', b'e'] => &mut fields.source,
            _ => &mut ignored,
        };
        if *slot != Raw::Absent {
            // serde_json refuses a repeated field; let it say so.
            return None;
        }
        *slot = value;
        scanner.skip_space();
        match scanner.next()? {
            b',' => scanner.skip_space(),
            b'}' => return scanner.end().then_some(fields),
            _ => return None,
        }
    }
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Only whitespace is left.
    fn end(&mut self) -> bool {
        self.skip_space();
        self.at == self.text.len()
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let length = self.text.as_bytes()[start..]
            .iter()
            .position(|byte| matches!(byte, b'"' | b'\\' | 0..=0x1f))?;
        self.at = start + length;
        self.expect(b'"')?;
        // The text is UTF-8 and both ends are at an ASCII quote.
        self.text.get(start..start + length)
    }

    fn value(&mut self) -> Option<Raw<'a>> {
        match self.peek()? {
            b'"' => Some(Raw::Str(Cow::Borrowed(self.string()?))),
            b'0'..=b'9' => self.number(),
            b't' => self.word("true", Raw::Other),
            b'f' => self.word("false", Raw::Other),
            b'n' => self.word("null", Raw::Null),
            // A negative number, an array or an object: rare in a signal,
            // and serde_json's to judge.
            _ => None,
        }
    }

    fn word(&mut self, word: &str, raw: Raw<'a>) -> Option<Raw<'a>> {
        let rest = self.text.get(self.at..)?;
        rest.starts_with(word).then(|| {
            self.at += word.len();
            raw
        })
    }

    /// A non-negative JSON number: an integer that fits an `i64` as
    /// [`Raw::Int`], one with a fraction or an exponent as a finite
    /// [`Raw::Float`] (correctly rounded, as serde_json's `float_roundtrip`
    /// does it).
    fn number(&mut self) -> Option<Raw<'a>> {
        let start = self.at;
        let digits = |scanner: &mut Scanner<'_>| {
            let from = scanner.at;
            while matches!(scanner.peek(), Some(b'0'..=b'9')) {
                scanner.at += 1;
            }
            scanner.at - from
        };
        let whole = digits(self);
        if whole > 1 && self.text.as_bytes()[start] == b'0' {
            return None;
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.at += 1;
            integer = false;
            if digits(self) == 0 {
                return None;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            integer = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        let number = self.text.get(start..self.at)?;
        if integer {
            number.parse().ok().map(Raw::Int)
        } else {
            number
                .parse::<f64>()
                .ok()
                .filter(|value| value.is_finite())
                .map(Raw::Float)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

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
        for declined in [
            r#"{"id":"a\"1"}"#,
            r#"{"id":"a","id":"b"}"#,
            r#"{"qty":-1}"#,
            r#"{"qty":01}"#,
            r#"{"qty":1.}"#,
            r#"{"qty":1e999}"#,
            r#"{"qty":99999999999999999999}"#,
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

    fn select(items: &[&'static str]) -> impl Strategy<Value = &'static str> {
        prop::sample::select(items.to_vec())
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
        let piece = select(&[
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
            ".",
            "e",
            "+",
            "1714557600250",
            "9223372036854775808",
            "true",
            "null",
            "[",
            "]",
        ]);
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #[test]
        fn agrees_with_serde_json(text in prop_oneof![plain_object(), glued_pieces()]) {
            if let Some(scanned) = fields(&text) {
                prop_assert_eq!(Some(scanned), general(&text), "{}", text);
            }
        }

        #[test]
        fn reads_numbers_as_serde_json_does(mantissa in any::<u64>(), fraction in any::<u32>(), exponent in -330i32..330) {
            for text in [
                format!(r#"{{"qty":{mantissa}}}"#),
                format!(r#"{{"qty":{mantissa}.{fraction}}}"#),
                format!(r#"{{"qty":{mantissa}.{fraction}e{exponent}}}"#),
                format!(r#"{{"qty":{}}}"#, f64::from_bits(mantissa).abs()),
            ] {
                if let Some(scanned) = fields(&text) {
                    prop_assert_eq!(Some(scanned), general(&text), "{}", text);
                }
            }
        }
    }
}
