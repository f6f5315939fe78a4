//! Recording calls: the seam everything that traces goes through.
//!
//! A [`Recorder`] holds where events go and how they are finished on the way: the sink, privacy
//! mode, the redactor and the prices. [`Recorder::start`] takes a description of a model call
//! ([`CallInfo`]) and returns a [`CallInProgress`], which sends exactly one event when the call
//! ends — succeeded, failed, or dropped by its caller — with the ids of the span it runs in (see
//! [`SpanScope`]), privacy applied, content redacted and the cost priced.
//!
//! [`TracedModel`](crate::TracedModel) records every call of an [`LlmModel`](crate::LlmModel)
//! this way, and so do [`Tracer`] and its spans. A client that is not an
//! `LlmModel` — another crate's, or a plain function — records the same events through the same
//! seam:
//!
//! ```
//! use traced_llm::record::{CallInfo, Recorder};
//! use traced_llm::sink::InMemorySink;
//! use traced_llm::{CallContext, ChatResponse, Message};
//!
//! # async fn my_client(_prompt: &str) -> Result<String, std::io::Error> { Ok("Lisbon".into()) }
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let events = InMemorySink::new();
//! let recorder = Recorder::new(events.clone());
//!
//! let messages = [Message::user("Capital of Portugal?")];
//! let context = CallContext::new().distinct_id("user_42");
//! let call = recorder.start(
//!     CallInfo::new("my-model", "my-provider").messages(&messages).context(&context),
//! );
//! match my_client("Capital of Portugal?").await {
//!     Ok(text) => call.succeed(&ChatResponse::text_response(text)),
//!     Err(err) => call.fail(&traced_llm::Error::other("my client failed").with_source(err)),
//! }
//! assert_eq!(events.generations()[0].output_text(), "Lisbon");
//! # });
//! ```

mod call;
mod context;
mod scope;
mod stream;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use self::call::{CallInProgress, CallInfo, EmbeddingInProgress, EmbeddingInfo};
pub(crate) use self::context::to_value;
pub use self::context::CallContext;
pub(crate) use self::scope::service_trace_parent;
pub use self::scope::SpanScope;
pub use self::stream::TracedStream;

use crate::event::{Event, Exception};
use crate::pricing::{CacheAccounting, Cost, PriceTable};
use crate::redact::{redact_event, Redactor};
use crate::sink::{NoopSink, Sink, SinkError};
use crate::trace::Tracer;
use crate::Error;

/// Where events go and how they are finished on the way; see the [module docs](self).
///
/// Cheap to clone: clones share one configuration, which never changes after
/// [`RecorderBuilder::build`], so a [`Tracer`] or model made from it always sees the same
/// settings.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Settings>,
}

struct Settings {
    sink: Arc<dyn Sink>,
    privacy_mode: bool,
    /// Prices the user configured; without them, cost is a local estimate no backend sees.
    pricing: Option<PriceTable>,
    redactor: Option<Arc<dyn Redactor>>,
    /// Send an [`Exception`] for every failed call, linked from the call's event.
    error_tracking: bool,
}

impl Recorder {
    /// A recorder that sends events to `sink`, with content, without redaction or prices.
    pub fn new(sink: impl Sink + 'static) -> Self {
        Self::builder().sink(sink).build()
    }

    /// A builder for the sink and the model-wide options.
    pub fn builder() -> RecorderBuilder {
        RecorderBuilder::default()
    }

    /// Starts recording a model call.
    pub fn start(&self, call: CallInfo<'_>) -> CallInProgress {
        CallInProgress::start(self, call)
    }

    /// Starts recording an embedding call.
    pub fn start_embedding(&self, call: EmbeddingInfo<'_>) -> EmbeddingInProgress {
        EmbeddingInProgress::start(self, call)
    }

    /// Records an event made elsewhere (feedback, a metric, an event of your own), with the
    /// same redaction and pricing as the recorder's own.
    pub fn record(&self, event: impl Into<Event>) {
        self.emit(event.into());
    }

    /// A [`Tracer`] over this recorder: traces and spans, feedback and metrics.
    pub fn tracer(&self) -> Tracer {
        Tracer::from_recorder(self.clone())
    }

    /// The sink events go to.
    pub fn sink(&self) -> &Arc<dyn Sink> {
        &self.inner.sink
    }

