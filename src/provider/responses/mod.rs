//! OpenAI's Responses API (`POST /responses`), at OpenAI, Azure OpenAI and compatible servers.

mod stream;
pub(crate) mod wire;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Url;

pub(crate) use self::stream::ResponsesDecoder;
use self::wire::{ResponseObject, ResponsesBody};
use super::openai::wire::{EmbeddingBody, Embeddings};
use super::transport::Transport;
use crate::provider::OpenAiBuilder;
use crate::types::{ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse};
use crate::{LlmModel, Result};

/// A model behind OpenAI's Responses API: the same keys, URLs and flavors as [`OpenAi`](super::OpenAi)
/// (OpenAI itself, Azure, compatible servers), built with
/// [`OpenAiBuilder::build_responses`].
///
/// The response id (`resp_…`) is the completion id (`$ai_completion_id`); pass it on as
/// `previous_response_id` in the next request's [`extra`](ChatRequest::extra) to continue a
/// conversation server-side. Function tools and calls map to the neutral tools and
/// [`ToolCall`](crate::types::ToolCall)s; reasoning summaries stream as reasoning. Usage reads
/// `input_tokens_details.cached_tokens` (inside the input tokens) and
/// `output_tokens_details.reasoning_tokens` (inside the output tokens); every `web_search_call`
/// in the output counts one web search. The finish reason is the response's `status`
/// (`completed`, `incomplete`), and a `failed` response is an error.
///
/// ```no_run
/// use traced_llm::provider::OpenAiResponses;
/// use traced_llm::{ChatRequest, LlmModel, Message};
///
/// # async fn run() -> traced_llm::Result<()> {
/// let model = OpenAiResponses::from_env()?; // OPENAI_API_KEY, optional OPENAI_BASE_URL
/// let first = model
///     .chat(&ChatRequest::new("gpt-5-mini").message(Message::user("Pick a number.")))
///     .await?;
/// let follow_up = ChatRequest::new("gpt-5-mini")
///     .message(Message::user("Double it."))
///     .extra("previous_response_id", first.id.clone().unwrap_or_default());
/// println!("{}", model.chat(&follow_up).await?.text());
///
/// let azure = traced_llm::provider::OpenAi::azure(
///     "https://my-resource.openai.azure.com/openai/deployments/gpt-5-mini",
///     "2025-04-01-preview",
///     std::env::var("AZURE_OPENAI_API_KEY").unwrap_or_default(),
/// )
/// .build_responses()?;
/// # let _ = azure;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct OpenAiResponses {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    responses_url: Url,
    embeddings_url: Url,
}

impl OpenAiResponses {
    pub(super) fn new(transport: Transport, responses_url: Url, embeddings_url: Url) -> Self {
        Self {
            inner: Arc::new(Inner {
                transport,
                responses_url,
                embeddings_url,
            }),
        }
    }

    /// OpenAI's Responses API with the key from `OPENAI_API_KEY` and the base URL from
    /// `OPENAI_BASE_URL`.
    ///
    /// # Errors
    /// [`Error::is_builder`](crate::Error::is_builder) when `OPENAI_API_KEY` is unset or
    /// `OPENAI_BASE_URL` is malformed.
    pub fn from_env() -> Result<Self> {
        OpenAiBuilder::default().build_responses()
    }
}

impl fmt::Debug for OpenAiResponses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("OpenAiResponses");
        self.inner.transport.debug_fields(&mut debug);
        debug.finish()
    }
}

#[async_trait]
impl LlmModel for OpenAiResponses {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let inner = &*self.inner;
        let body = ResponsesBody {
            request,
            stream: false,
        };
        let answer: ResponseObject = inner
            .transport
            .call(&inner.responses_url, &body, "response")
            .await?;
        answer
            .into_response()
            .map_err(|err| err.with_provider(self.provider()))
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let inner = &*self.inner;
        let body = ResponsesBody {
            request,
            stream: true,
        };
        inner
            .transport
            .stream(&inner.responses_url, &body, ResponsesDecoder::default())
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
        // `input_tokens` already counts the cached tokens.
        true
    }
}
