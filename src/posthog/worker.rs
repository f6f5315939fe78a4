//! Background delivery: one named thread with a current-thread tokio runtime.
//!
//! Three tasks share that thread. The control task receives flush and shutdown requests and
//! arms their deadlines, so a deadline fires even while the other tasks wait on a hanging
//! server. The batcher takes the whole queue at once and hands on a batch's worth of events at a
//! time; each is serialized (with the size guard) and gzipped on a small blocking pool,
//! [`ENCODERS`] at once, so serializing and compressing use both cores and a backlog turns from raw events into
//! compact bodies as fast as the machine allows. The sender posts up
//! to [`REQUESTS_IN_FLIGHT`] batches at once and retries, splits or drops each by the answer.
//! A flush is a marker that waits for every batch before it, so it completes when they have
//! been acknowledged or given up.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use flate2::write::GzEncoder;
use flate2::Compression;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant as TokioInstant;

use super::builder::Config;
use super::format::{capture_event, size};
use super::retry::{classify, parse_retry_after, Jitter, Verdict};
use super::sink::{prefaulted_queue, EventQueue, RESERVED_QUEUE};
use super::stats::{add, DeliveryError, DeliveryErrorKind};
use crate::event::Event;
use crate::sink::{SinkError, DEFAULT_FLUSH_TIMEOUT};
use crate::util::http::{build_client, ClientSettings, Failure};

const LOG_TARGET: &str = "traced_llm::posthog";
/// The longest server reason handed to the error callback.
const MAX_REASON_CHARS: usize = 200;
/// The gzip level: level 1 compresses batches of similar JSON events about 6–8× at several
/// hundred MB/s, which the throughput target needs; higher levels gain little here.
const GZIP_LEVEL: u32 = 1;
/// After a shutdown deadline, how long the worker may take to count what it drops before the
/// caller is answered anyway.
const ABORT_GRACE: Duration = Duration::from_millis(20);
/// How often a busy worker looks for full batches. Callers wake it only when the queue is half
/// full (or, once it has been idle for [`IDLE_POLLS`] polls, at the first event), so a capture
/// almost never pays for waking a thread; full batches still leave within this delay.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Empty polls before the worker stops polling and waits to be woken.
const IDLE_POLLS: u32 = 10;

/// The queue length at which a capture wakes the worker at once: half the queue, so a burst
/// cannot fill it between two polls.
pub(crate) fn wake_at(config: &Config) -> usize {
    (config.max_queue_len / 2)
        .max(config.batch_size)
        .min(config.max_queue_len)
        .max(1)
}

/// Threads that serialize and gzip batches. One more than the two cores this was tuned on: the
/// scheduler shares a core per thread, so a burst of captures gets less of the machine than the
/// backlog it makes, and the backlog sits as raw events for less long (measured: less peak
/// memory, same or better throughput than two or four).
const ENCODERS: usize = 3;

/// Batches waiting for the sender; a small number keeps memory flat under backlog.
const JOBS_IN_FLIGHT: usize = 4;
/// Requests sent concurrently: hides the server's latency, so one slow answer does not stall
/// the queue (batches may then arrive out of order; every event carries its timestamp).
const REQUESTS_IN_FLIGHT: usize = 4;

pub(crate) type Reply = oneshot::Sender<Result<(), SinkError>>;

/// A request from a sink handle to its worker.
pub(crate) enum Control {
    Flush {
        deadline: Instant,
        timeout: Duration,
        reply: Reply,
    },
    Shutdown {
        deadline: Instant,
        timeout: Duration,
        reply: Reply,
    },
}

/// A reply that the first of several parties (marker, deadline timer, worker exit) sends.
#[derive(Clone)]
struct Slot(Arc<Mutex<Option<Reply>>>);

impl Slot {
    fn new(reply: Option<Reply>) -> Self {
        Self(Arc::new(Mutex::new(reply)))
    }

