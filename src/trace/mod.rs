//! Whole conversations: traces and the spans inside them, feedback and metrics.
//!
//! PostHog groups events by `$ai_trace_id` and nests them by `$ai_parent_id`. A [`Tracer`]
//! opens a trace ([`Tracer::trace`]); a [`Span`] opens children ([`Span::child`]) and runs work
//! inside itself ([`Span::in_scope`]): every call a [`TracedModel`](crate::TracedModel) makes in
//! there gets the trace id, a span id of its own and the enclosing span as parent, with no ids
//! passed by hand. Explicit ids on a call's [`CallContext`](crate::CallContext) still win.
//!
//! When a span ends it sends `$ai_span` (the root sends `$ai_trace`) with its name, input and
//! output state (hidden in privacy mode), latency, and error fields when the work failed. A span
//! dropped without being ended — its task cancelled, or a panic unwinding — is still sent, as an
//! error.
//!
//! ```
//! use serde_json::json;
//! use traced_llm::posthog::event_name;
//! use traced_llm::sink::InMemorySink;
//! use traced_llm::testing::ScriptedModel;
//! use traced_llm::{ChatRequest, ChatResponse, LlmModel, Message, TracedModel};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let events = InMemorySink::new();
//! let model = TracedModel::new(
//!     ScriptedModel::new().respond(ChatResponse::text_response("4")),
//!     events.clone(),
//! );
//! let trace = model.tracer().trace("math_agent").with_distinct_id("user_42");
//! let step = trace.child("answer").with_input(json!({"question": "2 + 2"}));
//! let answer = step
//!     .in_scope(model.chat(&ChatRequest::new("gpt-4o-mini").message(Message::user("2 + 2?"))))
//!     .await?;
//! step.end_with_output(json!({"answer": answer.text()}));
//! trace.end();
//!
//! let names: Vec<_> = events.events().iter().map(event_name).collect();
//! assert_eq!(names, ["$ai_generation", "$ai_span", "$ai_trace"]);
//! # Ok::<(), traced_llm::Error>(())
//! # });
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::event::{Envelope, ErrorInfo, ErrorKind, Event, Feedback, Metric, SpanRecord};
use crate::flags::FlagSnapshot;
use crate::record::{service_trace_parent, to_value, Recorder, SpanScope};
use crate::sink::Sink;

/// The message of a span dropped before it was ended.
pub(crate) const DROPPED_SPAN_ERROR: &str =
    "span dropped before it was ended (task cancelled or panicked)";

/// Opens traces and records feedback and metrics.
///
/// Get one from [`TracedModel::tracer`](crate::TracedModel::tracer) or
/// [`Recorder::tracer`] to share that recorder's sink, privacy mode and redactor, or build one
/// over any sink.
#[derive(Clone)]
pub struct Tracer {
    recorder: Recorder,
}

impl Tracer {
    /// A tracer over `sink`, with content and without redaction; for other settings, build a
    /// [`Recorder`] and take its [`tracer`](Recorder::tracer).
    pub fn new(sink: impl Sink + 'static) -> Self {
        Recorder::new(sink).tracer()
    }

    pub(crate) fn from_recorder(recorder: Recorder) -> Self {
        Self { recorder }
    }

    /// The recorder spans and feedback go through.
    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Opens a trace with a fresh id: a UUIDv7, or, when it starts inside a span of the
    /// service's own OpenTelemetry tracing (feature `otel`), that span's trace id, so the trace
    /// nests under it (see the `otel` module, "Nesting").
    pub fn trace(&self, name: impl Into<String>) -> Span {
        let trace_parent = service_trace_parent();
        let trace_id = match &trace_parent {
            Some(parent) => parent.trace_id_hex(),
            None => Uuid::now_v7().hyphenated().to_string(),
        };
        self.open_trace(name.into(), trace_id, false, trace_parent)
    }

    /// Opens a trace with your own id, e.g. a conversation id.
    pub fn trace_with_id(&self, name: impl Into<String>, trace_id: impl Into<String>) -> Span {
        self.open_trace(name.into(), trace_id.into(), true, service_trace_parent())
    }

    fn open_trace(
        &self,
        name: String,
        trace_id: String,
        named: bool,
        trace_parent: Option<crate::event::TraceParent>,
    ) -> Span {
        let scope = SpanScope::root(Arc::from(trace_id), named, trace_parent);
        Span::open(self.recorder.clone(), scope, None, name)
    }

    /// Records what a user thought of a trace (`$ai_feedback`).
    ///
    /// ```
    /// use traced_llm::event::Feedback;
    /// use traced_llm::sink::InMemorySink;
    /// use traced_llm::trace::Tracer;
    ///
    /// let tracer = Tracer::new(InMemorySink::new());
    /// tracer.feedback(Feedback::thumbs_up("conversation_7f3a").with_distinct_id("user_42"));
    /// ```
    pub fn feedback(&self, feedback: Feedback) {
        self.recorder.emit(feedback.into());
    }

    /// Records a named measurement of a trace (`$ai_metric`).
    pub fn metric(&self, metric: Metric) {
        self.recorder.emit(metric.into());
    }
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("recorder", &self.recorder)
            .finish()
    }
}

/// An open trace or span. End it with [`Span::end`], [`Span::end_with_output`] or
/// [`Span::fail`]; dropped without that, it is sent as an error.
#[must_use = "a span is sent when it ends; dropping it at once records an error"]
pub struct Span {
    recorder: Recorder,
    scope: SpanScope,
    parent_id: Option<String>,
    name: String,
    started: Instant,
    timestamp: SystemTime,
    input_state: Option<Value>,
    properties: Map<String, Value>,
    open: bool,
}

