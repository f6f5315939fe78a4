//! The crate's error type.
//!
//! One opaque [`Error`] that callers ask questions of (`is_status()`, `status()`, `is_timeout()`,
//! `kind()`, ...), so that adding a kind of failure later breaks no match arm. Its `Display`
//! shows what failed (provider, kind, status, the provider's error type and message) and never
//! the underlying cause, which stays in [`source()`](std::error::Error::source), as in reqwest.
//! Neither ever shows an API key: providers scrub their key from every text they put in.

use std::error::Error as StdError;
use std::fmt;

use crate::event::ErrorKind;

/// The result of a provider call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a call to a model failed.
///
/// Providers in this crate build it; your own [`LlmModel`](crate::LlmModel) builds it with the
/// constructors below.
///
/// ```
/// use traced_llm::Error;
///
/// let err = Error::from_status(429, "rate limit reached").with_provider("openai");
/// assert!(err.is_status());
/// assert_eq!(err.status(), Some(429));
/// assert_eq!(err.to_string(), "openai: http status 429: rate limit reached");
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    message: String,
    provider: Option<String>,
    status: Option<u16>,
    api_type: Option<String>,
    api_code: Option<String>,
    source: Option<BoxError>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Builder,
    Connect,
    Timeout,
    Status,
    Decode,
    Stream,
    Unsupported,
    Budget,
    Other,
}

