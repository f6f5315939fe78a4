//! What a `TracedModel`, its streams and its `Tracer` share: where events go and how they are
//! finished before they get there.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::event::Event;
use crate::pricing::{CacheAccounting, ModelPrice, PriceTable};
use crate::redact::{redact_event, Redactor};
use crate::sink::Sink;

#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) privacy_mode: bool,
    /// Prices the user configured; without them, cost is a local estimate PostHog never sees.
    pub(crate) pricing: Option<PriceTable>,
    pub(crate) redactor: Option<Arc<dyn Redactor>>,
}

impl Shared {
    pub(crate) fn new(sink: Arc<dyn Sink>) -> Self {
        Self {
            sink,
            privacy_mode: false,
            pricing: None,
            redactor: None,
        }
    }

    /// Prices, redacts and hands the event to the sink. Whatever panics in there (a sink, a
    /// redactor) is contained: tracing never panics into the caller.
    pub(crate) fn emit(&self, mut event: Event, price: Option<&ModelPrice>) {
        static PANICKED: AtomicBool = AtomicBool::new(false);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.price(&mut event, price);
            if let Some(redactor) = &self.redactor {
                redact_event(&mut event, &**redactor);
            }
            self.sink.capture(event);
        }));
        if outcome.is_err() && !PANICKED.swap(true, Ordering::Relaxed) {
            tracing::error!(target: "traced_llm", "a sink or redactor panicked while an event was captured; the event is lost and the caller unaffected");
        }
    }

    /// A per-call price wins over the configured table. Without either, nothing is priced
    /// here: PostHog prices the event itself.
    fn price(&self, event: &mut Event, per_call: Option<&ModelPrice>) {
        if per_call.is_none() && self.pricing.is_none() {
            return;
        }
        let (provider, model, usage, cache_tokens_in_input, slot) = match event {
            Event::Generation(g) => (
                &g.provider,
                &g.model,
                &g.usage,
                g.cache_tokens_in_input,
                &mut g.cost,
            ),
            Event::Embedding(e) => (&e.provider, &e.model, &e.usage, true, &mut e.cost),
            _ => return,
        };
        let price = per_call
            .copied()
            .or_else(|| self.pricing.as_ref()?.price_for(model).copied());
        let accounting = CacheAccounting::for_call(provider, model, cache_tokens_in_input);
        *slot = price.map(|price| price.cost(usage, accounting));
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracing")
            .field("sink", &self.sink)
            .field("privacy_mode", &self.privacy_mode)
            .field("pricing", &self.pricing)
            .field("redactor", &self.redactor.as_ref().map(|_| "…"))
            .finish()
    }
}
