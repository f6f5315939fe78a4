//! The builder options every provider has, written once: [`HttpOptions`] sits in each builder,
//! [`http_setters!`](http_setters) writes its setters, and [`HttpOptions::resolve`] applies the
//! one precedence inside `build()`: what the code set, then the environment, then the default.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};
use crate::util::env;
use crate::util::secret::Secret;
use crate::util::url::{display, BaseUrl};
use crate::{Error, Result};

/// Key, base URL, label, timeouts and headers, as the code set them.
#[derive(Clone, Default)]
pub(crate) struct HttpOptions {
    pub(crate) api_key: Option<Secret>,
    pub(crate) base_url: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) headers: Vec<(String, String)>,
}

/// What a provider falls back to for the options the code did not set.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    /// The label when none is set (`openai`).
    pub(crate) provider: &'static str,
    /// The base URL when neither the code nor the environment sets one.
    pub(crate) base_url: &'static str,
    /// The variable the key is read from, if the environment is read for it.
    pub(crate) api_key_env: Option<&'static str>,
    /// The variable the base URL is read from, if the environment is read for it.
    pub(crate) base_url_env: Option<&'static str>,
}

/// The options after precedence and checks: what a [`Transport`](super::Transport) is built
/// from.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) api_key: Option<Secret>,
    pub(crate) base_url: BaseUrl,
    pub(crate) provider: String,
    pub(crate) connect_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) headers: Vec<(String, String)>,
    api_key_env: Option<&'static str>,
}

impl HttpOptions {
    /// Applies the precedence (code, then environment, then `defaults`) and checks every value.
    ///
    /// # Errors
    /// [`Error::is_builder`] for a blank key, a base URL that [`BaseUrl::parse`] refuses or this
    /// build cannot reach ([`BaseUrl::check_tls`]), or a blank label.
    pub(crate) fn resolve(self, defaults: &Defaults) -> Result<Resolved> {
        let api_key = self
            .api_key
            .or_else(|| defaults.api_key_env.and_then(env::var).map(Secret::new));
        if api_key.as_ref().is_some_and(Secret::is_blank) {
            return Err(Error::builder("the api key is empty"));
        }
        let base_url = self
            .base_url
            .or_else(|| defaults.base_url_env.and_then(env::var))
            .unwrap_or_else(|| defaults.base_url.to_owned());
        let base_url = BaseUrl::parse(&base_url, "base url")?;
        base_url.check_tls("base url")?;
        let provider = self
            .provider
            .unwrap_or_else(|| defaults.provider.to_owned());
        if provider.trim().is_empty() {
            return Err(Error::builder("the provider label is empty"));
        }
        Ok(Resolved {
            api_key,
            base_url,
            provider,
            connect_timeout: self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
            request_timeout: self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
            headers: self.headers,
            api_key_env: defaults.api_key_env,
        })
    }

    /// Adds the options to a builder's `Debug`: the key redacted, the base URL as safe to show,
    /// header names without their values (a caller may pass a secret as a header value).
    pub(crate) fn debug_fields(&self, debug: &mut fmt::DebugStruct<'_, '_>) {
        debug
            .field("api_key", &self.api_key)
            .field("base_url", &self.base_url.as_deref().map(display))
            .field("provider", &self.provider)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("headers", &HeaderNames(&self.headers));
    }
}

impl Resolved {
    /// The key, which this provider cannot do without.
    ///
    /// # Errors
    /// [`Error::is_builder`] naming the variable to set (or saying it is blank), when there is
    /// none.
    pub(crate) fn require_api_key(&self) -> Result<&Secret> {
        self.api_key.as_ref().ok_or_else(|| {
            Error::builder(match self.api_key_env {
                Some(variable) if env::is_set(variable) => {
                    format!("no api key: {variable} is set but blank; give it the key or call api_key(..)")
                }
                Some(variable) => format!("no api key: set {variable} or call api_key(..)"),
                None => "no api key: call api_key(..)".to_owned(),
            })
        })
    }
}

/// `secret` after `prefix` (`"Bearer "` or nothing) as a header value marked sensitive, so
/// reqwest and hyper never show it.
///
/// # Errors
/// [`Error::is_builder`] when the key holds characters a header cannot carry.
pub(crate) fn secret_header(prefix: &str, secret: &Secret) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(&format!("{prefix}{}", secret.expose().trim()))
        .map_err(|_| Error::builder("the api key holds characters a header cannot carry"))?;
    value.set_sensitive(true);
    Ok(value)
}

