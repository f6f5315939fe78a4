//! [`BatchProcessor`]: one named thread with a current-thread runtime, shared by three tasks.
//!
//! - **control** receives flush and shutdown requests and arms their deadlines, so a deadline
//!   fires even while everything else waits on a hanging server;
//! - **batcher** takes blocks off the queue, cuts them into chunks of `batch_size` events, and
//!   hands each to [`Exporter::encode`] on the blocking pool, [`ENCODERS`] at once, so
//!   serializing and compressing use every core and the backlog turns into compact payloads as
//!   fast as the machine allows;
//! - **delivery** holds the encoded payloads (the outage buffer), sends the oldest first, up to
//!   `max_in_flight` at once, and acts on each answer: delivered, retry later, replace (split or
//!   re-route), or drop. It keeps the endpoint's health: after a failure, or when a request
//!   hangs past `stall_after`, it sends one probe at a time on a capped exponential backoff
//!   schedule, cancelling the oldest hanging request if the in-flight limit is reached; the
//!   first answer that shows the endpoint up cancels the requests still hanging, puts their
//!   payloads back in order, and resumes full speed.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant as TokioInstant;

use super::control::{deadline_after, Control, Outcome, Slot};
use super::queue::{self, EventQueue, Pushed};
use super::spool::{OpenError, Spool, SpoolFile};
use super::stats::{add, set, Counters};
use super::{BatchConfig, DropCause, Dropped, ExportResult, Exporter, Payload};
use crate::event::Event;
use crate::sink::DEFAULT_FLUSH_TIMEOUT;

/// Threads that encode chunks. One more than the two cores this was tuned on: the scheduler
/// shares a core per thread, so a burst of captures gets less of the machine than the backlog
/// it makes, and the backlog sits as raw events for less long.
pub(crate) const ENCODERS: usize = 3;
/// After a shutdown deadline, how long the worker may take to spool or count what is left
/// before the caller is answered anyway.
const ABORT_GRACE: Duration = Duration::from_millis(40);
/// How often a busy batcher looks for events. Callers wake it only when the queue is half
/// full (or, once it has been idle for [`IDLE_POLLS`] polls, at the first event), so a capture
/// almost never pays for waking a thread.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Empty polls before the batcher stops polling and waits to be woken.
const IDLE_POLLS: u32 = 10;
/// How often the delivery task looks for payloads past their maximum age.
const AGE_CHECK: Duration = Duration::from_secs(1);
/// With a spool, the part of shutdown's timeout kept for writing what is left to disk (a
/// quarter of it, at most this), so that it is on disk when shutdown returns.
const SPOOL_RESERVE: Duration = Duration::from_secs(1);

/// Why the processor could not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// Another process holds the spool's lock.
    SpoolLocked,
    /// The spool directory cannot be used.
    Spool(std::io::Error),
    /// The thread could not be spawned.
    Thread(std::io::Error),
}

/// The handle side of a batching sink: the queue, the counters, and the control channel to the
/// worker thread.
pub(crate) struct BatchProcessor<E: Exporter> {
    queue: Arc<EventQueue>,
    counters: Arc<Counters>,
    control: mpsc::UnboundedSender<Control>,
    shut_down: AtomicBool,
    log_target: &'static str,
    _exporter: PhantomData<fn(E)>,
}

