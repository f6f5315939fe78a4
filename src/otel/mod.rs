//! OpenTelemetry GenAI export: every call a span and measurements, in the service's own traces.
//!
//! [`OtelSink`] turns each event into a span and GenAI metrics through the `opentelemetry` API,
//! with the tracer and meter providers you give it (or the global ones). It batches nothing and
//! sends nothing itself: your SDK's span processor, metric reader, exporter, resource and
//! sampler do, to a collector, Jaeger, Tempo, Honeycomb, Datadog or PostHog's OTLP intake.
//!
//! ```
//! use opentelemetry_sdk::metrics::SdkMeterProvider;
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! use traced_llm::otel::{OtelSink, TracedIdGenerator};
//! use traced_llm::testing::ScriptedModel;
//! use traced_llm::{ChatResponse, TracedModel};
//!
//! // Your providers, with your exporters (e.g. `opentelemetry_otlp::SpanExporter`) on them;
//! // the id generator makes span ids the ones PostHog sees.
//! let tracer_provider = SdkTracerProvider::builder()
//!     .with_id_generator(TracedIdGenerator::new())
//!     .build();
//! let meter_provider = SdkMeterProvider::builder().build();
//!
//! let sink = OtelSink::builder()
//!     .tracer_provider(&tracer_provider)
//!     .meter_provider(&meter_provider)
//!     .build();
//! let model = TracedModel::new(ScriptedModel::new().respond(ChatResponse::text_response("Hi")), sink);
//! # let _ = model;
//! ```
//!
//! # Spans
//!
//! | event | span | kind |
//! |---|---|---|
//! | a model call | `chat {gen_ai.request.model}` | `CLIENT` |
//! | an embedding call | `embeddings {gen_ai.request.model}` | `CLIENT` |
//! | a trace, or a span inside one | `invoke_agent {name}` (`gen_ai.agent.name`) | `INTERNAL` |
//!
//! Each span starts when the call started and ends when it ended — for a stream, at its last
//! chunk, its error or its drop — whatever the time it reaches the sink. A chat span carries:
//!
//! - `gen_ai.operation.name` (`chat`; PostHog's OTLP intake makes `$ai_generation` of that
//!   value alone), `gen_ai.provider.name` (`openai`, `anthropic`, `azure.ai.openai`, or the
//!   label of an OpenAI-compatible server), `server.address`, `server.port`;
//! - `gen_ai.request.model`, `.temperature`, `.top_p`, `.max_tokens`, `.frequency_penalty`,
//!   `.presence_penalty`, `.stop_sequences`, `.seed`, `.stream` (streamed calls only);
//! - `gen_ai.response.id`, `.model`, `.finish_reasons` (`["error"]` for a call that failed or
//!   was cancelled), `.time_to_first_chunk` (seconds, streamed calls);
//! - `gen_ai.usage.input_tokens` (cached tokens included: Anthropic's exclusive cache counts
//!   are added back in), `.output_tokens`, `.cache_read.input_tokens`,
//!   `.cache_write.input_tokens`, `.reasoning.output_tokens`, each when the provider reported it;
//! - on failure `error.type` ([`ErrorKind::as_str`](crate::event::ErrorKind::as_str):
//!   `timeout`, `rate_limit`, `auth`, `server`, `stream`, `cancelled`, ...) and status `ERROR`
//!   with the error's text (without its message in privacy mode). A call its caller dropped is
//!   `cancelled`: it may have cost tokens and gave no complete answer, and leaving it out of
//!   `error.type` would put it among the successes' latencies;
//! - `gen_ai.conversation.id` when the caller named the conversation: the session id
//!   (`CallContext::session_id`, `Span::with_session_id`), else a trace id the caller chose
//!   (`CallContext::trace_id`, `Tracer::trace_with_id`) — never a UUID the crate made up nor a
//!   trace id taken from the service, as the conventions ask;
//! - `posthog.distinct_id` when the call names a person, and the caller's custom properties
//!   under their own names (the crate's attributes win a clash).
//!
//! Every span also carries `gen_ai.prompt.name` and `gen_ai.prompt.version` when the work used a
//! managed prompt (`CallContext::prompt`). Agent spans carry `gen_ai.operation.name =
//! invoke_agent`, `gen_ai.agent.name`, the conversation and person, and `error.type` with status
//! `ERROR` when the span failed or was dropped unended (`cancelled`). Feedback, metric, flag
//! exposure and exception events have no GenAI counterpart and are skipped (a failed call's
//! span already carries its error).
//!
//! # Content
//!
//! `gen_ai.input.messages`, `gen_ai.output.messages`, `gen_ai.system_instructions` (for APIs
//! that take them apart from the conversation: Anthropic, Gemini, Vertex AI, Bedrock) and
//! `gen_ai.tool.definitions`, as the conventions' JSON, are off by default.
//! [`OtelSinkBuilder::capture_content`] turns them on, as does
//! `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` when the code says nothing. Privacy
//! mode wins: a private call carries no content to send, and its error status has no provider
//! message. The recorder's redactor has run before any sink sees the event, and inline base64
//! media never leaves the process (`[base64 image/png redacted]`).
//!
//! # Metrics
//!
//! With [`MetricNames::Latest`] (the default), the names of semantic-conventions-genai v0.1
//! (`client-inference.md`, `gen-ai-token-metrics.md`, `client-embeddings.md`):
//!
//! | instrument | unit | recorded |
//! |---|---|---|
//! | `gen_ai.client.inference.duration` (histogram) | `s` | every chat call |
//! | `gen_ai.client.inference.time_to_first_chunk` (histogram) | `s` | streamed chat calls that got a chunk |
//! | `gen_ai.client.inference.usage.input_tokens`, `.output_tokens` (counters, `gen_ai.token.modality = unknown`) | `{token}` | every chat call (0 when unreported) |
//! | `gen_ai.client.inference.usage.cache_read.input_tokens`, `.cache_write.input_tokens`, `.reasoning.output_tokens` (counters) | `{token}` | when reported |
//! | `gen_ai.client.embeddings.duration` (histogram), `gen_ai.client.embeddings.operation.input_tokens` (histogram) | `s`, `{token}` | every embedding call |
//!
//! Durations use the conventions' buckets, 0.01 s to 81.92 s doubling
//! ([`semconv::DURATION_BUCKETS`]); token histograms 1 to 67,108,864 by fours. Every measurement
//! has `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model`,
//! `gen_ai.response.model`, and `error.type` on failures; `server.address` and `server.port`
//! (recommended there) stay on the spans, so series stay one per provider and model and each
//! measurement is cheaper to record.
//!
//! [`MetricNames::Legacy`] writes the names of semantic-conventions v1.37–v1.41 instead, which
//! most dashboards and vendors still query: the `gen_ai.client.operation.duration` and
//! `gen_ai.client.operation.time_to_first_chunk` histograms, and the `gen_ai.client.token.usage`
//! histogram by `gen_ai.token.type` (`input`, `output`); [`MetricNames::Both`] writes both
//! generations, for a migration. PostHog's OTLP intake takes traces and logs, not metrics: it
//! reads the span attributes above.
//!
//! # Ids
//!
//! A call has the same ids in PostHog and in OpenTelemetry, so the two views join: UUID trace
//! ids are the OpenTelemetry trace ids, other ids map by a documented FNV-1a hash (see
//! [`trace_id_for`], [`span_id_for`]). The OpenTelemetry SDK draws span ids from its id
//! generator only, so the tracer provider must use [`TracedIdGenerator`]; without it the sink
//! warns once, and a crate trace's spans no longer point at their parents.
//!
//! # Nesting
//!
//! A call, or a trace, that starts inside a span of the service's own tracing becomes a child
//! of that span, so an axum handler's request span contains its LLM spans. The parent is taken
//! when the work starts — a stream that ends later, elsewhere, keeps it — and its sampling
//! decision is kept. Where it comes from:
//!
//! 1. the crate's own scope wins: inside a [`Span::in_scope`](crate::trace::Span::in_scope),
//!    or with an explicit `CallContext::parent_id`, the crate's span is the parent, whatever
//!    `tracing` span is current;
//! 2. otherwise, with feature `tracing-opentelemetry`, the current `tracing` span's
//!    OpenTelemetry context (`tracing_opentelemetry::OpenTelemetrySpanExt::context`);
//! 3. otherwise the current OpenTelemetry context, which `tracing-opentelemetry`'s layer sets
//!    on entering a span (its default context activation), as do `Context::attach` and
//!    `FutureExt::with_context`. With the default activation, feature `otel` alone nests.
//!
//! Such a call or trace is in the service's trace, whatever its PostHog trace id: a crate trace
//! started inside the request span is its child, and the trace's own spans nest under it as in
//! PostHog. One with no trace id of its own takes the service's trace id, written as 32 hex
//! digits, in PostHog too (`$ai_trace_id`), so every view names the same trace. One whose caller
//! named a trace id (`CallContext::trace_id`, `Tracer::trace_with_id`: a conversation) keeps it
//! in PostHog, and in OpenTelemetry as `gen_ai.conversation.id` on its calls (unless they have
//! a session id, which is the conversation there); the span ids are
//! the same in both views. PostHog has no span for the service's own request: there such calls
//! are roots of their trace.
//!
//! # Sampling
//!
//! A crate span is exported before its parent (a span ends after its children), so it reaches
//! the sampler with a parent context marked as the service's span was (sampled or not), or
//! sampled for a trace the crate alone knows. To keep or drop whole crate traces, sample by
//! trace id (`Sampler::TraceIdRatioBased`), which gives every span of a trace the same decision.
//!
//! # PostHog's OTLP intake
//!
//! PostHog takes OTLP traces at `/i/v0/ai/otel` (`https://us.i.posthog.com/i/v0/ai/otel`, or
//! the EU host), with the project token (`phc_…`) as a bearer token, protobuf or JSON. Point a
//! span exporter there instead of using the capture API:
//!
//! ```text
//! OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://us.i.posthog.com/i/v0/ai/otel
//! OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer phc_..."
//! ```
//!
//! PostHog turns `chat` spans into `$ai_generation` (this sink always names chat calls `chat`,
//! the one operation it maps so), `embeddings` into `$ai_embedding`, the rest into `$ai_span`
//! and a root into `$ai_trace`; `posthog.distinct_id` names the person, else PostHog derives a
//! personless id from the conversation or trace. That path loses what PostHog does not map
//! today: cache read and write tokens (so cache discounts in its cost), reasoning tokens, time
//! to first token, finish reasons and request parameters; custom properties and groups arrive
//! only as plain attributes. Its limits: 4 MB per request, at most 100 AI spans per request
//! (keep the batch processor's `max_export_batch_size` at or under 100). The capture API sink,
//! [`PosthogSink`](crate::posthog::PosthogSink), keeps all of it.

