//! The monitor's own thread: it delivers alerts (callback, log, event) off the caller's path,
//! and evaluates raised alerts every so often so that they clear when calls stop.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::Engine;
use crate::event::{Alert, AlertState, Event};
use crate::sink::Sink;

/// What the user's callback looks like.
pub(super) type AlertHandler = Arc<dyn Fn(&Alert) + Send + Sync>;

pub(super) enum Message {
    Alert(Box<Alert>),
    /// Answered once everything queued before it was delivered.
    Flush(oneshot::Sender<()>),
    /// Answered, then the thread ends.
    Stop(oneshot::Sender<()>),
}

/// The sending side, held by the engine.
pub(super) struct Outbox {
    sender: SyncSender<Message>,
    pub(super) dropped: AtomicU64,
    warned: AtomicBool,
}

impl fmt::Debug for Outbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbox")
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl Outbox {
    pub(super) fn new(sender: SyncSender<Message>) -> Self {
        Self {
            sender,
            dropped: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    /// Queues an alert without waiting; a full queue (a callback that does not return) or a
    /// stopped thread drops it, counted, with one warning.
    pub(super) fn send(&self, alert: Alert) {
        match self.sender.try_send(Message::Alert(Box::new(alert))) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "traced_llm::monitor",
                        "monitor alert queue full or stopped: alerts are being dropped (is the alert callback blocking?)"
                    );
                }
            }
        }
    }

    /// Queues a control message, waiting (asynchronously, up to `deadline`) for room.
    pub(super) async fn send_control(&self, message: Message, deadline: Instant) -> bool {
        let mut message = message;
        loop {
            match self.sender.try_send(message) {
                Ok(()) => return true,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if Instant::now() >= deadline {
                        return false;
                    }
                    message = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
}

/// Where alerts go, on the monitor's thread.
pub(super) struct Delivery {
    pub(super) handler: Option<AlertHandler>,
    pub(super) sink: Option<Arc<dyn Sink>>,
}

impl Delivery {
    fn deliver(&self, alert: Alert) {
        log(&alert);
        if let Some(handler) = &self.handler {
            // A panicking callback must not end alerting for everyone else.
            if catch_unwind(AssertUnwindSafe(|| handler(&alert))).is_err() {
                tracing::error!(
                    target: "traced_llm::monitor",
                    rule = %alert.rule,
                    "the monitor's alert callback panicked"
                );
            }
        }
        if let Some(sink) = &self.sink {
            sink.capture(Event::Alert(alert));
        }
    }
}

fn log(alert: &Alert) {
    match alert.state {
        AlertState::Raised => tracing::warn!(
            target: "traced_llm::monitor",
            rule = %alert.rule,
            scope = %alert.scope,
            key = %alert.key,
            metric = %alert.metric,
            observed = alert.observed,
            threshold = alert.threshold,
            "LLM alert raised: {} for {} {}: {} {} > {}",
            alert.rule,
            alert.scope,
            alert.key,
            alert.metric,
            alert.observed,
            alert.threshold,
        ),
        AlertState::Cleared => tracing::info!(
            target: "traced_llm::monitor",
            rule = %alert.rule,
            scope = %alert.scope,
            key = %alert.key,
            metric = %alert.metric,
            observed = alert.observed,
            "LLM alert cleared: {} for {} {}: {} back to {}",
            alert.rule,
            alert.scope,
            alert.key,
            alert.metric,
            alert.observed,
        ),
    }
}

/// The thread's loop: deliver what comes, evaluate every `every` (never when zero).
pub(super) fn run(
    receiver: Receiver<Message>,
    engine: Weak<Engine>,
    delivery: Delivery,
    every: Duration,
) {
    let mut next_evaluation = Instant::now() + every;
    loop {
        let message = if every.is_zero() {
            receiver.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            receiver.recv_timeout(next_evaluation.saturating_duration_since(Instant::now()))
        };
        match message {
            Ok(Message::Alert(alert)) => delivery.deliver(*alert),
            Ok(Message::Flush(done)) => {
                let _ = done.send(());
            }
            Ok(Message::Stop(done)) => {
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if !every.is_zero() && Instant::now() >= next_evaluation {
            match engine.upgrade() {
                Some(engine) => engine.evaluate(),
                None => return,
            }
            next_evaluation = Instant::now() + every;
        }
    }
}
