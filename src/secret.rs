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
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(redacted)")
    }
}
