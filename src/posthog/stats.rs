//! Delivery counters, the flush report, and the error report handed to the callback.

use std::fmt;
use std::time::Duration;

use crate::sink::batch::stats::get;
use crate::sink::batch::Counters;
use crate::sink::SinkError;

/// A snapshot of the sink's counters; see [`PosthogSink::stats`](super::PosthogSink::stats).
///
/// Every event accepted is, at any moment, either still `queued` (raw, encoded in the outage
/// buffer, or in flight), `sent`, `spooled`, or dropped for one of the reasons below.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStats {
    /// Events accepted and not yet delivered, spooled or dropped.
    pub queued: u64,
    /// Events the server acknowledged (spooled events of earlier sinks included).
    pub sent: u64,
    /// Requests that failed and left their batch waiting for the endpoint.
    pub retried: u64,
    /// Events dropped by `capture` because the raw-event queue was full.
    pub dropped_queue_full: u64,
    /// Events the server rejected (400 for the event itself, 413 for a lone event, other 4xx).
    pub dropped_rejected: u64,
    /// Events dropped because the server refused the API key (401, 403).
    pub dropped_unauthorized: u64,
    /// Events that could not be shrunk to the per-event budget and were never sent.
    pub dropped_oversize: u64,
    /// Events dropped because the outage buffer (and the spool, if any) was full.
    pub dropped_buffer_full: u64,
    /// Events dropped because their batch waited longer than the maximum age.
    pub dropped_expired: u64,
    /// Events captured after shutdown, or undelivered (and not spooled) when it timed out.
    pub dropped_shutdown: u64,
    /// Events shrunk to fit the per-event budget, and sent.
    pub shrunk: u64,
    /// Events left out by trace sampling (not dropped: sampling chose them).
    pub sampled_out: u64,
    /// Events written to the spool.
    pub spooled: u64,
    /// Events read back from the spool (this sink's, or an earlier one's).
    pub spool_loaded: u64,
    /// Spool files skipped because they were corrupt or partial.
    pub spool_corrupt: u64,
    /// Batches waiting for delivery now, in memory, in flight or in the spool.
    pub buffered_batches: u64,
    /// Bytes of the batches in memory and in flight now (compressed).
    pub buffered_bytes: u64,
    /// Batches finally lost.
    pub failed_batches: u64,
    /// Batches split or re-encoded after an answer (400, 413, a reset, the route fallback).
    pub split_batches: u64,
    /// Requests sent, retries included.
    pub requests: u64,
    /// Request body bytes sent (compressed when gzip is on), retries included.
    pub bytes_sent: u64,
}

impl SinkStats {
    /// All dropped events, whatever the reason (sampled-out events are not dropped).
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full
            + self.dropped_rejected
            + self.dropped_unauthorized
            + self.dropped_oversize
            + self.dropped_buffer_full
            + self.dropped_expired
            + self.dropped_shutdown
    }

    pub(crate) fn from_counters(counters: &Counters) -> Self {
        let accepted = get(&counters.accepted);
        let sent = get(&counters.delivered);
        let evicted = get(&counters.evicted);
        let rejected = get(&counters.rejected) + get(&counters.too_large);
        let unauthorized = get(&counters.unauthorized);
        let oversize = get(&counters.oversize);
        let buffer_full = get(&counters.buffer_full);
        let expired = get(&counters.expired);
        let lost = get(&counters.lost_at_shutdown);
        let spooled = get(&counters.spooled);
        let spool_loaded = get(&counters.spool_loaded);
        let resolved = sent
            + evicted
            + rejected
            + unauthorized
            + oversize
            + buffer_full
            + expired
            + lost
            + spooled;
        SinkStats {
            queued: (accepted + spool_loaded).saturating_sub(resolved),
            sent,
            retried: get(&counters.retried),
            dropped_queue_full: get(&counters.refused_full) + evicted,
            dropped_rejected: rejected,
            dropped_unauthorized: unauthorized,
            dropped_oversize: oversize,
            dropped_buffer_full: buffer_full,
            dropped_expired: expired,
            dropped_shutdown: get(&counters.after_shutdown) + lost,
            shrunk: get(&counters.shrunk),
            sampled_out: get(&counters.sampled_out),
            spooled,
            spool_loaded,
            spool_corrupt: get(&counters.spool_corrupt),
            buffered_batches: get(&counters.buffered_batches),
            buffered_bytes: get(&counters.buffered_bytes),
            failed_batches: get(&counters.failed_batches),
            split_batches: get(&counters.split),
            requests: get(&counters.requests),
            bytes_sent: get(&counters.bytes_sent),
        }
    }
}