impl Error {
    fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                provider: None,
                status: None,
                api_type: None,
                api_code: None,
                source: None,
            }),
        }
    }

    /// The provider answered with a non-success HTTP status.
    pub fn from_status(status: u16, message: impl Into<String>) -> Self {
        let mut err = Self::new(Kind::Status, message);
        err.inner.status = Some(status);
        err
    }

    /// The provider could not be reached (DNS, connection refused, TLS, ...); `source` is the
    /// cause, kept in [`source()`](std::error::Error::source) and out of `Display`.
    pub fn connect(source: impl Into<BoxError>) -> Self {
        Self::new(Kind::Connect, String::new()).with_source(source)
    }

    /// The call took longer than allowed.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(Kind::Timeout, message)
    }

    /// The provider's answer could not be understood (malformed JSON or SSE).
    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(Kind::Decode, message)
    }

    /// A stream broke after it started (connection reset, an in-stream `error` event).
    pub fn stream(message: impl Into<String>) -> Self {
        Self::new(Kind::Stream, message)
    }

    /// The model does not offer this operation.
    pub fn unsupported(what: impl Into<String>) -> Self {
        Self::new(Kind::Unsupported, what)
    }

    /// A configuration value is invalid (missing key, malformed URL, ...).
    pub fn builder(message: impl Into<String>) -> Self {
        Self::new(Kind::Builder, message)
    }

    /// The call was refused before it was made, because a budget (tokens or cost in a window)
    /// is spent. [`Error::kind`] is [`ErrorKind::Budget`], so a recorded refusal is sent with
    /// `$ai_error_type: "budget"`; chain the details with [`Error::with_source`].
    ///
    /// ```
    /// use traced_llm::event::ErrorKind;
    /// use traced_llm::Error;
    ///
    /// let err = Error::budget("user_42 spent 200000 of 200000 tokens in 10m");
    /// assert!(err.is_budget());
    /// assert_eq!(err.kind(), ErrorKind::Budget);
    /// assert_eq!(err.to_string(), "budget spent: user_42 spent 200000 of 200000 tokens in 10m");
    /// ```
    pub fn budget(message: impl Into<String>) -> Self {
        Self::new(Kind::Budget, message)
    }

    /// Any other failure, said in `message`; chain a cause with [`Error::with_source`].
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(Kind::Other, message)
    }

    /// A copy of this error; the source, which cannot be cloned, becomes its message.
    #[cfg(feature = "testing")]
    pub(crate) fn duplicate(&self) -> Self {
        let inner = &self.inner;
        Self {
            inner: Box::new(Inner {
                kind: inner.kind,
                message: inner.message.clone(),
                provider: inner.provider.clone(),
                status: inner.status,
                api_type: inner.api_type.clone(),
                api_code: inner.api_code.clone(),
                source: inner
                    .source
                    .as_ref()
                    .map(|source| BoxError::from(source.to_string())),
            }),
        }
    }

    /// Names the provider the error came from.
    #[must_use]
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.inner.provider = Some(provider.into());
        self
    }

    /// Sets the HTTP status (e.g. for a stream that broke after a 200).
    #[must_use]
    pub fn with_status(mut self, status: u16) -> Self {
        self.inner.status = Some(status);
        self
    }

    /// Records the provider's error type (`rate_limit_error`, `invalid_request_error`, ...), as
    /// its error body stated it.
    #[must_use]
    pub fn with_api_error_type(mut self, error_type: impl Into<String>) -> Self {
        self.inner.api_type = Some(error_type.into());
        self
    }

    /// Records the provider's error code (`rate_limit_exceeded`, ...), as its error body stated
    /// it.
    #[must_use]
    pub fn with_api_error_code(mut self, code: impl Into<String>) -> Self {
        self.inner.api_code = Some(code.into());
        self
    }

    /// Sets the type and code a provider's error body stated, when it stated them.
    #[must_use]
    #[cfg(feature = "__transport")]
    pub(crate) fn with_api_fields(
        mut self,
        error_type: Option<String>,
        code: Option<String>,
    ) -> Self {
        self.inner.api_type = error_type;
        self.inner.api_code = code;
        self
    }

    /// Replaces every occurrence of `secret` in the texts this error carries (its message, the
    /// provider's type and code, and the text of its cause) with `[redacted]`. Providers call it
    /// with their own key, because error bodies sometimes echo it back.
    #[must_use]
    #[cfg(any(test, feature = "__transport"))]
    pub(crate) fn redact_secret(mut self, secret: &str) -> Self {
        let secret = secret.trim();
        if secret.is_empty() {
            return self;
        }
        let inner = &mut *self.inner;
        for text in [
            Some(&mut inner.message),
            inner.api_type.as_mut(),
            inner.api_code.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if text.contains(secret) {
                *text = text.replace(secret, REDACTED);
            }
        }
        if let Some(source) = &inner.source {
            let shown = chain_text(&**source);
            if shown.contains(secret) {
                inner.source = Some(BoxError::from(shown.replace(secret, REDACTED)));
            }
        }
        self
    }

    /// Chains the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    /// The provider answered with a non-success status.
    pub fn is_status(&self) -> bool {
        self.inner.kind == Kind::Status
    }

    /// The HTTP status, when there was an answer.
    pub fn status(&self) -> Option<u16> {
        self.inner.status
    }

    /// The provider could not be reached.
    pub fn is_connect(&self) -> bool {
        self.inner.kind == Kind::Connect
    }

    /// The call timed out.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == Kind::Timeout
    }

    /// The answer could not be decoded.
    pub fn is_decode(&self) -> bool {
        self.inner.kind == Kind::Decode
    }

    /// The stream broke after it started.
    pub fn is_stream(&self) -> bool {
        self.inner.kind == Kind::Stream
    }

    /// The operation is not supported by the model.
    pub fn is_unsupported(&self) -> bool {
        self.inner.kind == Kind::Unsupported
    }

    /// A configuration value was invalid.
    pub fn is_builder(&self) -> bool {
        self.inner.kind == Kind::Builder
    }

    /// The call was refused because a budget is spent (see [`Error::budget`]).
    pub fn is_budget(&self) -> bool {
        self.inner.kind == Kind::Budget
    }

    /// The class of failure, low in cardinality: what alerts and dashboards group by.
    ///
    /// An HTTP status decides where there is one (408 timeout, 429 rate limit, 401 and 403
    /// auth, other 4xx bad request, 5xx server); otherwise the provider's error type (an
    /// in-stream `overloaded_error` is a server failure), otherwise how the call failed.
    ///
    /// ```
    /// use traced_llm::event::ErrorKind;
    /// use traced_llm::Error;
    ///
    /// assert_eq!(Error::from_status(429, "slow down").kind(), ErrorKind::RateLimit);
    /// assert_eq!(Error::stream("overloaded").with_api_error_type("overloaded_error").kind(), ErrorKind::Server);
    /// assert_eq!(Error::timeout("no answer in time").kind(), ErrorKind::Timeout);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        let inner = &self.inner;
        if let Some(kind) = inner.status.and_then(ErrorKind::from_status) {
            return kind;
        }
        if let Some(kind) = inner.api_type.as_deref().and_then(ErrorKind::from_api_type) {
            return kind;
        }
        match inner.kind {
            Kind::Builder => ErrorKind::Config,
            Kind::Connect => ErrorKind::Connect,
            Kind::Timeout => ErrorKind::Timeout,
            Kind::Status => ErrorKind::Other,
            Kind::Decode => ErrorKind::Decode,
            Kind::Stream => ErrorKind::Stream,
            Kind::Unsupported => ErrorKind::Unsupported,
            Kind::Budget => ErrorKind::Budget,
            Kind::Other => ErrorKind::Other,
        }
    }

    /// The message and, when the message is empty, the text of the cause: what an event says of
    /// the failure.
    pub(crate) fn detail(&self) -> String {
        match (&self.inner.source, self.inner.message.is_empty()) {
            (Some(source), true) => chain_text(&**source),
            _ => self.inner.message.clone(),
        }
    }

    /// The provider that failed, when known.
    pub fn provider(&self) -> Option<&str> {
        self.inner.provider.as_deref()
    }

    /// The provider's error type (`rate_limit_error`, `invalid_request_error`, ...).
    pub fn api_error_type(&self) -> Option<&str> {
        self.inner.api_type.as_deref()
    }

    /// The provider's error code (`rate_limit_exceeded`, ...).
    pub fn api_error_code(&self) -> Option<&str> {
        self.inner.api_code.as_deref()
    }

    /// The message alone, without provider or status.
    pub fn message(&self) -> &str {
        &self.inner.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Error");
        debug.field("kind", &self.inner.kind);
        if let Some(provider) = &self.inner.provider {
            debug.field("provider", provider);
        }
        if let Some(status) = self.inner.status {
            debug.field("status", &status);
        }
        if let Some(api_type) = &self.inner.api_type {
            debug.field("api_type", api_type);
        }
        if let Some(code) = &self.inner.api_code {
            debug.field("api_code", code);
        }
        debug.field("message", &self.inner.message);
        if let Some(source) = &self.inner.source {
            debug.field("source", source);
        }
        debug.finish()
    }
}

