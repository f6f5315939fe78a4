//! [`PosthogSink`]: a [`BatchProcessor`] over the [`PosthogExporter`], with trace sampling in
//! front of it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::builder::{
    Config, PosthogSinkBuilder, DEFAULT_MAX_AI_BATCH_BYTES, DEFAULT_MAX_AI_EVENT_BYTES,
    DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_IN_FLIGHT,
};
use super::encode::{Encoder, Encoding, Limits};
use super::exporter::{self, PosthogExporter};
use super::sample;
use super::stats::{FlushError, FlushReport, SinkStats};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::sink::batch::control::Outcome;
use crate::sink::batch::processor::{Closed, StartError};
use crate::sink::batch::stats::add;
use crate::sink::batch::{BatchConfig, BatchProcessor, Counters, SpoolConfig};
use crate::sink::{Sink, SinkError};
use crate::util::url::display;

/// Sends events to PostHog's LLM analytics in gzipped batches, from a background thread, and
/// holds them through PostHog's outages.
///
/// A cheap `Clone` handle: clones share one queue and one worker. Batches leave when
/// [`batch_size`](PosthogSinkBuilder::batch_size) events are waiting, every
/// [`flush_interval`](PosthogSinkBuilder::flush_interval), and on [`flush`](Self::flush). While
/// PostHog is unavailable, compressed batches wait in a buffer bounded in bytes and age and
/// are sent in order once it answers again; with a [`spool_dir`](PosthogSinkBuilder::spool_dir)
/// they also survive a restart. Call [`shutdown`](Self::shutdown) before the process exits;
/// dropping the last handle also starts a final, bounded flush, but nothing waits for it.
///
/// ```no_run
/// use std::time::Duration;
/// use traced_llm::posthog::PosthogSink;
///
/// # async fn run() -> traced_llm::Result<()> {
/// // POSTHOG_API_KEY and, optionally, POSTHOG_HOST.
/// let sink = PosthogSink::from_env()?;
/// // ... TracedModel::new(model, sink.clone()) ...
/// match sink.shutdown(Duration::from_secs(5)).await {
///     Ok(report) => println!("delivered {}", report.delivered),
///     Err(err) => eprintln!("{err}"),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PosthogSink {
    handle: Arc<Handle>,
}

struct Handle {
    processor: BatchProcessor<PosthogExporter>,
    exporter: Arc<PosthogExporter>,
    counters: Arc<Counters>,
    config: Config,
    /// The counters at the last flush, for the next report.
    last_flush: Mutex<SinkStats>,
}

impl PosthogSink {
    /// A builder with every default; set at least the API key.
    pub fn builder() -> PosthogSinkBuilder {
        PosthogSinkBuilder::new()
    }

    /// A sink configured from `POSTHOG_API_KEY` and `POSTHOG_HOST` (and
    /// `POSTHOG_AI_TRACE_SAMPLE_RATE`), with every other default.
    ///
    /// # Errors
    /// [`Error::is_builder`] when the key is missing or invalid, or the host is not a URL.
    pub fn from_env() -> Result<Self> {
        PosthogSinkBuilder::new().build()
    }

    pub(crate) fn start(config: Config) -> Result<Self> {
        let client = exporter::client(&config)?;
        let encoder = Encoder {
            encoding: Encoding {
                gzip: config.gzip,
                batch_size: config.batch_size,
                batch: Limits {
                    event_bytes: config.max_event_bytes,
                    batch_bytes: config.max_batch_bytes,
                },
                // Set in code, a limit holds on both routes; by default the AI route has its
                // own, larger ones.
                ai: Limits {
                    event_bytes: if config.max_event_bytes == DEFAULT_MAX_EVENT_BYTES {
                        DEFAULT_MAX_AI_EVENT_BYTES
                    } else {
                        config.max_event_bytes
                    },
                    batch_bytes: if config.max_batch_bytes == DEFAULT_MAX_BATCH_BYTES {
                        DEFAULT_MAX_AI_BATCH_BYTES
                    } else {
                        config.max_batch_bytes
                    },
                },
                sample_rate: config.sample_rate,
            },
        };
        let exporter = Arc::new(PosthogExporter::new(&config, client, encoder));
        let counters = Arc::new(Counters::default());
        let batch = BatchConfig {
            batch_size: config.batch_size,
            flush_interval: config.flush_interval,
            max_queue_len: config.max_queue_len,
            max_queue_bytes: config.max_queue_bytes,
            queue_full_policy: config.queue_full_policy,
            max_buffer_bytes: config.max_buffer_bytes,
            max_age: config.max_buffer_age,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            initial_backoff: config.retry.initial_backoff,
            max_backoff: config.retry.max_backoff,
            max_retry_after: config.retry.max_retry_after,
            stall_after: config.retry.hang_after,
            spool: config.spool_dir.as_ref().map(|dir| SpoolConfig {
                dir: dir.clone(),
                max_bytes: config.spool_max_bytes,
            }),
            thread_name: "traced-llm-posthog",
            log_target: "posthog",
        };
        let processor = BatchProcessor::start(batch, Arc::clone(&exporter), Arc::clone(&counters))
            .map_err(|err| match err {
                StartError::SpoolLocked => Error::builder(format!(
                    "posthog: the spool directory {} is in use by another process (its lock file is held)",
                    config.spool_dir.as_deref().unwrap_or_else(|| std::path::Path::new("")).display()
                )),
                StartError::Spool(err) => Error::builder(format!(
                    "posthog: cannot use the spool directory {}: {err}",
                    config.spool_dir.as_deref().unwrap_or_else(|| std::path::Path::new("")).display()
                )),
                StartError::Thread(err) => Error::other("cannot start the delivery thread")
                    .with_source(err)
                    .with_provider("posthog"),
            })?;
        Ok(Self {
            handle: Arc::new(Handle {
                processor,
                exporter,
                counters,
                config,
                last_flush: Mutex::new(SinkStats::default()),
            }),
        })
    }

