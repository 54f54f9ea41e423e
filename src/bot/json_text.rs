//! JSON strings' text eight bytes at a time: where it stops being plain
//! (a quote, a backslash or a control character), for the journal's
//! writer and the mapping's fast walk, which both go through many strings
//! with nothing in them to escape.

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