    fn fill(&self, result: Result<(), SinkError>) {
        let reply = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}

enum Request {
    Flush(Slot),
    Shutdown(Slot),
}

enum Job {
    /// A batch and its request body, being encoded on the blocking pool.
    Batch(tokio::task::JoinHandle<Vec<(Batch, Vec<u8>)>>),
    Marker(Slot),
}

/// Builds the HTTP client: one connection pool for the sink's life.
pub(crate) fn client(config: &Config) -> crate::Result<reqwest::Client> {
    build_client(ClientSettings {
        timeout: Some(config.request_timeout),
        ..ClientSettings::new(config.request_timeout)
    })
    .map_err(|err| err.with_provider("posthog"))
}

/// Starts the worker thread.
pub(crate) fn spawn(
    config: Config,
    client: reqwest::Client,
    queue: Arc<EventQueue>,
    control: mpsc::UnboundedReceiver<Control>,
) -> std::io::Result<()> {
    // Logs from the worker go where the builder's logs go.
    let dispatch = tracing::dispatcher::get_default(|dispatch| dispatch.clone());
    std::thread::Builder::new()
        .name("traced-llm-posthog".into())
        .spawn(move || {
            let _guard = tracing::dispatcher::set_default(&dispatch);
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .max_blocking_threads(ENCODERS)
                .thread_name("traced-llm-posthog-gzip")
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    tracing::error!(target: LOG_TARGET, error = %err, "posthog sink cannot start its runtime; events are dropped");
                    queue.closed.store(true, Ordering::Release);
                    return;
                }
            };
            runtime.block_on(run(Arc::new(config), client, queue, control));
            // Never wait for a gzip still running: shutdown has already answered.
            runtime.shutdown_background();
        })?;
    Ok(())
}

async fn run(
    config: Arc<Config>,
    client: reqwest::Client,
    queue: Arc<EventQueue>,
    control: mpsc::UnboundedReceiver<Control>,
) {
    let (jobs_tx, jobs_rx) = mpsc::channel(JOBS_IN_FLIGHT);
    let (requests_tx, requests_rx) = mpsc::unbounded_channel();
    let (abort_tx, abort_rx) = watch::channel(false);
    let shutdown_slot: Arc<Mutex<Option<(Slot, Duration)>>> = Arc::default();

    let prefix: Arc<[u8]> = batch_prefix(config.api_key.expose()).into();
    let sender = Sender {
        prefix: Arc::clone(&prefix),
        config: Arc::clone(&config),
        client,
        queue: Arc::clone(&queue),
        abort: abort_rx.clone(),
        pause_until: Mutex::new(None),
    };
    let sender = tokio::spawn(sender.run(jobs_rx));
    tokio::spawn(control_loop(
        control,
        requests_tx,
        abort_tx,
        Arc::clone(&queue),
        Arc::clone(&shutdown_slot),
    ));
    let batcher = Batcher {
        prefix,
        chunk: Vec::new(),
        capacity_hint: Arc::new(AtomicUsize::new(64 * 1024)),
        config: Arc::clone(&config),
        queue: Arc::clone(&queue),
        spare: prefaulted_queue(config.max_queue_len.min(RESERVED_QUEUE)),
        jobs: jobs_tx,
        abort: abort_rx.clone(),
    };
    batcher.run(requests_rx).await;
    let _ = sender.await;

    // A capture racing with shutdown may have slipped in after the last drain.
    let stranded = std::mem::take(&mut *queue.lock()).len() as u64;
    add(&queue.counters.lost_at_shutdown, stranded);
    let stats = queue.counters.snapshot();
    if stats.dropped() > 0 {
        tracing::warn!(
            target: LOG_TARGET,
            sent = stats.sent,
            dropped = stats.dropped(),
            dropped_queue_full = stats.dropped_queue_full,
            dropped_rejected = stats.dropped_rejected,
            dropped_failed = stats.dropped_failed,
            dropped_shutdown = stats.dropped_shutdown,
            "posthog sink shut down with dropped LLM events"
        );
    } else {
        tracing::debug!(target: LOG_TARGET, sent = stats.sent, "posthog sink shut down");
    }
    let finished = shutdown_slot
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some((slot, timeout)) = finished {
        if *abort_rx.borrow() {
            slot.fill(Err(SinkError::Timeout(timeout)));
        } else {
            slot.fill(Ok(()));
        }
    }
}

