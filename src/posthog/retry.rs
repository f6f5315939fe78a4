//! How long a batch waits while PostHog is unavailable.

use std::time::{Duration, SystemTime};

/// The backoff schedule while PostHog is unavailable (refused, reset, 5xx, 408, 429, a request
/// hanging): no batch is given up after a number of tries; batches wait, compressed, in the
/// outage buffer, and one probe is sent at a time on this schedule. Its wait doubles after each
/// failed probe, from [`initial_backoff`](Self::initial_backoff) up to
/// [`max_backoff`](Self::max_backoff), drawn in the upper half (jitter), and is at least the
/// server's `Retry-After` (capped). A request without an answer for
/// [`hang_after`](Self::hang_after) counts as a failure for this schedule (it is left running).
///
/// ```
/// use std::time::Duration;
/// use traced_llm::posthog::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .initial_backoff(Duration::from_millis(200))
///     .max_backoff(Duration::from_secs(2));
/// assert_eq!(policy.get_max_backoff(), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub(crate) initial_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) hang_after: Duration,
}

impl RetryPolicy {
    /// The first wait (default 1 s, as posthog-python); it doubles per failed probe.
    pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
    /// The longest wait (default 5 s): how late, at most, a recovered endpoint is noticed.
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(5);
    /// Longest `Retry-After` honoured (default 30 s); a longer one is cut to this.
    pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
    /// How long a request may go unanswered before the endpoint is probed beside it
    /// (default 2 s).
    pub const DEFAULT_HANG_AFTER: Duration = Duration::from_secs(2);

    /// The defaults above.
    pub const fn new() -> Self {
        Self {
            initial_backoff: Self::DEFAULT_INITIAL_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
            max_retry_after: Self::DEFAULT_MAX_RETRY_AFTER,
            hang_after: Self::DEFAULT_HANG_AFTER,
        }
    }

    /// Sets the first wait.
    #[must_use]
    pub const fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Sets the longest wait.
    #[must_use]
    pub const fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    /// Sets the longest `Retry-After` honoured.
    #[must_use]
    pub const fn max_retry_after(mut self, cap: Duration) -> Self {
        self.max_retry_after = cap;
        self
    }

    /// Sets how long a request may go unanswered before the endpoint is probed beside it.
    #[must_use]
    pub const fn hang_after(mut self, after: Duration) -> Self {
        self.hang_after = after;
        self
    }

    /// The first wait.
    pub fn get_initial_backoff(&self) -> Duration {
        self.initial_backoff
    }

    /// The longest wait.
    pub fn get_max_backoff(&self) -> Duration {
        self.max_backoff
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, relative to `now`.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_http_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(12));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(12))
        );
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(12));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