    /// Waits until every event captured before the call was delivered, finally dropped, or
    /// written to the spool, and says what happened since the previous flush.
    ///
    /// The [`Sink::flush`] of this sink returns the same result without the report, with
    /// [`FlushError`] turned into a [`SinkError`] (a refused key becomes
    /// [`SinkError::Internal`] naming the cause).
    ///
    /// # Errors
    /// [`FlushError::Unauthorized`] when the server refused the API key for events since the
    /// previous flush; [`FlushError::Timeout`] at the deadline (the rest stays queued);
    /// [`FlushError::AlreadyShutdown`] after shutdown.
    pub async fn flush(&self, timeout: Duration) -> std::result::Result<FlushReport, FlushError> {
        let outcome = self.handle.processor.flush(timeout).await;
        self.report(outcome)
    }

    /// Flushes, then stops the worker, and says what happened since the previous flush; what
    /// is undelivered at the deadline is spooled (with a spool) or dropped and counted, and
    /// later captures are counted as dropped. With a spool, delivery stops a quarter of the
    /// timeout (at most 1 s) before the deadline, so that what is left is on disk when this
    /// returns.
    ///
    /// # Errors
    /// As [`flush`](Self::flush); [`FlushError::AlreadyShutdown`] on a second call.
    pub async fn shutdown(
        &self,
        timeout: Duration,
    ) -> std::result::Result<FlushReport, FlushError> {
        let outcome = self.handle.processor.shutdown(timeout).await;
        self.report(outcome)
    }

    fn report(
        &self,
        outcome: std::result::Result<Outcome, Closed>,
    ) -> std::result::Result<FlushReport, FlushError> {
        let outcome = outcome.map_err(|Closed| FlushError::AlreadyShutdown)?;
        let now = self.stats();
        let report = {
            let mut last = self
                .handle
                .last_flush
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let report = FlushReport::between(&last, &now);
            *last = now;
            report
        };
        if report.unauthorized > 0 {
            let (status, reason) = self
                .handle
                .exporter
                .unauthorized
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone()
                .unwrap_or_default();
            return Err(FlushError::Unauthorized {
                status,
                reason,
                report,
            });
        }
        match outcome {
            Outcome::Done => Ok(report),
            Outcome::TimedOut(timeout) => Err(FlushError::Timeout { timeout, report }),
        }
    }

    /// A snapshot of the delivery counters.
    pub fn stats(&self) -> SinkStats {
        SinkStats::from_counters(&self.handle.counters)
    }

    /// The URL of the `/batch/` route, as logs may show it: without the user info a host may
    /// carry.
    pub fn url(&self) -> String {
        display(self.handle.config.batch_url.as_str())
    }

    /// The URL of the AI route, where `$ai_*` events go with [`Endpoint::Auto`] (the default)
    /// until the server shows it has none.
    ///
    /// Shown without user info, like [`url`](Self::url).
    ///
    /// [`Endpoint::Auto`]: super::Endpoint::Auto
    pub fn ai_url(&self) -> String {
        display(self.handle.config.ai_url.as_str())
    }
}

#[async_trait]
impl Sink for PosthogSink {
    /// Queues the event; never blocks. A full queue or a shut-down sink drops it and counts it;
    /// trace sampling leaves it out (counted) before it is queued.
    fn capture(&self, event: Event) {
        if let Some(rate) = self.handle.config.sample_rate {
            // Only `$ai_*` events are sampled, as PostHog proposed: an exposure or an exception
            // linked to a trace is always sent.
            let trace_id = event.envelope().trace_id.as_deref();
            if let Some(trace_id) = trace_id.filter(|_| sample::applies_to(&event)) {
                if !sample::keeps(trace_id, rate) {
                    add(&self.handle.counters.sampled_out, 1);
                    return;
                }
            }
        }
        self.handle.processor.capture(event);
    }

    /// [`PosthogSink::flush`] without the report.
    ///
    /// # Errors
    /// [`SinkError::Timeout`] at the deadline (the rest stays queued);
    /// [`SinkError::Internal`] when the server refused the API key since the previous flush;
    /// [`SinkError::AlreadyShutdown`] after shutdown.
    async fn flush(&self, timeout: Duration) -> std::result::Result<(), SinkError> {
        PosthogSink::flush(self, timeout)
            .await
            .map(drop)
            .map_err(SinkError::from)
    }

    /// [`PosthogSink::shutdown`] without the report.
    ///
    /// # Errors
    /// As [`Sink::flush`]; [`SinkError::AlreadyShutdown`] on a second call.
    async fn shutdown(&self, timeout: Duration) -> std::result::Result<(), SinkError> {
        PosthogSink::shutdown(self, timeout)
            .await
            .map(drop)
            .map_err(SinkError::from)
    }
}

impl fmt::Debug for PosthogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.handle.config, f)
    }
}
