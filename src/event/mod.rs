//! The provider-neutral event model.
//!
//! A [`Recorder`](crate::record::Recorder) builds an [`Event`] per call with no JSON work at
//! all; sinks turn it into their own format later, off the caller's path. Nothing here knows a
//! backend's names: PostHog's `$ai_*` properties live in [`posthog`](crate::posthog) alone.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::flags::{Flag, FlagSnapshot};
use crate::pricing::{Cost, ModelPrice, PriceTable};
use crate::types::{ChatRequest, ContentPart, Message, Tool, Usage};

mod alert;
mod error;

pub use self::alert::{Alert, AlertState};
pub use self::error::{ErrorInfo, ErrorKind};

/// Something worth recording: a model call, an embedding, a span or trace, feedback, a metric;
/// and, beside them, a flag's exposure, a failure for error tracking, and a monitor's alert.
// Nearly every event is a generation, so boxing it to shrink the rarer variants would cost an
// allocation per call and save nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// One LLM call (`$ai_generation`).
    Generation(Generation),
    /// One embedding call (`$ai_embedding`).
    Embedding(Embedding),
    /// A unit of work inside a trace (`$ai_span`), or the trace itself (`$ai_trace`).
    Span(SpanRecord),
    /// What a user thought of a trace (`$ai_feedback`).
    Feedback(Feedback),
    /// A named measurement of a trace (`$ai_metric`).
    Metric(Metric),
    /// A person saw a flag's value (`$feature_flag_called`): experiments' exposure.
    FlagExposure(FlagExposure),
    /// A failed call, for error tracking (`$exception`), linked from the call's event.
    Exception(Exception),
    /// An alert raised or cleared by a monitor (`llm_alert`, `llm_alert_cleared`).
    Alert(Alert),
}

impl Event {
    /// The event's envelope: ids, timestamp, custom properties.
    pub fn envelope(&self) -> &Envelope {
        match self {
            Event::Generation(event) => &event.envelope,
            Event::Embedding(event) => &event.envelope,
            Event::Span(event) => &event.envelope,
            Event::Feedback(event) => &event.envelope,
            Event::Metric(event) => &event.envelope,
            Event::FlagExposure(event) => &event.envelope,
            Event::Exception(event) => &event.envelope,
            Event::Alert(event) => &event.envelope,
        }
    }

    /// Mutable access to the envelope.
    pub fn envelope_mut(&mut self) -> &mut Envelope {
        match self {
            Event::Generation(event) => &mut event.envelope,
            Event::Embedding(event) => &mut event.envelope,
            Event::Span(event) => &mut event.envelope,
            Event::Feedback(event) => &mut event.envelope,
            Event::Metric(event) => &mut event.envelope,
            Event::FlagExposure(event) => &mut event.envelope,
            Event::Exception(event) => &mut event.envelope,
            Event::Alert(event) => &mut event.envelope,
        }
    }

    /// What kind of event this is.
    pub fn kind(&self) -> EventKind {
        match self {
            Event::Generation(_) => EventKind::Generation,
            Event::Embedding(_) => EventKind::Embedding,
            Event::Span(span) if span.is_trace => EventKind::Trace,
            Event::Span(_) => EventKind::Span,
            Event::Feedback(_) => EventKind::Feedback,
            Event::Metric(_) => EventKind::Metric,
            Event::FlagExposure(_) => EventKind::FlagExposure,
            Event::Exception(_) => EventKind::Exception,
            Event::Alert(_) => EventKind::Alert,
        }
    }

    /// The failure this event records, if it records one.
    pub fn error(&self) -> Option<&ErrorInfo> {
        match self {
            Event::Generation(event) => event.error.as_ref(),
            Event::Embedding(event) => event.error.as_ref(),
            Event::Span(event) => event.error.as_ref(),
            Event::Exception(event) => Some(&event.error),
            Event::Feedback(_) | Event::Metric(_) | Event::FlagExposure(_) | Event::Alert(_) => {
                None
            }
        }
    }

    /// The generation, if this is one.
    pub fn as_generation(&self) -> Option<&Generation> {
        match self {
            Event::Generation(generation) => Some(generation),
            _ => None,
        }
    }
}

/// The kinds of [`Event`], a span and the trace it roots told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// One model call.
    Generation,
    /// One embedding call.
    Embedding,
    /// A unit of work inside a trace.
    Span,
    /// A trace's root span, ended.
    Trace,
    /// What a user thought of a trace.
    Feedback,
    /// A named measurement of a trace.
    Metric,
    /// A person saw a flag's value.
    FlagExposure,
    /// A failed call, for error tracking.
    Exception,
    /// An alert raised or cleared by a monitor.
    Alert,
}

