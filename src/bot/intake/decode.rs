//! How a source's input becomes items for the loop. A source delivers
//! either bytes to split into lines (a file, an exec feed's stdout, stdin:
//! each line one message) or whole messages (a webhook body, a WebSocket
//! frame, a polled page); a message is in the bot's own signal format or
//! mapped by the source's `[source.map]`. Either way it ends as one
//! [`ParsedLines`] in a batch, decoded on the source's own thread or task
//! so the loop only decides.

use std::sync::Arc;

use serde::de::IgnoredAny;

use super::lines::{Line, LineSplitter, Lines};
use super::map::{self, Map, Mapped};
use super::parsed::{too_long, ParsedLines};
use crate::bot::signal::{self, Ids};

/// How one source's input is read.
#[derive(Clone, Debug)]
pub(crate) enum Decoder {
    /// The bot's own signal format; `Ids` says whether a signal without an
    /// id is refused or given one derived from its content.
    Own(Ids),
    /// Any JSON, mapped to signals.
    Mapped(Arc<Map>),
}

impl Decoder {
    /// The lines of a byte stream, a message each.
    pub(crate) fn lines(&self, lines: Lines) -> ParsedLines {
        match self {
            Decoder::Own(ids) => ParsedLines::new(lines, *ids),
            Decoder::Mapped(map) => {
                let mut items = ParsedLines::default();
                for line in lines.iter() {
                    match line {
                        Line::Bytes(bytes) => {
                            map.map(bytes, &mut |mapped| take(&mut items, mapped))
                        }
                        Line::TooLong(length) => items.push(b"", Err(too_long(length))),
                    }
                }
                items
            }
        }
    }

    /// One whole message (a webhook body). In the bot's own format, one
    /// JSON document is one signal (so an array is refused as one), and
    /// anything else one signal a line (JSONL).
    pub(crate) fn message(&self, message: &[u8]) -> ParsedLines {
        let mut items = ParsedLines::default();
        self.each(message, Came::Body, &mut |mapped| take(&mut items, mapped));
        items
    }

    /// One whole message's items, added to `items` (a socket's frame, a
    /// poller's page). In the bot's own format a feed's JSON array is a
    /// list of signals, any other JSON document one signal, and anything
    /// else one signal a line (JSONL).
    pub(crate) fn message_into(&self, message: &[u8], items: &mut ParsedLines) {
        self.each(message, Came::Frame, &mut |mapped| take(items, mapped));
    }

    /// Each item of `message` as it maps, in order, with why one was
    /// ignored: what the batches are made of, and what `source-test`
    /// shows.
    pub(crate) fn each(&self, message: &[u8], came: Came, each: &mut impl FnMut(Mapped<'_>)) {
        let ids = match self {
            Decoder::Mapped(map) => return map.map(message, each),
            Decoder::Own(ids) => *ids,
        };
        match came {
            Came::Line => each(Mapped::Message {
                raw: message,
                signal: signal::parse_with(message, ids),
            }),
            Came::Frame if is_array(message) => map::own_format(message, ids, each),
            Came::Frame | Came::Body => {
                for line in split_body(message).iter() {
                    match line {
                        Line::Bytes(bytes) => each(Mapped::Message {
                            raw: bytes,
                            signal: signal::parse_with(bytes, ids),
                        }),
                        Line::TooLong(length) => each(Mapped::Garbage {
                            raw: b"",
                            reject: too_long(length),
                        }),
                    }
                }
            }
        }
    }
}

/// How a message came, which decides how the bot's own format splits it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Came {
    /// A line of a byte stream (a file, a feed process, stdin): one signal.
    Line,
    /// A webhook body: one JSON document is one signal, else JSONL.
    Body,
    /// A feed's message (a frame, a page): an array is a list of signals.
    Frame,
}

fn take(items: &mut ParsedLines, mapped: Mapped<'_>) {
    match mapped {
        Mapped::Message { raw, signal } => items.push(raw, signal),
        Mapped::Garbage { raw, reject } => items.push(raw, Err(reject)),
        Mapped::Ignored { .. } => items.ignore(),
    }
}

fn is_array(message: &[u8]) -> bool {
    message
        .iter()
        .find(|byte| !byte.is_ascii_whitespace())
        .is_some_and(|first| *first == b'[')
}

/// How a body becomes signals. One JSON document, whatever whitespace and
/// however many lines it spans, is one signal: what TradingView sends.
/// Otherwise the body is JSONL, a signal a line, each refused on its own
/// if it is not one; except when its first line is the unfinished start of
/// a document (a pretty-printed one that is broken further down), which
/// is refused as one signal with one reason rather than a reason a line.
pub fn split_body(body: &[u8]) -> Lines {
    let body = body.strip_prefix(b"\xef\xbb\xbf").unwrap_or(body);
    let whole = || std::iter::once(body).collect();
    if serde_json::from_slice::<IgnoredAny>(body).is_ok() {
        return whole();
    }
    let first_line = body
        .split(|byte| *byte == b'\n')
        .find(|line| !line.iter().all(u8::is_ascii_whitespace));
    if let Some(first_line) = first_line {
        if serde_json::from_slice::<IgnoredAny>(first_line).is_err_and(|error| error.is_eof()) {
            return whole();
        }
    }
    let mut lines = Lines::default();
    let mut splitter = LineSplitter::default();
    splitter.push(body, &mut lines);
    splitter.finish(&mut lines);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::intake::lines::Line;

    fn items(body: &str) -> Vec<String> {
        split_body(body.as_bytes())
            .iter()
            .map(|line| match line {
                Line::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                Line::TooLong(length) => format!("too long: {length}"),
            })
            .collect()
    }

    #[test]
    fn a_document_is_one_signal_and_lines_are_one_each() {
        let pretty = "{\n  \"symbol\": \"BTC\",\n  \"qty\": \"1\"\n}\n";
        assert_eq!(items(pretty), [pretty]);
        assert_eq!(items("\u{feff}{\"a\":\n1}"), ["{\"a\":\n1}"]);
        assert_eq!(items("{\"a\":1}\n{\"b\":2}\n"), ["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(items("{\"a\":1}\nnot json\n"), ["{\"a\":1}", "not json"]);
        assert_eq!(items("not json\n{\"a\":1}"), ["not json", "{\"a\":1}"]);
        // A broken pretty-printed document: one signal, one reason.
        let broken = "{\n  \"symbol\": \"BTC\",\n  \"qty\": 1,\n}";
        assert_eq!(items(broken), [broken]);
        assert_eq!(
            items("plain text alert: BTC crossed 64000"),
            ["plain text alert: BTC crossed 64000"]
        );
        assert!(items(" \n\t\n").is_empty());
        assert!(items("").is_empty());
    }

    proptest::proptest! {
        /// Every body splits without a panic, into what it holds: nothing
        /// is invented, and a body that is one document stays whole.
        #[test]
        fn any_body_splits(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256), object in "[ \n]{0,3}\\{[ \n]{0,3}\"[a-z]{1,4}\"[ \n]{0,3}:[ \n]{0,3}[1-9][0-9]{0,2}[ \n]{0,3}\\}[ \n]{0,3}") {
            let lines = split_body(&body);
            let kept: usize = lines.iter().map(|line| match line { Line::Bytes(bytes) => bytes.len(), Line::TooLong(length) => length }).sum();
            proptest::prop_assert!(kept <= body.len());
            proptest::prop_assert_eq!(split_body(object.as_bytes()).len(), 1);
        }
    }
}
