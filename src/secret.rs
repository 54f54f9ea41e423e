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

    /// Whether `given` is this secret, in constant time (see [`same`]).
    pub(crate) fn matches(&self, given: &[u8]) -> bool {
        same(given, self.0.as_bytes())
    }
}

/// Whether `given` is `expected`, in time that depends on `expected`'s
/// length only: the answer's timing does not reveal how much of a guess
/// was right. The one comparison of a credential.
pub(crate) fn same(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = given.len() ^ expected.len();
    for (index, byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ given.get(index).copied().unwrap_or(0));
    }
    std::hint::black_box(difference) == 0
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::{same, Secret};

    #[test]
    fn matches_whole_secrets_only() {
        let secret = Secret::parse("s3cret\n").unwrap();
        assert!(secret.matches(b"s3cret"));
        for wrong in [&b"s3cre"[..], b"s3cretX", b"S3cret", b""] {
            assert!(!secret.matches(wrong));
        }
    }

    /// An early-exit comparison of a 1 MiB token returns ~10^5 times
    /// sooner on a first-byte miss than on a last-byte one; this one must
    /// take about as long for both (bounds generous for a loaded machine).
    #[test]
    fn time_does_not_depend_on_where_the_guess_goes_wrong() {
        let expected: Vec<u8> = (0..1 << 20).map(|index| (index % 251) as u8).collect();
        let mut near = expected.clone();
        *near.last_mut().unwrap() ^= 1;
        let mut far = expected.clone();
        far[0] ^= 1;
        let time = |given: &[u8]| {
            (0..15)
                .map(|_| {
                    let started = std::time::Instant::now();
                    assert!(!same(std::hint::black_box(given), &expected));
                    started.elapsed()
                })
                .min()
                .unwrap()
        };
        let (near, far) = (time(&near), time(&far));
        let ratio = near.as_secs_f64() / far.as_secs_f64();
        eprintln!("1 MiB token: last-byte miss {near:?}, first-byte miss {far:?}");
        assert!(
            (0.33..3.0).contains(&ratio),
            "last-byte miss {near:?} vs first-byte miss {far:?}"
        );
    }
}
