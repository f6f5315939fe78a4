//! [`AnthropicBuilder`]: key, URL, version, timeouts and headers of an [`Anthropic`] value.

use std::fmt;
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::{Anthropic, Inner};
use crate::provider::transport::{http_setters, secret_header, Defaults, HttpOptions, Transport};
use crate::{Error, Result};

/// Anthropic's API, where [`Anthropic::from_env`] goes unless `ANTHROPIC_BASE_URL` says
/// otherwise.
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` header sent unless [`AnthropicBuilder::version`] says otherwise.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// The output-token limit sent when a request sets none: the Messages API requires one. 4096
/// fits every current Claude model; set [`ChatRequest::max_tokens`](crate::ChatRequest::max_tokens)
/// or [`AnthropicBuilder::default_max_tokens`] for longer answers.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Builds an [`Anthropic`] value. Setters never fail; the first invalid input comes back from
/// [`build`](AnthropicBuilder::build). Precedence: what the code sets, then the environment
/// (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`), then the defaults.
///
/// ```
/// use traced_llm::provider::Anthropic;
///
/// let model = Anthropic::builder()
///     .api_key("sk-ant-test")
///     .base_url("http://127.0.0.1:8080")
///     .default_max_tokens(1024)
///     .header("anthropic-beta", "prompt-caching-2024-07-31")
///     .build()?;
/// assert_eq!(traced_llm::LlmModel::base_url(&model), "http://127.0.0.1:8080");
/// # Ok::<(), traced_llm::Error>(())
/// ```
#[must_use]
#[derive(Clone, Default)]
pub struct AnthropicBuilder {
    http: HttpOptions,
    version: Option<String>,
    default_max_tokens: Option<u32>,
}

impl fmt::Debug for AnthropicBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("AnthropicBuilder");
        self.http.debug_fields(&mut debug);
        debug
            .field("version", &self.version)
            .field("default_max_tokens", &self.default_max_tokens)
            .finish()
    }
}

impl AnthropicBuilder {
    http_setters! {
        /// The API key, sent as `x-api-key`. It is scrubbed from every error this provider
        /// returns.
        api_key;
        /// The base URL that `/v1/messages` is appended to (a trailing `/v1` is accepted too).
        base_url;
        /// The provider name reported as `$ai_provider` (`anthropic` by default).
        provider;
        /// A header sent with every call (`anthropic-beta`, ...).
        header;
    }

    /// The `anthropic-version` header; [`DEFAULT_ANTHROPIC_VERSION`] by default.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// The output-token limit for requests that set none; [`DEFAULT_MAX_TOKENS`] by default.
    pub fn default_max_tokens(mut self, max_tokens: u32) -> Self {
        self.default_max_tokens = Some(max_tokens);
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    /// [`Error::is_builder`] when the key is missing or unusable, the base URL is malformed
    /// (or `https` in a build without the `rustls` or `native-tls` feature), a header is
    /// invalid, or the HTTP client cannot be built.
    pub fn build(self) -> Result<Anthropic> {
        let options = self.http.resolve(&Defaults {
            provider: "anthropic",
            base_url: DEFAULT_ANTHROPIC_BASE_URL,
            api_key_env: Some("ANTHROPIC_API_KEY"),
            base_url_env: Some("ANTHROPIC_BASE_URL"),
        })?;
        let api_key = options.require_api_key()?;
        let path = if options.base_url.as_str().ends_with("/v1") {
            "/messages"
        } else {
            "/v1/messages"
        };
        let messages_url = options.base_url.join(path, &[])?;
        let version = self
            .version
            .unwrap_or_else(|| DEFAULT_ANTHROPIC_VERSION.to_owned());
        let default_max_tokens = self.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if default_max_tokens == 0 {
            return Err(Error::builder("the default max tokens must be at least 1"));
        }

        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-api-key"),
            secret_header("", api_key)?,
        );
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_str(&version)
                .map_err(|_| Error::builder(format!("invalid anthropic version {version:?}")))?,
        );
        Ok(Anthropic {
            inner: Arc::new(Inner {
                transport: Transport::new(options, headers)?,
                messages_url,
                default_max_tokens,
            }),
        })
    }
}
