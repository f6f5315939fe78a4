//! Google's Gemini API: `generateContent`, `streamGenerateContent` (`alt=sse`), `embedContent`
//! and `batchEmbedContents`.

mod builder;
mod stream;
pub(crate) mod wire;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::Url;

pub use self::builder::{GeminiBuilder, DEFAULT_GEMINI_API_VERSION, DEFAULT_GEMINI_BASE_URL};
pub(crate) use self::stream::GeminiDecoder;
use self::wire::{BatchEmbedBody, EmbedAnswer, EmbedBody, GenerateBody, GenerateResponse};
use super::transport::Transport;
use crate::types::{ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse};
use crate::util::url::BaseUrl;
use crate::{Error, LlmModel, Result};

/// A model behind Google's Gemini API (Google AI Studio), or a server that speaks it.
///
/// The key goes in the `x-goog-api-key` header, never in a URL, so no URL a log or an event
/// shows can carry it. The provider is `gemini`. Model names may be bare (`gemini-2.5-flash`)
/// or a resource path (`models/gemini-2.5-flash`, `tunedModels/my-model`).
///
/// Usage: `promptTokenCount` includes the cached tokens (so
/// [`cache_tokens_in_input`](LlmModel::cache_tokens_in_input) is `true`); the input tokens add
/// the tool-use prompt tokens; the output tokens add the thoughts to the candidates, as Google
/// bills them, and the thoughts are the reasoning tokens. A prompt blocked before any candidate
/// (`promptFeedback.blockReason`) is an error whose code is the block reason; a candidate
/// stopped for safety ends normally, with finish reason `SAFETY`.
///
/// ```no_run
/// use traced_llm::provider::Gemini;
/// use traced_llm::{ChatRequest, LlmModel, Message};
///
/// # async fn run() -> traced_llm::Result<()> {
/// let model = Gemini::from_env()?; // GEMINI_API_KEY (or GOOGLE_API_KEY), optional GEMINI_BASE_URL
/// let answer = model
///     .chat(&ChatRequest::new("gemini-2.5-flash").message(Message::user("Hello!")))
///     .await?;
/// println!("{}", answer.text());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Gemini {
    inner: Arc<Inner>,
}

struct Inner {
    transport: Transport,
    base_url: BaseUrl,
}

impl Gemini {
    /// Gemini with the key from `GEMINI_API_KEY` (else `GOOGLE_API_KEY`) and the base URL from
    /// `GEMINI_BASE_URL` ([`DEFAULT_GEMINI_BASE_URL`] when unset; a bare host gets
    /// [`DEFAULT_GEMINI_API_VERSION`] appended).
    ///
    /// # Errors
    /// [`Error::is_builder`] when neither key variable is set or `GEMINI_BASE_URL` is
    /// malformed.
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// A builder; see [`GeminiBuilder`].
    pub fn builder() -> GeminiBuilder {
        GeminiBuilder::default()
    }

    /// `{base}/models/{model}:{method}` (a model that names its collection keeps it).
    fn url(&self, model: &str, method: &str, query: &[(&str, &str)]) -> Result<Url> {
        if model.trim().is_empty() {
            return Err(Error::builder("the request names no model").with_provider(self.provider()));
        }
        let path = if model.contains('/') {
            format!("/{model}:{method}")
        } else {
            format!("/models/{model}:{method}")
        };
        self.inner.base_url.join(&path, query)
    }
}

/// `models/{model}` as a batch request names it.
fn resource(model: &str) -> String {
    if model.contains('/') {
        model.to_owned()
    } else {
        format!("models/{model}")
    }
}

impl fmt::Debug for Gemini {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Gemini");
        self.inner.transport.debug_fields(&mut debug);
        debug.finish()
    }
}

#[async_trait]
impl LlmModel for Gemini {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let url = self.url(&request.model, "generateContent", &[])?;
        let answer: GenerateResponse = self
            .inner
            .transport
            .call(&url, &GenerateBody(request), "generate content")
            .await?;
        answer
            .into_response()
            .map_err(|err| err.with_provider(self.provider()))
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let url = self.url(&request.model, "streamGenerateContent", &[("alt", "sse")])?;
        self.inner
            .transport
            .stream(&url, &GenerateBody(request), GeminiDecoder::default())
            .await
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        let transport = &self.inner.transport;
        let mut response = match request.input.as_slice() {
            [text] => {
                let url = self.url(&request.model, "embedContent", &[])?;
                let body = EmbedBody {
                    request,
                    text,
                    model: None,
                };
                let answer: EmbedAnswer = transport.call(&url, &body, "embedding").await?;
                answer.into_response()
            }
            _ => {
                let url = self.url(&request.model, "batchEmbedContents", &[])?;
                let model = resource(&request.model);
                let body = BatchEmbedBody {
                    request,
                    model: &model,
                };
                let answer: EmbedAnswer = transport.call(&url, &body, "embeddings").await?;
                answer.into_response()
            }
        };
        response.model = Some(request.model.clone());
        Ok(response)
    }

    fn provider(&self) -> &str {
        self.inner.transport.provider()
    }

    /// The base URL without user info.
    fn base_url(&self) -> &str {
        self.inner.transport.base_url()
    }

    fn cache_tokens_in_input(&self) -> bool {
        // `promptTokenCount` includes `cachedContentTokenCount`.
        true
    }
}