    /// Whether content is withheld unless a call says otherwise.
    pub fn privacy_mode(&self) -> bool {
        self.inner.privacy_mode
    }

    /// Whether every failed call also sends an [`Exception`] (see
    /// [`RecorderBuilder::error_tracking`]).
    pub fn error_tracking(&self) -> bool {
        self.inner.error_tracking
    }

    /// Waits until every event so far is delivered, or `timeout` passed.
    ///
    /// # Errors
    /// [`SinkError::Timeout`] when the sink did not finish in time.
    pub async fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        self.inner.sink.flush(timeout).await
    }

    /// Flushes and stops the sink; call it before the process exits.
    ///
    /// # Errors
    /// [`SinkError::Timeout`], or [`SinkError::AlreadyShutdown`] on a second call.
    pub async fn shutdown(&self, timeout: Duration) -> Result<(), SinkError> {
        self.inner.sink.shutdown(timeout).await
    }

    /// Prices, redacts and hands the event to the sink. Whatever panics in there (a sink, a
    /// redactor) is contained: recording never panics into the caller.
    pub(crate) fn emit(&self, mut event: Event) {
        static PANICKED: AtomicBool = AtomicBool::new(false);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.price(&mut event);
            if let Some(redactor) = &self.inner.redactor {
                redact_event(&mut event, &**redactor);
            }
            if self.inner.error_tracking {
                self.track_error(&mut event);
            }
            self.inner.sink.capture(event);
        }));
        if outcome.is_err() && !PANICKED.swap(true, Ordering::Relaxed) {
            tracing::error!(target: "traced_llm", "a sink or redactor panicked while an event was captured; the event is lost and the caller unaffected");
        }
    }

    /// Sends the exception of a failed call ahead of it, and links it from the call's event.
    /// The exception takes the error as redacted (and, in privacy mode, without its message).
    fn track_error(&self, event: &mut Event) {
        let unlinked = match event {
            Event::Generation(g) => g.exception_id.is_none(),
            Event::Embedding(e) => e.exception_id.is_none(),
            _ => false,
        };
        if !unlinked {
            return;
        }
        let Some(exception) = Exception::of(event) else {
            return;
        };
        let uuid = exception.envelope.uuid;
        self.inner.sink.capture(Event::Exception(exception));
        match event {
            Event::Generation(g) => g.exception_id = Some(uuid),
            Event::Embedding(e) => e.exception_id = Some(uuid),
            _ => {}
        }
    }

    /// The call's own price wins over the configured table. Without either, nothing is priced
    /// here: the backend prices the event itself (from the provider's reported charge, when
    /// there is one). A reported charge is the call's total. A model the configured table does
    /// not know is warned about once, so that a cost that reads 0 is noticed.
    fn price(&self, event: &mut Event) {
        let (provider, model, usage, cache_tokens_in_input, price, cost) = match event {
            Event::Generation(g) => (
                &g.provider,
                &g.model,
                &g.usage,
                !g.cache_reporting_exclusive(),
                &mut g.price,
                &mut g.cost,
            ),
            Event::Embedding(e) => (
                &e.provider,
                &e.model,
                &e.usage,
                true,
                &mut e.price,
                &mut e.cost,
            ),
            _ => return,
        };
        if price.is_none() {
            *price = self
                .inner
                .pricing
                .as_ref()
                .and_then(|table| table.price_or_warn(model).copied());
        }
        if let Some(price) = price {
            let accounting = CacheAccounting::for_call(provider, model, cache_tokens_in_input);
            *cost = Some(price.cost(usage, accounting));
        }
        // What the provider says it charged is the bill; the prices only split it.
        if let (Some(total), Some(priced)) = (usage.cost_usd, *cost) {
            *cost = Some(Cost::reported(total, Some(priced)));
        }
    }
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let settings = &self.inner;
        f.debug_struct("Recorder")
            .field("sink", &settings.sink)
            .field("privacy_mode", &settings.privacy_mode)
            .field("pricing", &settings.pricing)
            .field("redactor", &settings.redactor.as_ref().map(|_| "Fn"))
            .field("error_tracking", &settings.error_tracking)
            .finish()
    }
}