impl From<Generation> for Event {
    fn from(generation: Generation) -> Self {
        Event::Generation(generation)
    }
}

impl From<Embedding> for Event {
    fn from(embedding: Embedding) -> Self {
        Event::Embedding(embedding)
    }
}

impl From<SpanRecord> for Event {
    fn from(span: SpanRecord) -> Self {
        Event::Span(span)
    }
}

impl From<Feedback> for Event {
    fn from(feedback: Feedback) -> Self {
        Event::Feedback(feedback)
    }
}

impl From<FlagExposure> for Event {
    fn from(exposure: FlagExposure) -> Self {
        Event::FlagExposure(exposure)
    }
}

impl From<Exception> for Event {
    fn from(exception: Exception) -> Self {
        Event::Exception(exception)
    }
}

impl From<Metric> for Event {
    fn from(metric: Metric) -> Self {
        Event::Metric(metric)
    }
}

impl From<Alert> for Event {
    fn from(alert: Alert) -> Self {
        Event::Alert(alert)
    }
}

/// What every event carries: its identity, when it happened, who it is for, where it belongs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Envelope {
    /// A UUIDv7 made when the event was created; PostHog deduplicates retries by it.
    pub uuid: Uuid,
    /// When the call started.
    pub timestamp: SystemTime,
    /// The person; `None` makes a personless event.
    pub distinct_id: Option<String>,
    /// The trace; `None` makes the event a trace of its own, identified by [`Envelope::uuid`].
    pub trace_id: Option<String>,
    /// Whether the caller named [`Envelope::trace_id`] (`CallContext::trace_id`,
    /// `Tracer::trace_with_id`, or a span of such a trace), rather than the crate making it up
    /// or taking it from the service's trace context: only a named trace id can serve as a
    /// conversation id.
    pub trace_id_named: bool,
    /// The session.
    pub session_id: Option<String>,
    /// This event's span id.
    pub span_id: Option<String>,
    /// The enclosing span or trace.
    pub parent_id: Option<String>,
    /// A name for this unit of work.
    pub span_name: Option<String>,
    /// Custom properties, merged into the event's properties.
    pub properties: Map<String, Value>,
    /// Group analytics: group type to key.
    pub groups: Map<String, Value>,
    /// The feature flags in effect: each flag's value, and which are on, so every metric
    /// breaks down by variant.
    pub flags: Option<FlagSnapshot>,
    /// The managed prompt the work used, by name and version.
    pub prompt: Option<PromptRef>,
    /// The span of the service's own tracing the call or trace ran in, when it had no parent in
    /// the crate: its W3C trace context, taken when the work started (feature `otel`; see
    /// [`TraceParent`]).
    pub trace_parent: Option<TraceParent>,
}

/// A span of the service's own distributed tracing, in W3C trace-context form: the
/// OpenTelemetry context a call started in (feature `otel`).
///
/// Only sinks that speak W3C trace context read it: the OpenTelemetry sink makes the call a
/// child of that span. A call that adopted the span's trace also carries its trace id, as 32
/// lower-case hex digits, in [`Envelope::trace_id`], so every view names the same trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TraceParent {
    /// The W3C trace id.
    pub trace_id: [u8; 16],
    /// The W3C span id of the parent span.
    pub span_id: [u8; 8],
    /// Whether the parent was sampled.
    pub sampled: bool,
}

impl TraceParent {
    /// A parent span from its W3C ids.
    pub fn new(trace_id: [u8; 16], span_id: [u8; 8], sampled: bool) -> Self {
        Self {
            trace_id,
            span_id,
            sampled,
        }
    }

    /// The trace id as 32 lower-case hex digits, as W3C `traceparent` writes it.
    pub fn trace_id_hex(&self) -> String {
        self.trace_id
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

impl Envelope {
    /// A fresh envelope: a new UUIDv7, stamped now, with nothing else set.
    pub fn new() -> Self {
        Self::at(SystemTime::now())
    }

    /// A fresh envelope stamped at `timestamp`.
    pub fn at(timestamp: SystemTime) -> Self {
        Self {
            uuid: Uuid::now_v7(),
            timestamp,
            distinct_id: None,
            trace_id: None,
            trace_id_named: false,
            session_id: None,
            span_id: None,
            parent_id: None,
            span_name: None,
            properties: Map::new(),
            groups: Map::new(),
            flags: None,
            prompt: None,
            trace_parent: None,
        }
    }
}

/// A managed prompt by name and version, as a call names the one it used.
///
/// ```
/// use traced_llm::event::PromptRef;
/// use traced_llm::CallContext;
///
/// let context = CallContext::new().prompt(PromptRef::new("support-system").version(3));
/// assert_eq!(context.prompt.unwrap().name, "support-system");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PromptRef {
    /// The prompt's name.
    pub name: String,
    /// The version used, when known.
    pub version: Option<u64>,
}

impl PromptRef {
    /// The prompt `name`, version unknown.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: None,
        }
    }

    /// Sets the version.
    #[must_use]
    pub fn version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }
}

