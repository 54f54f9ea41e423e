//! The fast walk: one pass over the bytes of a message of the shape feeds
//! send, finding a mapping's pointers without serde's machinery (on an
//! RTDS trade it costs a fraction of serde_json's walk).
//!
//! It declines (`None`) anything out of the ordinary: a key with an escape
//! or a control character, nesting deeper than [`DEPTH`], a scalar where a
//! pointer goes on, and every mistake. [`Finder::find`] then walks the
//! message with serde_json, which has the whole grammar and the precise
//! error. So it may decline any message, but what it accepts it finds
//! exactly as that walk does (`tests::agrees_with_the_serde_walk`).

use std::ops::{Deref, DerefMut};

use super::{Child, Finder, Found};
use crate::bot::json_text::{plain_length, Cursor};

/// Deeper nesting is declined (serde_json's walk skips it without
/// recursion).
const DEPTH: usize = 64;

/// Walks `json` for `finder`'s pointers into `found`; `None`: declined,
/// `found` half filled.
pub(super) fn find<'m>(finder: &Finder, json: &'m str, found: &mut Found<'m>) -> Option<()> {
    let mut scan = Scan {
        finder,
        cursor: Cursor::new(json),
    };
    scan.skip_space();
    scan.value(Some(0), found, 0)?;
    scan.end().then_some(())
}

/// A cursor, and the pointers it looks for.
struct Scan<'f, 'm> {
    finder: &'f Finder,
    cursor: Cursor<'m>,
}

impl<'m> Deref for Scan<'_, 'm> {
    type Target = Cursor<'m>;

    fn deref(&self) -> &Cursor<'m> {
        &self.cursor
    }
}

impl DerefMut for Scan<'_, '_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.cursor
    }
}

