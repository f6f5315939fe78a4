//! The service's own trace context when work starts, in the event's neutral form.

use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;

use crate::event::TraceParent;

/// The span work starting now runs in: with feature `tracing-opentelemetry`, the current
/// `tracing` span's OpenTelemetry context; else (or when that span has none) the current
/// OpenTelemetry context, which `tracing-opentelemetry` sets on entering a span (its default
/// context activation) and `Context::attach` or `FutureExt::with_context` set by hand.
pub(crate) fn current_trace_parent() -> Option<TraceParent> {
    #[cfg(feature = "tracing-opentelemetry")]
    if let Some(parent) = from_tracing_span() {
        return Some(parent);
    }
    Context::map_current(parent_of)
}

fn parent_of(context: &Context) -> Option<TraceParent> {
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| {
        TraceParent::new(
            span_context.trace_id().to_bytes(),
            span_context.span_id().to_bytes(),
            span_context.is_sampled(),
        )
    })
}

#[cfg(feature = "tracing-opentelemetry")]
fn from_tracing_span() -> Option<TraceParent> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    let span = tracing::Span::current();
    if span.is_none() {
        return None;
    }
    parent_of(&span.context())
}
