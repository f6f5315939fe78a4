//! [`TracedModel`], the decorator that records every call of a model.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::pricing::PriceTable;
use crate::record::{CallInfo, EmbeddingInfo, Recorder, RecorderBuilder, TracedStream};
use crate::redact::Redactor;
use crate::sink::{Sink, SinkError};
use crate::trace::Tracer;
use crate::types::{ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse};
use crate::{Error, LlmModel, Result};

/// Wraps a model and sends exactly one event per call to a [`Sink`], whatever the outcome:
/// success, provider error, an error in the middle of a stream, or a stream or future the caller
/// dropped.
///
/// It implements [`LlmModel`] itself, so it stands wherever the model stood. Tracing never
/// blocks the caller, never panics into it and never changes the result: a sink that fails or is
/// full is invisible to the caller. Every call goes through the model's
/// [`Recorder`]; configure it with [`TracedModel::builder`].
///
/// ```
/// use traced_llm::sink::InMemorySink;
/// use traced_llm::testing::ScriptedModel;
/// use traced_llm::{ChatRequest, ChatResponse, LlmModel, Message, TracedModel};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> traced_llm::Result<()> {
/// let events = InMemorySink::new();
/// let model = TracedModel::new(
///     ScriptedModel::new().respond(ChatResponse::text_response("Hello!")),
///     events.clone(),
/// );
/// let request = ChatRequest::new("gpt-4o-mini").message(Message::user("Hi"));
/// let response = model.chat(&request).await?;
/// assert_eq!(response.text(), "Hello!");
/// assert_eq!(events.generations()[0].output_text(), "Hello!");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TracedModel<M> {
    inner: M,
    recorder: Recorder,
}

impl<M> TracedModel<M> {
    /// Traces `inner` into `sink`, with content, without redaction or prices.
    pub fn new(inner: M, sink: impl Sink + 'static) -> Self {
        Self::with_recorder(inner, Recorder::new(sink))
    }

    /// Traces `inner` through `recorder`, e.g. one shared by several models.
    pub fn with_recorder(inner: M, recorder: Recorder) -> Self {
        Self { inner, recorder }
    }

    /// A builder for the sink and the model-wide options: privacy mode, prices, redactor.
    ///
    /// ```
    /// use traced_llm::pricing::PriceTable;
    /// use traced_llm::sink::InMemorySink;
    /// use traced_llm::testing::ScriptedModel;
    /// use traced_llm::TracedModel;
    ///
    /// let model = TracedModel::builder(ScriptedModel::new())
    ///     .sink(InMemorySink::new())
    ///     .privacy_mode(true)
    ///     .pricing(PriceTable::builtin().clone())
    ///     .redactor(|text: &mut String| *text = text.replace("secret", "******"))
    ///     .build();
    /// assert!(model.recorder().privacy_mode());
    /// ```
    pub fn builder(inner: M) -> TracedModelBuilder<M> {
        TracedModelBuilder {
            inner,
            recorder: Recorder::builder(),
        }
    }

    /// The recorder every call goes through.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// A [`Tracer`] with this model's sink, privacy mode and redactor: open traces and spans
    /// around the calls, and record feedback and metrics.
    pub fn tracer(&self) -> Tracer {
        self.recorder.tracer()
    }

    /// The wrapped model.
    pub fn get_ref(&self) -> &M {
        &self.inner
    }

    /// The wrapped model, mutably.
    pub fn get_mut(&mut self) -> &mut M {
        &mut self.inner
    }

    /// Unwraps the model.
    pub fn into_inner(self) -> M {
        self.inner
    }

    /// The sink events go to.
    pub fn sink(&self) -> &std::sync::Arc<dyn Sink> {
        self.recorder.sink()
    }

    /// Waits until every event so far is delivered, or `timeout` passed.
    ///
    /// # Errors
    /// [`SinkError::Timeout`] when the sink did not finish in time.
    pub async fn flush(&self, timeout: Duration) -> std::result::Result<(), SinkError> {
        self.recorder.flush(timeout).await
    }

    /// Flushes and stops the sink; call it before the process exits.
    ///
    /// # Errors
    /// [`SinkError::Timeout`], or [`SinkError::AlreadyShutdown`] on a second call.
    pub async fn shutdown(&self, timeout: Duration) -> std::result::Result<(), SinkError> {
        self.recorder.shutdown(timeout).await
    }
}