impl From<&str> for PromptRef {
    fn from(name: &str) -> Self {
        PromptRef::new(name)
    }
}

impl From<String> for PromptRef {
    fn from(name: String) -> Self {
        PromptRef::new(name)
    }
}

impl Default for Envelope {
    fn default() -> Self {
        Self::new()
    }
}

/// The sampling parameters of a call, as the request stated them.
///
/// ```
/// use traced_llm::event::ModelParameters;
/// use traced_llm::ChatRequest;
///
/// let parameters = ModelParameters::of(&ChatRequest::new("gpt-4o").temperature(0.2), true);
/// assert_eq!(parameters.temperature, Some(0.2));
/// assert!(parameters.stream);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ModelParameters {
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Output token limit.
    pub max_tokens: Option<u32>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Frequency penalty.
    pub frequency_penalty: Option<f64>,
    /// Presence penalty.
    pub presence_penalty: Option<f64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Sampling seed.
    pub seed: Option<i64>,
    /// Whether the call streamed.
    pub stream: bool,
}

impl ModelParameters {
    /// What `request` states, for a call that streams or not.
    pub fn of(request: &ChatRequest, stream: bool) -> Self {
        Self {
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            top_p: request.top_p,
            frequency_penalty: request.frequency_penalty,
            presence_penalty: request.presence_penalty,
            stop: request.stop.clone(),
            seed: request.seed,
            stream,
        }
    }
}

/// One LLM call, successful or not.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Generation {
    /// Ids, timestamp and custom properties.
    pub envelope: Envelope,
    /// The model: the response's, else the request's.
    pub model: String,
    /// The model the request named ([`Generation::model`] is the one that answered, when the
    /// provider said).
    pub request_model: String,
    /// The provider (`openai`, `anthropic`, ...).
    pub provider: String,
    /// Where the call went; empty for in-process models.
    pub base_url: String,
    /// Whether [`Usage::input_tokens`] includes cached tokens (see
    /// [`LlmModel::cache_tokens_in_input`](crate::LlmModel::cache_tokens_in_input)).
    pub cache_tokens_in_input: bool,
    /// The request's messages; `None` in privacy mode.
    pub input: Option<Vec<Message>>,
    /// The answer's content parts (text and tool calls); `None` in privacy mode.
    pub output: Option<Vec<ContentPart>>,
    /// Token counts.
    pub usage: Usage,
    /// From just before the request to the parsed response (or the end of the stream).
    pub latency: Duration,
    /// Streams only: from just before the request to the first text, reasoning or tool-call
    /// delta.
    pub time_to_first_token: Option<Duration>,
    /// 200 on success; the provider's status on an HTTP error; 0 when there was no answer.
    pub http_status: u16,
    /// Why generation stopped (`stop`, `end_turn`, `tool_calls`, `cancelled`, ...).
    pub stop_reason: Option<String>,
    /// The provider's completion id.
    pub completion_id: Option<String>,
    /// Sampling parameters.
    pub parameters: ModelParameters,
    /// The tools offered to the model.
    pub tools: Vec<Tool>,
    /// Why the call failed, when it did.
    pub error: Option<ErrorInfo>,
    /// Other facts the provider reported (e.g. `system_fingerprint`).
    pub provider_metadata: Map<String, Value>,
    /// The price the call was costed at: the call's own, else the configured table's entry for
    /// its model. `None` when no price applies.
    pub price: Option<ModelPrice>,
    /// What the call cost at [`Generation::price`]; sent to backends. `None` leaves pricing to
    /// the backend (PostHog prices from its own table); see [`Generation::estimated_cost`] for a
    /// local figure.
    pub cost: Option<Cost>,
    /// The uuid of the [`Exception`] event recorded for this failure (error tracking on).
    pub exception_id: Option<Uuid>,
}

