//! A traced [`async_openai::Client`]: the same calls, the same types in and out, one event per
//! call.
//!
//! Existing code changes one line, where the client is built:
//!
//! ```no_run
//! use async_openai::types::chat::CreateChatCompletionRequestArgs;
//! use async_openai::Client;
//! use traced_llm::adapters::async_openai::TracedClient;
//! use traced_llm::record::Recorder;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Before: let client = Client::new();
//! let client = TracedClient::new(Client::new(), Recorder::builder().build());
//!
//! let request = CreateChatCompletionRequestArgs::default()
//!     .model("gpt-4o-mini")
//!     .messages([async_openai::types::chat::ChatCompletionRequestUserMessage::from("Hello!").into()])
//!     .build()?;
//! let response = client.chat().create(request).await?; // async-openai's own response
//! println!("{:?}", response.choices[0].message.content);
//! # Ok(())
//! # }
//! ```
//!
//! # Usage on streams
//!
//! OpenAI sends the token counts of a stream only when the request asks for them
//! (`stream_options.include_usage`), and async-openai does not ask on its own. A stream whose
//! request did not ask is recorded without tokens (PostHog then reads its cost as unknown).
//! [`TracedClient::include_usage`] makes every traced stream ask; the extra last chunk it
//! brings (empty `choices`, the `usage`) reaches your code too, as it would had you asked.
//!
//! Responses are read with the crate's own OpenAI parsing, so what compatible servers add
//! (cache writes, reported cost, reasoning) is recorded as the [`OpenAi`](crate::provider::OpenAi)
//! provider records it — as far as async-openai's types keep it.

use std::fmt;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_openai::config::Config;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionResponseStream, ChatCompletionStreamOptions, CreateChatCompletionRequest,
    CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
};
use async_openai::types::embeddings::{
    CreateEmbeddingRequest, CreateEmbeddingResponse, EmbeddingInput,
};
use async_openai::Client;
use futures_core::Stream;
use pin_project_lite::pin_project;
use serde_json::Value;

use super::openai_json;
use crate::provider::adapter_support::{openai_completion, OpenAiChunks};
use crate::record::{CallInProgress, CallInfo, EmbeddingInfo, Recorder};
use crate::types::{EmbeddingResponse, Usage};
use crate::CallContext;
use crate::Error;

/// An [`async_openai::Client`] whose chat completions and embeddings are recorded; every other
/// API group is reached through [`Deref`] (or [`get_ref`](TracedClient::get_ref)), untraced.
///
/// Cloning is as cheap as cloning the client.
#[derive(Clone)]
pub struct TracedClient<C: Config> {
    inner: Client<C>,
    recorder: Recorder,
    provider: String,
    include_usage: bool,
    context: CallContext,
}

impl<C: Config> TracedClient<C> {
    /// Records the calls of `client` with `recorder`; the provider is `openai`.
    pub fn new(client: Client<C>, recorder: Recorder) -> Self {
        Self {
            inner: client,
            recorder,
            provider: "openai".to_owned(),
            include_usage: false,
            context: CallContext::default(),
        }
    }

    /// The provider reported as `$ai_provider` (`azure`, `groq`, `openrouter`, ...), so that
    /// PostHog prices the calls of a compatible server right.
    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// Makes every traced stream ask for its token counts (`stream_options.include_usage`);
    /// see the [module docs](self).
    #[must_use]
    pub fn include_usage(mut self, yes: bool) -> Self {
        self.include_usage = yes;
        self
    }

    /// Who makes the calls and where they belong (distinct id, trace, properties), for every
    /// call of this client; the span scope the call runs in applies too.
    #[must_use]
    pub fn context(mut self, context: CallContext) -> Self {
        self.context = context;
        self
    }

