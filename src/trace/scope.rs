use std::future::Future;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::event::Envelope;

tokio::task_local! {
    static CURRENT: SpanScope;
}

/// The ids of an open span that work beneath it inherits: its trace, itself as parent, the
/// person and session. Cheap to clone, to hand to spawned tasks.
#[derive(Debug, Clone)]
pub struct SpanScope {
    pub(super) trace_id: Arc<str>,
    /// The id children name as their parent: the span's own id, or the trace id for the root.
    pub(super) span_id: Arc<str>,
    pub(super) distinct_id: Option<Arc<str>>,
    pub(super) session_id: Option<Arc<str>>,
    pub(super) groups: Option<Arc<Map<String, Value>>>,
}

impl SpanScope {
    /// The scope the current task runs in, if any (see [`Span::in_scope`](super::Span::in_scope)).
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

    /// Runs `future` inside this scope: every traced call it makes nests under this span.
    pub fn scope<F: Future>(self, future: F) -> impl Future<Output = F::Output> {
        CURRENT.scope(self, future)
    }

    /// Fills what the caller left open: trace id, parent, person, session, groups.
    pub(crate) fn fill(&self, envelope: &mut Envelope) {
        if envelope.trace_id.is_none() {
            envelope.trace_id = Some(self.trace_id.to_string());
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
        if let Some(groups) = &self.groups {
            for (group, key) in groups.iter() {
                envelope
                    .groups
                    .entry(group.clone())
                    .or_insert_with(|| key.clone());
            }
        }
    }
}
