//! What a `TracedModel`, its streams and its `Tracer` share: where events go and how they are
//! finished before they get there.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::event::Event;
use crate::pricing::{ModelPrice, PriceTable};
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

    /// A per-call price wins over the configured table; without either, the built-in table
    /// gives a local estimate.
    fn price(&self, event: &mut Event, per_call: Option<&ModelPrice>) {
        let (cost, configured, cost_slot) = match event {
            Event::Generation(generation) => {
                let accounting = crate::pricing::CacheAccounting::for_call(
                    &generation.provider,
                    &generation.model,
                    generation.cache_tokens_in_input,
                );
                let (price, configured) = self.lookup(&generation.model, per_call);
                (
                    price.map(|price| price.cost(&generation.usage, accounting)),
                    configured,
                    (&mut generation.cost, &mut generation.cost_configured),
                )
            }
            Event::Embedding(embedding) => {
                let accounting = crate::pricing::CacheAccounting::for_call(
                    &embedding.provider,
                    &embedding.model,
                    true,
                );
                let (price, configured) = self.lookup(&embedding.model, per_call);
                (
                    price.map(|price| price.cost(&embedding.usage, accounting)),
                    configured,
                    (&mut embedding.cost, &mut embedding.cost_configured),
                )
            }
            _ => return,
        };
        *cost_slot.0 = cost;
        *cost_slot.1 = configured && cost.is_some();
    }

    fn lookup(&self, model: &str, per_call: Option<&ModelPrice>) -> (Option<ModelPrice>, bool) {
        if let Some(price) = per_call {
            return (Some(*price), true);
        }
        match &self.pricing {
            Some(table) => (table.price_for(model).copied(), true),
            None => (PriceTable::builtin().price_for(model).copied(), false),
        }
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