    /// The chat completions API, traced.
    pub fn chat(&self) -> TracedChat<'_, C> {
        TracedChat { client: self }
    }

    /// The embeddings API, traced.
    pub fn embeddings(&self) -> TracedEmbeddings<'_, C> {
        TracedEmbeddings { client: self }
    }

    /// The wrapped client.
    pub fn get_ref(&self) -> &Client<C> {
        &self.inner
    }

    /// The wrapped client, mutably.
    pub fn get_mut(&mut self) -> &mut Client<C> {
        &mut self.inner
    }

    /// The wrapped client.
    pub fn into_inner(self) -> Client<C> {
        self.inner
    }

    fn start(&self, body: &Value, model: &str, stream: bool) -> CallInProgress {
        let messages = openai_json::messages(body);
        let tools = openai_json::tools(body);
        self.recorder.start(
            CallInfo::new(model, &self.provider)
                .base_url(self.inner.config().api_base())
                .messages(&messages)
                .tools(&tools)
                .parameters(openai_json::parameters(body, stream))
                .context(&self.context),
        )
    }
}

impl<C: Config> Deref for TracedClient<C> {
    type Target = Client<C>;

    fn deref(&self) -> &Client<C> {
        &self.inner
    }
}

impl<C: Config> fmt::Debug for TracedClient<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedClient")
            .field(
                "base_url",
                &crate::util::url::display(self.inner.config().api_base()),
            )
            .field("provider", &self.provider)
            .field("include_usage", &self.include_usage)
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

/// The traced chat completions API of a [`TracedClient`].
#[derive(Debug)]
pub struct TracedChat<'c, C: Config> {
    client: &'c TracedClient<C>,
}

impl<C: Config> TracedChat<'_, C> {
    /// As async-openai's `chat().create`, recorded.
    ///
    /// # Errors
    /// async-openai's own, unchanged.
    pub async fn create(
        &self,
        request: CreateChatCompletionRequest,
    ) -> Result<CreateChatCompletionResponse, OpenAIError> {
        let body = body_of(&request);
        let call = self.client.start(&body, &request.model, false);
        match self.client.inner.chat().create(request).await {
            Ok(response) => {
                match serde_json::to_vec(&response) {
                    Ok(bytes) => call.succeed(&openai_completion(&bytes)),
                    Err(err) => call.fail(&Error::decode(err.to_string())),
                }
                Ok(response)
            }
            Err(err) => {
                call.fail(&error_of(&err, &self.client.provider));
                Err(err)
            }
        }
    }

    /// As async-openai's `chat().create_stream`, recorded: the stream yields async-openai's
    /// chunks unchanged and the call's event goes out when it ends, fails or is dropped.
    ///
    /// # Errors
    /// async-openai's own, unchanged.
    pub async fn create_stream(
        &self,
        mut request: CreateChatCompletionRequest,
    ) -> Result<ChatCompletionResponseStream, OpenAIError> {
        if self.client.include_usage {
            let options = request
                .stream_options
                .get_or_insert_with(ChatCompletionStreamOptions::default);
            options.include_usage = Some(true);
        }
        let body = body_of(&request);
        let mut call = self.client.start(&body, &request.model, true);
        match self.client.inner.chat().create_stream(request).await {
            Ok(stream) => {
                call.streaming();
                Ok(Box::pin(ObservedStream {
                    inner: stream,
                    call: Some(call),
                    chunks: OpenAiChunks::default(),
                    provider: self.client.provider.clone(),
                }))
            }
            Err(err) => {
                call.fail(&error_of(&err, &self.client.provider));
                Err(err)
            }
        }
    }
}

pin_project! {
    /// async-openai's chunks, observed into the call.
    struct ObservedStream {
        #[pin]
        inner: ChatCompletionResponseStream,
        call: Option<CallInProgress>,
        chunks: OpenAiChunks,
        provider: String,
    }
}