impl<M: fmt::Debug> fmt::Debug for TracedModel<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedModel")
            .field("inner", &self.inner)
            .field("recorder", &self.recorder)
            .finish()
    }
}

#[async_trait]
impl<M: LlmModel> LlmModel for TracedModel<M> {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        // Dropping this future drops the call in progress, which records it as cancelled.
        let call = self
            .recorder
            .start(CallInfo::from_request(&self.inner, request, false));
        let result = self.inner.chat(request).await;
        match &result {
            Ok(response) => call.succeed(response),
            Err(error) => call.fail(error),
        }
        result
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let call = self
            .recorder
            .start(CallInfo::from_request(&self.inner, request, true));
        match self.inner.chat_stream(request).await {
            Ok(stream) => Ok(ChatStream::new(TracedStream::new(stream, call))),
            Err(error) => {
                call.fail(&error);
                Err(error)
            }
        }
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        let call = self
            .recorder
            .start_embedding(EmbeddingInfo::from_request(&self.inner, request));
        let result = self.inner.embed(request).await;
        match &result {
            Ok(response) => call.succeed(response),
            Err(error) => call.fail(error),
        }
        result
    }

    fn provider(&self) -> &str {
        self.inner.provider()
    }

    fn base_url(&self) -> &str {
        self.inner.base_url()
    }

    fn cache_tokens_in_input(&self) -> bool {
        self.inner.cache_tokens_in_input()
    }
}

/// Builds a [`TracedModel`]: the sink and the model-wide options, set once.
///
/// Without a sink, [`build`](TracedModelBuilder::build) sends to PostHog when `POSTHOG_API_KEY`
/// is set, and otherwise discards events with a warning (on standard error when no `tracing`
/// subscriber is installed); [`try_build`](TracedModelBuilder::try_build) returns an error
/// instead, and [`disabled`](TracedModelBuilder::disabled) discards events on purpose.
#[must_use]
pub struct TracedModelBuilder<M> {
    inner: M,
    recorder: RecorderBuilder,
}

impl<M> TracedModelBuilder<M> {
    /// Sends events to `sink`.
    pub fn sink(mut self, sink: impl Sink + 'static) -> Self {
        self.recorder = self.recorder.sink(sink);
        self
    }

    /// Sends events to a sink shared with other models.
    pub fn shared_sink(mut self, sink: std::sync::Arc<dyn Sink>) -> Self {
        self.recorder = self.recorder.shared_sink(sink);
        self
    }

    /// Records nothing: events are discarded, on purpose and without a warning.
    pub fn disabled(mut self) -> Self {
        self.recorder = self.recorder.disabled();
        self
    }

    /// Sends no input, output or error text unless a call says otherwise (see
    /// [`RecorderBuilder::privacy_mode`]).
    pub fn privacy_mode(mut self, private: bool) -> Self {
        self.recorder = self.recorder.privacy_mode(private);
        self
    }

    /// Prices calls with `table` and sends the cost (see [`RecorderBuilder::pricing`]).
    pub fn pricing(mut self, table: PriceTable) -> Self {
        self.recorder = self.recorder.pricing(table);
        self
    }

    /// Masks event content before any sink sees it (see [`RecorderBuilder::redactor`]).
    pub fn redactor(mut self, redactor: impl Redactor + 'static) -> Self {
        self.recorder = self.recorder.redactor(redactor);
        self
    }

    /// Sends an exception event for every failed call, linked from the call's event (see
    /// [`RecorderBuilder::error_tracking`]).
    pub fn error_tracking(mut self, enabled: bool) -> Self {
        self.recorder = self.recorder.error_tracking(enabled);
        self
    }

    /// The traced model; without a sink, the one the environment names (see the type's docs).
    pub fn build(self) -> TracedModel<M> {
        TracedModel::with_recorder(self.inner, self.recorder.build())
    }

    /// The traced model, or an error when no sink was set and the environment names none.
    ///
    /// # Errors
    /// As [`RecorderBuilder::try_build`].
    pub fn try_build(self) -> std::result::Result<TracedModel<M>, Error> {
        Ok(TracedModel::with_recorder(
            self.inner,
            self.recorder.try_build()?,
        ))
    }
}

impl<M: fmt::Debug> fmt::Debug for TracedModelBuilder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedModelBuilder")
            .field("inner", &self.inner)
            .field("recorder", &self.recorder)
            .finish()
    }
}