mod bridge;
mod content;
pub mod ids;
mod metrics;
pub mod semconv;
mod span;

use std::fmt;
use std::sync::Arc;

use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::metrics::{Meter, MeterProvider};
use opentelemetry::trace::{Tracer, TracerProvider};
use opentelemetry::InstrumentationScope;

pub(crate) use self::bridge::current_trace_parent;
pub use self::ids::{span_id_for, trace_id_for, TracedIdGenerator};

use self::metrics::Instruments;
use crate::event::Event;
use crate::sink::Sink;

/// The instrumentation scope of the crate's spans and metrics.
pub const SCOPE_NAME: &str = "traced-llm";

/// `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`: `true` turns content capture on when
/// the builder did not say.
pub const ENV_CAPTURE_CONTENT: &str = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT";

/// Which generation of GenAI metric names [`OtelSink`] writes; see the
/// [module docs](self#metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricNames {
    /// `gen_ai.client.inference.*` (semantic-conventions-genai v0.1).
    #[default]
    Latest,
    /// `gen_ai.client.operation.*` and `gen_ai.client.token.usage` (semantic-conventions
    /// v1.37–v1.41).
    Legacy,
    /// Both, for dashboards in migration.
    Both,
}

impl MetricNames {
    fn latest(self) -> bool {
        matches!(self, MetricNames::Latest | MetricNames::Both)
    }

