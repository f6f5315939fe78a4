//! An alert a monitor raised or cleared: which rule, for which key, what it saw.

use std::fmt;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::Envelope;

/// Whether an alert starts or ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AlertState {
    /// The rule's condition began to hold for the key.
    Raised,
    /// The condition no longer holds; the alert of the same [`Alert::alert_id`] is over.
    Cleared,
}

impl AlertState {
    /// `raised` or `cleared`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Raised => "raised",
            AlertState::Cleared => "cleared",
        }
    }
}

impl fmt::Display for AlertState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An alert: a rule of an in-process monitor (feature `monitor`) breached for one key, or
/// stopped breaching.
///
/// PostHog receives it as the custom event `llm_alert` (raised) or `llm_alert_cleared`, with
/// `alert_*` properties (see [`posthog`](crate::posthog)), so that PostHog's destinations
/// (Slack, webhooks) and insights can act on it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Alert {
    /// A fresh uuid and the monitor clock's wall time; the distinct id when the key is one.
    pub envelope: Envelope,
    /// Raised or cleared.
    pub state: AlertState,
    /// The same for an alert and the clear that ends it.
    pub alert_id: Uuid,
    /// The rule's name.
    pub rule: String,
    /// What the rule measures (`tokens`, `error_rate`, `latency_p95`, `errors:rate_limit`, ...).
    pub metric: String,
    /// `above` (a threshold) or `unusual` (a multiple of the key's baseline).
    pub condition: String,
    /// The kind of key: `model`, `provider` or `distinct_id`.
    pub scope: String,
    /// The model, provider or distinct id.
    pub key: String,
    /// The rolling window the metric was read over.
    pub window: Duration,
    /// The metric's value over the window (for a clear: its value when the alert cleared).
    pub observed: f64,
    /// The value `observed` had to exceed: the rule's threshold, or factor × baseline.
    pub threshold: f64,
    /// The key's baseline (the mean of its past windows), for `unusual` rules.
    pub baseline: Option<f64>,
    /// The factor of an `unusual` rule.
    pub factor: Option<f64>,
    /// Trace ids of the key's latest calls, newest first.
    pub sample_trace_ids: Vec<String>,
    /// When the alert was raised.
    pub raised_at: SystemTime,
    /// For a clear: how long the alert was raised.
    pub firing_for: Option<Duration>,
}
