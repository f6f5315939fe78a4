//! A secret (API key, token, password) that never shows itself, and its removal from texts.

use std::borrow::Cow;
use std::fmt;

/// What stands in for a secret in any text.
const REDACTED: &str = "[redacted]";

/// Prefixes that name a key's kind and are no part of its secret; `Debug` keeps them as a hint.
/// Longest first, so `sk-ant-` wins over `sk-`.
const PUBLIC_PREFIXES: [&str; 5] = ["sk-proj-", "sk-ant-", "phc_", "phx_", "sk-"];

/// How much longer than its prefix a secret must be before `Debug` shows the prefix: a short
/// value would be mostly prefix.
const MIN_HIDDEN_CHARS: usize = 8;

/// A secret value. Its `Debug` and `Display` show at most a well-known kind prefix (`"phc_…redacted"`,
/// `"sk-…redacted"`), never the value; [`expose`](Secret::expose) is the one way to read it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// The secret as given; white space around it is kept (callers decide whether it is valid).
    pub(crate) fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself: for a header, a request body or a comparison, never for a message.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Empty or only white space.
    pub(crate) fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// `text` with every occurrence of the secret (without surrounding white space) replaced by
    /// [`REDACTED`]; borrowed when there was none.
    pub(crate) fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let secret = self.0.trim();
        if secret.is_empty() || !text.contains(secret) {
            Cow::Borrowed(text)
        } else {
            Cow::Owned(text.replace(secret, REDACTED))
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.0.trim();
        let prefix = PUBLIC_PREFIXES
            .iter()
            .find(|prefix| {
                value.starts_with(**prefix) && value.len() >= prefix.len() + MIN_HIDDEN_CHARS
            })
            .copied()
            .unwrap_or("");
        write!(f, "\"{prefix}…redacted\"")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let key = Secret::new("sk-ant-api03-abcdefghijklmnop");
        assert_eq!(format!("{key:?}"), "\"sk-ant-…redacted\"");
        assert_eq!(key.to_string(), "\"sk-ant-…redacted\"");
        assert_eq!(
            format!("{:?}", Secret::new("phc_project_key_1")),
            "\"phc_…redacted\""
        );
        // Too short to show a prefix without showing most of the value.
        assert_eq!(format!("{:?}", Secret::new("sk-1234")), "\"…redacted\"");
        assert_eq!(
            format!("{:?}", Secret::new("hunter2hunter2")),
            "\"…redacted\""
        );
    }

    #[test]
    fn redaction_replaces_every_occurrence_and_borrows_otherwise() {
        let key = Secret::new(" sk-live-0123 ");
        assert_eq!(
            key.redact("key sk-live-0123, again sk-live-0123"),
            "key [redacted], again [redacted]"
        );
        assert!(matches!(key.redact("nothing here"), Cow::Borrowed(_)));
        assert!(matches!(Secret::new("  ").redact("a b"), Cow::Borrowed(_)));
        assert!(Secret::new(" \t").is_blank());
        assert_eq!(key.expose(), " sk-live-0123 ");
    }
}