impl Error {
    /// What `Display` shows before the message: provider, kind, status, the provider's type.
    fn write_head(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(provider) = &self.inner.provider {
            write!(f, "{provider}: ")?;
        }
        match self.inner.kind {
            Kind::Builder => f.write_str("invalid configuration")?,
            Kind::Connect => f.write_str("connection failed")?,
            Kind::Timeout => f.write_str("timed out")?,
            Kind::Status => match self.inner.status {
                Some(status) => write!(f, "http status {status}")?,
                None => f.write_str("http error")?,
            },
            Kind::Decode => f.write_str("malformed response")?,
            Kind::Stream => f.write_str("stream failed")?,
            Kind::Unsupported => f.write_str("not supported")?,
            Kind::Budget => f.write_str("budget spent")?,
            Kind::Other => f.write_str("error")?,
        }
        if let Some(api_type) = &self.inner.api_type {
            write!(f, " ({api_type})")?;
        }
        Ok(())
    }

    /// `Display` without the message: what an event shows of the failure when the message is
    /// withheld (privacy mode), since provider messages echo prompts.
    pub(crate) fn summary(&self) -> String {
        struct Head<'a>(&'a Error);
        impl fmt::Display for Head<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.write_head(f)
            }
        }
        Head(self).to_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_head(f)?;
        if !self.inner.message.is_empty() {
            write!(f, ": {}", self.inner.message)?;
        }
        Ok(())
    }
}

/// What stands in for a secret in any text.
#[cfg(any(test, feature = "__transport"))]
const REDACTED: &str = "[redacted]";

/// `error` and its causes, joined with `: `.
fn chain_text(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let shown = cause.to_string();
        if !text.ends_with(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        next = cause.source();
    }
    text
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|source| &**source as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_lower_case_and_names_provider_status_and_type() {
        let err = Error::from_status(401, "invalid api key")
            .with_provider("anthropic")
            .with_api_error_type("authentication_error");
        assert_eq!(
            err.to_string(),
            "anthropic: http status 401 (authentication_error): invalid api key"
        );
        assert!(err.is_status() && !err.is_timeout());
        assert_eq!(err.api_error_type(), Some("authentication_error"));
    }

    #[test]
    fn source_is_chained() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::connect(io).with_provider("openai");
        assert!(err.is_connect());
        assert_eq!(err.source().unwrap().to_string(), "refused");
        // The cause is not repeated: `{:#}`-style chains print it once.
        assert_eq!(err.to_string(), "openai: connection failed");
        assert_eq!(err.detail(), "refused");
        assert_eq!(err.kind(), ErrorKind::Connect);
    }

    #[test]
    fn kinds_follow_status_then_api_type_then_how_it_failed() {
        let kind = |status| Error::from_status(status, "x").kind();
        assert_eq!(kind(408), ErrorKind::Timeout);
        assert_eq!(kind(429), ErrorKind::RateLimit);
        assert_eq!(kind(401), ErrorKind::Auth);
        assert_eq!(kind(403), ErrorKind::Auth);
        assert_eq!(kind(400), ErrorKind::BadRequest);
        assert_eq!(kind(404), ErrorKind::BadRequest);
        assert_eq!(kind(500), ErrorKind::Server);
        assert_eq!(kind(529), ErrorKind::Server);
        let stream = |api_type: &str| Error::stream("x").with_api_error_type(api_type).kind();
        assert_eq!(stream("rate_limit_error"), ErrorKind::RateLimit);
        assert_eq!(stream("overloaded_error"), ErrorKind::Server);
        assert_eq!(stream("authentication_error"), ErrorKind::Auth);
        assert_eq!(stream("invalid_request_error"), ErrorKind::BadRequest);
        assert_eq!(stream("something_new"), ErrorKind::Stream);
        assert_eq!(Error::decode("x").kind(), ErrorKind::Decode);
        assert_eq!(Error::unsupported("x").kind(), ErrorKind::Unsupported);
        assert_eq!(Error::builder("x").kind(), ErrorKind::Config);
        assert_eq!(Error::other("x").kind(), ErrorKind::Other);
    }

    #[test]
    fn a_secret_is_redacted_from_every_text() {
        let key = "sk-live-0123456789";
        let cause = std::io::Error::other(format!("echo {key}"));
        let err = Error::from_status(401, format!("Incorrect API key provided: {key}"))
            .with_api_error_code(format!("bad_{key}"))
            .with_source(cause)
            .redact_secret(key);
        let shown = format!("{err} {err:?} {}", err.source().unwrap());
        assert!(!shown.contains(key), "{shown}");
        assert_eq!(err.message(), "Incorrect API key provided: [redacted]");
        assert_eq!(err.api_error_code(), Some("bad_[redacted]"));
    }
}