/// The processor was shut down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl<E: Exporter> BatchProcessor<E> {
    /// Opens the spool (if any) and starts the worker thread.
    pub(crate) fn start(
        config: BatchConfig,
        exporter: Arc<E>,
        counters: Arc<Counters>,
    ) -> Result<Self, StartError> {
        let spool = match &config.spool {
            Some(spool) => {
                let (opened, corrupt) =
                    Spool::open(&spool.dir, spool.max_bytes).map_err(|err| match err {
                        OpenError::Locked => StartError::SpoolLocked,
                        OpenError::Io(err) => StartError::Spool(err),
                    })?;
                add(&counters.spool_corrupt, corrupt);
                if corrupt > 0 {
                    tracing::warn!(
                        target: "traced_llm::posthog",
                        files = corrupt,
                        "sink spool held corrupt or partial files; they were skipped"
                    );
                }
                Some(opened)
            }
            None => None,
        };
        let queue = Arc::new(EventQueue::new(
            config.max_queue_len,
            config.max_queue_bytes,
            config.queue_full_policy,
            config.batch_size,
        ));
        queue.recycle(Vec::new(), 0);
        queue.wake_at.store(wake_at(&config), Ordering::SeqCst);
        let (control, receiver) = mpsc::unbounded_channel();
        let log_target = config.log_target;
        let worker = Worker {
            config: Arc::new(config),
            exporter,
            counters: Arc::clone(&counters),
            queue: Arc::clone(&queue),
            spool,
        };
        // Logs from the worker go where the builder's logs go.
        let dispatch = tracing::dispatcher::get_default(|dispatch| dispatch.clone());
        std::thread::Builder::new()
            .name(worker.config.thread_name.into())
            .spawn(move || {
                let _guard = tracing::dispatcher::set_default(&dispatch);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .max_blocking_threads(ENCODERS)
                    .thread_name(format!("{}-encode", worker.config.thread_name))
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        tracing::error!(target: "traced_llm::posthog", error = %err, "sink cannot start its runtime; events are dropped");
                        worker.queue.closed.store(true, Ordering::Release);
                        return;
                    }
                };
                runtime.block_on(worker.run(receiver));
                // Never wait for an encoder still running: shutdown has already answered.
                runtime.shutdown_background();
            })
            .map_err(StartError::Thread)?;
        Ok(Self {
            queue,
            counters,
            control,
            shut_down: AtomicBool::new(false),
            log_target,
            _exporter: PhantomData,
        })
    }

    /// Queues the event; never blocks. A full queue or a shut-down processor drops it, counted.
    pub(crate) fn capture(&self, event: Event) {
        let queue = &self.queue;
        let counters = &self.counters;
        if queue.closed.load(Ordering::Acquire) {
            add(&counters.after_shutdown, 1);
            counters.warn_first_drop(self.log_target, "captured after shutdown");
            return;
        }
        let len = match queue.push(event) {
            (Pushed::Queued(len), _) => len,
            (Pushed::Evicted(len), _) => {
                add(&counters.evicted, 1);
                counters.warn_first_drop(self.log_target, "queue full");
                len
            }
            (Pushed::Refused, event) => {
                add(&counters.refused_full, 1);
                counters.warn_first_drop(self.log_target, "queue full");
                drop(event);
                return;
            }
        };
        add(&counters.accepted, 1);
        if len == queue.wake_at.load(Ordering::SeqCst) {
            queue.notify.notify_one();
        }
    }

    /// Waits until everything captured before the call was delivered, dropped or spooled.
    pub(crate) async fn flush(&self, timeout: Duration) -> Result<Outcome, Closed> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(Closed);
        }
        let (reply, receiver) = oneshot::channel();
        self.control
            .send(Control::Flush {
                deadline: deadline_after(timeout),
                timeout,
                reply,
            })
            .map_err(|_| Closed)?;
        Ok(receiver.await.unwrap_or(Outcome::TimedOut(timeout)))
    }

    /// Flushes, then stops the worker; what is undelivered at the deadline is spooled or
    /// dropped and counted.
    pub(crate) async fn shutdown(&self, timeout: Duration) -> Result<Outcome, Closed> {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(Closed);
        }
        self.queue.closed.store(true, Ordering::Release);
        let (reply, receiver) = oneshot::channel();
        self.control
            .send(Control::Shutdown {
                deadline: deadline_after(timeout),
                timeout,
                reply,
            })
            .map_err(|_| Closed)?;
        Ok(receiver.await.unwrap_or(Outcome::TimedOut(timeout)))
    }
}

/// The queue length at which a capture wakes the worker at once: half the queue, so a burst
/// cannot fill it between two polls.
fn wake_at(config: &BatchConfig) -> usize {
    (config.max_queue_len / 2)
        .max(config.batch_size)
        .min(config.max_queue_len)
        .max(1)
}

/// What the batcher tells the delivery task, in order.
enum Msg<P> {
    /// A chunk of `events` events, numbered `seq`, went to an encoder.
    Registered { seq: u64, events: usize },
    /// Chunk `seq` encoded.
    Encoded { seq: u64, payloads: Vec<P> },
    /// A flush: done when every chunk before `before` is resolved.
    Flush { before: u64, slot: Slot },
    /// Shutdown: every chunk was registered; deliver them all.
    Shutdown,
}

enum Request {
    Flush(Slot),
    Shutdown,
}

struct Worker<E: Exporter> {
    config: Arc<BatchConfig>,
    exporter: Arc<E>,
    counters: Arc<Counters>,
    queue: Arc<EventQueue>,
    spool: Option<Spool>,
}

