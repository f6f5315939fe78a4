//! [`OpenAiBuilder`]: keys, URLs, timeouts and headers of an [`OpenAi`] value.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, AUTHORIZATION};

use super::wire::MaxTokensField;
use super::{Inner, OpenAi};
use crate::provider::http::{
    add_headers, build_client, endpoint, env_var, parse_base_url, ApiKey, HeaderNames, Transport,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
use crate::{Error, Result};

/// OpenAI's API, where [`OpenAi::from_env`] goes unless `OPENAI_BASE_URL` says otherwise.
pub const DEFAULT_OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

#[derive(Debug, Clone, Default)]
enum Flavor {
    /// OpenAI itself; key and base URL fall back to the environment.
    #[default]
    OpenAi,
    /// A server speaking the same protocol; the key is optional and never read from the
    /// environment (an OpenAI key must not leak to another host).
    Compatible,
    /// An Azure OpenAI deployment: `api-key` header and `api-version` query parameter.
    Azure { api_version: String },
}

/// Builds an [`OpenAi`] value. Setters never fail; the first invalid input comes back from
/// [`build`](OpenAiBuilder::build).
///
/// Precedence: what the code sets, then the environment (`OPENAI_API_KEY`, `OPENAI_BASE_URL`;
/// only for OpenAI itself), then the defaults.
///
/// ```
/// use std::time::Duration;
/// use traced_llm::provider::OpenAi;
///
/// let model = OpenAi::builder()
///     .api_key("sk-test")
///     .base_url("http://127.0.0.1:8080/v1")
///     .connect_timeout(Duration::from_secs(2))
///     .request_timeout(Duration::from_secs(60))
///     .header("OpenAI-Organization", "org-123")
///     .build()?;
/// assert_eq!(traced_llm::LlmModel::provider(&model), "openai");
/// # Ok::<(), traced_llm::Error>(())
/// ```
#[must_use]
#[derive(Clone, Default)]
pub struct OpenAiBuilder {
    flavor: Flavor,
    api_key: Option<ApiKey>,
    base_url: Option<String>,
    provider: Option<String>,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    headers: Vec<(String, String)>,
    max_completion_tokens: Option<bool>,
}

impl fmt::Debug for OpenAiBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiBuilder")
            .field("flavor", &self.flavor)
            .field("api_key", &self.api_key)
            .field("base_url", &self.base_url)
            .field("provider", &self.provider)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("headers", &HeaderNames(&self.headers))
            .field("max_completion_tokens", &self.max_completion_tokens)
            .finish()
    }
}

impl OpenAiBuilder {
    pub(super) fn compatible(provider: String, base_url: String) -> Self {
        Self {
            flavor: Flavor::Compatible,
            provider: Some(provider),
            base_url: Some(base_url),
            ..Self::default()
        }
    }

    pub(super) fn azure(deployment_url: String, api_version: String, api_key: String) -> Self {
        Self {
            flavor: Flavor::Azure { api_version },
            provider: Some("azure".to_owned()),
            base_url: Some(deployment_url),
            api_key: Some(ApiKey::new(api_key)),
            ..Self::default()
        }
    }

    /// The API key (sent as `Authorization: Bearer …`, or `api-key` for Azure).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }

    /// The base URL that `/chat/completions` and `/embeddings` are appended to, e.g.
    /// `http://127.0.0.1:8000/v1`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The provider name reported as `$ai_provider` (`openai` by default).
    pub fn provider(mut self, label: impl Into<String>) -> Self {
        self.provider = Some(label.into());
        self
    }

    /// How long connecting may take; [`DEFAULT_CONNECT_TIMEOUT`] by default.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long a whole call may take, a stream's last byte included;
    /// [`DEFAULT_REQUEST_TIMEOUT`] by default.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// A header sent with every call (`OpenAI-Organization`, `HTTP-Referer`, ...).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Whether the output-token limit is sent as `max_completion_tokens` (OpenAI's current
    /// name, the only one its reasoning models accept) or `max_tokens` (what most compatible
    /// servers know). By default the former for `api.openai.com` and Azure, the latter
    /// elsewhere.
    pub fn max_completion_tokens(mut self, yes: bool) -> Self {
        self.max_completion_tokens = Some(yes);
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    /// [`Error::is_builder`] when the key is missing (OpenAI and Azure) or unusable, the base
    /// URL is malformed, a header is invalid, or the HTTP client cannot be built.
    pub fn build(self) -> Result<OpenAi> {
        let is_openai = matches!(self.flavor, Flavor::OpenAi);
        let api_key = match self.api_key {
            Some(key) => Some(key),
            None if is_openai => env_var("OPENAI_API_KEY").map(ApiKey::new),
            None => None,
        };
        if api_key.as_ref().is_some_and(ApiKey::is_blank) {
            return Err(Error::builder("the api key is empty"));
        }
        let base_url = match self.base_url {
            Some(url) => url,
            None => env_var("OPENAI_BASE_URL").unwrap_or_else(|| DEFAULT_OPENAI_BASE_URL.into()),
        };
        let base_url = parse_base_url(&base_url)?;
        let provider = self.provider.unwrap_or_else(|| "openai".to_owned());
        if provider.trim().is_empty() {
            return Err(Error::builder("the provider label is empty"));
        }

        let mut headers = HeaderMap::new();
        let query: Vec<(&str, &str)> = match &self.flavor {
            Flavor::Azure { api_version } => {
                let key = api_key
                    .as_ref()
                    .ok_or_else(|| Error::builder("azure needs an api key"))?;
                headers.insert(HeaderName::from_static("api-key"), key.header_value("")?);
                if api_version.trim().is_empty() {
                    return Err(Error::builder("azure needs an api version"));
                }
                vec![("api-version", api_version.as_str())]
            }
            Flavor::OpenAi => {
                let key = api_key.as_ref().ok_or_else(|| {
                    Error::builder("no api key: set OPENAI_API_KEY or call api_key(..)")
                })?;
                headers.insert(AUTHORIZATION, key.header_value("Bearer ")?);
                Vec::new()
            }
            Flavor::Compatible => {
                if let Some(key) = &api_key {
                    headers.insert(AUTHORIZATION, key.header_value("Bearer ")?);
                }
                Vec::new()
            }
        };
        add_headers(&mut headers, &self.headers)?;

        let chat_url = endpoint(&base_url, "/chat/completions", &query)?;
        let embeddings_url = endpoint(&base_url, "/embeddings", &query)?;
        let official = matches!(self.flavor, Flavor::Azure { .. })
            || chat_url.host_str() == Some("api.openai.com");
        let max_tokens_field = if self.max_completion_tokens.unwrap_or(official) {
            MaxTokensField::MaxCompletionTokens
        } else {
            MaxTokensField::MaxTokens
        };
        let client = build_client(
            headers,
            self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        )?;
        Ok(OpenAi {
            inner: Arc::new(Inner {
                transport: Transport {
                    client,
                    provider,
                    request_timeout: self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
                },
                base_url,
                chat_url,
                embeddings_url,
                max_tokens_field,
            }),
        })
    }
}