/// What happened since the previous flush (or since the sink was built); see
/// [`PosthogSink::flush`](super::PosthogSink::flush).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FlushReport {
    /// Events the server acknowledged.
    pub delivered: u64,
    /// Events the server rejected, the key's refusals included.
    pub rejected: u64,
    /// Of `rejected`, events dropped because the server refused the API key.
    pub unauthorized: u64,
    /// Events dropped for any other reason (queue or buffer full, too old, oversize, shutdown).
    pub dropped: u64,
    /// Events written to the spool.
    pub spooled: u64,
    /// Events left out by trace sampling.
    pub sampled_out: u64,
    /// Events still waiting when the flush returned (non-zero only after a timeout).
    pub queued: u64,
}

impl FlushReport {
    pub(crate) fn between(before: &SinkStats, now: &SinkStats) -> Self {
        let rejected = |s: &SinkStats| s.dropped_rejected + s.dropped_unauthorized;
        let other = |s: &SinkStats| s.dropped() - rejected(s);
        FlushReport {
            delivered: now.sent - before.sent,
            rejected: rejected(now) - rejected(before),
            unauthorized: now.dropped_unauthorized - before.dropped_unauthorized,
            dropped: other(now) - other(before),
            spooled: now.spooled - before.spooled,
            sampled_out: now.sampled_out - before.sampled_out,
            queued: now.queued,
        }
    }
}

/// Why [`PosthogSink::flush`](super::PosthogSink::flush) or
/// [`PosthogSink::shutdown`](super::PosthogSink::shutdown) did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushError {
    /// The server refused the project API key for events since the last flush: they were
    /// dropped, and so will every later one be until the key is fixed.
    Unauthorized {
        /// The HTTP status (401 or 403).
        status: Option<u16>,
        /// The server's reason, without the key.
        reason: String,
        /// What happened since the last flush.
        report: FlushReport,
    },
    /// The timeout passed first; what was not delivered is still queued (flush) or was spooled
    /// or dropped (shutdown), and counted.
    Timeout {
        /// The timeout given.
        timeout: Duration,
        /// What happened since the last flush.
        report: FlushReport,
    },
    /// The sink was already shut down.
    AlreadyShutdown,
}

impl FlushError {
    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, FlushError::Timeout { .. })
    }

    /// Whether the server refused the API key.
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, FlushError::Unauthorized { .. })
    }

    /// What happened since the last flush, when the flush ran.
    pub fn report(&self) -> Option<&FlushReport> {
        match self {
            FlushError::Unauthorized { report, .. } | FlushError::Timeout { report, .. } => {
                Some(report)
            }
            FlushError::AlreadyShutdown => None,
        }
    }
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushError::Unauthorized {
                status,
                reason,
                report,
            } => {
                write!(
                    f,
                    "posthog refused the project API key: {} events dropped",
                    report.unauthorized
                )?;
                if let Some(status) = status {
                    write!(f, " (http status {status})")?;
                }
                if !reason.is_empty() {
                    write!(f, ": {reason}")?;
                }
                Ok(())
            }
            FlushError::Timeout { timeout, report } => write!(
                f,
                "posthog: timed out after {timeout:?} with {} events still waiting",
                report.queued
            ),
            FlushError::AlreadyShutdown => f.write_str("posthog: sink already shut down"),
        }
    }
}

impl std::error::Error for FlushError {}

impl From<FlushError> for SinkError {
    fn from(error: FlushError) -> Self {
        match error {
            FlushError::Timeout { timeout, .. } => SinkError::Timeout(timeout),
            FlushError::AlreadyShutdown => SinkError::AlreadyShutdown,
            unauthorized => SinkError::Internal(unauthorized.to_string()),
        }
    }
}

/// Why a batch of events was finally lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryErrorKind {
    /// The server refused the batch (400 for a lone event, other 4xx); retrying would not help.
    Rejected,
    /// The server refused the API key (401, 403).
    Unauthorized,
    /// A single event was still too large for the server (413).
    TooLarge,
    /// The outage buffer (and the spool, if any) was full.
    BufferFull,
    /// The batch waited longer than the maximum age.
    Expired,
    /// Shutdown's deadline passed before it was delivered, and it could not be spooled.
    Shutdown,
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
            DeliveryErrorKind::Unauthorized => "refused for the API key",
            DeliveryErrorKind::TooLarge => "too large",
            DeliveryErrorKind::BufferFull => "dropped, outage buffer full",
            DeliveryErrorKind::Expired => "dropped, too old",
            DeliveryErrorKind::Shutdown => "undelivered at shutdown",
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
