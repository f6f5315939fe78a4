//! One transport for every provider: the options every builder has ([`options`]), sending JSON
//! and reading answers ([`Transport`]), event streams ([`sse`]), error bodies and scrubbing
//! ([`error`]), and what the wire formats share ([`wire`]).
//!
//! A provider is left with what is its own: its URLs and headers, its body and answer types,
//! and its stream [`Decoder`](sse::Decoder).

mod error;
mod options;
pub(crate) mod sse;
pub(crate) mod wire;

use std::convert::Infallible;
use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::{Client, Response, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use self::error::{request_error, status_error};
pub(crate) use self::error::{stream_api_error, ErrorScope};
use self::options::add_headers;
pub(crate) use self::options::{http_setters, secret_header, Defaults, HttpOptions, Resolved};
use self::sse::{decode_stream, Decoder};
use crate::types::ChatStream;
use crate::util::http::{build_client, ClientSettings};
use crate::{Error, Result};

/// How long establishing a connection (TCP and TLS) may take.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a whole call may take, from sending the request to the last byte of the answer
/// (streams included). Long generations of reasoning models take minutes, so this is generous.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// A provider's HTTP side: one client, its label and secrets, its base URL as shown, and the
/// request timeout. Every error it returns or streams is finished by its [`ErrorScope`].
pub(crate) struct Transport {
    client: Client,
    scope: ErrorScope,
    base_url: String,
    request_timeout: Duration,
}

impl Transport {
    /// The transport of `options`: `headers` are the provider's own (auth, version), to which
    /// the caller's headers are added, replacing any of the same name.
    ///
    /// # Errors
    /// [`Error::is_builder`] for an invalid header, or when the client cannot be built.
    pub(crate) fn new(options: Resolved, mut headers: HeaderMap) -> Result<Self> {
        let header_secrets = add_headers(&mut headers, &options.headers)?;
        let client = build_client(ClientSettings {
            headers,
            ..ClientSettings::new(options.connect_timeout)
        })?;
        let secrets = options
            .api_key
            .into_iter()
            .chain(options.base_url.credentials())
            .chain(header_secrets);
        Ok(Self {
            client,
            scope: ErrorScope::new(options.provider, secrets),
            base_url: options.base_url.shown().to_owned(),
            request_timeout: options.request_timeout,
        })
    }

    /// The provider's label (`$ai_provider`).
    pub(crate) fn provider(&self) -> &str {
        self.scope.provider()
    }

    /// The base URL as safe to show (`$ai_base_url`): without user info.
    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Adds what every provider's `Debug` shows: label, base URL as shown, a redacted key, and
    /// the request timeout.
    pub(crate) fn debug_fields(&self, debug: &mut fmt::DebugStruct<'_, '_>) {
        debug
            .field("provider", &self.provider())
            .field("base_url", &self.base_url)
            .field("api_key", &"<redacted>")
            .field("request_timeout", &self.request_timeout);
    }

    /// Posts `body` to `url` and reads the JSON answer (`what` names it in a decode error).
    pub(crate) async fn call<B, T>(&self, url: &Url, body: &B, what: &str) -> Result<T>
    where
        B: Serialize + Sync + ?Sized,
        T: DeserializeOwned,
    {
        let response = self.post(url, body, false).await?;
        self.read_json(response, what).await
    }

    /// Posts `body` to `url` and reads the answer as an event stream with `decoder`.
    pub(crate) async fn stream<B, D>(&self, url: &Url, body: &B, decoder: D) -> Result<ChatStream>
    where
        B: Serialize + Sync + ?Sized,
        D: Decoder + Send + 'static,
    {
        let response = self.post(url, body, true).await?;
        self.event_stream(response, decoder).await
    }

    /// Posts `body` as JSON and returns the answer if its status is a success; an error status
    /// becomes an [`Error`] carrying the provider's error type, code and message.
    pub(crate) async fn post<B>(&self, url: &Url, body: &B, stream: bool) -> Result<Response>
    where
        B: Serialize + Sync + ?Sized,
    {
        let body = serde_json::to_vec(body).map_err(|err| {
            self.scope
                .finish(Error::other("cannot serialize the request").with_source(err))
        })?;
        let mut request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .timeout(self.request_timeout)
            .body(body);
        if stream {
            request = request.header(ACCEPT, "text/event-stream");
        }
        let response = request
            .send()
            .await
            .map_err(|err| self.scope.finish(request_error(err)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(status_error(&self.scope, status.as_u16(), &body))
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
            .map_err(|err| self.scope.finish(request_error(err)))?;
        // serde's message ("expected value at line 1 column 27") is all there is to say, so it
        // is the message; it is not chained as well.
        serde_json::from_slice(&body).map_err(|err| {
            self.scope
                .finish(Error::decode(format!("invalid {what} json: {err}")).with_status(status))
        })
    }

    /// Reads a streamed answer with `decoder`, as it arrives. Some servers answer a streaming
    /// request with a JSON error and a success status: that becomes an error. A body labelled
    /// JSON that is an event stream after all is read whole and parsed as one.
    pub(crate) async fn event_stream<D>(&self, response: Response, decoder: D) -> Result<ChatStream>
    where
        D: Decoder + Send + 'static,
    {
        let is_json = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim_start().starts_with("application/json"));
        if !is_json {
            return Ok(decode_stream(
                response.bytes_stream(),
                decoder,
                self.scope.clone(),
            ));
        }
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|err| self.scope.finish(request_error(err)))?;
        let start = body
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(0);
        if [&b"data:"[..], b"event:", b":"]
            .iter()
            .any(|prefix| body[start..].starts_with(prefix))
        {
            let once = futures_util::stream::iter([Ok::<_, Infallible>(body)]);
            return Ok(decode_stream(once, decoder, self.scope.clone()));
        }
        let parsed = error::parse_error_body(&body);
        let message = parsed
            .message
            .unwrap_or_else(|| "expected an event stream, got a json body".to_owned());
        Err(self.scope.finish(
            Error::decode(message)
                .with_status(status)
                .with_api_fields(parsed.error_type, parsed.code),
        ))
    }
}