impl<E: Exporter> Worker<E> {
    async fn run(self, control: mpsc::UnboundedReceiver<Control>) {
        let Worker {
            config,
            exporter,
            counters,
            queue,
            spool,
        } = self;
        let (msgs_tx, msgs_rx) = mpsc::unbounded_channel();
        let (requests_tx, requests_rx) = mpsc::unbounded_channel();
        let (abort_tx, abort_rx) = watch::channel(false);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<(Slot, Duration)>();
        tokio::spawn(control_loop(
            control,
            requests_tx,
            abort_tx,
            Arc::clone(&queue),
            shutdown_tx,
            spool.is_some(),
        ));
        let batcher = Batcher {
            config: Arc::clone(&config),
            exporter: Arc::clone(&exporter),
            counters: Arc::clone(&counters),
            queue: Arc::clone(&queue),
            next_seq: 1,
            permits: Arc::new(Semaphore::new(ENCODERS)),
            msgs: msgs_tx,
            abort: abort_rx.clone(),
        };
        let batcher = tokio::spawn(batcher.run(requests_rx));
        let delivery = Delivery::new(
            Arc::clone(&config),
            Arc::clone(&exporter),
            Arc::clone(&counters),
            spool,
            abort_rx.clone(),
        );
        delivery.run(msgs_rx).await;
        batcher.abort();
        let _ = batcher.await;

        // A capture racing with shutdown may have slipped in after the last drain.
        let stranded: usize = queue.take_all().iter().map(|block| block.len()).sum();
        add(&counters.lost_at_shutdown, stranded as u64);
        let log_target = config.log_target;
        let get = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
        let dropped = get(&counters.refused_full)
            + get(&counters.evicted)
            + get(&counters.rejected)
            + get(&counters.unauthorized)
            + get(&counters.too_large)
            + get(&counters.oversize)
            + get(&counters.buffer_full)
            + get(&counters.expired)
            + get(&counters.after_shutdown)
            + get(&counters.lost_at_shutdown);
        if dropped > 0 {
            tracing::warn!(
                target: "traced_llm::posthog",
                sink = log_target,
                sent = get(&counters.delivered),
                dropped,
                spooled = get(&counters.spooled),
                "sink shut down with dropped LLM events"
            );
        } else {
            tracing::debug!(
                target: "traced_llm::posthog",
                sink = log_target,
                sent = get(&counters.delivered),
                spooled = get(&counters.spooled),
                "sink shut down"
            );
        }
        if let Ok((slot, timeout)) = shutdown_rx.await {
            if *abort_rx.borrow() {
                slot.fill(Outcome::TimedOut(timeout));
            } else {
                slot.fill(Outcome::Done);
            }
        }
    }
}

/// Receives requests from the handles and arms their deadlines.
async fn control_loop(
    mut control: mpsc::UnboundedReceiver<Control>,
    requests: mpsc::UnboundedSender<Request>,
    abort: watch::Sender<bool>,
    queue: Arc<EventQueue>,
    shutdown: oneshot::Sender<(Slot, Duration)>,
    spooling: bool,
) {
    let (deadline, timeout, reply) = loop {
        match control.recv().await {
            Some(Control::Flush {
                deadline,
                timeout,
                reply,
            }) => {
                let slot = Slot::new(Some(reply));
                let timer = slot.clone();
                tokio::spawn(async move {
                    tokio::time::sleep_until(TokioInstant::from_std(deadline)).await;
                    timer.fill(Outcome::TimedOut(timeout));
                });
                let _ = requests.send(Request::Flush(slot));
            }
            Some(Control::Shutdown {
                deadline,
                timeout,
                reply,
            }) => break (deadline, timeout, Some(reply)),
            // Every handle is gone: a last flush, bounded, with nobody to answer.
            None => {
                break (
                    Instant::now() + DEFAULT_FLUSH_TIMEOUT,
                    DEFAULT_FLUSH_TIMEOUT,
                    None,
                )
            }
        }
    };
    queue.closed.store(true, Ordering::Release);
    let slot = Slot::new(reply);
    let _ = shutdown.send((slot.clone(), timeout));
    let _ = requests.send(Request::Shutdown);
    let reserve = if spooling {
        (timeout / 4).min(SPOOL_RESERVE)
    } else {
        Duration::ZERO
    };
    let stop_at = deadline.checked_sub(reserve).unwrap_or(deadline);
    tokio::time::sleep_until(TokioInstant::from_std(stop_at)).await;
    let _ = abort.send(true);
    tokio::time::sleep_until(TokioInstant::from_std(deadline) + ABORT_GRACE).await;
    slot.fill(Outcome::TimedOut(timeout));
}

/// Takes events off the queue and hands chunks to the encoders.
struct Batcher<E: Exporter> {
    config: Arc<BatchConfig>,
    exporter: Arc<E>,
    counters: Arc<Counters>,
    queue: Arc<EventQueue>,
    next_seq: u64,
    permits: Arc<Semaphore>,
    msgs: mpsc::UnboundedSender<Msg<E::Payload>>,
    abort: watch::Receiver<bool>,
}

