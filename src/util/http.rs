//! The `reqwest` client every part of the crate builds the same way, and `reqwest` errors
//! without the secrets of their URL.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::Client;

use super::url::sanitize;
use crate::{Error, Result};

/// The `User-Agent` of every request the crate makes.
pub(crate) const USER_AGENT: &str = concat!("traced-llm/", env!("CARGO_PKG_VERSION"));

/// What a client is built with.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// How long establishing a connection (TCP and TLS) may take.
    pub(crate) connect_timeout: Duration,
    /// A limit on every whole request, when the client sets one rather than each request.
    pub(crate) timeout: Option<Duration>,
    /// Headers sent with every request; mark secret values sensitive.
    pub(crate) headers: HeaderMap,
}

impl ClientSettings {
    /// No default headers and no client-wide request limit.
    pub(crate) fn new(connect_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            timeout: None,
            headers: HeaderMap::new(),
        }
    }
}

/// One client per provider value or sink: its connection pool and TLS sessions are reused by
/// every request.
///
/// reqwest retries nothing but protocol-level refusals (an HTTP/2 stream the server refused
/// before reading it), which cannot bill twice; the crate adds no retries here.
///
/// # Errors
/// [`Error::is_builder`] when reqwest cannot build it (no TLS backend, ...); the cause is chained.
pub(crate) fn build_client(settings: ClientSettings) -> Result<Client> {
    let mut builder = Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(settings.connect_timeout)
        .default_headers(settings.headers);
    if let Some(timeout) = settings.timeout {
        builder = builder.timeout(timeout);
    }
    builder.build().map_err(|err| {
        Error::builder("cannot build the http client").with_source(without_secrets(err))
    })
}

/// How a request failed, in the classes callers tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No complete answer in time (connecting included).
    Timeout,
    /// The server could not be reached: DNS, refused connection, TLS.
    Connect,
    /// Sending the request failed after connecting.
    Request,
    /// Anything else: a broken body, a redirect loop, ...
    Other,
}

impl Failure {
    /// The class of `err`; a timeout while connecting is a timeout.
    pub(crate) fn of(err: &reqwest::Error) -> Self {
        if err.is_timeout() {
            Failure::Timeout
        } else if err.is_connect() {
            Failure::Connect
        } else if err.is_request() {
            Failure::Request
        } else {
            Failure::Other
        }
    }
}

/// `err` with the URL it names stripped of user info, query values and fragment: reqwest's
/// `Display` and `Debug` show that URL. Call it before `err` goes into any error or log line.
pub(crate) fn without_secrets(mut err: reqwest::Error) -> reqwest::Error {
    if let Some(url) = err.url_mut() {
        sanitize(url);
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_show_their_url_without_secrets() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = build_client(ClientSettings::new(Duration::from_secs(5))).unwrap();
        let err = client
            .get(format!("http://user:PASS@127.0.0.1:{port}/v1?key=SECRET"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(Failure::of(&err), Failure::Connect);
        let err = without_secrets(err);
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("PASS") && !shown.contains("SECRET"),
            "{shown}"
        );
        assert!(shown.contains("key=[redacted]"), "{shown}");
    }
}
