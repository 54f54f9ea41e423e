//! Splits a byte stream into lines, with a bound: a line longer than
//! [`MAX_LINE_BYTES`] is skipped to its newline and reported by length only,
//! so a feed without newlines cannot make the bot buffer without end.
//!
//! The lines of a read are kept end to end in one buffer ([`Lines`]): one
//! allocation a read instead of one a line, which at a million lines a
//! second is most of what the hand-over between threads costs.

use std::ops::Range;

use crate::bot::signal::MAX_LINE_BYTES;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Bytes(&'a [u8]),
    /// A line over the limit, by its length; its bytes were dropped.
    TooLong(usize),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Span {
    Bytes(Range<usize>),
    TooLong(usize),
}

/// Whole lines, in order, without their newlines.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lines {
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

impl Lines {
    /// Room for `bytes` of lines, so a read's lines go in without the
    /// buffer growing (and copying) as they come.
    pub(crate) fn with_capacity(bytes: usize) -> Self {
        Lines {
            bytes: Vec::with_capacity(bytes),
            // A signal line is rarely under 64 bytes.
            spans: Vec::with_capacity(bytes / 64),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Line<'_>> {
        self.spans.iter().map(|span| match span {
            Span::Bytes(range) => Line::Bytes(&self.bytes[range.clone()]),
            Span::TooLong(length) => Line::TooLong(*length),
        })
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub(crate) fn push(&mut self, line: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(line);
        self.spans.push(Span::Bytes(start..self.bytes.len()));
    }
}

impl<'a> FromIterator<&'a [u8]> for Lines {
    fn from_iter<I: IntoIterator<Item = &'a [u8]>>(lines: I) -> Self {
        let mut all = Lines::default();
        lines.into_iter().for_each(|line| all.push(line));
        all
    }
}

#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// Bytes of an over-long line dropped so far.
    skipping: Option<usize>,
}

impl LineSplitter {
    /// Appends the complete lines in `bytes` (after what was held back) to
    /// `out`. Blank lines are not signals and are dropped.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Lines) {
        while let Some(newline) = memchr::memchr(b'\n', bytes) {
            let line = &bytes[..newline];
            if self.partial.is_empty() && self.skipping.is_none() && line.len() <= MAX_LINE_BYTES {
                // The usual case, a whole line within one read: straight
                // into `out`, without going through `partial`.
                if !is_blank(line) {
                    out.push(line);
                }
            } else {
                self.take(line);
                self.end_line(out);
            }
            bytes = &bytes[newline + 1..];
        }
        self.take(bytes);
    }

    /// Takes one `read` of a stream into `buffer`: its complete lines, or at
    /// the end of the stream (0 bytes, or an error) the last unterminated
    /// line too. Returns whether the stream ended.
    pub fn feed(&mut self, read: &std::io::Result<usize>, buffer: &[u8], out: &mut Lines) -> bool {
        match read {
            Ok(0) | Err(_) => {
                self.finish(out);
                true
            }
            Ok(count) => {
                self.push(&buffer[..*count], out);
                false
            }
        }
    }

    /// Bytes held back for a line whose newline has not arrived.
    pub(crate) fn pending(&self) -> usize {
        self.skipping.unwrap_or(self.partial.len())
    }

    /// Ends the stream: a last line without a newline counts as a line.
    pub fn finish(&mut self, out: &mut Lines) {
        if self.pending() > 0 {
            self.end_line(out);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.partial.clear();
        self.skipping = None;
    }

    fn take(&mut self, bytes: &[u8]) {
        if let Some(skipped) = &mut self.skipping {
            *skipped += bytes.len();
        } else if self.partial.len() + bytes.len() > MAX_LINE_BYTES {
            self.skipping = Some(self.partial.len() + bytes.len());
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, out: &mut Lines) {
        if let Some(length) = self.skipping.take() {
            out.spans.push(Span::TooLong(length));
        } else if !is_blank(&self.partial) {
            out.push(&self.partial);
        }
        self.partial.clear();
    }
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_a_partial_line_until_its_newline() {
        let mut splitter = LineSplitter::default();
        let mut out = Lines::default();
        splitter.push(b"a\n\nb", &mut out);
        assert_eq!(out.iter().collect::<Vec<_>>(), [Line::Bytes(b"a")]);
        assert_eq!(splitter.pending(), 1);
        splitter.push(b"c\n", &mut out);
        assert_eq!(out.iter().nth(1), Some(Line::Bytes(b"bc")));
        assert_eq!(splitter.pending(), 0);
    }

    proptest::proptest! {
        #[test]
        fn chunking_does_not_change_the_lines(
            text in "([a-z{}\":, ]{0,20}\n){0,12}[a-z]{0,5}",
            cuts in proptest::collection::vec(0usize..300, 0..8),
        ) {
            let bytes = text.as_bytes();
            let mut whole = Lines::default();
            let mut splitter = LineSplitter::default();
            splitter.push(bytes, &mut whole);
            let mut pieces = Lines::default();
            let mut splitter = LineSplitter::default();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|cut| cut.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut start = 0;
            for cut in cuts.into_iter().chain(std::iter::once(bytes.len())) {
                splitter.push(&bytes[start..cut], &mut pieces);
                start = cut;
            }
            proptest::prop_assert_eq!(whole, pieces);
        }
    }

    #[test]
    fn an_over_long_line_is_reported_by_length() {
        let mut splitter = LineSplitter::default();
        let mut out = Lines::default();
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        splitter.push(&long[..100], &mut out);
        splitter.push(&long[100..], &mut out);
        splitter.push(b"\nok\n", &mut out);
        let mut whole = vec![b'y'; MAX_LINE_BYTES + 1];
        whole.extend_from_slice(b"\n \t\n");
        splitter.push(&whole, &mut out);
        assert_eq!(
            out.iter().collect::<Vec<_>>(),
            [
                Line::TooLong(MAX_LINE_BYTES + 10),
                Line::Bytes(b"ok"),
                Line::TooLong(MAX_LINE_BYTES + 1),
            ]
        );
    }
}
