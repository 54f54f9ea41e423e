//! A batch's lines, parsed where they were read. A source parses on its
//! own thread (or task), so on a busy feed parsing runs beside the loop,
//! which decides and journals the batch before while this one is parsed.
//!
//! A parsed item (a signal or a price update) borrows its strings from
//! the line, which cannot travel with it; so its strings are copied end to
//! end into one buffer of the batch (a few dozen bytes, no allocation per
//! item), and the loop borrows them from there, already checked UTF-8.
//! A signal's id is hashed for the exactly-once window here too
//! ([`id_hash`]): the loop, which bounds ingest, finds it done.

use std::borrow::Cow;
use std::ops::Range;

use super::lines::{Line, Lines};
use crate::bot::ledger::window::id_hash;
use crate::bot::money::{Price, Quantity};
use crate::bot::signal::{self, Ids, Item, PriceUpdate, Reason, Reject, Side, Signal};

/// Lines with the outcome of parsing each.
#[derive(Debug, Default)]
pub(crate) struct ParsedLines {
    lines: Lines,
    parsed: Vec<Result<Located, Reject>>,
    /// The parsed signals' strings.
    text: String,
    /// Messages a mapping ignored (not for it: an acknowledgement, another
    /// topic): counted, not decided.
    ignored: u64,
}

impl ParsedLines {
    /// `ids`: whether a signal without an id is refused or given one.
    pub(crate) fn new(lines: Lines, ids: Ids) -> Self {
        let mut text = String::new();
        let parsed = lines
            .iter()
            .map(|line| match line {
                Line::Bytes(bytes) => {
                    signal::parse_with(bytes, ids).map(|item| Located::new(item, &mut text))
                }
                Line::TooLong(length) => Err(too_long(length)),
            })
            .collect();
        ParsedLines {
            lines,
            parsed,
            text,
            ignored: 0,
        }
    }

    /// Adds one item as received and what it parsed or mapped to.
    pub(crate) fn push(&mut self, bytes: &[u8], parsed: Result<Item<'_>, Reject>) {
        self.lines.push(bytes);
        self.parsed
            .push(parsed.map(|item| Located::new(item, &mut self.text)));
    }

    /// Counts a message a mapping ignored.
    pub(crate) fn ignore(&mut self) {
        self.ignored += 1;
    }

    /// Messages received: the items, and those ignored.
    pub(crate) fn messages(&self) -> u64 {
        self.parsed.len() as u64 + self.ignored
    }

    /// Items that are signals or price updates; the rest are rejects.
    pub(crate) fn signals(&self) -> u64 {
        self.parsed.iter().filter(|parsed| parsed.is_ok()).count() as u64
    }

    pub(crate) fn ignored(&self) -> u64 {
        self.ignored
    }

    pub(crate) fn len(&self) -> usize {
        self.parsed.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.parsed.is_empty()
    }

    /// Each line as the loop decides it.
    pub(crate) fn iter(&self) -> impl Iterator<Item = Taken<'_>> {
        self.lines.iter().zip(&self.parsed).map(|(line, parsed)| {
            let bytes = match line {
                Line::Bytes(bytes) => bytes,
                Line::TooLong(_) => &[],
            };
            let (item, id_hash) = match parsed {
                Ok(located) => (Ok(located.item(&self.text)), located.id_hash()),
                Err(reject) => (Err(reject), None),
            };
            Taken {
                bytes,
                item,
                id_hash,
            }
        })
    }
}

/// A line of a batch, as the loop decides it.
pub(crate) struct Taken<'a> {
    /// As received (empty for one too long to keep).
    pub(crate) bytes: &'a [u8],
    /// Its item, or why it is not one.
    pub(crate) item: Result<Item<'a>, &'a Reject>,
    /// A signal's [`id_hash`].
    pub(crate) id_hash: Option<u32>,
}

/// The reject of a line over [`signal::MAX_LINE_BYTES`], by its length.
pub(crate) fn too_long(length: usize) -> Reject {
    Reject::new(
        Reason::LineTooLong,
        format!(
            "line of {length} bytes is over the {}-byte limit",
            signal::MAX_LINE_BYTES
        ),
    )
}

/// An [`Item`] with its strings as positions in the batch's `text`.
#[derive(Debug)]
enum Located {
    Signal {
        id: Range<usize>,
        id_hash: u32,
        ts_ms: i64,
        symbol: Range<usize>,
        side: Side,
        qty: Quantity,
        price: Option<Price>,
        source: Option<Range<usize>>,
    },
    Price {
        symbol: Range<usize>,
        price: Price,
    },
}

impl Located {
    fn new(item: Item<'_>, text: &mut String) -> Self {
        let mut keep = |string: &str| {
            let start = text.len();
            text.push_str(string);
            start..text.len()
        };
        match item {
            Item::Signal(signal) => Located::Signal {
                id: keep(&signal.id),
                id_hash: id_hash(&signal.id),
                ts_ms: signal.ts_ms,
                symbol: keep(&signal.symbol),
                side: signal.side,
                qty: signal.qty,
                price: signal.price,
                source: signal.source.as_deref().map(keep),
            },
            Item::Price(update) => Located::Price {
                symbol: keep(&update.symbol),
                price: update.price,
            },
        }
    }

    fn id_hash(&self) -> Option<u32> {
        match self {
            Located::Signal { id_hash, .. } => Some(*id_hash),
            Located::Price { .. } => None,
        }
    }

    /// `text` is the one the strings were kept in.
    fn item<'a>(&self, text: &'a str) -> Item<'a> {
        let string =
            |range: &Range<usize>| Cow::Borrowed(text.get(range.clone()).unwrap_or_default());
        match self {
            Located::Signal {
                id,
                id_hash: _,
                ts_ms,
                symbol,
                side,
                qty,
                price,
                source,
            } => Item::Signal(Signal {
                id: string(id),
                ts_ms: *ts_ms,
                symbol: string(symbol),
                side: *side,
                qty: *qty,
                price: *price,
                source: source.as_ref().map(string),
            }),
            Located::Price { symbol, price } => Item::Price(PriceUpdate {
                symbol: string(symbol),
                price: *price,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::intake::lines::LineSplitter;

    #[test]
    fn gives_back_what_parse_gives() {
        let text = concat!(
            r#"{"id":"a1","ts":1,"symbol":"BTC","side":"buy","qty":1,"source":"tv"}"#,
            "\n",
            r#"{"id":"a\u0032","ts":2,"symbol":"ETH","side":"sell","qty":2,"price":3}"#,
            "\n",
            r#"{"type":"price","symbol":"BTC","price":"64410.5"}"#,
            "\n",
            "not json\n",
        );
        let mut lines = Lines::default();
        let mut splitter = LineSplitter::default();
        splitter.push(text.as_bytes(), &mut lines);
        let parsed = ParsedLines::new(lines, Ids::Required);
        assert_eq!(parsed.len(), 4);
        for (taken, line) in parsed.iter().zip(text.lines()) {
            assert_eq!(taken.bytes, line.as_bytes());
            let expected = signal::parse(line.as_bytes());
            let hashed = match &expected {
                Ok(Item::Signal(signal)) => Some(id_hash(&signal.id)),
                _ => None,
            };
            assert_eq!(taken.item.map_err(Clone::clone), expected);
            assert_eq!(taken.id_hash, hashed, "{line}");
        }
    }
}