/// Receives requests from the handles and arms their deadlines.
async fn control_loop(
    mut control: mpsc::UnboundedReceiver<Control>,
    requests: mpsc::UnboundedSender<Request>,
    abort: watch::Sender<bool>,
    queue: Arc<EventQueue>,
    shutdown_slot: Arc<Mutex<Option<(Slot, Duration)>>>,
) {
    loop {
        let (deadline, timeout, reply) = match control.recv().await {
            Some(Control::Flush {
                deadline,
                timeout,
                reply,
            }) => {
                let slot = Slot::new(Some(reply));
                let timer = slot.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(TokioInstant::from_std(deadline)).await;
                    timer.fill(Err(SinkError::Timeout(timeout)));
                });
                let _ = requests.send(Request::Flush(slot));
                continue;
            }
            Some(Control::Shutdown {
                deadline,
                timeout,
                reply,
            }) => (deadline, timeout, Some(reply)),
            // Every handle is gone: a last flush, bounded, with nobody to answer.
            None => (
                Instant::now() + DEFAULT_FLUSH_TIMEOUT,
                DEFAULT_FLUSH_TIMEOUT,
                None,
            ),
        };
        queue.closed.store(true, Ordering::Release);
        let slot = Slot::new(reply);
        *shutdown_slot
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((slot.clone(), timeout));
        tokio::spawn(async move {
            tokio::time::sleep_until(TokioInstant::from_std(deadline)).await;
            let _ = abort.send(true);
            tokio::time::sleep(ABORT_GRACE).await;
            slot.fill(Err(SinkError::Timeout(timeout)));
        });
        let _ = requests.send(Request::Shutdown(Slot::new(None)));
        return;
    }
}

/// Takes events off the queue and turns them into batches.
struct Batcher {
    prefix: Arc<[u8]>,
    /// Events for the next batch, not yet serialized.
    chunk: Vec<Event>,
    /// The size of the last batch's JSON, to allocate the next one at once.
    capacity_hint: Arc<AtomicUsize>,
    config: Arc<Config>,
    queue: Arc<EventQueue>,
    spare: VecDeque<Event>,
    jobs: mpsc::Sender<Job>,
    abort: watch::Receiver<bool>,
}

