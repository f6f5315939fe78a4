use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Sink, SinkError};
use crate::event::Event;

/// Sends every event to several sinks: PostHog and a local JSON-lines log, say.
///
/// Every sink but the last sees the event through [`Sink::capture_ref`]; the last one takes it.
/// Sinks that keep events clone them there, sinks that only read them (a monitor) do not, so
/// put the sink that keeps events last.
///
/// ```
/// use traced_llm::sink::{Fanout, InMemorySink, JsonlSink};
///
/// let memory = InMemorySink::new();
/// let sink = Fanout::new().with(memory.clone()).with(JsonlSink::new(std::io::sink()));
/// # let _ = sink;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Fanout {
    sinks: Vec<Arc<dyn Sink>>,
}

impl Fanout {
    /// A fan-out to no sink yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sink.
    #[must_use]
    pub fn with(mut self, sink: impl Sink + 'static) -> Self {
        self.sinks.push(Arc::new(sink));
        self
    }

    /// Adds a shared sink.
    #[must_use]
    pub fn with_shared(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// How many sinks events go to.
    pub fn len(&self) -> usize {
        self.sinks.len()
    }

    /// Whether events go nowhere.
    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

#[async_trait]
impl Sink for Fanout {
    fn capture(&self, event: Event) {
        capture_all(&self.sinks, event);
    }
    fn capture_ref(&self, event: &Event) {
        self.sinks.iter().for_each(|sink| sink.capture_ref(event));
    }
    async fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        all_ok(self.sinks.iter().map(|sink| sink.flush(timeout))).await
    }
    async fn shutdown(&self, timeout: Duration) -> Result<(), SinkError> {
        all_ok(self.sinks.iter().map(|sink| sink.shutdown(timeout))).await
    }
}

/// Shows the event to each sink but the last, which gets the original.
pub(super) fn capture_all<S: Sink>(sinks: &[S], event: Event) {
    if let Some((last, rest)) = sinks.split_last() {
        for sink in rest {
            sink.capture_ref(&event);
        }
        last.capture(event);
    }
}

/// Runs the sinks' flushes (or shutdowns) at once, so one slow sink does not eat the others'
/// time; the first error wins.
pub(super) async fn all_ok<F>(futures: impl Iterator<Item = F>) -> Result<(), SinkError>
where
    F: Future<Output = Result<(), SinkError>>,
{
    futures_util::future::join_all(futures)
        .await
        .into_iter()
        .collect()
}