impl Stream for ObservedStream {
    type Item = Result<CreateChatCompletionStreamResponse, OpenAIError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let item = std::task::ready!(this.inner.poll_next(cx));
        match &item {
            Some(Ok(chunk)) => {
                if let Some(call) = this.call.as_mut() {
                    if let Ok(json) = serde_json::to_string(chunk) {
                        this.chunks.observe(&json, |event| call.observe(event));
                    }
                }
            }
            Some(Err(err)) => {
                if let Some(call) = this.call.take() {
                    call.fail(&error_of(err, this.provider));
                }
            }
            None => {
                if let Some(call) = this.call.take() {
                    call.finish();
                }
            }
        }
        Poll::Ready(item)
    }
}

/// The traced embeddings API of a [`TracedClient`].
#[derive(Debug)]
pub struct TracedEmbeddings<'c, C: Config> {
    client: &'c TracedClient<C>,
}

impl<C: Config> TracedEmbeddings<'_, C> {
    /// As async-openai's `embeddings().create`, recorded as an embedding call.
    ///
    /// # Errors
    /// async-openai's own, unchanged.
    pub async fn create(
        &self,
        request: CreateEmbeddingRequest,
    ) -> Result<CreateEmbeddingResponse, OpenAIError> {
        let client = self.client;
        let input = match &request.input {
            EmbeddingInput::String(text) => vec![text.clone()],
            EmbeddingInput::StringArray(texts) => texts.clone(),
            // Token ids are not text to show.
            EmbeddingInput::IntegerArray(_) | EmbeddingInput::ArrayOfIntegerArray(_) => Vec::new(),
        };
        let call = client.recorder.start_embedding(
            EmbeddingInfo::new(&request.model, &client.provider)
                .base_url(client.inner.config().api_base())
                .input(&input)
                .context(&client.context),
        );
        match client.inner.embeddings().create(request).await {
            Ok(response) => {
                let usage = Usage {
                    input_tokens: Some(u64::from(response.usage.prompt_tokens)),
                    ..Usage::default()
                };
                let mut neutral = EmbeddingResponse::new(Vec::new(), usage);
                neutral.model = Some(response.model.clone());
                call.succeed(&neutral);
                Ok(response)
            }
            Err(err) => {
                call.fail(&error_of(&err, &client.provider));
                Err(err)
            }
        }
    }
}

/// The request as the JSON it is sent as. Through the bytes, so that async-openai's `f32`
/// parameters read as written (`0.2`, not `0.200000003`).
fn body_of(request: &CreateChatCompletionRequest) -> Value {
    serde_json::to_vec(request)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or(Value::Null)
}

/// async-openai's error as this crate's, for the event: status, type and code kept.
fn error_of(error: &OpenAIError, provider: &str) -> Error {
    let err = match error {
        OpenAIError::ApiError(response) => {
            let api = &response.api_error;
            let mut err = Error::from_status(response.status_code.as_u16(), api.message.clone());
            if let Some(kind) = &api.r#type {
                err = err.with_api_error_type(kind.clone());
            }
            if let Some(code) = &api.code {
                err = err.with_api_error_code(code.clone());
            }
            err
        }
        OpenAIError::Reqwest(source) if source.is_timeout() => Error::timeout("the call timed out"),
        OpenAIError::Reqwest(source) if source.is_connect() => {
            Error::connect(Error::other(source.to_string()))
        }
        OpenAIError::Reqwest(source) => match source.status() {
            Some(status) => Error::from_status(status.as_u16(), source.to_string()),
            None => Error::other(source.to_string()),
        },
        OpenAIError::JSONDeserialize(err, _) => Error::decode(format!("invalid json: {err}")),
        OpenAIError::StreamError(err) => Error::stream(err.to_string()),
        other => Error::other(other.to_string()),
    };
    err.with_provider(provider)
}

#[allow(dead_code)]
fn _assert_impls() {
    fn shareable<T: Send + Sync + Clone + fmt::Debug>() {}
    shareable::<TracedClient<async_openai::config::OpenAIConfig>>();
}
