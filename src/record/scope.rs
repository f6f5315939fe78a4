//! The span a task runs in, and how a call's envelope is filled from it.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::CallContext;
use crate::event::{Envelope, TraceParent};
use crate::flags::FlagSnapshot;

tokio::task_local! {
    static CURRENT: SpanScope;
}

/// The ids of an open span that work beneath it inherits: its trace, itself as parent, the
/// person, session and groups. Cheap to clone, to hand to spawned tasks.
///
/// [`Span::in_scope`](crate::trace::Span::in_scope) sets it for a future; every call recorded
/// inside reads it through [`SpanScope::current`].
#[derive(Debug, Clone)]
pub struct SpanScope {
    pub(crate) trace_id: Arc<str>,
    /// The id children name as their parent: the span's own id, or the trace id for the root.
    pub(crate) span_id: Arc<str>,
    pub(crate) distinct_id: Option<Arc<str>>,
    pub(crate) session_id: Option<Arc<str>>,
    pub(crate) groups: Option<Arc<Map<String, Value>>>,
    /// Flags every call and span inside carries, unless it names the key itself.
    pub(crate) flags: Option<FlagSnapshot>,
    /// Whether the caller named the trace id.
    pub(crate) trace_id_named: bool,
    /// The span of the service's own tracing the trace started in (feature `otel`).
    pub(crate) trace_parent: Option<TraceParent>,
}

impl SpanScope {
    /// The scope of a trace's root: the trace id names both the trace and the parent of what
    /// runs inside it.
    pub(crate) fn root(
        trace_id: Arc<str>,
        trace_id_named: bool,
        trace_parent: Option<TraceParent>,
    ) -> Self {
        Self {
            span_id: Arc::clone(&trace_id),
            trace_id,
            distinct_id: None,
            session_id: None,
            groups: None,
            flags: None,
            trace_id_named,
            trace_parent,
        }
    }

    /// The scope the current task runs in, if any (see
    /// [`Span::in_scope`](crate::trace::Span::in_scope)).
    pub fn current() -> Option<SpanScope> {
        CURRENT.try_with(SpanScope::clone).ok()
    }

    /// The trace id.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The id that work inside this scope names as its parent.
    pub fn span_id(&self) -> &str {
        &self.span_id
    }

    /// Runs `future` inside this scope: every call recorded in it nests under this span.
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }

    /// The flags work inside this scope carries.
    pub fn flags(&self) -> Option<&FlagSnapshot> {
        self.flags.as_ref()
    }

    /// Fills what the caller left open: trace id, parent, person, session, groups, flags.
    fn fill(&self, envelope: &mut Envelope) {
        if envelope.trace_id.is_none() {
            envelope.trace_id = Some(self.trace_id.to_string());
            envelope.trace_id_named = self.trace_id_named;
        }
        if envelope.parent_id.is_none() {
            envelope.parent_id = Some(self.span_id.to_string());
        }
        if envelope.distinct_id.is_none() {
            envelope.distinct_id = self.distinct_id.as_deref().map(str::to_owned);
        }
        if envelope.session_id.is_none() {
            envelope.session_id = self.session_id.as_deref().map(str::to_owned);
        }
        if envelope.trace_parent.is_none() {
            envelope.trace_parent = self.trace_parent;
        }
        if let Some(groups) = &self.groups {
            for (group, key) in groups.iter() {
                envelope
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| key.clone());
            }
        }
        if let Some(inherited) = &self.flags {
            envelope.flags = Some(match envelope.flags.take() {
                Some(own) => own.merged_over(inherited),
                None => inherited.clone(),
            });
        }
    }
}

/// The span of the service's own tracing that work starting now runs in: the current `tracing`
/// span's OpenTelemetry context, else the current OpenTelemetry context (see
/// the `otel` module, "Nesting"). Always `None` without the `otel` feature.
pub(crate) fn service_trace_parent() -> Option<TraceParent> {
    #[cfg(feature = "otel")]
    {
        crate::otel::current_trace_parent()
    }
    #[cfg(not(feature = "otel"))]
    {
        None
    }
}

/// The envelope of a call's event, from what the caller said of it and the span it runs in.
///
/// Explicit ids in the context win; the enclosing span fills the rest. A call with no parent in
/// the crate takes the service's current trace context, if any: it becomes the call's parent
/// (for sinks that speak W3C trace context), and its trace when the caller named none. A call
/// nested under a parent gets a span id of its own, so it is a node of the trace tree.
pub(crate) fn envelope_for(context: &CallContext) -> Envelope {
    let mut envelope = Envelope::at(SystemTime::now());
    envelope.distinct_id.clone_from(&context.distinct_id);
    envelope.trace_id.clone_from(&context.trace_id);
    envelope.trace_id_named = context.trace_id.is_some();
    envelope.session_id.clone_from(&context.session_id);
    envelope.span_id.clone_from(&context.span_id);
    envelope.parent_id.clone_from(&context.parent_id);
    envelope.span_name.clone_from(&context.span_name);
    envelope.flags.clone_from(&context.flags);
    envelope.prompt.clone_from(&context.prompt);
    if let Some(scope) = SpanScope::current() {
        scope.fill(&mut envelope);
    }
    if envelope.parent_id.is_none() {
        if let Some(parent) = service_trace_parent() {
            if envelope.trace_id.is_none() {
                envelope.trace_id = Some(parent.trace_id_hex());
            }
            envelope.trace_parent = Some(parent);
        }
    }
    if envelope.parent_id.is_some() && envelope.span_id.is_none() {
        envelope.span_id = Some(Uuid::now_v7().hyphenated().to_string());
    }
    if !context.properties.is_empty() {
        envelope.properties.clone_from(&context.properties);
    }
    if !context.groups.is_empty() {
        envelope.groups.clone_from(&context.groups);
    }
    envelope
}
