//! Failures as [`Error`]s: error bodies, `reqwest` failures, and the scrubbing every error of a
//! provider goes through before it leaves it.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::util::http::{without_secrets, Failure};
use crate::util::secret::Secret;
use crate::Error;

/// The longest error message taken from a non-JSON error body (an HTML page from a proxy, ...).
const MAX_RAW_ERROR_CHARS: usize = 300;

/// Who a provider's errors come from and what they must never show: its label and its secrets
/// (the API key, credentials in the base URL, secret header values). Cheap to clone; streams
/// keep one.
#[derive(Clone)]
pub(crate) struct ErrorScope(Arc<ScopeInner>);

struct ScopeInner {
    provider: String,
    secrets: Vec<Secret>,
}

impl ErrorScope {
    /// The scope of `provider`; blank secrets are dropped, and so are repeats.
    pub(crate) fn new(
        provider: impl Into<String>,
        secrets: impl IntoIterator<Item = Secret>,
    ) -> Self {
        let mut kept: Vec<Secret> = Vec::new();
        for secret in secrets {
            if !secret.is_blank()
                && !kept
                    .iter()
                    .any(|known| known.expose().trim() == secret.expose().trim())
            {
                kept.push(secret);
            }
        }
        // Longest first: a secret inside another is then replaced as part of the longer one.
        kept.sort_by_key(|secret| std::cmp::Reverse(secret.expose().trim().len()));
        Self(Arc::new(ScopeInner {
            provider: provider.into(),
            secrets: kept,
        }))
    }

    /// The provider's label (`$ai_provider`).
    pub(crate) fn provider(&self) -> &str {
        &self.0.provider
    }

    /// `text` without any of the secrets.
    pub(crate) fn redact<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut text = Cow::Borrowed(text);
        for secret in &self.0.secrets {
            if let Cow::Owned(redacted) = secret.redact(&text) {
                text = Cow::Owned(redacted);
            }
        }
        text
    }

    /// The last step of every error a provider returns or streams: names the provider and
    /// scrubs every secret from the error's message, API type and code, and its cause's text.
    pub(crate) fn finish(&self, error: Error) -> Error {
        self.0
            .secrets
            .iter()
            .fold(error.with_provider(self.provider()), |error, secret| {
                error.redact_secret(secret.expose())
            })
    }
}

impl fmt::Debug for ErrorScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorScope")
            .field("provider", &self.0.provider)
            .field("secrets", &self.0.secrets.len())
            .finish()
    }
}

/// A `reqwest` failure before the answer, or while reading a whole answer.
pub(crate) fn request_error(err: reqwest::Error) -> Error {
    let err = without_secrets(err);
    match Failure::of(&err) {
        Failure::Timeout => Error::timeout("no complete answer in time").with_source(err),
        Failure::Connect | Failure::Request => Error::connect(err),
        Failure::Other => Error::other("the request failed").with_source(err),
    }
}

/// A `reqwest` failure after a stream started.
pub(crate) fn stream_error(err: reqwest::Error) -> Error {
    let err = without_secrets(err);
    match Failure::of(&err) {
        Failure::Timeout => Error::timeout("the stream did not finish in time").with_source(err),
        _ => Error::stream("the connection broke").with_source(err),
    }
}

/// What an error body said.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ApiError {
    pub(crate) message: Option<String>,
    pub(crate) error_type: Option<String>,
    pub(crate) code: Option<String>,
}

/// Reads the error shapes real servers send: OpenAI's `{"error": {"message", "type", "code"}}`,
/// Anthropic's `{"type": "error", "error": {"type", "message"}}`, `{"error": "text"}`,
/// `{"message": ..}` and `{"detail": ..}`.
pub(crate) fn parse_error_body(body: &[u8]) -> ApiError {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return ApiError::default();
    };
    api_error_from_value(&value)
}

fn api_error_from_value(value: &Value) -> ApiError {
    match value.get("error") {
        Some(error @ (Value::Object(_) | Value::String(_))) => api_error_of(error),
        _ => ApiError {
            message: text(value.get("message")).or_else(|| text(value.get("detail"))),
            error_type: None,
            code: None,
        },
    }
}

/// What the `error` member of a body says: an object with `message`, `type` and `code`, or a
/// bare message.
fn api_error_of(error: &Value) -> ApiError {
    match error {
        Value::Object(_) => ApiError {
            message: text(error.get("message")),
            error_type: text(error.get("type")),
            code: text(error.get("code")),
        },
        Value::String(message) => ApiError {
            message: Some(message.clone()),
            ..ApiError::default()
        },
        _ => ApiError::default(),
    }
}

