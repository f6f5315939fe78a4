//! [`PosthogSink`]: the handle callers capture into, and the queue it shares with the worker.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{mpsc, oneshot, Notify};

use super::builder::{Config, PosthogSinkBuilder, QueueFullPolicy};
use super::stats::{add, Counters, SinkStats};
use super::worker::{self, Control};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::sink::{Sink, SinkError};

/// Sends events to PostHog's LLM analytics in gzipped batches, from a background thread.
///
/// A cheap `Clone` handle: clones share one queue and one worker. Batches leave when
/// [`batch_size`](PosthogSinkBuilder::batch_size) events are waiting, every
/// [`flush_interval`](PosthogSinkBuilder::flush_interval), and on [`Sink::flush`]. Call
/// [`Sink::shutdown`] before the process exits; dropping the last handle also starts a final,
/// bounded flush, but nothing waits for it.
///
/// ```no_run
/// use std::time::Duration;
/// use traced_llm::posthog::PosthogSink;
/// use traced_llm::sink::Sink;
///
/// # async fn run() -> traced_llm::Result<()> {
/// // POSTHOG_API_KEY and, optionally, POSTHOG_HOST.
/// let sink = PosthogSink::from_env()?;
/// // ... TracedModel::new(model, sink.clone()) ...
/// sink.shutdown(Duration::from_secs(5)).await.ok();
/// println!("{:?}", sink.stats());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PosthogSink {
    handle: Arc<Handle>,
}

struct Handle {
    queue: Arc<EventQueue>,
    control: mpsc::UnboundedSender<Control>,
    shut_down: AtomicBool,
    config: Config,
}

/// The queue the handles push into and the worker drains, with its counters and wake-up.
pub(crate) struct EventQueue {
    events: Mutex<VecDeque<Event>>,
    pub(crate) notify: Notify,
    pub(crate) counters: Counters,
    pub(crate) closed: AtomicBool,
    pub(crate) max_queue_len: usize,
    /// The queue length at which a capture wakes the worker; the worker sets it.
    pub(crate) wake_at: AtomicUsize,
    pub(crate) policy: QueueFullPolicy,
}