impl Generation {
    /// An empty generation for `model` at `provider`, stamped now. To record a call, prefer
    /// [`Recorder::start`](crate::record::Recorder::start), which fills the ids from the span
    /// scope and applies privacy, redaction and prices.
    pub fn new(model: impl Into<String>, provider: impl Into<String>) -> Self {
        let model = model.into();
        Self {
            envelope: Envelope::new(),
            request_model: model.clone(),
            model,
            provider: provider.into(),
            base_url: String::new(),
            cache_tokens_in_input: true,
            input: None,
            output: None,
            usage: Usage::default(),
            latency: Duration::ZERO,
            time_to_first_token: None,
            http_status: 200,
            stop_reason: None,
            completion_id: None,
            parameters: ModelParameters::default(),
            tools: Vec::new(),
            error: None,
            provider_metadata: Map::new(),
            price: None,
            cost: None,
            exception_id: None,
        }
    }

    /// Whether the call failed.
    pub fn is_error(&self) -> bool {
        self.error.is_some()
    }

    /// The configured cost, else what the provider said the call cost
    /// ([`Usage::cost_usd`]), else an estimate from [`PriceTable::builtin`] for local sinks and
    /// tests. Computed on demand, so the caller's path never pays for it.
    pub fn estimated_cost(&self) -> Option<Cost> {
        if self.cost.is_some() {
            return self.cost;
        }
        let estimate = PriceTable::builtin().cost(
            &self.provider,
            &self.model,
            &self.usage,
            !self.cache_reporting_exclusive(),
        );
        match self.usage.cost_usd {
            Some(total) => Some(Cost::reported(total, estimate)),
            None => estimate,
        }
    }

    /// Whether this call's cache tokens are counted apart from its input tokens: the provider
    /// says so ([`Generation::cache_tokens_in_input`] is `false`), or the counts show it
    /// ([`Usage::counts_cache_apart`]).
    pub fn cache_reporting_exclusive(&self) -> bool {
        !self.cache_tokens_in_input || self.usage.counts_cache_apart()
    }

    /// The text of the answer, joined.
    pub fn output_text(&self) -> String {
        self.output
            .iter()
            .flatten()
            .filter_map(ContentPart::as_text)
            .collect()
    }
}

/// One embedding call, successful or not.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Embedding {
    /// Ids, timestamp and custom properties.
    pub envelope: Envelope,
    /// The model: the response's, else the request's.
    pub model: String,
    /// The model the request named.
    pub request_model: String,
    /// The provider.
    pub provider: String,
    /// Where the call went.
    pub base_url: String,
    /// The texts embedded; `None` in privacy mode.
    pub input: Option<Vec<String>>,
    /// Token counts (input only).
    pub usage: Usage,
    /// From just before the request to the parsed response.
    pub latency: Duration,
    /// 200 on success; the provider's status on an HTTP error; 0 when there was no answer.
    pub http_status: u16,
    /// Why the call failed, when it did.
    pub error: Option<ErrorInfo>,
    /// The price the call was costed at, when one applies.
    pub price: Option<ModelPrice>,
    /// What the call cost at [`Embedding::price`]; sent to backends.
    pub cost: Option<Cost>,
    /// The uuid of the [`Exception`] event recorded for this failure (error tracking on).
    pub exception_id: Option<Uuid>,
}

/// A unit of work inside a trace, or the trace itself, once it ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SpanRecord {
    /// Ids (trace, span, parent), name, timestamp and custom properties.
    pub envelope: Envelope,
    /// Whether this is the trace's root (`$ai_trace`) rather than a span inside it.
    pub is_trace: bool,
    /// What the work started from; `None` in privacy mode or when not given.
    pub input_state: Option<Value>,
    /// What the work produced; `None` in privacy mode or when not given.
    pub output_state: Option<Value>,
    /// From the span's start to its end.
    pub latency: Duration,
    /// Why the work failed, when it did (a span dropped without being ended is
    /// [`ErrorKind::Cancelled`]).
    pub error: Option<ErrorInfo>,
}

/// What a user thought of a trace: a text, a score, or both.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Feedback {
    /// The trace it is about (in `trace_id`) and the user who gave it (in `distinct_id`).
    pub envelope: Envelope,
    /// What the user wrote (`$ai_feedback_text`).
    pub text: Option<String>,
    /// A score (`$ai_feedback_score`): 1 for thumbs up, 0 for thumbs down, or any scale of yours.
    pub score: Option<f64>,
}

impl Feedback {
    /// Feedback on `trace_id`, with nothing said yet.
    pub fn new(trace_id: impl Into<String>) -> Self {
        let mut envelope = Envelope::new();
        envelope.trace_id = Some(trace_id.into());
        envelope.trace_id_named = true;
        Self {
            envelope,
            text: None,
            score: None,
        }
    }

    /// A thumbs up (score 1) on `trace_id`.
    pub fn thumbs_up(trace_id: impl Into<String>) -> Self {
        Self::new(trace_id).with_score(1.0)
    }

