//! Flush and shutdown: the messages a sink handle sends its worker, and the replies that the
//! first of several parties (the work itself, a deadline timer, the worker's exit) fills.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// How a flush or shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything captured before the request was delivered or finally dropped.
    Done,
    /// The deadline passed first.
    TimedOut(Duration),
}

pub(crate) type Reply = oneshot::Sender<Outcome>;

/// A request from a handle to the worker.
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

/// A reply filled once, by whoever comes first.
#[derive(Clone)]
pub(crate) struct Slot(Arc<Mutex<Option<Reply>>>);

impl Slot {
    pub(crate) fn new(reply: Option<Reply>) -> Self {
        Self(Arc::new(Mutex::new(reply)))
    }

    pub(crate) fn fill(&self, outcome: Outcome) {
        let reply = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }

    pub(crate) fn is_filled(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_none()
    }
}

/// `now + timeout`, or far in the future when that does not fit.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
