//! A value that must never be printed. A leaf: anything that carries a
//! credential (settings, the webhook) can hold one without depending on
//! where it was read from.

/// Its `Debug` is redacted, and it is only read through [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// Surrounding whitespace (a token file's trailing newline) is not part of it.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Secret(text.to_owned()))
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, in time that depends on the
    /// secret's length only: the answer's timing does not reveal how much
    /// of a guess was right.
    pub(crate) fn matches(&self, given: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        let mut difference = given.len() ^ expected.len();
        for (index, byte) in expected.iter().enumerate() {
            difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(0));
        }
        std::hint::black_box(difference) == 0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn matches_whole_secrets_only() {
        let secret = Secret::parse("s3cret\n").unwrap();
        assert!(secret.matches(b"s3cret"));
        for wrong in [&b"s3cre"[..], b"s3cretX", b"S3cret", b""] {
            assert!(!secret.matches(wrong));
        }
    }
}