/// Adds caller-given headers to `headers`, replacing the provider's own of the same name. The
/// values of headers that carry credentials (`Authorization`, names with `key`, `token`,
/// `secret` or `auth`) are marked sensitive and returned, so errors can be scrubbed of them.
///
/// # Errors
/// [`Error::is_builder`] for an invalid name or value; the message names the header, never the
/// value.
pub(crate) fn add_headers(
    headers: &mut HeaderMap,
    extra: &[(String, String)],
) -> Result<Vec<Secret>> {
    let mut secrets = Vec::new();
    for (name, value) in extra {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::builder(format!("invalid header name {name:?}")))?;
        let mut header = HeaderValue::from_str(value)
            .map_err(|_| Error::builder(format!("invalid value for header {name}")))?;
        let lower = name.as_str();
        if ["auth", "key", "token", "secret"]
            .iter()
            .any(|word| lower.contains(word))
        {
            header.set_sensitive(true);
            // `Bearer X`, `Basic X`: the credential is what follows the scheme.
            if let Some((_, credential)) = value.trim().split_once(' ') {
                secrets.push(Secret::new(credential));
            }
            secrets.push(Secret::new(value.as_str()));
        }
        headers.insert(name, header);
    }
    Ok(secrets)
}

/// Header names only.
struct HeaderNames<'a>(&'a [(String, String)]);

impl fmt::Debug for HeaderNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

