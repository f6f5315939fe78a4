//! [`GeminiBuilder`]: key, URL, timeouts and headers of a [`Gemini`] value.

use std::fmt;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName};
use reqwest::Url;

use super::{Gemini, Inner};
use crate::provider::transport::{http_setters, secret_header, Defaults, HttpOptions, Transport};
use crate::util::env;
use crate::util::secret::Secret;
use crate::util::url::BaseUrl;
use crate::Result;

/// The Gemini API, where [`Gemini::from_env`] goes unless `GEMINI_BASE_URL` says otherwise.
pub const DEFAULT_GEMINI_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// The API version a base URL without a path gets, as Google's own SDKs add it to a host.
pub const DEFAULT_GEMINI_API_VERSION: &str = "v1beta";

/// Builds a [`Gemini`] value. Setters never fail; the first invalid input comes back from
/// [`build`](GeminiBuilder::build). Precedence: what the code sets, then the environment
/// (`GEMINI_API_KEY`, else `GOOGLE_API_KEY`; `GEMINI_BASE_URL`), then the defaults.
///
/// A base URL with a path is used as given (`http://127.0.0.1:8080/v1beta`); one that is only
/// a host (`http://127.0.0.1:8080`) gets [`DEFAULT_GEMINI_API_VERSION`] appended, since that is
/// how Google's SDKs read a base URL and what a server that mimics Google's paths expects.
///
/// ```
/// use traced_llm::provider::Gemini;
///
/// let model = Gemini::builder()
///     .api_key("AIza-test")
///     .base_url("http://127.0.0.1:8080/v1beta")
///     .build()?;
/// assert_eq!(traced_llm::LlmModel::provider(&model), "gemini");
/// # Ok::<(), traced_llm::Error>(())
/// ```
#[must_use]
#[derive(Clone, Default)]
pub struct GeminiBuilder {
    http: HttpOptions,
}

impl fmt::Debug for GeminiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("GeminiBuilder");
        self.http.debug_fields(&mut debug);
        debug.finish()
    }
}

impl GeminiBuilder {
    http_setters! {
        /// The API key, sent as `x-goog-api-key` (never in the URL). It is scrubbed from every
        /// error this provider returns.
        api_key;
        /// The base URL that `/models/{model}:generateContent` and the other methods are
        /// appended to, e.g. `http://127.0.0.1:8080/v1beta`; a bare host gets `/v1beta`.
        base_url;
        /// The provider name reported as `$ai_provider` (`gemini` by default).
        provider;
        /// A header sent with every call.
        header;
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    /// [`Error::is_builder`](crate::Error::is_builder) when the key is missing or unusable, the
    /// base URL is malformed (or `https` in a build without the `rustls` or `native-tls`
    /// feature), a header is invalid, or the HTTP client cannot be built.
    pub fn build(mut self) -> Result<Gemini> {
        if self.http.api_key.is_none() {
            // GOOGLE_API_KEY is Google's other name for the same key; GEMINI_API_KEY wins.
            self.http.api_key = env::var("GEMINI_API_KEY")
                .or_else(|| env::var("GOOGLE_API_KEY"))
                .map(Secret::new);
        }
        let mut options = self.http.resolve(&Defaults {
            provider: "gemini",
            base_url: DEFAULT_GEMINI_BASE_URL,
            api_key_env: Some("GEMINI_API_KEY"),
            base_url_env: Some("GEMINI_BASE_URL"),
        })?;
        let bare_host = Url::parse(options.base_url.as_str()).is_ok_and(|url| url.path() == "/");
        if bare_host {
            let versioned = format!("{}/{DEFAULT_GEMINI_API_VERSION}", options.base_url.as_str());
            options.base_url = BaseUrl::parse(&versioned, "base url")?;
        }
        let api_key = options.require_api_key()?;
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-goog-api-key"),
            secret_header("", api_key)?,
        );
        let base_url = options.base_url.clone();
        Ok(Gemini {
            inner: Arc::new(Inner {
                transport: Transport::new(options, headers)?,
                base_url,
            }),
        })
    }
}
