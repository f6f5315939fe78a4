//! Where events go.
//!
//! A [`Sink`] takes each [`Event`] synchronously and must never block or fail the caller;
//! delivery, retries and serialization happen behind it. Sinks compose without new types:
//! `Arc<S>`, `Box<S>`, `&S`, `Option<S>` and `Vec<S>` are sinks too, and [`Fanout`] sends to
//! several at once.
//!
//! | sink | for |
//! |---|---|
//! | [`PosthogSink`](crate::posthog::PosthogSink) | PostHog LLM analytics: gzipped batches from a background thread (the default; feature `posthog`) |
//! | [`JsonlSink`] | one PostHog-shaped JSON object per line, on stdout or any writer |
//! | [`InMemorySink`] | tests: keeps the events to assert on |
//! | [`Fanout`] | several sinks at once |
//! | [`NoopSink`] | tracing switched off |

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::event::Event;

#[cfg(feature = "posthog")]
pub(crate) mod batch;
mod fanout;
mod jsonl;
#[cfg(feature = "testing")]
mod memory;

pub use self::fanout::Fanout;
pub use self::jsonl::JsonlSink;
#[cfg(feature = "testing")]
pub use self::memory::InMemorySink;

/// How long [`Sink::flush`] and [`Sink::shutdown`] wait when the caller names no timeout.
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a flush or shutdown did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The sink was already shut down; nothing more can be delivered through it.
    #[error("sink already shut down")]
    AlreadyShutdown,
    /// The timeout passed before everything was delivered; what was not is still queued
    /// (flush) or lost (shutdown), and counted.
    #[error("sink timed out after {0:?}")]
    Timeout(Duration),
    /// Something else went wrong; the message names it, never an API key or event content.
    #[error("sink failed: {0}")]
    Internal(String),
}

/// Where [`TracedModel`](crate::TracedModel) hands its events.
///
/// `capture` runs on the caller's path: it must return at once, never block on I/O, never
/// panic, and never report failure to the caller (count it instead). `flush` and `shutdown` are
/// async and bounded by their timeout.
///
/// ```
/// use traced_llm::event::Event;
/// use traced_llm::sink::Sink;
///
/// #[derive(Debug, Default)]
/// struct CountingSink(std::sync::atomic::AtomicUsize);
///
/// impl Sink for CountingSink {
///     fn capture(&self, _event: Event) {
///         self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///     }
/// }
/// ```
#[async_trait]
pub trait Sink: Send + Sync + fmt::Debug {
    /// Takes one event. Never blocks, never fails the caller.
    fn capture(&self, event: Event);

    /// Sees one event it does not keep, as [`Fanout`] hands it to every sink but the last.
    ///
    /// The default clones the event into [`Sink::capture`]. A sink that only reads events (a
    /// monitor, a counter) overrides it, so sitting beside another sink costs it no copy.
    fn capture_ref(&self, event: &Event) {
        self.capture(event.clone());
    }

    /// Waits until everything captured before this call was delivered, or `timeout` passed.
    async fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        let _ = timeout;
        Ok(())
    }

    /// Flushes, then stops accepting events.
    async fn shutdown(&self, timeout: Duration) -> Result<(), SinkError> {
        self.flush(timeout).await
    }
}

macro_rules! forward_sink {
    ($($ty:ty),*) => {$(
        #[async_trait]
        impl<S: Sink + ?Sized> Sink for $ty {
            fn capture(&self, event: Event) {
                (**self).capture(event)
            }
            fn capture_ref(&self, event: &Event) {
                (**self).capture_ref(event)
            }
            async fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
                (**self).flush(timeout).await
            }
            async fn shutdown(&self, timeout: Duration) -> Result<(), SinkError> {
                (**self).shutdown(timeout).await
            }
        }
    )*};
}

forward_sink!(&S, Box<S>, Arc<S>);

/// `None` discards events: tracing switched off by configuration.
#[async_trait]
impl<S: Sink> Sink for Option<S> {
    fn capture(&self, event: Event) {
        if let Some(sink) = self {
            sink.capture(event);
        }
    }
    fn capture_ref(&self, event: &Event) {
        if let Some(sink) = self {
            sink.capture_ref(event);
        }
    }
    async fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        match self {
            Some(sink) => sink.flush(timeout).await,
            None => Ok(()),
        }
    }
    async fn shutdown(&self, timeout: Duration) -> Result<(), SinkError> {
        match self {
            Some(sink) => sink.shutdown(timeout).await,
            None => Ok(()),
        }
    }
}

/// Every sink of the list gets every event, as with [`Fanout`].
#[async_trait]
impl<S: Sink> Sink for Vec<S> {
    fn capture(&self, event: Event) {
        fanout::capture_all(self, event);
    }
    fn capture_ref(&self, event: &Event) {
        self.iter().for_each(|sink| sink.capture_ref(event));
    }
    async fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        fanout::all_ok(self.iter().map(|sink| sink.flush(timeout))).await
    }
    async fn shutdown(&self, timeout: Duration) -> Result<(), SinkError> {
        fanout::all_ok(self.iter().map(|sink| sink.shutdown(timeout))).await
    }
}

/// Discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

impl Sink for NoopSink {
    fn capture(&self, _event: Event) {}
    fn capture_ref(&self, _event: &Event) {}
}

/// The sink the environment names: [`PosthogSink`](crate::posthog::PosthogSink) from
/// `POSTHOG_API_KEY` and `POSTHOG_HOST`.
///
/// # Errors
/// [`Error::is_builder`](crate::Error::is_builder) when the key is unset, the PostHog
/// configuration is invalid, or the `posthog` feature is off.
pub(crate) fn sink_from_env() -> Result<Arc<dyn Sink>, crate::Error> {
    #[cfg(feature = "posthog")]
    {
        let key_set = std::env::var(crate::posthog::ENV_API_KEY).is_ok();
        if key_set {
            return Ok(Arc::new(crate::posthog::PosthogSink::from_env()?));
        }
        Err(crate::Error::builder(
            "no sink was set and POSTHOG_API_KEY is not set: set a sink, set the key, or call disabled()",
        ))
    }
    #[cfg(not(feature = "posthog"))]
    Err(crate::Error::builder(
        "no sink was set, and without the `posthog` feature the environment names none: set a sink or call disabled()",
    ))
}

/// The sink a recorder built without one uses: [`sink_from_env`], or a [`NoopSink`] with one
/// warning so the missing sink is noticed — through `tracing`, and on standard error when no
/// `tracing` subscriber is installed (most services have none when they start).
pub(crate) fn default_sink() -> Arc<dyn Sink> {
    match sink_from_env() {
        Ok(sink) => sink,
        Err(err) => {
            let message = format!("traced-llm: LLM events are discarded: {}", err.message());
            tracing::warn!(target: "traced_llm", "{message}");
            static PRINTED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !tracing::dispatcher::has_been_set()
                && !PRINTED.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                eprintln!("{message}");
            }
            Arc::new(NoopSink)
        }
    }
}
