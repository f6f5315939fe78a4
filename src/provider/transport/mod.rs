//! What both providers share on the HTTP side: keys that never print, client building, sending,
//! and turning error answers into [`Error`].

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Client, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{Error, Result};

/// How long establishing a connection (TCP and TLS) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a whole call may take, from sending the request to the last byte of the answer
/// (streams included). Long generations of reasoning models take minutes, so this is generous.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// The longest error message taken from a non-JSON error body (an HTML page from a proxy, ...).
const MAX_RAW_ERROR_CHARS: usize = 300;

/// An API key. Its `Debug` never shows it, and its header value is marked sensitive.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ApiKey(String);

impl ApiKey {
    pub(crate) fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    pub(crate) fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }

    /// The key as a header value (`prefix` is `"Bearer "` or empty).
    pub(crate) fn header_value(&self, prefix: &str) -> Result<HeaderValue> {
        let mut value = HeaderValue::from_str(&format!("{prefix}{}", self.0.trim()))
            .map_err(|_| Error::builder("the api key holds characters a header cannot carry"))?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Header names only: a caller may pass a secret as a header value.
pub(crate) struct HeaderNames<'a>(pub(crate) &'a [(String, String)]);

impl fmt::Debug for HeaderNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// Reads an environment variable; unset, empty or blank counts as absent.
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
}

/// Checks a base URL and returns it without trailing slashes.
pub(crate) fn parse_base_url(raw: &str) -> Result<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url = Url::parse(trimmed)
        .map_err(|err| Error::builder(format!("invalid base url {trimmed:?}: {err}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::builder(format!(
            "invalid base url {trimmed:?}: the scheme must be http or https"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::builder(format!(
            "invalid base url {trimmed:?}: it must not carry a query or fragment"
        )));
    }
    Ok(trimmed.to_owned())
}

/// Joins a checked base URL and a path into a URL, with optional query pairs.
pub(crate) fn endpoint(base: &str, path: &str, query: &[(&str, &str)]) -> Result<Url> {
    let text = format!("{base}{path}");
    let result = if query.is_empty() {
        Url::parse(&text)
    } else {
        Url::parse_with_params(&text, query)
    };
    result.map_err(|err| Error::builder(format!("invalid url {text:?}: {err}")))
}

/// Adds caller-given headers to `headers`.
pub(crate) fn add_headers(headers: &mut HeaderMap, extra: &[(String, String)]) -> Result<()> {
    for (name, value) in extra {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::builder(format!("invalid header name {name:?}")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| Error::builder(format!("invalid value for header {name}")))?;
        headers.insert(name, value);
    }
    Ok(())
}

/// One client per provider value: its connection pool and TLS sessions are reused by every call.
///
/// reqwest retries nothing but protocol-level refusals (an HTTP/2 stream the server refused
/// before reading it), which cannot bill twice; this crate adds no retries of its own.
pub(crate) fn build_client(headers: HeaderMap, connect_timeout: Duration) -> Result<Client> {
    Client::builder()
        .user_agent(concat!("traced-llm/", env!("CARGO_PKG_VERSION")))
        .default_headers(headers)
        .connect_timeout(connect_timeout)
        .build()
        .map_err(|err| {
            Error::builder(format!("cannot build the http client: {err}")).with_source(err)
        })
}

/// The transport settings a provider keeps.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub(crate) client: Client,
    pub(crate) provider: String,
    pub(crate) request_timeout: Duration,
}

impl Transport {
    /// Posts a JSON body and returns the answer if its status is a success; an error status
    /// becomes an [`Error`] carrying the provider's error type, code and message.
    pub(crate) async fn post(&self, url: &Url, body: Vec<u8>, stream: bool) -> Result<Response> {
        let mut request: RequestBuilder = self
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .timeout(self.request_timeout)
            .body(body);
        if stream {
            request = request.header(reqwest::header::ACCEPT, "text/event-stream");
        }
        let response = request
            .send()
            .await
            .map_err(|err| transport_error(&self.provider, err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(error_from_body(&self.provider, status.as_u16(), &body))
    }

    /// Reads a whole JSON answer.
    pub(crate) async fn read_json<T: DeserializeOwned>(
        &self,
        response: Response,
        what: &str,
    ) -> Result<T> {
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|err| transport_error(&self.provider, err))?;
        serde_json::from_slice(&body).map_err(|err| {
            Error::decode(format!("invalid {what} json: {err}"))
                .with_status(status)
                .with_provider(&self.provider)
                .with_source(err)
        })
    }

    /// Turns a streamed answer into the byte stream to parse. Some servers answer a streaming
    /// request with a JSON error and a success status: that becomes an error. A body labelled
    /// JSON that is an event stream after all is read whole and parsed as one.
    pub(crate) async fn stream_body(&self, response: Response) -> Result<ChatStreamBody> {
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim_start().starts_with("application/json"));
        if !is_json {
            return Ok(ChatStreamBody::Live(response));
        }
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|err| transport_error(&self.provider, err))?;
        let start = body
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(0);
        if [&b"data:"[..], b"event:", b":"]
            .iter()
            .any(|prefix| body[start..].starts_with(prefix))
        {
            return Ok(ChatStreamBody::Read(body));
        }
        let parsed = parse_error_body(&body);
        let message = parsed
            .message
            .unwrap_or_else(|| "expected an event stream, got a json body".to_owned());
        Err(Error::decode(message)
            .with_status(status)
            .with_provider(&self.provider)
            .with_api_fields(parsed.error_type, parsed.code))
    }
}