impl<E: Exporter> Batcher<E> {
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
            if self.drain(true).await {
                idle_polls = 0;
            }
            let notified = queue.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if queue.len() >= threshold && queue.has_full_block() {
                continue;
            }
            // Idle for a while: stop polling and let the next capture wake the worker.
            let asleep = idle_polls >= IDLE_POLLS;
            if asleep {
                queue.wake_at.store(1, Ordering::SeqCst);
                if queue.len() > 0 {
                    queue.wake_at.store(threshold, Ordering::SeqCst);
                    idle_polls = 0;
                    continue;
                }
            }
            tokio::select! {
                biased;
                request = requests.recv() => {
                    self.drain(false).await;
                    match request {
                        Some(Request::Flush(slot)) => {
                            let _ = self.msgs.send(Msg::Flush { before: self.next_seq, slot });
                        }
                        Some(Request::Shutdown) | None => {
                            let _ = self.msgs.send(Msg::Shutdown);
                            return;
                        }
                    }
                }
                () = &mut notified => {}
                _ = poll.tick(), if !asleep => idle_polls += 1,
                _ = ticker.tick() => {
                    self.drain(false).await;
                }
            }
            if asleep {
                queue.wake_at.store(threshold, Ordering::SeqCst);
                poll.reset();
                idle_polls = 0;
            }
        }
    }

    /// Hands every full block (every block, the last partial one included, unless
    /// `full_only`) to the encoders. Says whether there was anything. Blocks are taken one at a
    /// time, so while the encoders are busy the backlog stays in the queue, where its bound
    /// applies.
    async fn drain(&mut self, full_only: bool) -> bool {
        let mut any = false;
        let mut taken = 0;
        while let Some(block) = self.queue.take_front(full_only) {
            any = true;
            taken += 1;
            if *self.abort.borrow() {
                add(&self.counters.lost_at_shutdown, block.len() as u64);
                self.queue.recycle(vec![block], 0);
                continue;
            }
            self.send(block, taken).await;
        }
        any
    }

    /// Encodes a block on the blocking pool ([`ENCODERS`] at once) while this task goes on
    /// taking blocks off the queue; the encoder gives the emptied block back, and keeps as many
    /// ready as this drain has taken so far, so a burst that goes on finds them touched.
    async fn send(&mut self, mut block: VecDeque<queue::Slot>, taken: usize) {
        let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
            return;
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let _ = self.msgs.send(Msg::Registered {
            seq,
            events: block.len(),
        });
        let exporter = Arc::clone(&self.exporter);
        let counters = Arc::clone(&self.counters);
        let queue = Arc::clone(&self.queue);
        let msgs = self.msgs.clone();
        tokio::task::spawn_blocking(move || {
            let payloads = exporter.encode(block.drain(..).map(|slot| slot.event), &counters);
            let _ = msgs.send(Msg::Encoded { seq, payloads });
            drop(permit);
            queue.recycle(vec![block], taken);
        });
        // Let the delivery task and the deadline timers run between blocks.
        tokio::task::yield_now().await;
    }
}

/// Where a payload sits in the delivery order: spooled ones (`seq` 0) first, then by chunk,
/// then by position inside the chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    seq: u64,
    lo: u64,
    hi: u64,
}

const FULL_RANGE: u64 = 1 << 62;

struct Entry<P> {
    payload: Arc<P>,
    events: usize,
    bytes: usize,
    created: SystemTime,
    attempts: u32,
    /// The spool file it was read from, removed once it is delivered or dropped.
    file: Option<SpoolFile>,
}

struct Flight<P> {
    key: Key,
    entry: Entry<P>,
    started: Instant,
    probe: bool,
    abort: AbortHandle,
}

#[derive(Debug, Clone, Copy)]
enum Health {
    Up,
    /// `probes` were sent since the endpoint went down; the next leaves at `next_probe`. A
    /// probe that hangs does not hold the next one back.
    Down {
        probes: u32,
        next_probe: Instant,
    },
}

struct Delivery<E: Exporter> {
    config: Arc<BatchConfig>,
    exporter: Arc<E>,
    counters: Arc<Counters>,
    spool: Option<Spool>,
    abort: watch::Receiver<bool>,
    buffer: BTreeMap<Key, Entry<E::Payload>>,
    /// Bytes of the payloads in the buffer and in flight.
    bytes: usize,
    flights: HashMap<u64, Flight<E::Payload>>,
    tasks: JoinSet<(u64, ExportResult<E::Payload>)>,
    next_flight: u64,
    /// Pieces (or, while encoding, events) still open per chunk.
    open: BTreeMap<u64, Open>,
    flushes: Vec<(u64, Slot)>,
    shutting_down: bool,
    health: Health,
    next_spooled: u64,
    next_age_check: Instant,
    jitter: Jitter,
    unauthorized_reported: bool,
}

#[derive(Debug, Clone, Copy)]
enum Open {
    Encoding(usize),
    Pieces(usize),
}

impl<E: Exporter> Delivery<E> {
    fn new(
        config: Arc<BatchConfig>,
        exporter: Arc<E>,
        counters: Arc<Counters>,
        spool: Option<Spool>,
        abort: watch::Receiver<bool>,
    ) -> Self {
        Self {
            config,
            exporter,
            counters,
            spool,
            abort,
            buffer: BTreeMap::new(),
            bytes: 0,
            flights: HashMap::new(),
            tasks: JoinSet::new(),
            next_flight: 0,
            open: BTreeMap::new(),
            flushes: Vec::new(),
            shutting_down: false,
            health: Health::Up,
            next_spooled: 0,
            next_age_check: Instant::now(),
            jitter: Jitter::new(),
            unauthorized_reported: false,
        }
    }

