//! The processor's counters: atomics the capture path, the encoders and the delivery task add
//! to, and a sink turns into its public statistics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Every count a batching sink keeps. Each event accepted ends in exactly one of `delivered`,
/// `rejected`, `unauthorized`, `too_large`, `oversize`, `buffer_full`, `expired`,
/// `lost_at_shutdown`, `evicted` or is still queued.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) refused_full: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) after_shutdown: AtomicU64,
    pub(crate) lost_at_shutdown: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) unauthorized: AtomicU64,
    pub(crate) too_large: AtomicU64,
    pub(crate) oversize: AtomicU64,
    pub(crate) buffer_full: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) shrunk: AtomicU64,
    pub(crate) sampled_out: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) failed_batches: AtomicU64,
    pub(crate) split: AtomicU64,
    /// Events spooled from earlier sinks (not counted in `accepted`).
    pub(crate) spool_loaded: AtomicU64,
    pub(crate) spooled: AtomicU64,
    pub(crate) spool_corrupt: AtomicU64,
    /// Payloads and bytes in the outage buffer right now (gauges).
    pub(crate) buffered_batches: AtomicU64,
    pub(crate) buffered_bytes: AtomicU64,
    warned: AtomicBool,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

pub(crate) fn set(counter: &AtomicU64, n: u64) {
    counter.store(n, Ordering::Relaxed);
}

impl Counters {
    /// Logs one warning at the first drop of the sink's life.
    pub(crate) fn warn_first_drop(&self, target: &'static str, why: &'static str) {
        if !self.warned.load(Ordering::Relaxed) && !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "traced_llm::posthog",
                sink = target,
                reason = why,
                "sink dropped an LLM event; further drops are counted in stats() and totalled at shutdown"
            );
        }
    }
}