    /// A thumbs down (score 0) on `trace_id`.
    pub fn thumbs_down(trace_id: impl Into<String>) -> Self {
        Self::new(trace_id).with_score(0.0)
    }

    /// Sets the text.
    #[must_use]
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Sets the score.
    #[must_use]
    pub fn with_score(mut self, score: f64) -> Self {
        self.score = Some(score);
        self
    }

    /// Sets the user who gave the feedback.
    #[must_use]
    pub fn with_distinct_id(mut self, distinct_id: impl Into<String>) -> Self {
        self.envelope.distinct_id = Some(distinct_id.into());
        self
    }
}

/// A named measurement of a trace, such as a quality score from an evaluator.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Metric {
    /// The trace it is about (in `trace_id`) and, optionally, the user (in `distinct_id`).
    pub envelope: Envelope,
    /// The metric's name (`$ai_metric_name`).
    pub name: String,
    /// Its value (`$ai_metric_value`; sent as a string, as PostHog's own SDKs do).
    pub value: Value,
}

impl Metric {
    /// The metric `name` = `value` on `trace_id`.
    pub fn new(
        trace_id: impl Into<String>,
        name: impl Into<String>,
        value: impl Into<Value>,
    ) -> Self {
        let mut envelope = Envelope::new();
        envelope.trace_id = Some(trace_id.into());
        envelope.trace_id_named = true;
        Self {
            envelope,
            name: name.into(),
            value: value.into(),
        }
    }

    /// Sets the user the metric is about.
    #[must_use]
    pub fn with_distinct_id(mut self, distinct_id: impl Into<String>) -> Self {
        self.envelope.distinct_id = Some(distinct_id.into());
        self
    }
}

/// A person saw a flag's value: the exposure experiments count. Reported once per (distinct id,
/// flag, value) by [`Exposures`](crate::flags::Exposures).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FlagExposure {
    /// The person (in `distinct_id`, always set) and their groups.
    pub envelope: Envelope,
    /// The flag's key.
    pub key: String,
    /// What the person saw: value, origin and the source's metadata.
    pub flag: Flag,
}

impl FlagExposure {
    /// `distinct_id` saw `flag`, named `key`.
    pub fn new(distinct_id: impl Into<String>, key: impl Into<String>, flag: Flag) -> Self {
        let mut envelope = Envelope::new();
        envelope.distinct_id = Some(distinct_id.into());
        Self {
            envelope,
            key: key.into(),
            flag,
        }
    }
}

/// A failed call as error tracking sees it: its kind as the type, its message (scrubbed,
/// withheld in privacy mode) as the value, in the failed call's trace.
///
/// With error tracking on ([`RecorderBuilder::error_tracking`](crate::record::RecorderBuilder::error_tracking)),
/// the recorder sends one for every failed call and links it from the call's event
/// ([`Generation::exception_id`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Exception {
    /// The failed call's trace, person, session and groups, with a uuid of its own.
    pub envelope: Envelope,
    /// The failure.
    pub error: ErrorInfo,
    /// The model of the failed call.
    pub model: Option<String>,
    /// The provider of the failed call.
    pub provider: Option<String>,
}

impl Exception {
    /// A failure `error`, in a fresh envelope.
    pub fn new(error: ErrorInfo) -> Self {
        Self {
            envelope: Envelope::new(),
            error,
            model: None,
            provider: None,
        }
    }

    /// The exception of the failed `event` (a generation or an embedding), in its trace;
    /// `None` when the event records no failure.
    pub fn of(event: &Event) -> Option<Self> {
        let (error, model, provider) = match event {
            Event::Generation(g) => (g.error.as_ref()?, &g.model, &g.provider),
            Event::Embedding(e) => (e.error.as_ref()?, &e.model, &e.provider),
            _ => return None,
        };
        let source = event.envelope();
        let mut envelope = Envelope::new();
        // A call without a trace is its own trace, named by its uuid: the exception joins it.
        envelope.trace_id = Some(
            source
                .trace_id
                .clone()
                .unwrap_or_else(|| source.uuid.hyphenated().to_string()),
        );
        envelope.distinct_id.clone_from(&source.distinct_id);
        envelope.session_id.clone_from(&source.session_id);
        envelope.groups.clone_from(&source.groups);
        envelope.properties.clone_from(&source.properties);
        envelope.flags.clone_from(&source.flags);
        envelope.prompt.clone_from(&source.prompt);
        Some(Self {
            envelope,
            error: error.clone(),
            model: Some(model.clone()),
            provider: Some(provider.clone()),
        })
    }
}
