//! [`TracedModel`], the decorator that records every call of a model.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::event::Embedding;
use crate::pricing::PriceTable;
use crate::redact::Redactor;
use crate::sink::{Sink, SinkError};
use crate::trace::Tracer;
use crate::types::{ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse};
use crate::{LlmModel, Result};

mod record;
mod shared;
mod stream;

use self::record::CallRecord;
pub(crate) use self::record::{envelope_for, StreamAccumulator};
pub(crate) use self::shared::Shared;
pub use self::stream::TracedStream;

/// Wraps a model and sends exactly one event per call to a [`Sink`], whatever the outcome:
/// success, provider error, an error in the middle of a stream, or a stream or future the caller
/// dropped.
///
/// It implements [`LlmModel`] itself, so it stands wherever the model stood. Tracing never
/// blocks the caller, never panics into it and never changes the result: a sink that fails or is
/// full is invisible to the caller.
///
/// ```
/// use traced_llm::sink::InMemorySink;
/// use traced_llm::testing::ScriptedModel;
/// use traced_llm::{ChatRequest, ChatResponse, LlmModel, Message, TracedModel};
///
/// # tokio_test_runtime(async {
/// let events = InMemorySink::new();
/// let model = TracedModel::new(
///     ScriptedModel::new().respond(ChatResponse::text_response("Hello!")),
///     events.clone(),
/// );
/// let request = ChatRequest::new("gpt-4o-mini").message(Message::user("Hi"));
/// let response = model.chat(&request).await?;
/// assert_eq!(response.text(), "Hello!");
/// assert_eq!(events.generations()[0].output_text(), "Hello!");
/// # Ok::<(), traced_llm::Error>(())
/// # });
/// # fn tokio_test_runtime<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct TracedModel<M> {
    inner: M,
    shared: Arc<Shared>,
}

impl<M> TracedModel<M> {
    /// Traces `inner` into `sink`.
    pub fn new(inner: M, sink: impl Sink + 'static) -> Self {
        Self::with_shared_sink(inner, Arc::new(sink))
    }

    /// Traces `inner` into a sink shared with other models.
    pub fn with_shared_sink(inner: M, sink: Arc<dyn Sink>) -> Self {
        Self {
            inner,
            shared: Arc::new(Shared::new(sink)),
        }
    }

    /// A builder, for the sink chosen from the environment and model-wide options.
    pub fn builder(inner: M) -> TracedModelBuilder<M> {
        TracedModelBuilder {
            inner,
            sink: None,
            privacy_mode: false,
            pricing: None,
            redactor: None,
        }
    }

    /// Sends no input or output content for any call, unless a call's
    /// [`CallContext::privacy_mode`](crate::CallContext::privacy_mode) says otherwise.
    #[must_use]
    pub fn with_privacy_mode(mut self, private: bool) -> Self {
        Arc::make_mut(&mut self.shared).privacy_mode = private;
        self
    }

    /// Prices every call with `table` and sends the cost to PostHog as `$ai_input_cost_usd`,
    /// `$ai_output_cost_usd` and `$ai_total_cost_usd`.
    ///
    /// Without it, PostHog prices events with its own table; sinks can still show a local
    /// estimate with [`Generation::estimated_cost`](crate::event::Generation::estimated_cost).
    #[must_use]
    pub fn with_pricing(mut self, table: PriceTable) -> Self {
        Arc::make_mut(&mut self.shared).pricing = Some(table);
        self
    }

    /// Runs `redactor` over every event's content before any sink sees it (see
    /// [`redact`](crate::redact)).
    #[must_use]
    pub fn with_redactor(mut self, redactor: impl Redactor + 'static) -> Self {
        Arc::make_mut(&mut self.shared).redactor = Some(Arc::new(redactor));
        self
    }

    /// A [`Tracer`] that shares this model's sink, privacy mode and redactor: open traces and
    /// spans around the calls, and record feedback and metrics.
    pub fn tracer(&self) -> Tracer {
        Tracer::from_shared(Arc::clone(&self.shared))
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
    pub fn sink(&self) -> &Arc<dyn Sink> {
        &self.shared.sink
    }

    /// Waits until every event so far is delivered, or `timeout` passed.
    ///
    /// # Errors
    /// [`SinkError::Timeout`] when the sink did not finish in time.
    pub async fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.shared.sink.flush(timeout).await
    }

    /// Flushes and stops the sink; call it before the process exits.
    ///
    /// # Errors
    /// [`SinkError::Timeout`], or [`SinkError::AlreadyShutdown`] on a second call.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), SinkError> {
        self.shared.sink.shutdown(timeout).await
    }
}

