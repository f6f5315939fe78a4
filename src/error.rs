//! The crate's error type.
//!
//! One opaque [`Error`] that callers ask questions of (`is_status()`, `status()`, `is_timeout()`,
//! ...), so that adding a kind of failure later breaks no match arm. Its `Display` never shows an
//! API key or request content.

use std::error::Error as StdError;
use std::fmt;

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

    /// The provider could not be reached (DNS, connection refused, TLS, ...).
    pub fn connect(source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Self::new(Kind::Connect, source.to_string()).with_source(source)
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

    /// Any other failure, wrapping its cause.
    pub fn other(source: impl Into<BoxError>) -> Self {
        let source = source.into();
        Self::new(Kind::Other, source.to_string()).with_source(source)
    }

    /// A copy of this error; the source, which cannot be cloned, becomes its message.
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

    /// Records the provider's error type and code, as its error body stated them.
    #[must_use]
    pub fn with_api_error(mut self, error_type: Option<String>, code: Option<String>) -> Self {
        self.inner.api_type = error_type;
        self.inner.api_code = code;
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

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
            Kind::Other => f.write_str("error")?,
        }
        if let Some(api_type) = &self.inner.api_type {
            write!(f, " ({api_type})")?;
        }
        if !self.inner.message.is_empty() {
            write!(f, ": {}", self.inner.message)?;
        }
        Ok(())
    }
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
            .with_api_error(Some("authentication_error".into()), None);
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
        let err = Error::connect(io);
        assert!(err.is_connect());
        assert_eq!(err.source().unwrap().to_string(), "refused");
        assert_eq!(err.to_string(), "connection failed: refused");
    }
}
