//! The provider trait.

use std::sync::Arc;

use async_trait::async_trait;

use crate::types::{ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse};
use crate::Error;
use crate::Result;

/// A chat model behind some provider: OpenAI, Anthropic, an OpenAI-compatible server, or your
/// own.
///
/// Object-safe, so `Box<dyn LlmModel>` and `Arc<dyn LlmModel>` work; implemented for `&T`,
/// `Box<T>` and `Arc<T>` so wrappers compose. [`TracedModel`](crate::TracedModel) implements it
/// too.
///
/// ```
/// use async_trait::async_trait;
/// use traced_llm::{ChatRequest, ChatResponse, ChatStream, Error, LlmModel, Result};
///
/// struct Echo;
///
/// #[async_trait]
/// impl LlmModel for Echo {
///     async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
///         let last = request.messages.last().map(|m| m.text()).unwrap_or_default();
///         Ok(ChatResponse::text_response(last))
///     }
///     async fn chat_stream(&self, _request: &ChatRequest) -> Result<ChatStream> {
///         Err(Error::unsupported("streaming"))
///     }
///     fn provider(&self) -> &str {
///         "echo"
///     }
///     fn base_url(&self) -> &str {
///         ""
///     }
/// }
/// ```
#[async_trait]
pub trait LlmModel: Send + Sync {
    /// One non-streaming call.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse>;

    /// One streaming call. The returned stream owns everything it needs; dropping it aborts the
    /// call.
    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream>;

    /// One embedding call. Models without embeddings keep the default, which answers
    /// [`Error::is_unsupported`].
    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        let _ = request;
        Err(Error::unsupported("this model offers no embeddings").with_provider(self.provider()))
    }

    /// The provider's name as PostHog knows it (`openai`, `anthropic`, `azure`, `groq`, ...).
    fn provider(&self) -> &str;

    /// The base URL calls go to; empty for in-process models.
    fn base_url(&self) -> &str;

    /// Whether this provider's input-token count already includes cached tokens.
    ///
    /// OpenAI and OpenAI-compatible servers count cache reads inside `prompt_tokens` (`true`, the
    /// default); Anthropic reports them apart from `input_tokens` (`false`). PostHog prices the
    /// cache from this, so a wrong answer gives a wrong cost.
    fn cache_tokens_in_input(&self) -> bool {
        true
    }
}

macro_rules! forward_llm_model {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<T: LlmModel + ?Sized> LlmModel for $ty {
            async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
                (**self).chat(request).await
            }
            async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
                (**self).chat_stream(request).await
            }
            async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
                (**self).embed(request).await
            }
            fn provider(&self) -> &str {
                (**self).provider()
            }
            fn base_url(&self) -> &str {
                (**self).base_url()
            }
            fn cache_tokens_in_input(&self) -> bool {
                (**self).cache_tokens_in_input()
            }
        }
    )*};
}

forward_llm_model!(&T, Box<T>, Arc<T>);