/// The setters of the options every provider builder has, for a builder with an
/// `http: HttpOptions` field. The docs that differ per provider come first, each before the
/// name of its setter; the timeout setters' docs are the same everywhere and written here.
macro_rules! http_setters {
    (
        $(#[$api_key:meta])* api_key;
        $(#[$base_url:meta])* base_url;
        $(#[$provider:meta])* provider;
        $(#[$header:meta])* header;
    ) => {
        $(#[$api_key])*
        pub fn api_key(mut self, key: impl Into<String>) -> Self {
            self.http.api_key = Some($crate::util::secret::Secret::new(key));
            self
        }

        $(#[$base_url])*
        ///
        /// User info (`http://user:password@host/...`) is sent as basic auth and never shown:
        /// [`base_url()`](crate::LlmModel::base_url), `Debug` and errors show the URL without
        /// it. A query or fragment is refused.
        pub fn base_url(mut self, url: impl Into<String>) -> Self {
            self.http.base_url = Some(url.into());
            self
        }

        $(#[$provider])*
        pub fn provider(mut self, label: impl Into<String>) -> Self {
            self.http.provider = Some(label.into());
            self
        }

        /// How long connecting may take;
        /// [`DEFAULT_CONNECT_TIMEOUT`](crate::provider::DEFAULT_CONNECT_TIMEOUT) by default.
        pub fn connect_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.http.connect_timeout = Some(timeout);
            self
        }

        /// How long a whole call may take, a stream's last byte included;
        /// [`DEFAULT_REQUEST_TIMEOUT`](crate::provider::DEFAULT_REQUEST_TIMEOUT) by default.
        pub fn request_timeout(mut self, timeout: ::std::time::Duration) -> Self {
            self.http.request_timeout = Some(timeout);
            self
        }

        $(#[$header])*
        ///
        /// The values of headers whose names hold `auth`, `key`, `token` or `secret` are treated
        /// as secrets: never shown, and scrubbed from error texts.
        pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
            self.http.headers.push((name.into(), value.into()));
            self
        }
    };
}

pub(crate) use http_setters;

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Defaults = Defaults {
        provider: "p",
        base_url: "http://127.0.0.1:1/v1",
        api_key_env: Some("TRACED_LLM_OPTIONS_TEST_KEY"),
        base_url_env: Some("TRACED_LLM_OPTIONS_TEST_URL"),
    };

    #[test]
    fn code_wins_over_environment_which_wins_over_defaults() {
        // Variables no other test uses.
        std::env::remove_var("TRACED_LLM_OPTIONS_TEST_KEY");
        std::env::remove_var("TRACED_LLM_OPTIONS_TEST_URL");
        let resolved = HttpOptions::default().resolve(&DEFAULTS).unwrap();
        assert_eq!(resolved.base_url.as_str(), "http://127.0.0.1:1/v1");
        assert_eq!(resolved.provider, "p");
        assert_eq!(resolved.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(resolved.request_timeout, DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(
            resolved.require_api_key().unwrap_err().message(),
            "no api key: set TRACED_LLM_OPTIONS_TEST_KEY or call api_key(..)"
        );

        std::env::set_var("TRACED_LLM_OPTIONS_TEST_KEY", " ");
        let resolved = HttpOptions::default().resolve(&DEFAULTS).unwrap();
        assert_eq!(
            resolved.require_api_key().unwrap_err().message(),
            "no api key: TRACED_LLM_OPTIONS_TEST_KEY is set but blank; give it the key or call \
             api_key(..)"
        );

        std::env::set_var("TRACED_LLM_OPTIONS_TEST_KEY", " env-key ");
        std::env::set_var("TRACED_LLM_OPTIONS_TEST_URL", "http://127.0.0.1:2/");
        let resolved = HttpOptions::default().resolve(&DEFAULTS).unwrap();
        assert_eq!(resolved.require_api_key().unwrap().expose(), "env-key");
        assert_eq!(resolved.base_url.as_str(), "http://127.0.0.1:2");

        let options = HttpOptions {
            api_key: Some(Secret::new("code-key")),
            base_url: Some("http://127.0.0.1:3".into()),
            ..HttpOptions::default()
        };
        let resolved = options.resolve(&DEFAULTS).unwrap();
        assert_eq!(resolved.require_api_key().unwrap().expose(), "code-key");
        assert_eq!(resolved.base_url.as_str(), "http://127.0.0.1:3");
        std::env::remove_var("TRACED_LLM_OPTIONS_TEST_KEY");
        std::env::remove_var("TRACED_LLM_OPTIONS_TEST_URL");
    }

    #[test]
    fn bad_values_are_builder_errors() {
        let defaults = Defaults {
            api_key_env: None,
            base_url_env: None,
            ..DEFAULTS
        };
        let with = |options: HttpOptions| options.resolve(&defaults).unwrap_err();
        assert!(with(HttpOptions {
            api_key: Some(Secret::new(" ")),
            ..HttpOptions::default()
        })
        .is_builder());
        assert!(with(HttpOptions {
            provider: Some(" ".into()),
            ..HttpOptions::default()
        })
        .is_builder());
        let err = with(HttpOptions {
            base_url: Some("http://h/v1?key=SECRET".into()),
            ..HttpOptions::default()
        });
        assert!(
            err.is_builder() && !err.to_string().contains("SECRET"),
            "{err}"
        );
        let resolved = HttpOptions::default().resolve(&defaults).unwrap();
        assert_eq!(
            resolved.require_api_key().unwrap_err().message(),
            "no api key: call api_key(..)"
        );
    }

    #[test]
    fn debug_shows_no_secret() {
        let options = HttpOptions {
            api_key: Some(Secret::new("sk-very-secret-key")),
            base_url: Some("http://user:url-secret@127.0.0.1:1/v1".into()),
            headers: vec![("X-Proxy-Token".into(), "proxy-secret".into())],
            ..HttpOptions::default()
        };
        struct Shown<'a>(&'a HttpOptions);
        impl fmt::Debug for Shown<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut debug = f.debug_struct("Builder");
                self.0.debug_fields(&mut debug);
                debug.finish()
            }
        }
        let shown = format!("{:?}", Shown(&options));
        for secret in ["very-secret", "url-secret", "proxy-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("X-Proxy-Token") && shown.contains("127.0.0.1:1/v1"),
            "{shown}"
        );
    }

    #[test]
    fn credential_headers_are_sensitive_and_scrubbed() {
        let mut headers = HeaderMap::new();
        let secrets = add_headers(
            &mut headers,
            &[
                ("Authorization".into(), "Bearer tok-123".into()),
                ("X-Api-Key".into(), "k-456".into()),
                ("OpenAI-Organization".into(), "org-1".into()),
            ],
        )
        .unwrap();
        let exposed: Vec<&str> = secrets.iter().map(Secret::expose).collect();
        assert_eq!(exposed, ["tok-123", "Bearer tok-123", "k-456"]);
        assert!(headers["authorization"].is_sensitive());
        assert!(headers["x-api-key"].is_sensitive());
        assert!(!headers["openai-organization"].is_sensitive());
        let err = add_headers(&mut headers, &[("X-Key".into(), "bad\nvalue".into())]).unwrap_err();
        assert!(!err.to_string().contains("bad"), "{err}");
    }
}