impl EventQueue {
    pub(crate) fn lock(&self) -> MutexGuard<'_, VecDeque<Event>> {
        self.events
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Queue slots allocated and touched up front (here and in the worker's spare buffer), so
/// pushes rarely grow the queue under its lock and do not page-fault in its usual range. The
/// price is memory resident from the start: two buffers of this many `Event` slots (about
/// 6 MB each), or of `max_queue_len` slots when that is smaller. Measured in W3: 8k slots keep
/// capture() p99 under a microsecond with less peak memory than 16k (whose larger buffers cost
/// more than the rarer growth they avoid); 4k is outgrown between drains.
pub(crate) const RESERVED_QUEUE: usize = 8 * 1024;

/// An empty queue of `capacity` slots whose memory has already been written, so the first
/// capture into each page does not pay for the page fault (about a microsecond) under the lock.
pub(crate) fn prefaulted_queue(capacity: usize) -> VecDeque<Event> {
    let mut slots: Vec<Event> = Vec::with_capacity(capacity);
    for slot in slots.spare_capacity_mut() {
        *slot = std::mem::MaybeUninit::zeroed();
    }
    // O(1): the deque takes over the vector's buffer and capacity.
    VecDeque::from(slots)
}

impl PosthogSink {
    /// A builder with every default; set at least the API key.
    pub fn builder() -> PosthogSinkBuilder {
        PosthogSinkBuilder::new()
    }

    /// A sink configured from `POSTHOG_API_KEY` and `POSTHOG_HOST`, with every other default.
    ///
    /// # Errors
    /// [`Error::is_builder`] when the key is missing or invalid, or the host is not a URL.
    pub fn from_env() -> Result<Self> {
        PosthogSinkBuilder::new().build()
    }

    pub(crate) fn start(config: Config) -> Result<Self> {
        let client = worker::client(&config)?;
        let queue = Arc::new(EventQueue {
            events: Mutex::new(prefaulted_queue(config.max_queue_len.min(RESERVED_QUEUE))),
            notify: Notify::new(),
            counters: Counters::default(),
            closed: AtomicBool::new(false),
            max_queue_len: config.max_queue_len,
            wake_at: AtomicUsize::new(worker::wake_at(&config)),
            policy: config.queue_full_policy,
        });
        let (control, receiver) = mpsc::unbounded_channel();
        worker::spawn(config.clone(), client, Arc::clone(&queue), receiver).map_err(|err| {
            Error::other("cannot start the delivery thread")
                .with_source(err)
                .with_provider("posthog")
        })?;
        Ok(Self {
            handle: Arc::new(Handle {
                queue,
                control,
                shut_down: AtomicBool::new(false),
                config,
            }),
        })
    }

    /// Waits until every event captured before the call was acknowledged or finally failed;
    /// the same as [`Sink::flush`], without importing the trait.
    ///
    /// # Errors
    /// [`SinkError::Timeout`] at the deadline (the rest stays queued);
    /// [`SinkError::AlreadyShutdown`] after shutdown.
    pub async fn flush(&self, timeout: Duration) -> std::result::Result<(), SinkError> {
        Sink::flush(self, timeout).await
    }

    /// Flushes, then stops the worker; the same as [`Sink::shutdown`], without importing the
    /// trait.
    ///
    /// # Errors
    /// [`SinkError::Timeout`] when the deadline cut delivery short;
    /// [`SinkError::AlreadyShutdown`] on a second call.
    pub async fn shutdown(&self, timeout: Duration) -> std::result::Result<(), SinkError> {
        Sink::shutdown(self, timeout).await
    }

    /// A snapshot of the delivery counters.
    pub fn stats(&self) -> SinkStats {
        self.handle.queue.counters.snapshot()
    }

    /// The URL batches are posted to.
    pub fn url(&self) -> &str {
        self.handle.config.url.as_str()
    }

    fn request(
        &self,
        timeout: Duration,
        make: impl FnOnce(Instant, Duration, worker::Reply) -> Control,
    ) -> std::result::Result<oneshot::Receiver<std::result::Result<(), SinkError>>, SinkError> {
        let now = Instant::now();
        // A timeout too large to add is as good as none.
        let deadline = now
            .checked_add(timeout)
            .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
        let (reply, receiver) = oneshot::channel();
        self.handle
            .control
            .send(make(deadline, timeout, reply))
            .map_err(|_| SinkError::AlreadyShutdown)?;
        Ok(receiver)
    }
}

fn worker_gone() -> SinkError {
    SinkError::Internal("the posthog worker stopped".into())
}

#[async_trait]
impl Sink for PosthogSink {
    /// Queues the event; never blocks. A full queue or a shut-down sink drops it and counts it.
    fn capture(&self, event: Event) {
        let queue = &self.handle.queue;
        let counters = &queue.counters;
        if queue.closed.load(Ordering::Acquire) {
            add(&counters.after_shutdown, 1);
            counters.warn_first_drop("captured after shutdown");
            return;
        }
        let mut events = queue.lock();
        let (len, evicted) = if events.len() < queue.max_queue_len {
            events.push_back(event);
            (events.len(), None)
        } else if queue.policy == QueueFullPolicy::DropOldest {
            let oldest = events.pop_front();
            events.push_back(event);
            (events.len(), oldest)
        } else {
            drop(events);
            add(&counters.refused_full, 1);
            counters.warn_first_drop("queue full");
            // The event is freed here, after the lock is released.
            drop(event);
            return;
        };
        drop(events);
        add(&counters.accepted, 1);
        if evicted.is_some() {
            add(&counters.evicted, 1);
            counters.warn_first_drop("queue full");
        }
        if len == queue.wake_at.load(Ordering::SeqCst) {
            queue.notify.notify_one();
        }
    }

    /// Waits until every event captured before the call was acknowledged or finally failed.
    ///
    /// # Errors
    /// [`SinkError::Timeout`] at the deadline (the rest stays queued);
    /// [`SinkError::AlreadyShutdown`] after shutdown.
    async fn flush(&self, timeout: Duration) -> std::result::Result<(), SinkError> {
        if self.handle.shut_down.load(Ordering::Acquire) {
            return Err(SinkError::AlreadyShutdown);
        }
        let receiver = self.request(timeout, |deadline, timeout, reply| Control::Flush {
            deadline,
            timeout,
            reply,
        })?;
        receiver.await.unwrap_or_else(|_| Err(worker_gone()))
    }

    /// Flushes, then stops the worker; events still undelivered at the deadline are dropped
    /// and counted, and later captures are counted as dropped.
    ///
    /// # Errors
    /// [`SinkError::Timeout`] when the deadline cut delivery short;
    /// [`SinkError::AlreadyShutdown`] on a second call.
    async fn shutdown(&self, timeout: Duration) -> std::result::Result<(), SinkError> {
        if self.handle.shut_down.swap(true, Ordering::AcqRel) {
            return Err(SinkError::AlreadyShutdown);
        }
        self.handle.queue.closed.store(true, Ordering::Release);
        let receiver = self.request(timeout, |deadline, timeout, reply| Control::Shutdown {
            deadline,
            timeout,
            reply,
        })?;
        receiver.await.unwrap_or_else(|_| Err(worker_gone()))
    }
}

impl fmt::Debug for PosthogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.handle.config, f)
    }
}
