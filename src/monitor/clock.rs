//! The time a monitor reads: the system's, or one a test moves by hand.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Where a [`Monitor`](super::Monitor) reads the time.
///
/// [`Clock::now`] is monotonic time since an origin of the clock's choosing: windows, cooldowns
/// and budgets are measured on it. [`Clock::wall`] stamps alert events. The monitor reads the
/// clock once per event, so an implementation must be cheap and must never block.
///
/// [`SystemClock`] is the default; [`ManualClock`] moves only when told to, so tests can cross a
/// window or a cooldown without sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Monotonic time since the clock's origin.
    fn now(&self) -> Duration;

    /// The wall-clock time alert events are stamped with.
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// The system's monotonic clock, counted from the moment it was made.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// The wall time of a [`ManualClock`] at zero: 2026-01-01T00:00:00Z.
pub const MANUAL_CLOCK_WALL_ORIGIN: Duration = Duration::from_secs(1_767_225_600);

/// A clock that moves only when told to: for tests and offline demos.
///
/// Clones share the same time, so a test keeps one clone and hands another to the monitor.
/// Its wall time is [`MANUAL_CLOCK_WALL_ORIGIN`] plus [`ManualClock::now`], so alert events
/// carry the same timestamps on every run.
///
/// ```
/// use std::time::Duration;
/// use traced_llm::monitor::{Clock, ManualClock};
///
/// let clock = ManualClock::new();
/// let handle = clock.clone();
/// handle.advance(Duration::from_secs(90));
/// assert_eq!(clock.now(), Duration::from_secs(90));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.nanos.fetch_add(nanos(by), Ordering::SeqCst);
    }

    /// Sets the clock to `to`. Setting it back is allowed, but a monitor treats time that went
    /// back as if it stood still.
    pub fn set(&self, to: Duration) {
        self.nanos.store(nanos(to), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + MANUAL_CLOCK_WALL_ORIGIN + self.now()
    }
}

/// `duration` in nanoseconds, saturating (584 years).
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