    async fn run(mut self, mut msgs: mpsc::UnboundedReceiver<Msg<E::Payload>>) {
        let mut abort = self.abort.clone();
        let mut msgs_open = true;
        loop {
            let now = Instant::now();
            self.expire(now);
            self.dispatch(now);
            self.publish();
            self.check_flushes();
            if self.shutting_down && self.finished() {
                break;
            }
            let wake = self.next_wake(now);
            tokio::select! {
                biased;
                _ = abort.wait_for(|aborted| *aborted) => break,
                msg = msgs.recv(), if msgs_open => match msg {
                    Some(msg) => self.on_msg(msg),
                    None => {
                        msgs_open = false;
                        self.shutting_down = true;
                    }
                },
                Some(done) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Ok((id, result)) = done {
                        self.on_result(id, result);
                    }
                }
                () = tokio::time::sleep_until(TokioInstant::from_std(wake)) => {}
            }
        }
        self.finish(&mut msgs);
    }

    fn finished(&self) -> bool {
        self.open.is_empty()
            && self.flights.is_empty()
            && self.buffer.is_empty()
            && self.spool.as_ref().is_none_or(Spool::is_empty)
    }

    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = self.next_age_check.max(now);
        match self.health {
            Health::Down { next_probe, .. } => wake = wake.min(next_probe),
            Health::Up => {
                if let Some(oldest) = self.flights.values().map(|flight| flight.started).min() {
                    wake = wake.min(oldest + self.config.stall_after);
                }
            }
        }
        wake.max(now + Duration::from_millis(1))
    }

    fn on_msg(&mut self, msg: Msg<E::Payload>) {
        match msg {
            Msg::Registered { seq, events } => {
                self.open.insert(seq, Open::Encoding(events));
            }
            Msg::Encoded { seq, payloads } => {
                if payloads.is_empty() {
                    self.open.remove(&seq);
                    return;
                }
                self.open.insert(seq, Open::Pieces(payloads.len()));
                let created = SystemTime::now();
                let keys = split_range(seq, 0, FULL_RANGE, payloads.len());
                for (key, payload) in keys.into_iter().zip(payloads) {
                    let entry = Entry {
                        events: payload.events(),
                        bytes: payload.bytes(),
                        payload: Arc::new(payload),
                        created,
                        attempts: 0,
                        file: None,
                    };
                    self.insert(key, entry);
                }
                self.make_room();
            }
            Msg::Flush { before, slot } => self.flushes.push((before, slot)),
            Msg::Shutdown => self.shutting_down = true,
        }
    }

    fn insert(&mut self, key: Key, entry: Entry<E::Payload>) {
        self.bytes += entry.bytes;
        self.buffer.insert(key, entry);
    }

    fn take(&mut self, key: &Key) -> Option<Entry<E::Payload>> {
        let entry = self.buffer.remove(key)?;
        self.bytes -= entry.bytes;
        Some(entry)
    }

    /// One piece of chunk `seq` is resolved (delivered, dropped or spooled).
    fn resolve(&mut self, key: Key) {
        if key.seq == 0 {
            return;
        }
        if let Some(Open::Pieces(pieces)) = self.open.get_mut(&key.seq) {
            *pieces -= 1;
            if *pieces == 0 {
                self.open.remove(&key.seq);
            }
        }
    }

    fn check_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest_open = self.open.keys().next().copied().unwrap_or(u64::MAX);
        self.flushes.retain(|(before, slot)| {
            if oldest_open >= *before {
                slot.fill(Outcome::Done);
                false
            } else {
                !slot.is_filled()
            }
        });
    }

    /// Evicts the oldest buffered payloads, to the spool or dropped, while over the bound.
    fn make_room(&mut self) {
        while self.bytes > self.config.max_buffer_bytes {
            let Some(key) = self.buffer.keys().find(|key| key.seq != 0).copied() else {
                break;
            };
            let Some(entry) = self.take(&key) else { break };
            self.spool_or_drop(key, entry, DropCause::BufferFull);
        }
    }

    /// Writes the payload to the spool, or drops it for `cause` when there is none or it does
    /// not fit.
    fn spool_or_drop(&mut self, key: Key, entry: Entry<E::Payload>, cause: DropCause) {
        if entry.file.is_some() {
            // Already in the spool: it stays there.
            if let (Some(spool), Some(file)) = (self.spool.as_mut(), entry.file) {
                spool.unpop(file);
            }
            return;
        }
        if let Some(spool) = self.spool.as_mut() {
            let bytes = self.exporter.spool_bytes(&entry.payload);
            let counters = &self.counters;
            let mut evicted = 0u64;
            let written = spool.write(&bytes, entry.events, entry.created, |events| {
                evicted += events;
            });
            if evicted > 0 {
                add(&counters.buffer_full, evicted);
                counters.warn_first_drop(self.config.log_target, "spool full");
            }
            if written.is_ok() {
                add(&self.counters.spooled, entry.events as u64);
                self.resolve(key);
                return;
            }
        }
        self.drop_entry(
            key,
            entry,
            Dropped {
                cause,
                events: 0,
                status: None,
                reason: String::new(),
            },
        );
    }

    fn drop_entry(&mut self, key: Key, entry: Entry<E::Payload>, mut dropped: Dropped) {
        dropped.events = entry.events;
        let counters = &self.counters;
        let counter = match dropped.cause {
            DropCause::Rejected => &counters.rejected,
            DropCause::Unauthorized => &counters.unauthorized,
            DropCause::TooLarge => &counters.too_large,
            DropCause::BufferFull => &counters.buffer_full,
            DropCause::Expired => &counters.expired,
            DropCause::Shutdown => &counters.lost_at_shutdown,
        };
        add(counter, entry.events as u64);
        add(&counters.failed_batches, 1);
        counters.warn_first_drop(
            self.config.log_target,
            match dropped.cause {
                DropCause::Rejected => "rejected by the server",
                DropCause::Unauthorized => "API key refused",
                DropCause::TooLarge => "too large for the server",
                DropCause::BufferFull => "outage buffer full",
                DropCause::Expired => "older than the maximum age",
                DropCause::Shutdown => "undelivered at shutdown",
            },
        );
        if dropped.cause == DropCause::Unauthorized && !self.unauthorized_reported {
            self.unauthorized_reported = true;
            tracing::error!(
                target: "traced_llm::posthog",
                sink = self.config.log_target,
                status = dropped.status.unwrap_or(0),
                reason = %dropped.reason,
                "the server refused the API key: every event sent with it is dropped; check the key"
            );
        }
        if let (Some(spool), Some(file)) = (self.spool.as_mut(), entry.file.as_ref()) {
            spool.remove(file);
        }
        self.exporter.dropped(&dropped);
        self.resolve(key);
    }

    /// Drops buffered payloads past the maximum age, at most once per [`AGE_CHECK`]. Payloads
    /// in the spool are checked when they are read back.
    fn expire(&mut self, now: Instant) {
        if now < self.next_age_check {
            return;
        }
        self.next_age_check = now + AGE_CHECK.min(self.config.max_age / 4);
        let max_age = self.config.max_age;
        let wall = SystemTime::now();
        let too_old = |entry: &Entry<E::Payload>| {
            wall.duration_since(entry.created).unwrap_or_default() > max_age
        };
        // Keys follow creation, so the old ones come first; pieces put back may be younger than
        // later keys, so a few young ones are looked past.
        let mut young = 0;
        let mut expired = Vec::new();
        for (key, entry) in &self.buffer {
            if too_old(entry) {
                expired.push(*key);
            } else {
                young += 1;
                if young > 2 * self.config.max_in_flight {
                    break;
                }
            }
        }
        for key in expired {
            if let Some(entry) = self.take(&key) {
                self.drop_entry(
                    key,
                    entry,
                    Dropped {
                        cause: DropCause::Expired,
                        events: 0,
                        status: None,
                        reason: format!("waited more than {max_age:?}"),
                    },
                );
            }
        }
    }

    /// The next payload to send: spooled ones first, then the oldest in memory.
    fn next_entry(&mut self) -> Option<(Key, Entry<E::Payload>)> {
        if let Some(key) = self
            .buffer
            .keys()
            .next()
            .copied()
            .filter(|key| key.seq == 0)
        {
            return self.take(&key).map(|entry| (key, entry));
        }
        while let Some(spool) = self.spool.as_mut() {
            let Some((file, loaded)) = spool.pop() else {
                break;
            };
            let payload = loaded
                .ok()
                .and_then(|loaded| Some((self.exporter.unspool(&loaded.payload)?, loaded)));
            let Some((payload, loaded)) = payload else {
                add(&self.counters.spool_corrupt, 1);
                tracing::warn!(
                    target: "traced_llm::posthog",
                    sink = self.config.log_target,
                    "sink spool file was corrupt; it was skipped"
                );
                if let Some(spool) = self.spool.as_mut() {
                    spool.remove(&file);
                }
                continue;
            };
            add(&self.counters.spool_loaded, loaded.events as u64);
            self.next_spooled += 1;
            let key = Key {
                seq: 0,
                lo: self.next_spooled,
                hi: self.next_spooled,
            };
            let entry = Entry {
                events: payload.events(),
                bytes: payload.bytes(),
                payload: Arc::new(payload),
                created: loaded.created,
                attempts: 0,
                file: Some(file),
            };
            return Some((key, entry));
        }
        let key = self.buffer.keys().next().copied()?;
        self.take(&key).map(|entry| (key, entry))
    }

    fn dispatch(&mut self, now: Instant) {
        if *self.abort.borrow() {
            return;
        }
        loop {
            let probe = match self.health {
                Health::Up => {
                    if self.flights.len() >= self.config.max_in_flight {
                        return;
                    }
                    false
                }
                Health::Down { next_probe, .. } => {
                    if now < next_probe {
                        return;
                    }
                    true
                }
            };
            let nothing_waits =
                self.buffer.is_empty() && self.spool.as_ref().is_none_or(Spool::is_empty);
            if probe && (self.flights.len() >= self.config.max_in_flight || nothing_waits) {
                // Every slot is taken, or only requests in flight are left: give the oldest up
                // if it hangs, and probe with it; else look again once it would hang.
                if !self.cancel_stalled(now) {
                    if let (Health::Down { probes, .. }, Some(oldest)) =
                        (self.health, self.oldest_flight())
                    {
                        self.health = Health::Down {
                            probes,
                            next_probe: oldest + self.config.stall_after,
                        };
                    }
                    return;
                }
            }
            let Some((key, entry)) = self.next_entry() else {
                return;
            };
            if SystemTime::now()
                .duration_since(entry.created)
                .unwrap_or_default()
                > self.config.max_age
            {
                self.drop_expired(key, entry);
                continue;
            }
            self.launch(key, entry, probe, now);
            if let Health::Down { probes, .. } = self.health {
                let probes = probes + 1;
                let wait = self.backoff(probes, None);
                self.health = Health::Down {
                    probes,
                    next_probe: now + wait,
                };
                return;
            }
        }
    }

    fn drop_expired(&mut self, key: Key, entry: Entry<E::Payload>) {
        let max_age = self.config.max_age;
        self.drop_entry(
            key,
            entry,
            Dropped {
                cause: DropCause::Expired,
                events: 0,
                status: None,
                reason: format!("waited more than {max_age:?}"),
            },
        );
    }

    fn launch(&mut self, key: Key, entry: Entry<E::Payload>, probe: bool, now: Instant) {
        let id = self.next_flight;
        self.next_flight += 1;
        let exporter = Arc::clone(&self.exporter);
        let counters = Arc::clone(&self.counters);
        let payload = Arc::clone(&entry.payload);
        let attempt = entry.attempts;
        self.bytes += entry.bytes;
        let abort = self.tasks.spawn(async move {
            let result = exporter.export(&payload, attempt, &counters).await;
            (id, result)
        });
        self.flights.insert(
            id,
            Flight {
                key,
                entry,
                started: now,
                probe,
                abort,
            },
        );
    }

    fn oldest_flight(&self) -> Option<Instant> {
        self.flights.values().map(|flight| flight.started).min()
    }

    /// Cancels the request in flight the longest, if it hangs, and puts its payload back.
    fn cancel_stalled(&mut self, now: Instant) -> bool {
        let Some((id, started)) = self
            .flights
            .iter()
            .min_by_key(|(_, flight)| flight.started)
            .map(|(id, flight)| (*id, flight.started))
        else {
            return false;
        };
        if now.duration_since(started) < self.config.stall_after {
            return false;
        }
        self.cancel(id);
        true
    }

    fn cancel(&mut self, id: u64) {
        if let Some(flight) = self.flights.remove(&id) {
            flight.abort.abort();
            self.bytes -= flight.entry.bytes;
            self.requeue(flight.key, flight.entry);
        }
    }

    fn requeue(&mut self, key: Key, mut entry: Entry<E::Payload>) {
        entry.attempts += 1;
        self.insert(key, entry);
    }

    fn on_result(&mut self, id: u64, result: ExportResult<E::Payload>) {
        // A cancelled flight's result is of no interest: its payload is queued again.
        let Some(flight) = self.flights.remove(&id) else {
            return;
        };
        let Flight {
            key,
            entry,
            started,
            probe,
            ..
        } = flight;
        self.bytes -= entry.bytes;
        match result {
            ExportResult::Retry { after, reason } => {
                add(&self.counters.retried, 1);
                let now = Instant::now();
                let after = after.map(|after| after.min(self.config.max_retry_after));
                self.health = match self.health {
                    Health::Up => Health::Down {
                        probes: 0,
                        next_probe: now + self.backoff(1, after),
                    },
                    // The schedule goes on; a server's `Retry-After` pushes it back.
                    Health::Down { probes, next_probe } => Health::Down {
                        probes,
                        next_probe: next_probe.max(now + after.unwrap_or_default()),
                    },
                };
                tracing::debug!(
                    target: "traced_llm::posthog",
                    sink = self.config.log_target,
                    probe,
                    reason = %reason,
                    "export failed; the payload waits for the endpoint"
                );
                self.requeue(key, entry);
            }
            answered => {
                self.endpoint_up(started);
                match answered {
                    ExportResult::Delivered => {
                        add(&self.counters.delivered, entry.events as u64);
                        if let (Some(spool), Some(file)) =
                            (self.spool.as_mut(), entry.file.as_ref())
                        {
                            spool.remove(file);
                        }
                        self.resolve(key);
                    }
                    ExportResult::Drop(dropped) => self.drop_entry(key, entry, dropped),
                    ExportResult::Replace(payloads) => {
                        add(&self.counters.split, 1);
                        if let (Some(spool), Some(file)) =
                            (self.spool.as_mut(), entry.file.as_ref())
                        {
                            // The pieces live in memory now; the spool copy goes.
                            spool.remove(file);
                        }
                        self.replace(key, entry, payloads);
                    }
                    ExportResult::Retry { .. } => unreachable!("handled above"),
                }
            }
        }
    }

    fn replace(&mut self, key: Key, entry: Entry<E::Payload>, payloads: Vec<E::Payload>) {
        if key.seq != 0 {
            if let Some(Open::Pieces(pieces)) = self.open.get_mut(&key.seq) {
                *pieces += payloads.len();
            }
            self.resolve(key);
        }
        let keys = split_range(key.seq, key.lo, key.hi.max(key.lo + 1), payloads.len());
        for (key, payload) in keys.into_iter().zip(payloads) {
            let piece = Entry {
                events: payload.events(),
                bytes: payload.bytes(),
                payload: Arc::new(payload),
                created: entry.created,
                attempts: 0,
                file: None,
            };
            self.insert(key, piece);
        }
    }

    /// An answer came: the endpoint is up. When it was down, requests that have hung since
    /// before this one started are cancelled and sent again (a slow request while it was up is
    /// left alone: cancelling it could only duplicate it).
    fn endpoint_up(&mut self, started: Instant) {
        let was_down = matches!(self.health, Health::Down { .. });
        self.health = Health::Up;
        let now = Instant::now();
        let stalled: Vec<u64> = self
            .flights
            .iter()
            .filter(|(_, flight)| {
                was_down
                    && flight.started <= started
                    && now.duration_since(flight.started) >= self.config.stall_after
            })
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            self.cancel(id);
        }
    }

    /// Looks for requests hanging past `stall_after` while the endpoint is thought up.
    fn detect_stall(&mut self, now: Instant) {
        if !matches!(self.health, Health::Up) {
            return;
        }
        let stalled = self
            .flights
            .values()
            .any(|flight| now.duration_since(flight.started) >= self.config.stall_after);
        if stalled {
            self.health = Health::Down {
                probes: 0,
                next_probe: now,
            };
        }
    }

    /// The wait before the next probe: `initial · 2^(n-1)`, capped, drawn in its upper half,
    /// and at least what the server asked (capped).
    fn backoff(&mut self, n: u32, after: Option<Duration>) -> Duration {
        let exp = n.saturating_sub(1).min(31);
        let ceiling = self
            .config
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.config.max_backoff);
        let drawn = ceiling.mul_f64(0.5 + 0.5 * self.jitter.unit());
        match after {
            Some(after) => drawn.max(after.min(self.config.max_retry_after)),
            None => drawn,
        }
    }

    fn publish(&mut self) {
        let spooled = self.spool.as_ref().map_or(0, Spool::len);
        set(
            &self.counters.buffered_batches,
            (self.buffer.len() + self.flights.len() + spooled) as u64,
        );
        set(&self.counters.buffered_bytes, self.bytes as u64);
        let now = Instant::now();
        self.detect_stall(now);
    }

    /// After the loop: whatever was not delivered goes to the spool, or is counted as lost.
    fn finish(&mut self, msgs: &mut mpsc::UnboundedReceiver<Msg<E::Payload>>) {
        let ids: Vec<u64> = self.flights.keys().copied().collect();
        for id in ids {
            self.cancel(id);
        }
        self.tasks.abort_all();
        // Chunks that finished encoding meanwhile are kept too.
        while let Ok(msg) = msgs.try_recv() {
            if let Msg::Encoded { .. } | Msg::Registered { .. } = msg {
                self.on_msg(msg);
            }
        }
        let keys: Vec<Key> = self.buffer.keys().copied().collect();
        for key in keys {
            if let Some(entry) = self.take(&key) {
                self.spool_or_drop(key, entry, DropCause::Shutdown);
            }
        }
        let unencoded: usize = self
            .open
            .values()
            .map(|open| match open {
                Open::Encoding(events) => *events,
                Open::Pieces(_) => 0,
            })
            .sum();
        add(&self.counters.lost_at_shutdown, unencoded as u64);
        self.open.clear();
        self.publish();
        self.check_flushes();
    }
}

/// `n` keys dividing `[lo, hi)` of chunk `seq`, in order.
fn split_range(seq: u64, lo: u64, hi: u64, n: usize) -> Vec<Key> {
    let n = n.max(1) as u64;
    let width = (hi - lo) / n;
    (0..n)
        .map(|i| {
            let start = lo + i * width.max(1);
            let end = if i + 1 == n { hi } else { start + width.max(1) };
            Key {
                seq,
                lo: start,
                hi: end,
            }
        })
        .collect()
}

/// A small xorshift generator for jitter, seeded from a random UUID; no `rand` needed.
#[derive(Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Self {
        Self(uuid::Uuid::new_v4().as_u64_pair().0 | 1)
    }

    /// A draw in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_ranges_stay_ordered_and_inside() {
        let keys = split_range(3, 0, FULL_RANGE, 2);
        assert!(keys[0] < keys[1]);
        let inner = split_range(3, keys[0].lo, keys[0].hi, 2);
        assert!(inner[0] < inner[1] && inner[1] < keys[1]);
        assert_eq!(inner[1].hi, keys[0].hi);
    }
}
