//! JSON text as the fast scanners read it (a signal line's, a mapped
//! message's): a cursor and the steps each takes, and strings eight bytes
//! at a time, up to where they stop being plain (a quote, a backslash or a
//! control character), which the journal's writer looks for too.

/// A place in a JSON text.
pub(crate) struct Cursor<'a> {
    pub(crate) text: &'a str,
    pub(crate) at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Cursor { text, at: 0 }
    }

    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    pub(crate) fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    pub(crate) fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    pub(crate) fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Only whitespace is left.
    pub(crate) fn end(&mut self) -> bool {
        self.skip_space();
        self.at == self.bytes().len()
    }

    /// Steps over `word` if it is here.
    pub(crate) fn word(&mut self, word: &[u8]) -> bool {
        let here = self
            .bytes()
            .get(self.at..)
            .is_some_and(|rest| rest.starts_with(word));
        if here {
            self.at += word.len();
        }
        here
    }

    /// After a string's opening quote: its text, past the closing quote,
    /// if it holds no escape nor control character.
    pub(crate) fn plain_string(&mut self) -> Option<&'a str> {
        let start = self.at;
        let length = plain_length(&self.bytes()[start..]);
        self.at = start + length;
        self.expect(b'"')?;
        // UTF-8 text, cut at ASCII quotes.
        self.text.get(start..start + length)
    }

    /// A JSON number from here, as its own text, if it keeps to the
    /// grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. Its
    /// value is not read.
    pub(crate) fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let first = self.peek();
        let whole = self.digits();
        if whole == 0 || (whole > 1 && first == Some(b'0')) {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        self.text.get(start..self.at)
    }

    /// Digits from here: how many.
    fn digits(&mut self) -> usize {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at - start
    }
}

/// How many of `bytes` come before the first quote, backslash or control
/// character (all of them if none does). Word tricks ("has a zero byte",
/// "has a byte less than") flag bytes wrongly only above one they flag
/// rightly, so the lowest flag is exact.
pub(crate) fn plain_length(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let below = |word: u64, limit: u8| word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGHS;
    let mut words = bytes.chunks_exact(8);
    let mut plain = 0;
    for chunk in &mut words {
        let mut word = [0; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let quote = below(word ^ (ONES * u64::from(b'"')), 1);
        let backslash = below(word ^ (ONES * u64::from(b'\\')), 1);
        let flags = quote | backslash | below(word, 0x20);
        if flags != 0 {
            return plain + flags.trailing_zeros() as usize / 8;
        }
        plain += 8;
    }
    let rest = words.remainder();
    plain
        + rest
            .iter()
            .position(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
            .unwrap_or(rest.len())
}

/// What the fast scanners' tests generate.
#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    pub(crate) fn select(items: &[&'static str]) -> impl Strategy<Value = &'static str> {
        prop::sample::select(items.to_vec())
    }

    /// `pieces` glued at random: the near misses a scanner must decline.
    pub(crate) fn glued(pieces: &[&'static str]) -> impl Strategy<Value = String> {
        prop::collection::vec(select(pieces), 0..40).prop_map(|pieces| pieces.concat())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn finds_the_first_byte_to_escape(bytes in prop::collection::vec(
            prop::sample::select(vec![b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']']),
            0..40,
        )) {
            let expected = bytes
                .iter()
                .position(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
                .unwrap_or(bytes.len());
            prop_assert_eq!(plain_length(&bytes), expected);
        }
    }
}
