//! Which answers are retried, and how long to wait before the next try.

use std::time::{Duration, SystemTime};

/// Retries after network errors, 408, 429 and 5xx: exponential backoff with full jitter, and
/// at least the server's `Retry-After` (capped).
///
/// ```
/// use std::time::Duration;
/// use traced_llm::posthog::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_retries(5)
///     .initial_backoff(Duration::from_millis(200));
/// assert_eq!(policy.get_max_retries(), 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_retries: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    max_retry_after: Duration,
}

impl RetryPolicy {
    /// Retries after the first try (default 3, as PostHog's SDKs).
    pub const DEFAULT_MAX_RETRIES: u32 = 3;
    /// Upper bound of the first backoff (default 1 s, as posthog-python); it doubles per retry.
    pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
    /// Upper bound of any backoff (default 30 s).
    pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);
    /// Longest `Retry-After` honoured (default 30 s); a longer one is cut to this.
    pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

    /// The defaults above.
    pub const fn new() -> Self {
        Self {
            max_retries: Self::DEFAULT_MAX_RETRIES,
            initial_backoff: Self::DEFAULT_INITIAL_BACKOFF,
            max_backoff: Self::DEFAULT_MAX_BACKOFF,
            max_retry_after: Self::DEFAULT_MAX_RETRY_AFTER,
        }
    }

    /// Never retry.
    pub const fn none() -> Self {
        Self::new().max_retries(0)
    }

    /// Sets how many times a failed request is tried again.
    #[must_use]
    pub const fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// Sets the upper bound of the first backoff.
    #[must_use]
    pub const fn initial_backoff(mut self, backoff: Duration) -> Self {
        self.initial_backoff = backoff;
        self
    }

    /// Sets the upper bound of any backoff.
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

    /// How many times a failed request is tried again.
    pub fn get_max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The wait before retry number `retry` (1-based): a uniform draw in
    /// `[0, min(max_backoff, initial_backoff · 2^(retry-1))]`, raised to `Retry-After` (capped).
    pub(crate) fn backoff(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        jitter: &mut Jitter,
    ) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let ceiling = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let drawn = ceiling.mul_f64(jitter.unit());
        match retry_after {
            Some(after) => drawn.max(after.min(self.max_retry_after)),
            None => drawn,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new()
    }
}

/// What to do with a batch after the server answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Delivered.
    Delivered,
    /// Try again later.
    Retry,
    /// Too large: split it.
    Split,
    /// Rejected for good.
    Reject,
}

/// Sorts an HTTP status into a [`Verdict`].
pub(crate) fn classify(status: u16) -> Verdict {
    match status {
        200..=299 => Verdict::Delivered,
        408 | 429 | 500..=599 => Verdict::Retry,
        413 => Verdict::Split,
        _ => Verdict::Reject,
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

/// A small xorshift generator for jitter, seeded from a random UUID; no `rand` needed.
#[derive(Debug)]
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new() -> Self {
        let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
        Self(seed)
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
    fn statuses_are_classified() {
        assert_eq!(classify(200), Verdict::Delivered);
        assert_eq!(classify(204), Verdict::Delivered);
        for status in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(status), Verdict::Retry, "{status}");
        }
        assert_eq!(classify(413), Verdict::Split);
        for status in [400, 401, 403, 404, 301] {
            assert_eq!(classify(status), Verdict::Reject, "{status}");
        }
    }

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

    #[test]
    fn backoff_grows_within_bounds_and_honours_capped_retry_after() {
        let policy = RetryPolicy::new()
            .initial_backoff(Duration::from_millis(100))
            .max_backoff(Duration::from_millis(1000))
            .max_retry_after(Duration::from_secs(5));
        let mut jitter = Jitter::new();
        for retry in 1..10 {
            let ceiling = Duration::from_millis((100u64 << (retry - 1)).min(1000));
            for _ in 0..100 {
                assert!(policy.backoff(retry, None, &mut jitter) <= ceiling);
            }
        }
        let after = Some(Duration::from_secs(2));
        assert!(policy.backoff(1, after, &mut jitter) >= Duration::from_secs(2));
        let long = Some(Duration::from_secs(3600));
        assert_eq!(policy.backoff(1, long, &mut jitter), Duration::from_secs(5));
    }
}
