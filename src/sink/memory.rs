use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::Sink;
use crate::event::{Event, Generation};

/// Keeps events in memory, for tests and benchmarks.
///
/// Clones share one store, so keep a clone to read what a [`TracedModel`](crate::TracedModel)
/// captured.
///
/// ```
/// use traced_llm::event::{Event, Generation};
/// use traced_llm::sink::{InMemorySink, Sink};
///
/// let sink = InMemorySink::new();
/// sink.capture(Event::from(Generation::new("gpt-4o-mini", "openai")));
/// assert_eq!(sink.generations()[0].model, "gpt-4o-mini");
/// ```
#[derive(Debug, Clone, Default)]
pub struct InMemorySink {
    store: Arc<Mutex<Store>>,
}

#[derive(Debug, Default)]
struct Store {
    events: VecDeque<Event>,
    limit: Option<usize>,
    captured: u64,
}

impl InMemorySink {
    /// An empty store without limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that keeps only the latest `limit` events, for long benchmark runs.
    pub fn bounded(limit: usize) -> Self {
        let sink = Self::default();
        sink.lock().limit = Some(limit);
        sink
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of the events kept, oldest first.
    pub fn events(&self) -> Vec<Event> {
        self.lock().events.iter().cloned().collect()
    }

    /// A copy of the generations kept, oldest first.
    pub fn generations(&self) -> Vec<Generation> {
        self.lock()
            .events
            .iter()
            .filter_map(|event| event.as_generation().cloned())
            .collect()
    }

    /// Removes and returns the events kept.
    pub fn take(&self) -> Vec<Event> {
        self.lock().events.drain(..).collect()
    }

    /// How many events are kept.
    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    /// Whether no event is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many events were captured in all, including those a bound pushed out.
    pub fn captured(&self) -> u64 {
        self.lock().captured
    }
}

impl Sink for InMemorySink {
    fn capture(&self, event: Event) {
        let mut store = self.lock();
        store.captured += 1;
        if store.limit == Some(store.events.len()) {
            store.events.pop_front();
        }
        if store.limit != Some(0) {
            store.events.push_back(event);
        }
    }
}
