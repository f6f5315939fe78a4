//! OpenAI's Chat Completions and Embeddings APIs, and every server that speaks them.

mod config;
pub(crate) mod stream;
mod wire;

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures_core::Stream;
use reqwest::Url;

pub use self::config::{OpenAiBuilder, DEFAULT_OPENAI_BASE_URL};
use self::stream::OpenAiDecoder;
use self::wire::{Completion, Embeddings, MaxTokensField};
use super::http::Transport;
use super::sse::{SseStream, TransportError};
use crate::types::{ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse};
use crate::{Error, LlmModel, Result};

/// A model behind OpenAI's Chat Completions API, or behind any server that speaks it (Groq,
/// Together, OpenRouter, DeepSeek, Mistral, Ollama, vLLM, the llama.cpp server, Azure OpenAI).
///
/// Cloning is cheap and shares one HTTP client, so connections and TLS sessions are reused.
/// Streams always ask for `stream_options.include_usage`, so traced streams carry token counts.
///
/// ```no_run
/// use traced_llm::provider::OpenAi;
/// use traced_llm::{ChatRequest, LlmModel, Message};
///
/// # async fn run() -> traced_llm::Result<()> {
/// let model = OpenAi::from_env()?; // OPENAI_API_KEY, optional OPENAI_BASE_URL
/// let answer = model
///     .chat(&ChatRequest::new("gpt-4o-mini").message(Message::user("Hello!")))
///     .await?;
/// println!("{}", answer.text());
///
/// let groq = OpenAi::compatible("groq", "https://api.groq.com/openai/v1")
///     .api_key(std::env::var("GROQ_API_KEY").unwrap_or_default())
///     .build()?;
/// let ollama = OpenAi::compatible("ollama", "http://127.0.0.1:11434/v1").build()?;
/// let azure = OpenAi::azure(
///     "https://my-resource.openai.azure.com/openai/deployments/gpt-4o",
///     "2024-10-21",
///     std::env::var("AZURE_OPENAI_API_KEY").unwrap_or_default(),
/// )
/// .build()?;
/// # let _ = (groq, ollama, azure);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct OpenAi {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    base_url: String,
    chat_url: Url,
    embeddings_url: Url,
    max_tokens_field: MaxTokensField,
}

impl OpenAi {
    /// OpenAI with the key from `OPENAI_API_KEY` and the base URL from `OPENAI_BASE_URL`
    /// ([`DEFAULT_OPENAI_BASE_URL`] when unset).
    ///
    /// # Errors
    /// [`Error::is_builder`] when `OPENAI_API_KEY` is unset or `OPENAI_BASE_URL` is malformed.
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// A builder for OpenAI itself; see [`OpenAiBuilder`].
    pub fn builder() -> OpenAiBuilder {
        OpenAiBuilder::default()
    }

    /// A builder for an OpenAI-compatible server: `provider` becomes `$ai_provider` (`groq`,
    /// `together`, `openrouter`, `deepseek`, `mistral`, `ollama`, `vllm`, ...) and `base_url`
    /// `$ai_base_url`. The key is optional ([`OpenAiBuilder::api_key`]) and never read from the
    /// environment.
    pub fn compatible(provider: impl Into<String>, base_url: impl Into<String>) -> OpenAiBuilder {
        OpenAiBuilder::compatible(provider.into(), base_url.into())
    }

    /// A builder for an Azure OpenAI deployment. `deployment_url` is
    /// `https://{resource}.openai.azure.com/openai/deployments/{deployment}`; calls go to
    /// `{deployment_url}/chat/completions?api-version={api_version}` with an `api-key` header.
    /// The provider is `azure`.
    pub fn azure(
        deployment_url: impl Into<String>,
        api_version: impl Into<String>,
        api_key: impl Into<String>,
    ) -> OpenAiBuilder {
        OpenAiBuilder::azure(deployment_url.into(), api_version.into(), api_key.into())
    }

    fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    fn body(&self, value: &serde_json::Value) -> Result<Vec<u8>> {
        serde_json::to_vec(value).map_err(|err| {
            Error::other("cannot serialize the request")
                .with_source(err)
                .with_provider(self.provider())
        })
    }
}

impl fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAi")
            .field("provider", &self.inner.transport.provider)
            .field("base_url", &self.inner.base_url)
            .field("api_key", &"<redacted>")
            .field("request_timeout", &self.inner.transport.request_timeout)
            .finish()
    }
}

#[async_trait]
impl LlmModel for OpenAi {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let body = self.body(&wire::chat_body(
            request,
            false,
            self.inner.max_tokens_field,
        ))?;
        let transport = self.transport();
        let response = transport.post(&self.inner.chat_url, body, false).await?;
        let completion: Completion = transport.read_json(response, "chat completion").await?;
        Ok(completion.into_response())
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let body = self.body(&wire::chat_body(request, true, self.inner.max_tokens_field))?;
        let transport = self.transport();
        let response = transport.post(&self.inner.chat_url, body, true).await?;
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

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        let body = self.body(&wire::embedding_body(request))?;
        let transport = self.transport();
        let response = transport
            .post(&self.inner.embeddings_url, body, false)
            .await?;
        let embeddings: Embeddings = transport.read_json(response, "embeddings").await?;
        Ok(embeddings.into_response())
    }

    fn provider(&self) -> &str {
        &self.inner.transport.provider
    }

    fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    fn cache_tokens_in_input(&self) -> bool {
        // `prompt_tokens` already counts the cached tokens.
        true
    }
}

/// The OpenAI stream parser over any byte stream, for benchmarks and tests.
pub(crate) fn parse_stream<S, B, E>(bytes: S, provider: &str) -> ChatStream
where
    S: Stream<Item = std::result::Result<B, E>> + Send + 'static,
    B: AsRef<[u8]> + Send + 'static,
    E: TransportError + Send + 'static,
{
    ChatStream::new(SseStream::new(bytes, OpenAiDecoder::default(), provider))
}