    fn legacy(self) -> bool {
        matches!(self, MetricNames::Legacy | MetricNames::Both)
    }
}

/// A [`Sink`] that exports every event as an OpenTelemetry GenAI span and GenAI metrics; see
/// the [module docs](self).
///
/// `capture` builds the span and records the measurements on the caller's thread (a few
/// microseconds; the SDK's batch processor takes it from there). `flush` and `shutdown` do
/// nothing: the providers are yours, shared with the rest of the service, so flush and shut
/// them down yourself (`SdkTracerProvider::shutdown`, `SdkMeterProvider::shutdown`) before the
/// process exits. Cheap to clone.
#[derive(Clone)]
pub struct OtelSink {
    inner: Arc<Inner>,
}

struct Inner {
    tracer: BoxedTracer,
    metrics: Option<Instruments>,
    spans: bool,
    capture_content: bool,
}

impl OtelSink {
    /// A sink over the global tracer and meter providers, as they are now: set them first
    /// (`opentelemetry::global::set_tracer_provider`, `set_meter_provider`).
    pub fn global() -> Self {
        Self::builder().build()
    }

    /// A builder: which providers, which metric names, whether to capture content.
    pub fn builder() -> OtelSinkBuilder {
        OtelSinkBuilder::default()
    }

    /// Whether spans carry content (see [`OtelSinkBuilder::capture_content`]).
    pub fn captures_content(&self) -> bool {
        self.inner.capture_content
    }
}

