//! What an event says of a failure: a low-cardinality [`ErrorKind`] to group and alert by, and
//! the details in [`ErrorInfo`].

use std::fmt;

use crate::Error;

/// The class of a failure, few enough to group by on a dashboard or alert on.
///
/// [`Error::kind`] classifies a provider error; [`ErrorKind::as_str`] is the name sinks send
/// (PostHog receives it as `$ai_error_type`, OpenTelemetry as `error.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No complete answer in time (a client timeout, or HTTP 408).
    Timeout,
    /// The provider could not be reached: DNS, refused connection, TLS.
    Connect,
    /// The provider refused the call for its rate or quota (HTTP 429).
    RateLimit,
    /// The key was missing, wrong or not allowed (HTTP 401 and 403).
    Auth,
    /// The provider refused the request itself (other 4xx).
    BadRequest,
    /// The provider failed (5xx, or an in-stream `overloaded_error` / `api_error`).
    Server,
    /// The answer could not be understood.
    Decode,
    /// The stream broke after it started.
    Stream,
    /// The caller gave up before the end (a dropped future, stream or span).
    Cancelled,
    /// The model does not offer the operation.
    Unsupported,
    /// The call was refused before it was made: a budget was spent.
    Budget,
    /// A configuration value was invalid.
    Config,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The name sinks send: `timeout`, `connect`, `rate_limit`, `auth`, `bad_request`,
    /// `server`, `decode`, `stream`, `cancelled`, `unsupported`, `budget`, `config`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connect => "connect",
            ErrorKind::RateLimit => "rate_limit",
            ErrorKind::Auth => "auth",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::Server => "server",
            ErrorKind::Decode => "decode",
            ErrorKind::Stream => "stream",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Budget => "budget",
            ErrorKind::Config => "config",
            ErrorKind::Other => "other",
        }
    }

    /// The kind an HTTP error status means; `None` for a success status.
    pub(crate) fn from_status(status: u16) -> Option<Self> {
        Some(match status {
            408 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimit,
            401 | 403 => ErrorKind::Auth,
            400..=499 => ErrorKind::BadRequest,
            500..=599 => ErrorKind::Server,
            _ => return None,
        })
    }

    /// The kind a provider's error type names (OpenAI's and Anthropic's spellings), if any.
    pub(crate) fn from_api_type(api_type: &str) -> Option<Self> {
        let has = |word: &str| api_type.contains(word);
        Some(if has("rate_limit") || has("quota") {
            ErrorKind::RateLimit
        } else if has("overloaded") || has("server_error") || api_type == "api_error" {
            ErrorKind::Server
        } else if has("authentication") || has("permission") {
            ErrorKind::Auth
        } else if has("invalid_request") || has("not_found") {
            ErrorKind::BadRequest
        } else {
            return None;
        })
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a call, span or embedding failed, as an event carries it.
///
/// Every field but the message is safe to send in privacy mode: the kind, the HTTP status and
/// the provider's error type and code name the failure without its content. The message (a
/// provider's error text often echoes the prompt) is withheld there.
///
/// ```
/// use traced_llm::event::{ErrorInfo, ErrorKind};
/// use traced_llm::Error;
///
/// let error = Error::from_status(429, "Rate limit reached for gpt-4o")
///     .with_provider("openai")
///     .with_api_error_type("requests");
/// let mut info = ErrorInfo::from_error(&error);
/// assert_eq!(info.kind, ErrorKind::RateLimit);
/// assert_eq!(info.status, Some(429));
/// assert_eq!(info.to_string(), "openai: http status 429 (requests): Rate limit reached for gpt-4o");
/// info.withhold_message();
/// assert_eq!(info.to_string(), "openai: http status 429 (requests)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ErrorInfo {
    /// The class of failure.
    pub kind: ErrorKind,
    /// The HTTP status, when the provider answered.
    pub status: Option<u16>,
    /// The provider's error type, as its error body stated it.
    pub api_type: Option<String>,
    /// The provider's error code, as its error body stated it.
    pub api_code: Option<String>,
    /// What went wrong in words; `None` when withheld (privacy mode) or never said.
    pub message: Option<String>,
    /// What failed without the message ("openai: http status 429 (requests)"); empty when the
    /// message says it all.
    summary: String,
}

impl ErrorInfo {
    /// A failure of `kind` described by `message`, e.g. for a span whose work failed.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            kind,
            status: None,
            api_type: None,
            api_code: None,
            message: (!message.is_empty()).then_some(message),
            summary: String::new(),
        }
    }

    /// Everything `error` says: its kind, status, the provider's type and code, and its message
    /// (or, when it has none, its cause's text).
    pub fn from_error(error: &Error) -> Self {
        let detail = error.detail();
        Self {
            kind: error.kind(),
            status: error.status(),
            api_type: error.api_error_type().map(str::to_owned),
            api_code: error.api_error_code().map(str::to_owned),
            message: (!detail.is_empty()).then_some(detail),
            summary: error.summary(),
        }
    }

    /// Drops the message, keeping kind, status, type and code: privacy mode does this, because
    /// provider error messages echo prompts.
    pub fn withhold_message(&mut self) {
        self.message = None;
    }

    /// What failed, without the message (`openai: http status 429 (requests)`); empty for
    /// failures described by their message alone.
    pub fn summary(&self) -> &str {
        &self.summary
    }
}

/// The summary and the message, joined as `summary: message`; the kind's name when both are
/// empty.
impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.summary.is_empty(), &self.message) {
            (false, Some(message)) => write!(f, "{}: {message}", self.summary),
            (false, None) => f.write_str(&self.summary),
            (true, Some(message)) => f.write_str(message),
            (true, None) => f.write_str(self.kind.as_str()),
        }
    }
}
