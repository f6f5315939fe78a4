//! Delivery counters and the error report handed to the callback.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A snapshot of the sink's counters; see [`PosthogSink::stats`](super::PosthogSink::stats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// Events accepted and not yet delivered or dropped: in the queue, a batch, or in flight.
    pub queued: u64,
    /// Events the server acknowledged.
    pub sent: u64,
    /// Requests sent again after a retryable failure.
    pub retried: u64,
    /// Events dropped because the queue was full.
    pub dropped_queue_full: u64,
    /// Events the server rejected (400, 401, 403, or 413 for a lone event).
    pub dropped_rejected: u64,
    /// Events lost after their retries ran out.
    pub dropped_failed: u64,
    /// Events captured after shutdown, or still undelivered when shutdown timed out.
    pub dropped_shutdown: u64,
    /// Events shrunk to fit the per-event budget (delivered, with markers).
    pub shrunk: u64,
    /// Batches finally lost (rejected or out of retries).
    pub failed_batches: u64,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Request body bytes sent (compressed when gzip is on), retries included.
    pub bytes_sent: u64,
}

impl SinkStats {
    /// All dropped events, whatever the reason.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_rejected
            + self.dropped_failed
            + self.dropped_shutdown
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) refused_full: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) after_shutdown: AtomicU64,
    pub(crate) lost_at_shutdown: AtomicU64,
    pub(crate) shrunk: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    warned: AtomicBool,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> SinkStats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let accepted = get(&self.accepted);
        let sent = get(&self.sent);
        let evicted = get(&self.evicted);
        let rejected = get(&self.rejected);
        let failed = get(&self.failed);
        let lost = get(&self.lost_at_shutdown);
        SinkStats {
            queued: accepted.saturating_sub(sent + evicted + rejected + failed + lost),
            sent,
            retried: get(&self.retried),
            dropped_queue_full: get(&self.refused_full) + evicted,
            dropped_rejected: rejected,
            dropped_failed: failed,
            dropped_shutdown: get(&self.after_shutdown) + lost,
            shrunk: get(&self.shrunk),
            failed_batches: get(&self.failed_batches),
            requests: get(&self.requests),
            bytes_sent: get(&self.bytes_sent),
        }
    }

    /// Logs one warning at the first drop of the sink's life.
    pub(crate) fn warn_first_drop(&self, why: &'static str) {
        if !self.warned.load(Ordering::Relaxed) && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "traced_llm::posthog",
                reason = why,
                "posthog sink dropped an LLM event; further drops are counted in stats() and totalled at shutdown"
            );
        }
    }
}

/// Why a batch of events was finally lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryErrorKind {
    /// The server refused the batch (400, 401, 403, ...); retrying would not help.
    Rejected,
    /// A single event was still too large for the server (413).
    TooLarge,
    /// Network errors or retryable statuses outlasted the retry policy.
    RetriesExhausted,
}

/// A batch the sink gave up on, as passed to
/// [`PosthogSinkBuilder::on_error`](super::PosthogSinkBuilder::on_error). It never holds the
/// API key or event content.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryError {
    /// Why the batch was lost.
    pub kind: DeliveryErrorKind,
    /// The last HTTP status, if the server answered.
    pub status: Option<u16>,
    /// How many events were lost.
    pub events: usize,
    /// A short reason: the server's error code or message, or the network error.
    pub reason: String,
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            DeliveryErrorKind::Rejected => "rejected",
            DeliveryErrorKind::TooLarge => "too large",
            DeliveryErrorKind::RetriesExhausted => "out of retries",
        };
        write!(f, "posthog: {} events {what}", self.events)?;
        if let Some(status) = self.status {
            write!(f, " (http status {status})")?;
        }
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for DeliveryError {}
