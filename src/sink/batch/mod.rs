//! A generic batch processor: the queue, batching, the outage buffer, flush and shutdown, with
//! an exporter seam.
//!
//! The model is OpenTelemetry's `BatchSpanProcessor::builder(exporter)`: a [`BatchProcessor`]
//! owns everything that does not depend on where events go, and an [`Exporter`] owns what does.
//!
//! | the processor ([`processor`]) | the exporter ([`Exporter`]) |
//! |---|---|
//! | the raw-event queue, bounded in events and bytes ([`queue`]) | turning events into encoded, compressed payloads |
//! | batching by count (a queue block is a batch) and by the flush interval | what one request is, and what its answer means |
//! | the outage buffer of payloads: bounded in bytes and age, sent in order | retry, split, re-route or drop, per answer |
//! | capped exponential backoff, probes while requests hang, cancelling them on recovery | its own size limits and routes |
//! | flush and shutdown with their deadlines ([`control`]), the spool ([`spool`]) | how a payload is written to and read from the spool |
//!
//! A payload is exported at most [`BatchConfig::max_in_flight`] at a time. While the endpoint
//! fails (an answer says so, or requests hang) no payload is given up after a fixed number of
//! tries: they wait in the buffer, and one probe is sent on the backoff schedule. The first
//! success resumes full speed. Only a full buffer or a payload older than
//! [`BatchConfig::max_age`] drops data, and every drop is counted.

pub(crate) mod control;
pub(crate) mod processor;
pub(crate) mod queue;
pub(crate) mod spool;
pub(crate) mod stats;

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use crate::event::Event;

pub(crate) use self::processor::BatchProcessor;
pub(crate) use self::stats::Counters;

/// What `capture` does when the queue is full. Either way the drop is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueueFullPolicy {
    /// Keep what is queued and drop the new event (cheapest; PostHog's Python SDK does this).
    #[default]
    DropNewest,
    /// Drop the oldest queued event to make room (keeps the most recent calls).
    DropOldest,
}

/// Why a payload, or some of its events, were dropped for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropCause {
    /// The server refused the events; sending them again would not help.
    Rejected,
    /// The server refused the credentials (401, 403).
    Unauthorized,
    /// A single event the server found too large.
    TooLarge,
    /// The outage buffer (and the spool, if any) was full.
    BufferFull,
    /// The payload waited longer than the maximum age.
    Expired,
    /// Shutdown's deadline passed before it was delivered (and it could not be spooled).
    Shutdown,
}

/// A drop, as handed to [`Exporter::dropped`].
#[derive(Debug, Clone)]
pub(crate) struct Dropped {
    pub(crate) cause: DropCause,
    pub(crate) events: usize,
    pub(crate) status: Option<u16>,
    pub(crate) reason: String,
}

/// What the exporter made of one attempt.
#[derive(Debug)]
pub(crate) enum ExportResult<P> {
    /// Delivered.
    Delivered,
    /// The endpoint is unavailable (refused, reset, 5xx, 408, 429, timeout): keep the payload
    /// and try again on the backoff schedule, not before `after` when the server said so.
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Send these payloads instead, at once and in this order (the halves of a split, or the
    /// payload re-encoded for another route). The endpoint is up.
    Replace(Vec<P>),
    /// Drop the payload for good. The endpoint is up.
    Drop(Dropped),
}

/// An encoded payload, as the processor sees it.
pub(crate) trait Payload: Send + Sync + 'static {
    /// Events inside.
    fn events(&self) -> usize;
    /// Bytes it holds in memory, what the outage buffer is bounded by.
    fn bytes(&self) -> usize;
}

/// Where the events go: encoding, one request, and the meaning of its answer.
///
/// The processor calls [`Exporter::encode`] on a blocking thread and [`Exporter::export`] on its
/// own runtime, at most [`BatchConfig::max_in_flight`] at once; an export may be cancelled (its
/// future dropped) when a probe finds the endpoint back while it hangs.
pub(crate) trait Exporter: Send + Sync + fmt::Debug + 'static {
    /// One encoded request body and what the exporter needs to split or re-send it.
    type Payload: Payload;

    /// Encodes a chunk of events (at most a batch's worth) into payloads, in order. Events
    /// that cannot be sent are counted in `counters` and left out.
    fn encode(
        &self,
        events: impl Iterator<Item = Event>,
        counters: &Counters,
    ) -> Vec<Self::Payload>;

    /// Sends one payload. `attempt` counts earlier tries of this payload (0 for the first).
    fn export(
        &self,
        payload: &Self::Payload,
        attempt: u32,
        counters: &Counters,
    ) -> impl Future<Output = ExportResult<Self::Payload>> + Send;

    /// Called for every drop after the queue, on the processor's thread. Keep it quick.
    fn dropped(&self, dropped: &Dropped) {
        let _ = dropped;
    }

    /// The payload as the bytes of a spool file.
    fn spool_bytes(&self, payload: &Self::Payload) -> Vec<u8>;

    /// A payload read back from a spool file, `None` when it is not one.
    fn unspool(&self, bytes: &[u8]) -> Option<Self::Payload>;
}

/// The processor's settings.
#[derive(Debug, Clone)]
pub(crate) struct BatchConfig {
    /// Events per chunk handed to [`Exporter::encode`].
    pub(crate) batch_size: usize,
    /// How long a partial chunk waits.
    pub(crate) flush_interval: Duration,
    /// Raw events queued before the policy applies.
    pub(crate) max_queue_len: usize,
    /// Raw-event bytes (estimated) queued before the policy applies.
    pub(crate) max_queue_bytes: usize,
    pub(crate) queue_full_policy: QueueFullPolicy,
    /// Bytes of encoded payloads held for delivery.
    pub(crate) max_buffer_bytes: usize,
    /// How long a payload may wait before it is dropped.
    pub(crate) max_age: Duration,
    /// Exports at once.
    pub(crate) max_in_flight: usize,
    /// The first backoff; it doubles after each failed probe.
    pub(crate) initial_backoff: Duration,
    /// The longest backoff.
    pub(crate) max_backoff: Duration,
    /// The longest server-requested wait honoured.
    pub(crate) max_retry_after: Duration,
    /// A request without an answer for this long counts as hanging: the endpoint is probed.
    pub(crate) stall_after: Duration,
    /// Where payloads go when the buffer overflows or shutdown runs out of time.
    pub(crate) spool: Option<SpoolConfig>,
    /// The name of the worker thread.
    pub(crate) thread_name: &'static str,
    /// Log target.
    pub(crate) log_target: &'static str,
}

/// The durable spool's settings.
#[derive(Debug, Clone)]
pub(crate) struct SpoolConfig {
    pub(crate) dir: PathBuf,
    pub(crate) max_bytes: u64,
}