/// Builds a [`Recorder`]: the sink, privacy mode, prices and redactor, set once.
///
/// Without a sink, [`build`](RecorderBuilder::build) sends events to PostHog when
/// `POSTHOG_API_KEY` is set (feature `posthog`), and otherwise discards them with a warning —
/// through `tracing`, and on standard error when no `tracing` subscriber is installed.
/// [`try_build`](RecorderBuilder::try_build) returns an error instead, and
/// [`disabled`](RecorderBuilder::disabled) discards events on purpose, silently.
#[must_use]
#[derive(Default)]
pub struct RecorderBuilder {
    sink: Option<Arc<dyn Sink>>,
    privacy_mode: bool,
    pricing: Option<PriceTable>,
    redactor: Option<Arc<dyn Redactor>>,
    error_tracking: bool,
}

impl RecorderBuilder {
    /// Sends events to `sink`.
    pub fn sink(mut self, sink: impl Sink + 'static) -> Self {
        self.sink = Some(Arc::new(sink));
        self
    }

    /// Sends events to a sink shared with other recorders and models.
    pub fn shared_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Records nothing: events are discarded, on purpose and without a warning.
    pub fn disabled(mut self) -> Self {
        self.sink = Some(Arc::new(NoopSink));
        self
    }

    /// Sends no input, output or error text for any call, unless a call's
    /// [`CallContext::privacy_mode`] says otherwise; span states are withheld too. Tokens,
    /// latency, status and error kinds still go.
    pub fn privacy_mode(mut self, private: bool) -> Self {
        self.privacy_mode = private;
        self
    }

    /// Prices every call with `table` and sends the cost (PostHog: `$ai_input_cost_usd`,
    /// `$ai_output_cost_usd`, `$ai_total_cost_usd`). Without it, PostHog prices events with its
    /// own table; sinks can still show a local estimate with
    /// [`Generation::estimated_cost`](crate::event::Generation::estimated_cost).
    pub fn pricing(mut self, table: PriceTable) -> Self {
        self.pricing = Some(table);
        self
    }

    /// Runs `redactor` over every event's content before any sink sees it (see
    /// [`redact`](crate::redact)).
    pub fn redactor(mut self, redactor: impl Redactor + 'static) -> Self {
        self.redactor = Some(Arc::new(redactor));
        self
    }

    /// Error tracking (off by default): every failed call or embedding also sends an
    /// [`Exception`] event in its trace, for the same person, and the call's event links it
    /// ([`Generation::exception_id`](crate::event::Generation::exception_id)). PostHog shows
    /// them in error tracking as `$exception`s typed by the error's kind, their value the
    /// redacted message (withheld in privacy mode), one click from the trace.
    pub fn error_tracking(mut self, enabled: bool) -> Self {
        self.error_tracking = enabled;
        self
    }

    /// The recorder; without a sink, the one the environment names (see the type's docs).
    pub fn build(self) -> Recorder {
        let sink = self.sink.clone().unwrap_or_else(crate::sink::default_sink);
        self.with_sink(sink)
    }

    /// The recorder, or an error when no sink was set and the environment names none.
    ///
    /// # Errors
    /// [`Error::is_builder`] when no sink was set and `POSTHOG_API_KEY` is unset (or the
    /// `posthog` feature is off), or when the PostHog configuration in the environment is
    /// invalid.
    pub fn try_build(self) -> Result<Recorder, Error> {
        let sink = match self.sink.clone() {
            Some(sink) => sink,
            None => crate::sink::sink_from_env()?,
        };
        Ok(self.with_sink(sink))
    }

    fn with_sink(self, sink: Arc<dyn Sink>) -> Recorder {
        Recorder {
            inner: Arc::new(Settings {
                sink,
                privacy_mode: self.privacy_mode,
                pricing: self.pricing,
                redactor: self.redactor,
                error_tracking: self.error_tracking,
            }),
        }
    }
}

impl fmt::Debug for RecorderBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecorderBuilder")
            .field("sink", &self.sink)
            .field("privacy_mode", &self.privacy_mode)
            .field("pricing", &self.pricing)
            .field("redactor", &self.redactor.as_ref().map(|_| "Fn"))
            .field("error_tracking", &self.error_tracking)
            .finish()
    }
}

/// A URL as events show it: without user info, and with every query value replaced.
pub(crate) fn display_url(url: &str) -> String {
    crate::util::url::display(url)
}