/// The body of a streamed answer.
#[derive(Debug)]
pub(crate) enum ChatStreamBody {
    /// Read as it arrives.
    Live(Response),
    /// Already read whole.
    Read(bytes::Bytes),
}

impl ChatStreamBody {
    /// Parses the body with `parse`, the provider's stream parser.
    pub(crate) fn parse<F, G>(self, live: F, read: G) -> crate::ChatStream
    where
        F: FnOnce(Response) -> crate::ChatStream,
        G: FnOnce(bytes::Bytes) -> crate::ChatStream,
    {
        match self {
            ChatStreamBody::Live(response) => live(response),
            ChatStreamBody::Read(bytes) => read(bytes),
        }
    }
}

/// A `reqwest` failure before or while reading the answer.
pub(crate) fn transport_error(provider: &str, err: reqwest::Error) -> Error {
    let error = if err.is_timeout() {
        Error::timeout(format!("no complete answer in time: {err}")).with_source(err)
    } else if err.is_connect() || err.is_request() {
        Error::connect(err)
    } else {
        Error::other("the request failed").with_source(err)
    };
    error.with_provider(provider)
}

/// A transport failure after the stream started.
pub(crate) fn stream_transport_error(provider: &str, err: reqwest::Error) -> Error {
    let error = if err.is_timeout() {
        Error::timeout(format!("the stream did not finish in time: {err}")).with_source(err)
    } else {
        Error::stream(format!("the connection broke: {err}")).with_source(err)
    };
    error.with_provider(provider)
}

/// A token count as servers write it: a number, but a few write `12.0` or `"12"`. Anything
/// else reads as "not stated" rather than failing the whole answer over its usage.
pub(crate) fn lenient_count<'de, D>(deserializer: D) -> std::result::Result<Option<u64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::Deserialize;
    Ok(match Value::deserialize(deserializer)? {
        Value::Number(number) => number.as_u64().or_else(|| {
            number
                .as_f64()
                .filter(|value| value.is_finite() && *value >= 0.0)
                .map(|value| value.round() as u64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    })
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

pub(crate) fn api_error_from_value(value: &Value) -> ApiError {
    fn text(value: Option<&Value>) -> Option<String> {
        match value? {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
    match value.get("error") {
        Some(error @ Value::Object(_)) => ApiError {
            message: text(error.get("message")),
            error_type: text(error.get("type")),
            code: text(error.get("code")),
        },
        Some(Value::String(message)) => ApiError {
            message: Some(message.clone()),
            ..ApiError::default()
        },
        _ => ApiError {
            message: text(value.get("message")).or_else(|| text(value.get("detail"))),
            error_type: None,
            code: None,
        },
    }
}

/// A non-success answer as an [`Error`].
pub(crate) fn error_from_body(provider: &str, status: u16, body: &[u8]) -> Error {
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
            raw.chars().take(MAX_RAW_ERROR_CHARS).collect()
        }
    });
    Error::from_status(status, message)
        .with_provider(provider)
        .with_api_fields(parsed.error_type, parsed.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key() {
        let key = ApiKey::new("sk-secret");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert!(key.header_value("Bearer ").unwrap().is_sensitive());
    }

    #[test]
    fn base_urls_are_checked_and_trimmed() {
        assert_eq!(
            parse_base_url("https://api.openai.com/v1/").unwrap(),
            "https://api.openai.com/v1"
        );
        assert!(parse_base_url("api.openai.com").unwrap_err().is_builder());
        assert!(parse_base_url("ftp://host").unwrap_err().is_builder());
        assert!(parse_base_url("http://host/v1?x=1")
            .unwrap_err()
            .is_builder());
    }

    #[test]
    fn error_bodies_of_each_shape() {
        let openai = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded","param":null}}"#;
        let err = error_from_body("openai", 429, openai);
        assert_eq!(err.status(), Some(429));
        assert_eq!(err.message(), "Rate limit reached");
        assert_eq!(err.api_error_type(), Some("requests"));
        assert_eq!(err.api_error_code(), Some("rate_limit_exceeded"));

        let anthropic =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let err = error_from_body("anthropic", 529, anthropic);
        assert_eq!(err.api_error_type(), Some("overloaded_error"));
        assert_eq!(err.api_error_code(), None);
        assert_eq!(
            err.to_string(),
            "anthropic: http status 529 (overloaded_error): Overloaded"
        );

        let numeric = br#"{"error":{"message":"bad","code":400}}"#;
        assert_eq!(
            error_from_body("x", 400, numeric).api_error_code(),
            Some("400")
        );
        assert_eq!(
            error_from_body("x", 400, br#"{"error":"nope"}"#).message(),
            "nope"
        );
        assert_eq!(
            error_from_body("x", 404, br#"{"detail":"Not Found"}"#).message(),
            "Not Found"
        );
        assert_eq!(
            error_from_body("x", 502, b"<html>bad gateway</html>").message(),
            "<html>bad gateway</html>"
        );
        assert_eq!(
            error_from_body("x", 503, b"").message(),
            "service unavailable"
        );
    }
}