impl<'f, 'm> Scan<'f, 'm> {
    fn children(&self, node: Option<usize>) -> &'f [Child] {
        node.map_or(&[], |node| &self.finder.nodes[node].children)
    }

    /// The value here, where `node` is (`None`: where no pointer reaches),
    /// `depth` containers down.
    fn value(&mut self, node: Option<usize>, found: &mut Found<'m>, depth: usize) -> Option<()> {
        let start = self.at;
        let children = self.children(node);
        match self.peek()? {
            b'{' => self.object(children, found, depth + 1)?,
            b'[' => self.array(children, found, depth + 1)?,
            // serde_json's walk reads such a scalar (a number out of
            // f64's range is an error there): its call.
            _ if !children.is_empty() => return None,
            b'"' => {
                self.at += 1;
                self.string()?;
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            _ => {
                self.number()?;
            }
        }
        if let Some(slot) = node.and_then(|node| self.finder.nodes[node].slot) {
            found[slot] = Some(&self.text[start..self.at]);
        }
        Some(())
    }

    fn object(&mut self, children: &[Child], found: &mut Found<'m>, depth: usize) -> Option<()> {
        if depth > DEPTH {
            return None;
        }
        self.at += 1;
        self.skip_space();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            self.expect(b'"')?;
            let key = self.plain_string()?;
            let child = children
                .iter()
                .find(|child| child.key == key)
                .map(|child| child.node);
            self.skip_space();
            self.expect(b':')?;
            self.skip_space();
            self.value(child, found, depth)?;
            self.skip_space();
            match self.next()? {
                b',' => self.skip_space(),
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn array(&mut self, children: &[Child], found: &mut Found<'m>, depth: usize) -> Option<()> {
        if depth > DEPTH {
            return None;
        }
        self.at += 1;
        self.skip_space();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(());
        }
        for index in 0.. {
            let child = children
                .iter()
                .find(|child| child.index == Some(index))
                .map(|child| child.node);
            self.value(child, found, depth)?;
            self.skip_space();
            match self.next()? {
                b',' => self.skip_space(),
                b']' => return Some(()),
                _ => return None,
            }
        }
        None
    }

    /// After a string's opening quote: past its closing quote, its escapes
    /// checked as serde_json checks a string it skips.
    fn string(&mut self) -> Option<()> {
        loop {
            self.at += plain_length(&self.bytes()[self.at..]);
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => self.escape()?,
                _ => return None,
            }
        }
    }

    fn escape(&mut self) -> Option<()> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => {
                let hex = self.bytes().get(self.at..self.at + 4)?;
                self.at += 4;
                hex.iter().all(u8::is_ascii_hexdigit).then_some(())
            }
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.word(word).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use crate::bot::json_text::strategies::{glued, select};

    use super::super::{Pointer, MAX_POINTERS};
    use super::*;

    const POINTERS: [&str; 9] = [
        "/topic",
        "/payload/side",
        "/payload/size",
        "/payload",
        "/payload/0",
        "/a/1/b",
        "",
        "/x",
        "/é",
    ];

    fn finder() -> Finder {
        let mut finder = Finder::default();
        for pointer in POINTERS {
            finder.add(&Pointer::parse(pointer).unwrap()).unwrap();
        }
        finder
    }

    fn scanned<'m>(finder: &Finder, json: &'m str) -> Option<Found<'m>> {
        let mut found: Found<'_> = [None; MAX_POINTERS];
        find(finder, json, &mut found).map(|()| found)
    }

    fn walked<'m>(finder: &Finder, json: &'m str) -> Option<Found<'m>> {
        let mut found: Found<'_> = [None; MAX_POINTERS];
        finder.walk(json, &mut found).ok().map(|()| found)
    }

    #[test]
    fn takes_what_feeds_send_and_declines_the_rest() {
        let finder = finder();
        let trade = r#"{"topic":"activity","type":"trades","timestamp":1750000000123,"payload":{"slug":"fed","side":"BUY","size":12.5,"price":0.53,"timestamp":1750000000,"transactionHash":"0xabc","name":"a\"b\u00e9","ok":true,"no":null,"list":[1,-2.5e-3,{"x":[]}]}}"#;
        let found = scanned(&finder, trade).unwrap();
        assert_eq!(Some(found), walked(&finder, trade));
        assert_eq!(found[1], Some(r#""BUY""#));
        assert_eq!(found[2], Some("12.5"));
        for declined in [
            r#"{"pay\u006coad":{}}"#,
            r#"{"payload":"a scalar where a pointer goes on"}"#,
            r#"{"topic":"a	tab"}"#,
            r#"{"topic":"\x"}"#,
            r#"{"topic":01}"#,
            r#"{"topic":1.}"#,
            r#"{"topic":-}"#,
            r#"{"topic":tru}"#,
            r#"{"topic":1,}"#,
            r#"{"topic":1} x"#,
            r#"{"topic" 1}"#,
            "",
        ] {
            assert_eq!(scanned(&finder, declined), None, "{declined}");
        }
        let deep = format!("{{\"b\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(scanned(&finder, &deep), None);
        assert!(walked(&finder, &deep).is_some());
    }

    /// Nested objects and arrays whose keys the pointers name: what the
    /// scanner should take.
    fn message() -> impl Strategy<Value = String> {
        let scalar = select(&[
            "\"activity\"",
            "\"\"",
            "\"a\\\"b\\\\c\\/\\b\\f\\n\\r\\t\\u00e9\\ud800\"",
            "\"é✓\"",
            "0",
            "-0",
            "12.5",
            "-3e+2",
            "1E-400",
            "1e400",
            "99999999999999999999999",
            "true",
            "false",
            "null",
        ])
        .prop_map(str::to_owned);
        let key = || {
            select(&[
                "topic", "payload", "side", "size", "a", "b", "x", "é", "", "0",
            ])
        };
        let space = || select(&["", " ", "\t", "\r\n"]);
        scalar.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec((space(), key(), space(), inner.clone()), 0..6).prop_map(
                    |members| {
                        let members: Vec<String> = members
                            .into_iter()
                            .map(|(a, key, b, value)| format!("{a}\"{key}\"{b}:{a}{value}{b}"))
                            .collect();
                        format!("{{{}}}", members.join(","))
                    }
                ),
                prop::collection::vec((space(), inner), 0..5).prop_map(|items| {
                    let items: Vec<String> = items
                        .into_iter()
                        .map(|(space, item)| format!("{space}{item}"))
                        .collect();
                    format!("[{}]", items.join(","))
                }),
            ]
        })
    }

    /// Pieces of messages glued at random: the near misses.
    fn glued_pieces() -> impl Strategy<Value = String> {
        glued(&[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            " ",
            "\"",
            "\\",
            "\\u",
            "00e9",
            "\"topic\"",
            "\"payload\"",
            "\"side\"",
            "\"x\"",
            "\"BUY\"",
            "0",
            "1",
            "-",
            ".",
            "e",
            "+",
            "true",
            "nul",
            "null",
            "\u{1}",
        ])
    }

    proptest! {
        #[test]
        fn agrees_with_the_serde_walk(text in prop_oneof![message(), glued_pieces()]) {
            let finder = finder();
            if let Some(found) = scanned(&finder, &text) {
                prop_assert_eq!(Some(found), walked(&finder, &text), "{}", text);
            }
        }
    }
}