impl Span {
    fn open(recorder: Recorder, scope: SpanScope, parent_id: Option<String>, name: String) -> Self {
        Self {
            recorder,
            scope,
            parent_id,
            name,
            started: Instant::now(),
            timestamp: SystemTime::now(),
            input_state: None,
            properties: Map::new(),
            open: true,
        }
    }

    /// Opens a span nested in this one. It inherits the trace, person and session.
    pub fn child(&self, name: impl Into<String>) -> Span {
        let span_id: Arc<str> = Arc::from(Uuid::now_v7().hyphenated().to_string());
        let scope = SpanScope {
            span_id,
            ..self.scope.clone()
        };
        Span::open(
            self.recorder.clone(),
            scope,
            Some(self.scope.span_id.to_string()),
            name.into(),
        )
    }

    /// Sets the person this trace is for; spans and calls opened afterwards inherit it.
    pub fn with_distinct_id(mut self, distinct_id: impl Into<String>) -> Self {
        self.scope.distinct_id = Some(Arc::from(distinct_id.into()));
        self
    }

    /// Sets the session; spans and calls opened afterwards inherit it as `$ai_session_id`.
    pub fn with_session_id(mut self, session_id: impl Into<String>) -> Self {
        self.scope.session_id = Some(Arc::from(session_id.into()));
        self
    }

    /// Adds a group; spans and calls opened afterwards inherit it.
    pub fn with_group(mut self, group_type: impl Into<String>, key: impl Serialize) -> Self {
        let mut groups = self.scope.groups.as_deref().cloned().unwrap_or_default();
        groups.insert(group_type.into(), to_value(&key));
        self.scope.groups = Some(Arc::new(groups));
        self
    }

    /// Stamps `flags` on this span's event and on every span and call opened inside it
    /// afterwards (a call's own flags win for the keys they name), so a whole trace breaks
    /// down by variant.
    pub fn with_flags(mut self, flags: FlagSnapshot) -> Self {
        self.scope.flags = Some(match self.scope.flags.take() {
            Some(inherited) => flags.merged_over(&inherited),
            None => flags,
        });
        self
    }

    /// Sets what the work starts from (`$ai_input_state`): any value that serializes.
    pub fn with_input(mut self, state: impl Serialize) -> Self {
        self.input_state = Some(to_value(&state));
        self
    }

    /// Adds a custom property to this span's event: any value that serializes.
    pub fn with_property(mut self, key: impl Into<String>, value: impl Serialize) -> Self {
        self.properties.insert(key.into(), to_value(&value));
        self
    }

    /// The trace id.
    pub fn trace_id(&self) -> &str {
        self.scope.trace_id()
    }

    /// This span's id (for the root: the trace id).
    pub fn span_id(&self) -> &str {
        self.scope.span_id()
    }

    /// The ids work beneath this span inherits, to hand to a spawned task.
    pub fn scope(&self) -> SpanScope {
        self.scope.clone()
    }

    /// Runs `future` inside this span: every traced call it makes, across `.await` points,
    /// nests under it. A spawned task does not inherit the scope; move a child span (or
    /// [`Span::scope`]) into it and run its work there with `in_scope`.
    pub fn in_scope<F: Future>(&self, future: F) -> impl Future<Output = F::Output> {
        self.scope.clone().scope(future)
    }

    /// Ends the work successfully.
    pub fn end(self) {
        self.finish(None, None);
    }

    /// Ends the work successfully with its result (`$ai_output_state`): any value that
    /// serializes.
    pub fn end_with_output(self, output: impl Serialize) {
        let output = to_value(&output);
        self.finish(Some(output), None);
    }

    /// Ends the work as failed with `error`.
    pub fn fail(self, error: impl fmt::Display) {
        self.finish(
            None,
            Some(ErrorInfo::new(ErrorKind::Other, error.to_string())),
        );
    }

    fn finish(mut self, output_state: Option<Value>, error: Option<ErrorInfo>) {
        self.send(output_state, error);
    }

    fn send(&mut self, output_state: Option<Value>, mut error: Option<ErrorInfo>) {
        if !std::mem::replace(&mut self.open, false) {
            return;
        }
        let is_trace = self.parent_id.is_none();
        let mut envelope = Envelope::at(self.timestamp);
        envelope.trace_id = Some(self.scope.trace_id.to_string());
        envelope.trace_id_named = self.scope.trace_id_named;
        envelope.trace_parent = self.scope.trace_parent;
        if !is_trace {
            envelope.span_id = Some(self.scope.span_id.to_string());
        }
        envelope.parent_id = self.parent_id.take();
        envelope.span_name = Some(std::mem::take(&mut self.name));
        envelope.distinct_id = self.scope.distinct_id.as_deref().map(str::to_owned);
        envelope.session_id = self.scope.session_id.as_deref().map(str::to_owned);
        if let Some(groups) = &self.scope.groups {
            envelope.groups = (**groups).clone();
        }
        envelope.properties = std::mem::take(&mut self.properties);
        envelope.flags.clone_from(&self.scope.flags);
        let private = self.recorder.privacy_mode();
        if private {
            error.iter_mut().for_each(ErrorInfo::withhold_message);
        }
        let record = SpanRecord {
            envelope,
            is_trace,
            input_state: self.input_state.take().filter(|_| !private),
            output_state: output_state.filter(|_| !private),
            latency: self.started.elapsed(),
            error,
        };
        self.recorder.emit(Event::Span(record));
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if self.open {
            self.send(
                None,
                Some(ErrorInfo::new(ErrorKind::Cancelled, DROPPED_SPAN_ERROR)),
            );
        }
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span")
            .field("name", &self.name)
            .field("trace_id", &self.scope.trace_id)
            .field("span_id", &self.scope.span_id)
            .field("parent_id", &self.parent_id)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}