impl Batcher {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let period = self.config.flush_interval;
        let mut ticker = tokio::time::interval_at(TokioInstant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let threshold = wake_at(&self.config);
        let mut poll = tokio::time::interval(POLL_INTERVAL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let queue = Arc::clone(&self.queue);
        let mut idle_polls = 0;
        loop {
            if self.drain().await {
                idle_polls = 0;
            }
            let notified = queue.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if queue.lock().len() >= threshold {
                continue;
            }
            // Idle for a while: stop polling and let the next capture wake the worker.
            let asleep = idle_polls >= IDLE_POLLS;
            if asleep {
                queue.wake_at.store(1, Ordering::SeqCst);
                if !queue.lock().is_empty() {
                    queue.wake_at.store(threshold, Ordering::SeqCst);
                    idle_polls = 0;
                    continue;
                }
            }
            tokio::select! {
                biased;
                request = requests.recv() => {
                    let (slot, last) = match request {
                        Some(Request::Flush(slot)) => (slot, false),
                        Some(Request::Shutdown(slot)) => (slot, true),
                        None => (Slot::new(None), true),
                    };
                    self.drain().await;
                    self.seal().await;
                    let _ = self.jobs.send(Job::Marker(slot)).await;
                    if last {
                        return;
                    }
                }
                () = &mut notified => {}
                _ = poll.tick(), if !asleep => idle_polls += 1,
                _ = ticker.tick() => {
                    self.drain().await;
                    self.seal().await;
                }
            }
            if asleep {
                queue.wake_at.store(threshold, Ordering::SeqCst);
                poll.reset();
                idle_polls = 0;
            }
        }
    }

    /// Moves everything queued into batches, sending each full one. Says whether there was
    /// anything.
    async fn drain(&mut self) -> bool {
        let mut any = false;
        loop {
            let mut taken = std::mem::take(&mut self.spare);
            {
                let mut queue = self.queue.lock();
                if queue.is_empty() {
                    self.spare = taken;
                    return any;
                }
                any = true;
                std::mem::swap(&mut *queue, &mut taken);
            }
            for event in taken.drain(..) {
                if *self.abort.borrow() {
                    add(&self.queue.counters.lost_at_shutdown, 1);
                    continue;
                }
                if self.chunk.capacity() == 0 {
                    self.chunk.reserve_exact(self.config.batch_size);
                }
                self.chunk.push(event);
                if self.chunk.len() >= self.config.batch_size {
                    self.send().await;
                }
            }
            // Give back what a burst made the queue grow to, for memory already touched.
            if taken.capacity() > 2 * RESERVED_QUEUE {
                taken = prefaulted_queue(self.config.max_queue_len.min(RESERVED_QUEUE));
            }
            self.spare = taken;
        }
    }

    /// Sends the partial batch, if any.
    async fn seal(&mut self) {
        if !self.chunk.is_empty() {
            self.send().await;
        }
    }

    /// Serializes and gzips the chunk on the blocking pool ([`ENCODERS`] chunks at once) while this thread goes on taking events off the queue.
    async fn send(&mut self) {
        let chunk = std::mem::take(&mut self.chunk);
        let events = chunk.len() as u64;
        let prefix = Arc::clone(&self.prefix);
        let config = Arc::clone(&self.config);
        let queue = Arc::clone(&self.queue);
        let hint = Arc::clone(&self.capacity_hint);
        let encoding = tokio::task::spawn_blocking(move || {
            let mut builder = BatchBuilder::new(&config);
            builder.capacity_hint = hint.load(Ordering::Relaxed);
            let mut batches = Vec::with_capacity(1);
            for event in chunk {
                batches.extend(builder.push(event, &queue));
            }
            batches.extend(builder.take());
            hint.store(builder.capacity_hint, Ordering::Relaxed);
            batches
                .into_iter()
                .map(|batch| {
                    let body = encode(&prefix, &batch, config.gzip);
                    (batch, body)
                })
                .collect()
        });
        if self.jobs.send(Job::Batch(encoding)).await.is_err() {
            add(&self.queue.counters.lost_at_shutdown, events);
        }
        // Let the sender and the deadline timers run between batches.
        tokio::task::yield_now().await;
    }
}

/// Serialized events, comma-separated, ready to sit inside `"batch":[…]`.
#[derive(Debug, Default)]
struct Batch {
    json: Vec<u8>,
    /// Where each event ends in `json`; the next starts one byte (the comma) later.
    ends: Vec<usize>,
}

impl Batch {
    fn len(&self) -> usize {
        self.ends.len()
    }

    fn event(&self, index: usize) -> &[u8] {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] + 1
        };
        &self.json[start..self.ends[index]]
    }

    /// Two halves, for a 413.
    fn split(self) -> (Batch, Batch) {
        let middle = self.len() / 2;
        let build = |range: std::ops::Range<usize>| {
            let mut half = Batch::default();
            for index in range {
                if !half.ends.is_empty() {
                    half.json.push(b',');
                }
                half.json.extend_from_slice(self.event(index));
                half.ends.push(half.json.len());
            }
            half
        };
        (build(0..middle), build(middle..self.len()))
    }
}

/// Fills batches up to the count and byte limits.
struct BatchBuilder {
    current: Batch,
    batch_size: usize,
    max_batch_bytes: usize,
    max_event_bytes: usize,
    capacity_hint: usize,
}

/// Bytes of the request body outside the events: key, brackets, `sent_at`.
const BODY_OVERHEAD: usize = 200;

impl BatchBuilder {
    fn new(config: &Config) -> Self {
        Self {
            current: Batch::default(),
            batch_size: config.batch_size,
            max_batch_bytes: config.max_batch_bytes,
            max_event_bytes: config.max_event_bytes,
            capacity_hint: 64 * 1024,
        }
    }

