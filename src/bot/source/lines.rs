//! Splits a byte stream into lines, with a bound: a line longer than
//! [`MAX_LINE_BYTES`] is skipped to its newline and reported by length only,
//! so a feed without newlines cannot make the bot buffer without end.

use crate::bot::signal::MAX_LINE_BYTES;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    Bytes(Vec<u8>),
    /// A line over the limit, by its length; its bytes were dropped.
    TooLong(usize),
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
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Line>) {
        while let Some(newline) = bytes.iter().position(|byte| *byte == b'\n') {
            self.take(&bytes[..newline]);
            self.end_line(out);
            bytes = &bytes[newline + 1..];
        }
        self.take(bytes);
    }

    /// Takes one `read` of a stream into `buffer`: its complete lines, or at
    /// the end of the stream (0 bytes, or an error) the last unterminated
    /// line too. Returns whether the stream ended.
    pub fn feed(
        &mut self,
        read: &std::io::Result<usize>,
        buffer: &[u8],
        out: &mut Vec<Line>,
    ) -> bool {
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
    pub fn pending(&self) -> usize {
        self.skipping.unwrap_or(self.partial.len())
    }

    /// Ends the stream: a last line without a newline counts as a line.
    pub fn finish(&mut self, out: &mut Vec<Line>) {
        if self.pending() > 0 {
            self.end_line(out);
        }
    }

    pub fn clear(&mut self) {
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

    fn end_line(&mut self, out: &mut Vec<Line>) {
        if let Some(length) = self.skipping.take() {
            out.push(Line::TooLong(length));
        } else if self.partial.iter().any(|byte| !byte.is_ascii_whitespace()) {
            out.push(Line::Bytes(std::mem::take(&mut self.partial)));
        } else {
            self.partial.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_a_partial_line_until_its_newline() {
        let mut splitter = LineSplitter::default();
        let mut out = Vec::new();
        splitter.push(b"a\n\nb", &mut out);
        assert_eq!(out, vec![Line::Bytes(b"a".to_vec())]);
        assert_eq!(splitter.pending(), 1);
        splitter.push(b"c\n", &mut out);
        assert_eq!(out[1], Line::Bytes(b"bc".to_vec()));
        assert_eq!(splitter.pending(), 0);
    }

    proptest::proptest! {
        #[test]
        fn chunking_does_not_change_the_lines(
            text in "([a-z{}\":, ]{0,20}\n){0,12}[a-z]{0,5}",
            cuts in proptest::collection::vec(0usize..300, 0..8),
        ) {
            let bytes = text.as_bytes();
            let mut whole = Vec::new();
            let mut splitter = LineSplitter::default();
            splitter.push(bytes, &mut whole);
            let mut pieces = Vec::new();
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
        let mut out = Vec::new();
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        splitter.push(&long[..100], &mut out);
        splitter.push(&long[100..], &mut out);
        splitter.push(b"\nok\n", &mut out);
        assert_eq!(
            out,
            vec![
                Line::TooLong(MAX_LINE_BYTES + 10),
                Line::Bytes(b"ok".to_vec())
            ]
        );
    }
}