/// A string or number as text; anything else, or an empty string, as nothing.
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// An error a server reported inside a stream (the `error` of an OpenAI-style chunk, the
/// `error` of Anthropic's `error` event), as a stream error with the provider's type and code.
pub(crate) fn stream_api_error(error: &Value) -> Error {
    let parsed = api_error_of(error);
    let message = parsed
        .message
        .unwrap_or_else(|| "the server reported an error".to_owned());
    Error::stream(message).with_api_fields(parsed.error_type, parsed.code)
}

/// A non-success answer as an [`Error`], scrubbed by `scope`. A body that is no error JSON is
/// kept as the message, redacted before it is cut to length, so no part of a secret that
/// straddles the cut survives.
pub(crate) fn status_error(scope: &ErrorScope, status: u16, body: &[u8]) -> Error {
    let parsed = parse_error_body(body);
    let message = parsed.message.unwrap_or_else(|| {
        let raw = String::from_utf8_lossy(body);
        let raw = raw.trim();
        if raw.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|status| status.canonical_reason())
                .unwrap_or("no error message")
                .to_lowercase()
        } else {
            scope
                .redact(raw)
                .chars()
                .take(MAX_RAW_ERROR_CHARS)
                .collect()
        }
    });
    scope
        .finish(Error::from_status(status, message).with_api_fields(parsed.error_type, parsed.code))
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn scope(provider: &str) -> ErrorScope {
        ErrorScope::new(provider, [])
    }

    #[test]
    fn error_bodies_of_each_shape() {
        let openai = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded","param":null}}"#;
        let err = status_error(&scope("openai"), 429, openai);
        assert_eq!(err.status(), Some(429));
        assert_eq!(err.provider(), Some("openai"));
        assert_eq!(err.message(), "Rate limit reached");
        assert_eq!(err.api_error_type(), Some("requests"));
        assert_eq!(err.api_error_code(), Some("rate_limit_exceeded"));

        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let err = status_error(&scope("anthropic"), 529, anthropic);
        assert_eq!(err.api_error_type(), Some("overloaded_error"));
        assert_eq!(err.api_error_code(), None);
        assert_eq!(
            err.to_string(),
            "anthropic: http status 529 (overloaded_error): Overloaded"
        );

        let x = scope("x");
        let numeric = br#"{"error":{"message":"bad","code":400}}"#;
        assert_eq!(status_error(&x, 400, numeric).api_error_code(), Some("400"));
        assert_eq!(
            status_error(&x, 400, br#"{"error":"nope"}"#).message(),
            "nope"
        );
        assert_eq!(
            status_error(&x, 404, br#"{"detail":"Not Found"}"#).message(),
            "Not Found"
        );
        assert_eq!(
            status_error(&x, 502, b"<html>bad gateway</html>").message(),
            "<html>bad gateway</html>"
        );
        assert_eq!(status_error(&x, 503, b"").message(), "service unavailable");
    }

    #[test]
    fn every_text_of_an_error_loses_the_secrets() {
        let key = "sk-live-0123456789abcdef";
        let scope = ErrorScope::new("openai", [Secret::new(key), Secret::new("pw-77")]);
        let body = format!(
            r#"{{"error":{{"message":"Incorrect API key provided: {key}","type":"t_{key}","code":"c_pw-77"}}}}"#
        );
        let err = status_error(&scope, 401, body.as_bytes());
        assert_eq!(err.message(), "Incorrect API key provided: [redacted]");
        assert_eq!(err.api_error_type(), Some("t_[redacted]"));
        assert_eq!(err.api_error_code(), Some("c_[redacted]"));

        let cause = std::io::Error::other(format!("peer said {key}"));
        let err = scope.finish(Error::stream(format!("echo {key}")).with_source(cause));
        let shown = format!("{err} {err:?} {}", err.source().unwrap());
        assert!(!shown.contains(key), "{shown}");
        assert_eq!(err.provider(), Some("openai"));
        assert!(format!("{scope:?}").contains("secrets: 2"));
    }

    #[test]
    fn a_raw_body_is_redacted_before_it_is_cut() {
        let key = "sk-live-straddling-the-cut";
        let scope = ErrorScope::new("x", [Secret::new(key)]);
        // The key starts 10 characters before the cut.
        let body = format!(
            "{}{key}{}",
            "a".repeat(MAX_RAW_ERROR_CHARS - 10),
            "b".repeat(50)
        );
        let err = status_error(&scope, 502, body.as_bytes());
        assert!(!err.message().contains("sk-live-st"), "{}", err.message());
        assert!(err.message().ends_with("[redacted]"), "{}", err.message());
    }

    #[test]
    fn nested_secrets_are_replaced_whole() {
        let scope = ErrorScope::new(
            "x",
            [Secret::new("abc"), Secret::new("xxabcxx"), Secret::new(" ")],
        );
        assert_eq!(scope.redact("1 xxabcxx 2 abc"), "1 [redacted] 2 [redacted]");
        assert_eq!(
            format!("{scope:?}"),
            "ErrorScope { provider: \"x\", secrets: 2 }"
        );
    }
}
