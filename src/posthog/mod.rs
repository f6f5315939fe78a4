//! PostHog: the capture format every sink writes, and the sink that delivers it.
//!
//! - [`capture_event`] maps a neutral [`Event`](crate::event::Event) to PostHog's capture JSON.
//!   It is the one place that knows the `$ai_*` property names, and it is always compiled:
//!   [`JsonlSink`](crate::sink::JsonlSink) writes the same lines.
//! - [`PosthogSink`] (feature `posthog`) batches events to PostHog's capture API from a
//!   background thread: a generic batch processor (queue, batching, outage buffer, flush and
//!   shutdown) over a PostHog exporter (encoding with the size guard, HTTP, what each answer
//!   means).
//! - [`flags`] (feature `flags`) evaluates PostHog feature flags, locally or remotely, for A/B
//!   tests of model parameters; [`prompts`] (feature `prompts`) fetches managed prompts.

mod format;

pub use self::format::{
    capture_event, event_name, CaptureEvent, ALERT_CLEARED_EVENT, ALERT_EVENT, LIB_NAME,
    LIB_VERSION,
};

#[cfg(any(feature = "flags", feature = "prompts"))]
mod api;
#[cfg(feature = "posthog")]
mod builder;
#[cfg(any(feature = "flags", feature = "prompts"))]
mod cache;
#[cfg(feature = "posthog")]
mod encode;
#[cfg(feature = "posthog")]
mod exporter;
#[cfg(feature = "flags")]
#[cfg_attr(docsrs, doc(cfg(feature = "flags")))]
pub mod flags;
#[cfg(feature = "prompts")]
#[cfg_attr(docsrs, doc(cfg(feature = "prompts")))]
pub mod prompts;
#[cfg(feature = "posthog")]
mod retry;
#[cfg(feature = "posthog")]
pub(crate) mod sample;
#[cfg(feature = "posthog")]
mod sink;
#[cfg(feature = "posthog")]
mod stats;

#[cfg(any(feature = "flags", feature = "prompts"))]
pub use self::api::ENV_PERSONAL_API_KEY;
#[cfg(feature = "posthog")]
pub use self::builder::{
    Endpoint, PosthogSinkBuilder, QueueFullPolicy, DEFAULT_BATCH_SIZE, DEFAULT_CAPTURE_TIMEOUT,
    DEFAULT_FLUSH_INTERVAL, DEFAULT_HOST, DEFAULT_MAX_AI_BATCH_BYTES, DEFAULT_MAX_AI_EVENT_BYTES,
    DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_BUFFER_AGE, DEFAULT_MAX_BUFFER_BYTES,
    DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_QUEUE_BYTES, DEFAULT_MAX_QUEUE_LEN,
    DEFAULT_SPOOL_MAX_BYTES, ENV_API_KEY, ENV_HOST, ENV_SAMPLE_RATE, EU_HOST,
};
#[cfg(feature = "posthog")]
pub use self::retry::RetryPolicy;
#[cfg(feature = "posthog")]
pub use self::sink::PosthogSink;
#[cfg(feature = "posthog")]
pub use self::stats::{DeliveryError, DeliveryErrorKind, FlushError, FlushReport, SinkStats};
