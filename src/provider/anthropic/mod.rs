//! Anthropic's Messages API.

mod builder;
mod stream;
pub(crate) mod wire;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Url;

pub use self::builder::{
    AnthropicBuilder, DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_ANTHROPIC_VERSION, DEFAULT_MAX_TOKENS,
};
pub(crate) use self::stream::AnthropicDecoder;
use self::wire::{MessageAnswer, MessagesBody};
use super::transport::Transport;
use crate::types::{ChatRequest, ChatResponse, ChatStream};
use crate::{LlmModel, Result};

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
    messages_url: Url,
    default_max_tokens: u32,
}

impl Anthropic {
    /// Anthropic with the key from `ANTHROPIC_API_KEY` and the base URL from
    /// `ANTHROPIC_BASE_URL` ([`DEFAULT_ANTHROPIC_BASE_URL`] when unset).
    ///
    /// # Errors
    /// [`Error::is_builder`](crate::Error::is_builder) when `ANTHROPIC_API_KEY` is unset or `ANTHROPIC_BASE_URL` is
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
        let mut debug = f.debug_struct("Anthropic");
        self.inner.transport.debug_fields(&mut debug);
        debug
            .field("default_max_tokens", &self.inner.default_max_tokens)
            .finish()
    }
}

#[async_trait]
impl LlmModel for Anthropic {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let inner = &*self.inner;
        let body = MessagesBody::new(request, false, inner.default_max_tokens);
        let answer: MessageAnswer = inner
            .transport
            .call(&inner.messages_url, &body, "message")
            .await?;
        Ok(answer.into_response())
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let inner = &*self.inner;
        let body = MessagesBody::new(request, true, inner.default_max_tokens);
        inner
            .transport
            .stream(&inner.messages_url, &body, AnthropicDecoder::default())
            .await
    }

    fn provider(&self) -> &str {
        self.inner.transport.provider()
    }

    /// The base URL without user info.
    fn base_url(&self) -> &str {
        self.inner.transport.base_url()
    }

    fn cache_tokens_in_input(&self) -> bool {
        // `input_tokens` excludes cache reads and writes.
        false
    }
}
