//! Live numbers: the current window of every tracked key, for a health page.

use std::collections::BTreeMap;

use serde::Serialize;

use super::rule::Scope;
use super::window::{Sums, Windows, ALL_KINDS};

/// The current window of one key.
///
/// Tokens count every prompt token, cached ones included. Percentiles are in seconds, over the
/// last half window to whole window, and `None` without calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct KeyFigures {
    /// The model, provider or distinct id.
    pub key: String,
    /// Calls made (refused calls are not).
    pub calls: u64,
    /// Failed calls among them.
    pub errors: u64,
    /// Calls refused by a budget.
    pub refused: u64,
    /// `errors / calls`; `None` without calls.
    pub error_rate: Option<f64>,
    /// Errors by kind (`rate_limit`, `timeout`, ..., `budget` for refusals), only kinds seen.
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    /// Input plus output tokens.
    pub tokens: u64,
    /// Prompt tokens, cached ones included.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Prompt tokens read from the cache.
    pub cached_tokens: u64,
    /// Cost in USD.
    pub cost_usd: f64,
    /// Median latency.
    pub latency_p50_s: Option<f64>,
    /// 95th percentile latency.
    pub latency_p95_s: Option<f64>,
    /// 99th percentile latency.
    pub latency_p99_s: Option<f64>,
    /// Median time to first token (streams).
    pub ttft_p50_s: Option<f64>,
    /// 95th percentile time to first token.
    pub ttft_p95_s: Option<f64>,
    /// 99th percentile time to first token.
    pub ttft_p99_s: Option<f64>,
    /// The mean of the key's past whole windows, once it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
}

/// The mean past window of a key: what "unusual" compares with.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Baseline {
    /// How many whole windows the mean is over.
    pub windows: u32,
    /// Tokens per window.
    pub tokens: f64,
    /// Cost per window.
    pub cost_usd: f64,
    /// Calls per window.
    pub calls: f64,
    /// Errors per window.
    pub errors: f64,
}

impl KeyFigures {
    pub(super) fn read(key: &str, windows: &Windows<'_>) -> Self {
        let sums: Sums = windows.sums();
        let kinds = windows.kinds();
        let refused = kinds[super::window::kind_index(crate::event::ErrorKind::Budget)];
        let errors_by_kind = ALL_KINDS
            .iter()
            .zip(kinds)
            .filter(|(_, count)| *count > 0)
            .map(|(kind, count)| (kind.as_str(), count))
            .collect();
        let calls = sums.calls as u64;
        let errors = sums.errors as u64;
        Self {
            key: key.to_owned(),
            calls,
            errors,
            refused,
            error_rate: (calls > 0).then(|| sums.errors / sums.calls),
            errors_by_kind,
            tokens: (sums.input + sums.output) as u64,
            input_tokens: sums.input as u64,
            output_tokens: sums.output as u64,
            cached_tokens: sums.cached as u64,
            cost_usd: sums.cost_usd,
            latency_p50_s: windows.latency(50),
            latency_p95_s: windows.latency(95),
            latency_p99_s: windows.latency(99),
            ttft_p50_s: windows.ttft(50),
            ttft_p95_s: windows.ttft(95),
            ttft_p99_s: windows.ttft(99),
            baseline: windows.baseline().map(|(mean, windows)| Baseline {
                windows,
                tokens: mean.input + mean.output,
                cost_usd: mean.cost_usd,
                calls: mean.calls,
                errors: mean.errors,
            }),
        }
    }
}

/// An alert raised and not cleared yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ActiveAlert {
    /// The rule.
    pub rule: String,
    /// The kind of key.
    pub scope: Scope,
    /// The key.
    pub key: String,
    /// For how long, in seconds.
    pub firing_seconds: f64,
}

/// Counters of the monitor itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MonitorStats {
    /// Calls seen (generations and embeddings, refusals included).
    pub events: u64,
    /// Models tracked now.
    pub models: usize,
    /// Providers tracked now.
    pub providers: usize,
    /// Distinct ids tracked now.
    pub distinct_ids: usize,
    /// Keys evicted to make room (least recently seen first), all scopes.
    pub evicted: u64,
    /// Alerts raised so far.
    pub alerts_raised: u64,
    /// Alerts cleared so far.
    pub alerts_cleared: u64,
    /// Alerts (raises or clears) lost because the alert queue was full or stopped.
    pub alerts_dropped: u64,
}

/// Every tracked key's current window: [`Monitor::snapshot`](super::Monitor::snapshot).
///
/// It serializes to JSON for a health page. Each list is sorted by tokens, most first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Snapshot {
    /// The rolling window, in seconds.
    pub window_seconds: f64,
    /// Per model.
    pub models: Vec<KeyFigures>,
    /// Per provider.
    pub providers: Vec<KeyFigures>,
    /// Per distinct id.
    pub distinct_ids: Vec<KeyFigures>,
    /// Alerts raised and not cleared.
    pub active_alerts: Vec<ActiveAlert>,
    /// The monitor's own counters.
    pub stats: MonitorStats,
}

impl Snapshot {
    /// The rows of one scope.
    pub fn scope(&self, scope: Scope) -> &[KeyFigures] {
        match scope {
            Scope::Model => &self.models,
            Scope::Provider => &self.providers,
            Scope::DistinctId => &self.distinct_ids,
        }
    }

    /// The row of `key` in `scope`, if it is tracked.
    pub fn get(&self, scope: Scope, key: &str) -> Option<&KeyFigures> {
        self.scope(scope).iter().find(|figures| figures.key == key)
    }
}
