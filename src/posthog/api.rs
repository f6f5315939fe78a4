//! What the flag and prompt clients share: keys that never print, the host, one HTTP client,
//! and requests bounded by a timeout whose failures become [`Error`]s without a secret in them.

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Client, RequestBuilder, StatusCode, Url};
use serde_json::Value;

use crate::util::env;
use crate::util::http::{build_client, without_secrets, ClientSettings, Failure};
use crate::util::secret::Secret;
use crate::util::url::{display, BaseUrl};
use crate::{Error, Result};

/// The name errors give as their provider.
pub(crate) const PROVIDER: &str = "posthog";

/// Environment variable holding a personal API key (`phx_…`), for local evaluation and prompts.
pub const ENV_PERSONAL_API_KEY: &str = "POSTHOG_PERSONAL_API_KEY";

/// A PostHog key: `Debug` and `Display` show its kind, never its value.
pub(crate) type Key = Secret;

/// `Bearer <key>`, marked sensitive so no log of headers shows it.
fn bearer(key: &Key) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
        Error::builder("posthog: the personal API key holds characters a header cannot carry")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A key from code, else from `env`; `None` when neither has one.
pub(crate) fn key_from(code: Option<&str>, env: &str) -> Option<Key> {
    match code {
        Some(key) if !key.trim().is_empty() => Some(Secret::new(key.trim())),
        Some(_) => None,
        None => env::var(env).map(Secret::new),
    }
}

/// Checks a key's shape: printable ASCII, and the kind PostHog expects where it is used.
pub(crate) fn check_key(key: &Key, what: &str, personal: bool) -> Result<()> {
    let text = key.expose();
    if !text.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Error::builder(format!(
            "posthog: the {what} holds whitespace or non-ASCII characters"
        )));
    }
    if personal && text.starts_with("phc_") {
        return Err(Error::builder(format!(
            "posthog: a project API key (phc_) was given as the {what}; it must be a personal API key (phx_)"
        )));
    }
    if !personal && text.starts_with("phx_") {
        return Err(Error::builder(format!(
            "posthog: a personal API key (phx_) was given as the {what}; it must be the project API key (phc_)"
        )));
    }
    Ok(())
}

/// The host from code, else from `POSTHOG_HOST`, else `default`, checked (this build must reach
/// it) and without trailing slashes. A path prefix (a self-hosted install behind a proxy) is
/// kept.
pub(crate) fn host_from(code: Option<&str>, default: &str) -> Result<String> {
    let env = env::var(super::ENV_HOST);
    let host = code
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .or(env.as_deref())
        .unwrap_or(default);
    let host = BaseUrl::parse(host, "posthog: host")?;
    host.check_tls("posthog: host")?;
    Ok(host.as_str().to_owned())
}

/// A URL as errors and `Debug` may show it: without user info, with query values replaced.
pub(crate) fn display_url(raw: &str) -> String {
    display(raw)
}

/// `host` + `path`, with `query` pairs encoded.
pub(crate) fn url(host: &str, path: &str, query: &[(&str, &str)]) -> Result<Url> {
    let text = format!("{host}{path}");
    let parsed = if query.is_empty() {
        Url::parse(&text)
    } else {
        Url::parse_with_params(&text, query)
    };
    parsed.map_err(|_| Error::builder(format!("posthog: cannot build a url for {path}")))
}

/// One client for the life of a flag or prompt client: its connections are reused.
pub(crate) fn client(timeout: Duration) -> Result<Client> {
    let mut settings = ClientSettings::new(timeout);
    settings.timeout = Some(timeout);
    build_client(settings).map_err(|err| err.with_provider(PROVIDER))
}

/// An answer: its status, its `ETag`, and its body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    #[cfg_attr(not(feature = "flags"), allow(dead_code))]
    pub(crate) etag: Option<String>,
    pub(crate) body: Vec<u8>,
}

