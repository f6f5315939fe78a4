//! Anthropic's Messages API.

pub(crate) mod stream;
mod wire;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_core::Stream;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Url;

use self::stream::AnthropicDecoder;
use self::wire::MessageAnswer;
use super::http::{
    add_headers, build_client, endpoint, env_var, parse_base_url, ApiKey, HeaderNames, Transport,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
use super::sse::{SseStream, TransportError};
use crate::types::{ChatRequest, ChatResponse, ChatStream};
use crate::{Error, LlmModel, Result};

/// Anthropic's API, where [`Anthropic::from_env`] goes unless `ANTHROPIC_BASE_URL` says
/// otherwise.
pub const DEFAULT_ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` header sent unless [`AnthropicBuilder::version`] says otherwise.
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// The output-token limit sent when a request sets none: the Messages API requires one. 4096
/// fits every current Claude model; set [`ChatRequest::max_tokens`] or
/// [`AnthropicBuilder::default_max_tokens`] for longer answers.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// A model behind Anthropic's Messages API (or a server that speaks it).
///
/// Anthropic counts cached tokens apart from `input_tokens`, so
/// [`cache_tokens_in_input`](LlmModel::cache_tokens_in_input) is `false` and PostHog prices the
/// cache right. Cloning is cheap and shares one HTTP client.
///
/// ```no_run
/// use futures_util::StreamExt;
/// use traced_llm::provider::Anthropic;
/// use traced_llm::{ChatRequest, LlmModel, Message, StreamEvent};
///
/// # async fn run() -> traced_llm::Result<()> {
/// let model = Anthropic::from_env()?; // ANTHROPIC_API_KEY, optional ANTHROPIC_BASE_URL
/// let request = ChatRequest::new("claude-sonnet-4-5")
///     .message(Message::system("Answer in one sentence."))
///     .message(Message::user("Why is the sky blue?"));
/// let mut stream = model.chat_stream(&request).await?;
/// while let Some(event) = stream.next().await {
///     if let StreamEvent::TextDelta { text } = event? {
///         print!("{text}");
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Anthropic {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    base_url: String,
    messages_url: Url,
    default_max_tokens: u32,
}

impl Anthropic {
    /// Anthropic with the key from `ANTHROPIC_API_KEY` and the base URL from
    /// `ANTHROPIC_BASE_URL` ([`DEFAULT_ANTHROPIC_BASE_URL`] when unset).
    ///
    /// # Errors
    /// [`Error::is_builder`] when `ANTHROPIC_API_KEY` is unset or `ANTHROPIC_BASE_URL` is
    /// malformed.
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// A builder; see [`AnthropicBuilder`].
    pub fn builder() -> AnthropicBuilder {
        AnthropicBuilder::default()
    }
}

impl fmt::Debug for Anthropic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anthropic")
            .field("provider", &self.inner.transport.provider)
            .field("base_url", &self.inner.base_url)
            .field("api_key", &"<redacted>")
            .field("default_max_tokens", &self.inner.default_max_tokens)
            .field("request_timeout", &self.inner.transport.request_timeout)
            .finish()
    }
}

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
    api_key: Option<ApiKey>,
    base_url: Option<String>,
    provider: Option<String>,
    version: Option<String>,
    default_max_tokens: Option<u32>,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
    headers: Vec<(String, String)>,
}

impl fmt::Debug for AnthropicBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicBuilder")
            .field("api_key", &self.api_key)
            .field("base_url", &self.base_url)
            .field("provider", &self.provider)
            .field("version", &self.version)
            .field("default_max_tokens", &self.default_max_tokens)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("headers", &HeaderNames(&self.headers))
            .finish()
    }
}

impl AnthropicBuilder {
    /// The API key, sent as `x-api-key`.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(ApiKey::new(key));
        self
    }

    /// The base URL that `/v1/messages` is appended to (a trailing `/v1` is accepted too).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The provider name reported as `$ai_provider` (`anthropic` by default).
    pub fn provider(mut self, label: impl Into<String>) -> Self {
        self.provider = Some(label.into());
        self
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

    /// A header sent with every call (`anthropic-beta`, ...).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    /// [`Error::is_builder`] when the key is missing or unusable, the base URL is malformed,
    /// a header is invalid, or the HTTP client cannot be built.
    pub fn build(self) -> Result<Anthropic> {
        let api_key = self
            .api_key
            .or_else(|| env_var("ANTHROPIC_API_KEY").map(ApiKey::new))
            .ok_or_else(|| {
                Error::builder("no api key: set ANTHROPIC_API_KEY or call api_key(..)")
            })?;
        if api_key.is_blank() {
            return Err(Error::builder("the api key is empty"));
        }
        let base_url = self
            .base_url
            .or_else(|| env_var("ANTHROPIC_BASE_URL"))
            .unwrap_or_else(|| DEFAULT_ANTHROPIC_BASE_URL.to_owned());
        let base_url = parse_base_url(&base_url)?;
        let path = if base_url.ends_with("/v1") {
            "/messages"
        } else {
            "/v1/messages"
        };
        let messages_url = endpoint(&base_url, path, &[])?;
        let provider = self.provider.unwrap_or_else(|| "anthropic".to_owned());
        if provider.trim().is_empty() {
            return Err(Error::builder("the provider label is empty"));
        }
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
            api_key.header_value("")?,
        );
        headers.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_str(&version)
                .map_err(|_| Error::builder(format!("invalid anthropic version {version:?}")))?,
        );
        add_headers(&mut headers, &self.headers)?;
        let client = build_client(
            headers,
            self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        )?;
        Ok(Anthropic {
            inner: Arc::new(Inner {
                transport: Transport {
                    client,
                    provider,
                    request_timeout: self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT),
                },
                base_url,
                messages_url,
                default_max_tokens,
            }),
        })
    }
}

impl Anthropic {
    fn body(&self, request: &ChatRequest, stream: bool) -> Result<Vec<u8>> {
        let value = wire::messages_body(request, stream, self.inner.default_max_tokens);
        serde_json::to_vec(&value).map_err(|err| {
            Error::other("cannot serialize the request")
                .with_source(err)
                .with_provider(self.provider())
        })
    }
}

#[async_trait]
impl LlmModel for Anthropic {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let body = self.body(request, false)?;
        let transport = &self.inner.transport;
        let response = transport
            .post(&self.inner.messages_url, body, false)
            .await?;
        let answer: MessageAnswer = transport.read_json(response, "message").await?;
        Ok(answer.into_response())
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let body = self.body(request, true)?;
        let transport = &self.inner.transport;
        let response = transport.post(&self.inner.messages_url, body, true).await?;
        let provider = transport.provider.as_str();
        let body = transport.stream_body(response).await?;
        Ok(body.parse(
            |response| parse_stream(response.bytes_stream(), provider),
            |bytes| {
                let once = futures_util::stream::iter([Ok::<_, Infallible>(bytes)]);
                parse_stream(once, provider)
            },
        ))
    }

    fn provider(&self) -> &str {
        &self.inner.transport.provider
    }

    fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    fn cache_tokens_in_input(&self) -> bool {
        // `input_tokens` excludes cache reads and writes.
        false
    }
}

/// The Anthropic stream parser over any byte stream, for benchmarks and tests.
pub(crate) fn parse_stream<S, B, E>(bytes: S, provider: &str) -> ChatStream
where
    S: Stream<Item = std::result::Result<B, E>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
    E: TransportError + Send + 'static,
{
    ChatStream::new(SseStream::new(bytes, AnthropicDecoder::default(), provider))
}