    /// Adds `event`, returning a batch that is ready to go.
    fn push(&mut self, event: Event, queue: &EventQueue) -> Option<Batch> {
        let batch = &mut self.current;
        let mark = batch.json.len();
        if batch.json.capacity() == 0 {
            batch.json.reserve(self.capacity_hint);
        }
        if !batch.ends.is_empty() {
            batch.json.push(b',');
        }
        let start = batch.json.len();
        if serde_json::to_writer(&mut batch.json, &capture_event(&event)).is_err() {
            // Unreachable for the crate's own events; never send half an object.
            batch.json.truncate(mark);
            add(&queue.counters.rejected, 1);
            queue
                .counters
                .warn_first_drop("event could not be serialized");
            return None;
        }
        if !size::fits(&batch.json[start..], self.max_event_bytes) {
            let shrunk = size::shrink(&batch.json[start..], self.max_event_bytes);
            batch.json.truncate(start);
            batch.json.extend_from_slice(&shrunk);
            add(&queue.counters.shrunk, 1);
            tracing::debug!(
                target: LOG_TARGET,
                bytes = shrunk.len(),
                "posthog sink shrank an event to fit the per-event size limit"
            );
        }
        drop(event);
        if !batch.ends.is_empty() && batch.json.len() + BODY_OVERHEAD > self.max_batch_bytes {
            // This event starts the next batch.
            let moved = batch.json[start..].to_vec();
            batch.json.truncate(mark);
            let full = self.take();
            self.current.json.extend_from_slice(&moved);
            self.current.ends.push(self.current.json.len());
            return full;
        }
        batch.ends.push(batch.json.len());
        if batch.ends.len() >= self.batch_size {
            return self.take();
        }
        None
    }

    /// The batch being built, if it holds any event.
    fn take(&mut self) -> Option<Batch> {
        if self.current.ends.is_empty() {
            return None;
        }
        self.capacity_hint = self.current.json.len().max(1024);
        Some(std::mem::take(&mut self.current))
    }
}

/// `{"api_key":"…","batch":[`
fn batch_prefix(api_key: &str) -> Vec<u8> {
    let mut prefix = b"{\"api_key\":".to_vec();
    // A string always serializes.
    let _ = serde_json::to_writer(&mut prefix, api_key);
    prefix.extend_from_slice(b",\"batch\":[");
    prefix
}

/// The request body of `batch`, stamped with `sent_at` now, gzipped when asked.
fn encode(prefix: &[u8], batch: &Batch, gzip: bool) -> Vec<u8> {
    let sent_at = humantime::format_rfc3339_millis(SystemTime::now());
    let suffix = format!("],\"sent_at\":\"{sent_at}\"}}");
    let parts: [&[u8]; 3] = [prefix, &batch.json, suffix.as_bytes()];
    if !gzip {
        return parts.concat();
    }
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(batch.json.len() / 4 + 64),
        Compression::new(GZIP_LEVEL),
    );
    for part in parts {
        // Writing into a Vec cannot fail.
        let _ = encoder.write_all(part);
    }
    encoder.finish().unwrap_or_default()
}

/// How one request went.
enum Attempt {
    Delivered,
    Failed {
        verdict: Verdict,
        status: Option<u16>,
        retry_after: Option<Duration>,
        reason: String,
    },
    Aborted,
}

/// Posts batches, with retries.
struct Sender {
    prefix: Arc<[u8]>,
    config: Arc<Config>,
    client: reqwest::Client,
    queue: Arc<EventQueue>,
    abort: watch::Receiver<bool>,
    /// Set from a `Retry-After`: no request of this sink leaves before then.
    pause_until: Mutex<Option<TokioInstant>>,
}