/// Sends `request` and reads the whole answer, all within `timeout`. `what` names the call in
/// errors ("flags", "flag definitions", ...). No error carries the URL, whose query may hold
/// the project key.
pub(crate) async fn send(request: RequestBuilder, timeout: Duration, what: &str) -> Result<Answer> {
    let call = async {
        let response = request.send().await?;
        let status = response.status();
        let etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await?.to_vec();
        Ok::<_, reqwest::Error>(Answer { status, etag, body })
    };
    match tokio::time::timeout(timeout, call).await {
        Err(_) => Err(timed_out(what, timeout)),
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(match Failure::of(&err) {
            Failure::Timeout => timed_out(what, timeout),
            Failure::Connect | Failure::Request => {
                Error::connect(without_secrets(err)).with_provider(PROVIDER)
            }
            Failure::Other => Error::other(format!("{what} request failed"))
                .with_source(without_secrets(err))
                .with_provider(PROVIDER),
        }),
    }
}

fn timed_out(what: &str, timeout: Duration) -> Error {
    Error::timeout(format!("{what} did not answer within {timeout:?}")).with_provider(PROVIDER)
}

/// A non-success answer as an error, with PostHog's `detail` as the message.
pub(crate) fn status_error(what: &str, answer: &Answer) -> Error {
    let detail = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|body| {
            ["detail", "error", "message"]
                .iter()
                .find_map(|key| body.get(key)?.as_str().map(str::to_owned))
        });
    let message = match detail {
        Some(detail) => format!("{what}: {}", truncate(&detail, 200)),
        None => what.to_owned(),
    };
    Error::from_status(answer.status.as_u16(), message).with_provider(PROVIDER)
}

/// The body as JSON.
pub(crate) fn json(what: &str, answer: &Answer) -> Result<Value> {
    serde_json::from_slice(&answer.body).map_err(|err| {
        Error::decode(format!("invalid {what} json"))
            .with_status(answer.status.as_u16())
            .with_source(err)
            .with_provider(PROVIDER)
    })
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Adds `Authorization: Bearer <key>`.
pub(crate) fn authorized(request: RequestBuilder, key: &Key) -> Result<RequestBuilder> {
    Ok(request.header(AUTHORIZATION, bearer(key)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_never_print() {
        let key = key_from(Some(" phx_personal_secret "), ENV_PERSONAL_API_KEY).unwrap();
        assert_eq!(key.expose(), "phx_personal_secret");
        assert_eq!(format!("{key:?}"), "\"phx_…redacted\"");
        assert_eq!(format!("{:?}", Key::new("secret")), "\"…redacted\"");
        assert!(bearer(&key).unwrap().is_sensitive());
    }

    #[test]
    fn key_kinds_are_checked() {
        assert!(check_key(&Key::new("phc_a"), "personal API key", true).is_err());
        assert!(check_key(&Key::new("phx_a"), "project API key", false).is_err());
        assert!(check_key(&Key::new("phx_a"), "personal API key", true).is_ok());
        assert!(check_key(&Key::new("ph c"), "project API key", false).is_err());
    }

    #[test]
    fn hosts_are_checked_and_keep_their_path() {
        assert_eq!(
            host_from(Some("http://ph.example.com/ingest/"), "https://x").unwrap(),
            "http://ph.example.com/ingest"
        );
        let https = host_from(Some("https://ph.example.com"), "https://x");
        // An https host needs a TLS feature; without one the error says which to enable.
        match cfg!(any(feature = "rustls", feature = "native-tls")) {
            true => assert_eq!(https.unwrap(), "https://ph.example.com"),
            false => assert!(https.unwrap_err().to_string().contains("rustls")),
        }
        for bad in [
            "ftp://x",
            "not a url",
            "https://u:p@x/?a=1",
            "https://x/?a=1",
        ] {
            let err = host_from(Some(bad), "https://x").unwrap_err();
            assert!(err.is_builder(), "{bad}");
            assert!(!err.to_string().contains(":p@"), "{err}");
        }
        assert_eq!(display_url("https://u:p@x/ingest"), "https://x/ingest");
    }
}
