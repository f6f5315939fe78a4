//! OpenAI's Chat Completions and Embeddings APIs, and every server that speaks them.

mod builder;
mod stream;
pub(crate) mod wire;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Url;

pub use self::builder::{OpenAiBuilder, DEFAULT_OPENAI_BASE_URL};
pub(crate) use self::stream::OpenAiDecoder;
use self::wire::{ChatBody, Completion, EmbeddingBody, Embeddings, MaxTokensField};
use super::transport::Transport;
use crate::types::{ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse};
use crate::{LlmModel, Result};

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
    chat_url: Url,
    embeddings_url: Url,
    max_tokens_field: MaxTokensField,
}

impl OpenAi {
    /// OpenAI with the key from `OPENAI_API_KEY` and the base URL from `OPENAI_BASE_URL`
    /// ([`DEFAULT_OPENAI_BASE_URL`] when unset).
    ///
    /// # Errors
    /// [`Error::is_builder`](crate::Error::is_builder) when `OPENAI_API_KEY` is unset or `OPENAI_BASE_URL` is malformed.
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
}

impl fmt::Debug for OpenAi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("OpenAi");
        self.inner.transport.debug_fields(&mut debug);
        debug.finish()
    }
}

#[async_trait]
impl LlmModel for OpenAi {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let inner = &*self.inner;
        let body = ChatBody::new(request, false, inner.max_tokens_field);
        let completion: Completion = inner
            .transport
            .call(&inner.chat_url, &body, "chat completion")
            .await?;
        Ok(completion.into_response())
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let inner = &*self.inner;
        let body = ChatBody::new(request, true, inner.max_tokens_field);
        inner
            .transport
            .stream(&inner.chat_url, &body, OpenAiDecoder::default())
            .await
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        let inner = &*self.inner;
        let embeddings: Embeddings = inner
            .transport
            .call(&inner.embeddings_url, &EmbeddingBody(request), "embeddings")
            .await?;
        Ok(embeddings.into_response())
    }

    fn provider(&self) -> &str {
        self.inner.transport.provider()
    }

    /// The base URL without user info.
    fn base_url(&self) -> &str {
        self.inner.transport.base_url()
    }

    fn cache_tokens_in_input(&self) -> bool {
        // `prompt_tokens` already counts the cached tokens.
        true
    }
}
