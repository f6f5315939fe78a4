use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Sink, SinkError};
use crate::event::Event;
use crate::posthog;

/// Writes each event as one line of JSON, in PostHog's capture format, to any writer.
///
/// Meant for development, logs and piping into other tools: it writes on the caller's thread,
/// under a lock, so give it a buffered or fast writer in production paths. Write errors are
/// counted ([`JsonlSink::write_errors`]) and logged once, never returned to the caller.
///
/// ```
/// use traced_llm::event::{Event, Generation};
/// use traced_llm::sink::{JsonlSink, Sink};
///
/// let sink = JsonlSink::new(Vec::new());
/// sink.capture(Event::from(Generation::new("gpt-4o-mini", "openai")));
/// let bytes = sink.into_inner();
/// let line: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
/// assert_eq!(line["event"], "$ai_generation");
/// ```
#[derive(Debug)]
pub struct JsonlSink<W> {
    writer: Mutex<W>,
    write_errors: AtomicU64,
}

impl JsonlSink<io::Stdout> {
    /// Writes to standard output.
    pub fn stdout() -> Self {
        Self::new(io::stdout())
    }
}

impl<W: Write + Send> JsonlSink<W> {
    /// Writes to `writer`.
    pub fn new(writer: W) -> Self {
        Self {
            writer: Mutex::new(writer),
            write_errors: AtomicU64::new(0),
        }
    }

    /// How many events could not be written.
    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }

    /// Returns the writer.
    pub fn into_inner(self) -> W {
        self.writer
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write_line(&self, event: &Event) -> io::Result<()> {
        let mut line = serde_json::to_vec(&posthog::capture_event(event))?;
        line.push(b'\n');
        let mut writer = self
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        writer.write_all(&line)
    }
}

#[async_trait]
impl<W: Write + Send + std::fmt::Debug> Sink for JsonlSink<W> {
    fn capture(&self, event: Event) {
        if let Err(err) = self.write_line(&event) {
            if self.write_errors.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(target: "traced_llm::sink", error = %err, "jsonl sink cannot write; counting further failures silently");
            }
        }
    }

    async fn flush(&self, _timeout: Duration) -> Result<(), SinkError> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .flush()
            .map_err(|err| SinkError::Internal(err.to_string()))
    }
}