impl Sender {
    /// Delivers up to [`REQUESTS_IN_FLIGHT`] batches at once; a marker waits for every batch
    /// before it.
    async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        let this = Arc::new(self);
        let mut in_flight = tokio::task::JoinSet::new();
        while let Some(job) = jobs.recv().await {
            match job {
                Job::Batch(encoding) => {
                    while in_flight.len() >= REQUESTS_IN_FLIGHT {
                        in_flight.join_next().await;
                    }
                    let this = Arc::clone(&this);
                    in_flight.spawn(async move {
                        match encoding.await {
                            Ok(batches) => {
                                for (batch, body) in batches {
                                    this.deliver(batch, body).await;
                                }
                            }
                            // Encoding panicked: nothing to send, nothing to count it by.
                            Err(_) => tracing::error!(
                                target: LOG_TARGET,
                                "posthog sink lost a batch while encoding it"
                            ),
                        }
                    });
                }
                Job::Marker(slot) => {
                    while in_flight.join_next().await.is_some() {}
                    slot.fill(Ok(()));
                }
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    fn aborted(&self) -> bool {
        *self.abort.borrow()
    }

    fn lose(&self, events: usize) {
        add(&self.queue.counters.lost_at_shutdown, events as u64);
        self.queue
            .counters
            .warn_first_drop("undelivered at shutdown");
    }

    async fn deliver(&self, batch: Batch, body: Vec<u8>) {
        let mut jitter = Jitter::new();
        let mut first_body = Some(body);
        let mut pending = vec![batch];
        while let Some(batch) = pending.pop() {
            let mut retries = 0;
            loop {
                if self.aborted() {
                    self.lose(batch.len());
                    break;
                }
                let pause = *self
                    .pause_until
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(until) = pause.filter(|until| *until > TokioInstant::now()) {
                    let mut abort = self.abort.clone();
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => {}
                        _ = abort.wait_for(|aborted| *aborted) => continue,
                    }
                }
                let body = first_body
                    .take()
                    .unwrap_or_else(|| encode(&self.prefix, &batch, self.config.gzip));
                match self.attempt(body).await {
                    Attempt::Delivered => {
                        add(&self.queue.counters.sent, batch.len() as u64);
                        break;
                    }
                    Attempt::Aborted => {
                        self.lose(batch.len());
                        break;
                    }
                    Attempt::Failed {
                        verdict: Verdict::Split,
                        ..
                    } if batch.len() > 1 => {
                        let (first, second) = batch.split();
                        pending.push(second);
                        pending.push(first);
                        break;
                    }
                    Attempt::Failed {
                        verdict: Verdict::Split,
                        status,
                        reason,
                        ..
                    } => {
                        self.give_up(DeliveryErrorKind::TooLarge, status, batch.len(), reason);
                        break;
                    }
                    Attempt::Failed {
                        verdict: Verdict::Retry,
                        status,
                        retry_after,
                        reason,
                    } => {
                        if retries >= self.config.retry.get_max_retries() {
                            self.give_up(
                                DeliveryErrorKind::RetriesExhausted,
                                status,
                                batch.len(),
                                reason,
                            );
                            break;
                        }
                        retries += 1;
                        add(&self.queue.counters.retried, 1);
                        let wait = self.config.retry.backoff(retries, retry_after, &mut jitter);
                        if retry_after.is_some() {
                            // The server asked every request to wait, not just this one.
                            let until = TokioInstant::now() + wait;
                            let mut pause = self
                                .pause_until
                                .lock()
                                .unwrap_or_else(|poisoned| poisoned.into_inner());
                            *pause = Some(pause.map_or(until, |current| current.max(until)));
                        }
                        tracing::debug!(
                            target: LOG_TARGET,
                            status = status.unwrap_or(0),
                            retry = retries,
                            wait_ms = wait.as_millis() as u64,
                            "posthog capture failed; retrying"
                        );
                        let mut abort = self.abort.clone();
                        tokio::select! {
                            () = tokio::time::sleep(wait) => {}
                            _ = abort.wait_for(|aborted| *aborted) => {}
                        }
                    }
                    Attempt::Failed { status, reason, .. } => {
                        self.give_up(DeliveryErrorKind::Rejected, status, batch.len(), reason);
                        break;
                    }
                }
            }
        }
    }

    fn give_up(&self, kind: DeliveryErrorKind, status: Option<u16>, events: usize, reason: String) {
        let counters = &self.queue.counters;
        match kind {
            DeliveryErrorKind::RetriesExhausted => add(&counters.failed, events as u64),
            _ => add(&counters.rejected, events as u64),
        }
        add(&counters.failed_batches, 1);
        counters.warn_first_drop("delivery failed");
        let error = DeliveryError {
            kind,
            status,
            events,
            reason,
        };
        tracing::warn!(
            target: LOG_TARGET,
            status = status.unwrap_or(0),
            events,
            "posthog sink dropped a batch: {}",
            match kind {
                DeliveryErrorKind::Rejected => "rejected by the server",
                DeliveryErrorKind::TooLarge => "a single event too large for the server",
                DeliveryErrorKind::RetriesExhausted => "out of retries",
            }
        );
        if let Some(callback) = &self.config.on_error {
            callback(&error);
        }
    }

    async fn attempt(&self, body: Vec<u8>) -> Attempt {
        let counters = &self.queue.counters;
        add(&counters.requests, 1);
        add(&counters.bytes_sent, body.len() as u64);
        let mut request = self
            .client
            .post(self.config.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if self.config.gzip {
            request = request.header(reqwest::header::CONTENT_ENCODING, "gzip");
        }
        let exchange = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| parse_retry_after(value, SystemTime::now()));
            // Reading the body lets the connection go back to the pool.
            let text = response.bytes().await.unwrap_or_default();
            Ok::<_, reqwest::Error>((status, retry_after, text))
        };
        let mut abort = self.abort.clone();
        let result = tokio::select! {
            result = exchange => result,
            _ = abort.wait_for(|aborted| *aborted) => return Attempt::Aborted,
        };
        match result {
            Ok((status, retry_after, text)) => match classify(status) {
                Verdict::Delivered => Attempt::Delivered,
                verdict => Attempt::Failed {
                    verdict,
                    status: Some(status),
                    retry_after,
                    reason: self.reason(&text),
                },
            },
            Err(err) => Attempt::Failed {
                verdict: Verdict::Retry,
                status: None,
                retry_after: None,
                reason: network_reason(&err),
            },
        }
    }