impl fmt::Debug for OtelSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelSink")
            .field("spans", &self.inner.spans)
            .field("metrics", &self.inner.metrics.is_some())
            .field("capture_content", &self.inner.capture_content)
            .finish()
    }
}

impl Sink for OtelSink {
    fn capture(&self, event: Event) {
        self.capture_ref(&event);
    }

    fn capture_ref(&self, event: &Event) {
        match event {
            Event::Generation(generation) => self.inner.export_generation(generation),
            Event::Embedding(embedding) => self.inner.export_embedding(embedding),
            Event::Span(span) => self.inner.export_span(span),
            // Feedback, metrics and flag exposures are PostHog's notions with no GenAI
            // counterpart; an exception repeats what its call's span already says; a monitor's
            // alert is about many calls, not one span.
            Event::Feedback(_)
            | Event::Metric(_)
            | Event::FlagExposure(_)
            | Event::Exception(_)
            | Event::Alert(_) => {}
        }
    }
}

/// Builds an [`OtelSink`]. Every setting has a default, so building cannot fail.
#[must_use]
#[derive(Default)]
pub struct OtelSinkBuilder {
    tracer: Option<BoxedTracer>,
    meter: Option<Meter>,
    metric_names: MetricNames,
    spans: Option<bool>,
    metrics: Option<bool>,
    capture_content: Option<bool>,
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

impl OtelSinkBuilder {
    /// Spans go through `provider` (default: the global tracer provider at
    /// [`build`](Self::build) time).
    pub fn tracer_provider<P, T, S>(mut self, provider: &P) -> Self
    where
        P: TracerProvider<Tracer = T> + ?Sized,
        T: Tracer<Span = S> + Send + Sync + 'static,
        S: opentelemetry::trace::Span + Send + Sync + 'static,
    {
        self.tracer = Some(BoxedTracer::new(Box::new(
            provider.tracer_with_scope(scope()),
        )));
        self
    }

    /// Metrics go through `provider` (default: the global meter provider at
    /// [`build`](Self::build) time).
    pub fn meter_provider<P: MeterProvider + ?Sized>(mut self, provider: &P) -> Self {
        self.meter = Some(provider.meter_with_scope(scope()));
        self
    }

    /// Which metric names to write (default [`MetricNames::Latest`]).
    pub fn metric_names(mut self, names: MetricNames) -> Self {
        self.metric_names = names;
        self
    }

    /// Whether to export spans (default `true`).
    pub fn spans(mut self, enabled: bool) -> Self {
        self.spans = Some(enabled);
        self
    }

    /// Whether to record metrics (default `true`).
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.metrics = Some(enabled);
        self
    }

    /// Whether chat spans carry the conversation, the answer, system instructions and tool
    /// definitions (default: `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`, else off).
    /// Private calls never do.
    pub fn capture_content(mut self, enabled: bool) -> Self {
        self.capture_content = Some(enabled);
        self
    }

    /// The sink.
    pub fn build(self) -> OtelSink {
        let capture_content = self.capture_content.unwrap_or_else(|| {
            std::env::var(ENV_CAPTURE_CONTENT)
                .is_ok_and(|value| value.trim().eq_ignore_ascii_case("true"))
        });
        let tracer = self
            .tracer
            .unwrap_or_else(|| global::tracer_provider().tracer_with_scope(scope()));
        let metrics = self.metrics.unwrap_or(true).then(|| {
            let meter = self
                .meter
                .unwrap_or_else(|| global::meter_provider().meter_with_scope(scope()));
            Instruments::new(&meter, self.metric_names)
        });
        OtelSink {
            inner: Arc::new(Inner {
                tracer,
                metrics,
                spans: self.spans.unwrap_or(true),
                capture_content,
            }),
        }
    }
}

impl fmt::Debug for OtelSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtelSinkBuilder")
            .field("tracer", &self.tracer.is_some())
            .field("meter", &self.meter.is_some())
            .field("metric_names", &self.metric_names)
            .field("spans", &self.spans)
            .field("metrics", &self.metrics)
            .field("capture_content", &self.capture_content)
            .finish()
    }
}