impl<M: fmt::Debug> fmt::Debug for TracedModel<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedModel")
            .field("inner", &self.inner)
            .field("tracing", &self.shared)
            .finish()
    }
}

#[async_trait]
impl<M: LlmModel> LlmModel for TracedModel<M> {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        let record = CallRecord::start(&self.inner, request, self.shared.privacy_mode, false);
        let mut pending = PendingCall {
            record: Some(record),
            shared: &self.shared,
        };
        let result = self.inner.chat(request).await;
        if let Some(record) = pending.record.take() {
            let price = record.price().copied();
            let generation = match &result {
                Ok(response) => record.succeed(response),
                Err(error) => record.fail(error),
            };
            self.shared.emit(generation.into(), price.as_ref());
        }
        result
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        let record = CallRecord::start(&self.inner, request, self.shared.privacy_mode, true);
        let mut pending = PendingCall {
            record: Some(record),
            shared: &self.shared,
        };
        let result = self.inner.chat_stream(request).await;
        let Some(record) = pending.record.take() else {
            return result;
        };
        match result {
            Ok(stream) => Ok(Box::pin(TracedStream::new(
                stream,
                record,
                Arc::clone(&self.shared),
            ))),
            Err(error) => {
                let price = record.price().copied();
                self.shared.emit(record.fail(&error).into(), price.as_ref());
                Err(error)
            }
        }
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        let started = std::time::Instant::now();
        let private = request
            .context
            .privacy_mode
            .unwrap_or(self.shared.privacy_mode);
        let mut embedding = Embedding {
            envelope: envelope_for(&request.context),
            model: request.model.clone(),
            provider: self.inner.provider().to_owned(),
            base_url: self.inner.base_url().to_owned(),
            input: (!private).then(|| request.input.clone()),
            usage: crate::Usage::default(),
            latency: Duration::ZERO,
            http_status: 200,
            error: None,
            price: None,
            cost: None,
        };
        let result = self.inner.embed(request).await;
        embedding.latency = started.elapsed();
        match &result {
            Ok(response) => {
                embedding.usage = response.usage;
                if let Some(model) = &response.model {
                    embedding.model.clone_from(model);
                }
            }
            Err(error) => {
                embedding.http_status = error.status().unwrap_or(0);
                let mut info = crate::event::ErrorInfo::from_error(error);
                if private {
                    info.withhold_message();
                }
                embedding.error = Some(info);
            }
        }
        self.shared
            .emit(embedding.into(), request.context.price.as_ref());
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

/// A call waiting for its answer. Dropped with the record still inside, the caller dropped the
/// future: the event goes out as cancelled.
struct PendingCall<'a> {
    record: Option<CallRecord>,
    shared: &'a Shared,
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            let price = record.price().copied();
            self.shared.emit(record.cancel().into(), price.as_ref());
        }
    }
}

/// Builds a [`TracedModel`] with model-wide options.
#[must_use]
pub struct TracedModelBuilder<M> {
    inner: M,
    sink: Option<Arc<dyn Sink>>,
    privacy_mode: bool,
    pricing: Option<PriceTable>,
    redactor: Option<Arc<dyn Redactor>>,
}

impl<M> TracedModelBuilder<M> {
    /// Sends events to `sink`.
    pub fn sink(mut self, sink: impl Sink + 'static) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Sends events to a sink shared with other models.
    pub fn shared_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Sends no input or output content unless a call says otherwise.
    pub fn privacy_mode(mut self, private: bool) -> Self {
        self.privacy_mode = private;
        self
    }

    /// Prices calls with `table` and sends the cost (see [`TracedModel::with_pricing`]).
    pub fn pricing(mut self, table: PriceTable) -> Self {
        self.pricing = Some(table);
        self
    }

    /// Masks event content before any sink sees it (see [`TracedModel::with_redactor`]).
    pub fn redactor(mut self, redactor: impl Redactor + 'static) -> Self {
        self.redactor = Some(Arc::new(redactor));
        self
    }

    /// The traced model. Without a sink, events go to
    /// [`sink::default_sink`](crate::sink::default_sink).
    pub fn build(self) -> TracedModel<M> {
        let sink = self.sink.unwrap_or_else(crate::sink::default_sink);
        TracedModel {
            inner: self.inner,
            shared: Arc::new(Shared {
                sink,
                privacy_mode: self.privacy_mode,
                pricing: self.pricing,
                redactor: self.redactor,
            }),
        }
    }
}

impl<M: fmt::Debug> fmt::Debug for TracedModelBuilder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedModelBuilder")
            .field("inner", &self.inner)
            .field("sink", &self.sink)
            .field("privacy_mode", &self.privacy_mode)
            .field("pricing", &self.pricing)
            .finish_non_exhaustive()
    }
}