    /// The server's error code or message, short and without the key.
    fn reason(&self, body: &[u8]) -> String {
        let text = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(json) => json
                .get("code")
                .or_else(|| json.get("error"))
                .and_then(|value| value.as_str())
                .map(str::to_owned)
                .unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
        };
        // Redact before cutting: a key straddling the cut would otherwise survive in part.
        let text = self.config.api_key.redact(&text);
        text.chars().take(MAX_REASON_CHARS).collect()
    }
}

fn network_reason(err: &reqwest::Error) -> String {
    match Failure::of(err) {
        Failure::Timeout => "request timed out",
        Failure::Connect => "connection failed",
        Failure::Request | Failure::Other => "network error",
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn batch_of(events: &[&str]) -> Batch {
        let mut batch = Batch::default();
        for event in events {
            if !batch.ends.is_empty() {
                batch.json.push(b',');
            }
            batch.json.extend_from_slice(event.as_bytes());
            batch.ends.push(batch.json.len());
        }
        batch
    }

    #[test]
    fn split_keeps_every_event_once_in_order() {
        let batch = batch_of(&[r#"{"a":1}"#, r#"{"b":2}"#, r#"{"c":3}"#]);
        let (first, second) = batch.split();
        assert_eq!(first.json, br#"{"a":1}"#);
        assert_eq!(second.json, br#"{"b":2},{"c":3}"#);
        assert_eq!((first.len(), second.len()), (1, 2));
        assert_eq!(second.event(1), br#"{"c":3}"#);
    }

    #[test]
    fn body_is_the_batch_envelope_gzipped_or_plain() {
        let batch = batch_of(&[r#"{"a":1}"#, r#"{"b":2}"#]);
        let prefix = batch_prefix("phc_k\"ey");
        let plain = encode(&prefix, &batch, false);
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&encode(&prefix, &batch, true)[..])
            .read_to_end(&mut unzipped)
            .unwrap();
        for body in [plain, unzipped] {
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["api_key"], "phc_k\"ey");
            assert_eq!(json["batch"], serde_json::json!([{"a": 1}, {"b": 2}]));
            assert!(humantime::parse_rfc3339(json["sent_at"].as_str().unwrap()).is_ok());
        }
    }
}
