//! Rules: what to watch, over which keys, and when it is worth an alert.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::window::{Sample, Sums, Windows};
use crate::event::ErrorKind;

/// How long a rule stays quiet for a key after it raised an alert for it, unless the rule says.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(10 * 60);
/// The calls a window needs before a rate or percentile rule reads it, unless the rule says.
pub const DEFAULT_MIN_CALLS: u64 = 10;

/// The keys a rule (and a [`KeyFigures`](super::KeyFigures) row) is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Scope {
    /// Each model (the response's model name, else the request's).
    Model,
    /// Each provider (`openai`, `anthropic`, ...).
    Provider,
    /// Each distinct id (the person a call is for); personless calls have none.
    DistinctId,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 3] = [Scope::Model, Scope::Provider, Scope::DistinctId];

    /// `model`, `provider` or `distinct_id`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Model => "model",
            Scope::Provider => "provider",
            Scope::DistinctId => "distinct_id",
        }
    }

    pub(super) fn index(self) -> usize {
        match self {
            Scope::Model => 0,
            Scope::Provider => 1,
            Scope::DistinctId => 2,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule measures over the window of a key.
///
/// Tokens count every prompt token, cached ones included, whatever the provider's convention
/// (OpenAI counts cache reads inside the input, Anthropic apart from it). Calls refused by a
/// budget are not calls: they count only as errors of kind [`ErrorKind::Budget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Metric {
    /// Input plus output tokens (`tokens`).
    Tokens,
    /// Prompt tokens, cached ones included (`input_tokens`).
    InputTokens,
    /// Output tokens, reasoning included (`output_tokens`).
    OutputTokens,
    /// Prompt tokens read from the provider's cache (`cached_tokens`).
    CachedTokens,
    /// Cost in USD: the event's own, else priced from the monitor's table (`cost_usd`).
    CostUsd,
    /// Calls made (`calls`).
    Calls,
    /// Failed calls (`errors`).
    Errors,
    /// Errors of one kind, refusals by a budget included for [`ErrorKind::Budget`]
    /// (`errors:<kind>`, e.g. `errors:rate_limit`).
    ErrorsOf(ErrorKind),
    /// Failed calls over calls, 0 to 1 (`error_rate`).
    ErrorRate,
    /// A percentile of latency in seconds, 1 to 99 (`latency_p95`).
    Latency(u8),
    /// A percentile of time to first token in seconds, streams only (`ttft_p95`).
    TimeToFirstToken(u8),
}

impl Metric {
    /// The name rules files and alert events use: `tokens`, `cost_usd`, `error_rate`,
    /// `errors:rate_limit`, `latency_p95`, ...
    pub fn name(&self) -> Cow<'static, str> {
        match self {
            Metric::Tokens => "tokens".into(),
            Metric::InputTokens => "input_tokens".into(),
            Metric::OutputTokens => "output_tokens".into(),
            Metric::CachedTokens => "cached_tokens".into(),
            Metric::CostUsd => "cost_usd".into(),
            Metric::Calls => "calls".into(),
            Metric::Errors => "errors".into(),
            Metric::ErrorsOf(kind) => format!("errors:{kind}").into(),
            Metric::ErrorRate => "error_rate".into(),
            Metric::Latency(percentile) => format!("latency_p{percentile}").into(),
            Metric::TimeToFirstToken(percentile) => format!("ttft_p{percentile}").into(),
        }
    }

    /// The metric a name stands for, as [`Metric::name`] writes it.
    ///
    /// ```
    /// use traced_llm::event::ErrorKind;
    /// use traced_llm::monitor::Metric;
    ///
    /// assert_eq!(Metric::parse("latency_p95"), Some(Metric::Latency(95)));
    /// assert_eq!(Metric::parse("errors:rate_limit"), Some(Metric::ErrorsOf(ErrorKind::RateLimit)));
    /// assert_eq!(Metric::parse("tokenz"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Metric> {
        Some(match name {
            "tokens" => Metric::Tokens,
            "input_tokens" => Metric::InputTokens,
            "output_tokens" => Metric::OutputTokens,
            "cached_tokens" => Metric::CachedTokens,
            "cost_usd" => Metric::CostUsd,
            "calls" => Metric::Calls,
            "errors" => Metric::Errors,
            "error_rate" => Metric::ErrorRate,
            _ => {
                if let Some(kind) = name.strip_prefix("errors:") {
                    return super::window::ALL_KINDS
                        .into_iter()
                        .find(|candidate| candidate.as_str() == kind)
                        .map(Metric::ErrorsOf);
                }
                let (percentile, latency) = match name.strip_prefix("latency_p") {
                    Some(percentile) => (percentile, true),
                    None => (name.strip_prefix("ttft_p")?, false),
                };
                let percentile: u8 = percentile.parse().ok()?;
                if latency {
                    Metric::Latency(percentile)
                } else {
                    Metric::TimeToFirstToken(percentile)
                }
            }
        })
    }

    /// Whether past windows are kept for this metric, so that it can be "unusual".
    pub fn has_baseline(&self) -> bool {
        matches!(
            self,
            Metric::Tokens
                | Metric::InputTokens
                | Metric::OutputTokens
                | Metric::CachedTokens
                | Metric::CostUsd
                | Metric::Calls
                | Metric::Errors
        )
    }

    /// Rates and percentiles mean little over a handful of calls.
    fn default_min_calls(&self) -> u64 {
        match self {
            Metric::ErrorRate | Metric::Latency(_) | Metric::TimeToFirstToken(_) => {
                DEFAULT_MIN_CALLS
            }
            _ => 0,
        }
    }

    /// The metric's value in `sums`; percentiles and kinds read the windows.
    fn value(&self, sums: &Sums, windows: &Windows<'_>) -> Option<f64> {
        Some(match self {
            Metric::Tokens => sums.input + sums.output,
            Metric::InputTokens => sums.input,
            Metric::OutputTokens => sums.output,
            Metric::CachedTokens => sums.cached,
            Metric::CostUsd => sums.cost_usd,
            Metric::Calls => sums.calls,
            Metric::Errors => sums.errors,
            Metric::ErrorsOf(kind) => windows.kind(*kind) as f64,
            Metric::ErrorRate if sums.calls > 0.0 => sums.errors / sums.calls,
            Metric::ErrorRate => 0.0,
            Metric::Latency(percentile) => windows.latency(*percentile)?,
            Metric::TimeToFirstToken(percentile) => windows.ttft(*percentile)?,
        })
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// When a rule breaches.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Condition {
    /// The window's value is above this threshold (in the metric's unit: tokens, USD, calls, a
    /// rate from 0 to 1, seconds).
    Above(f64),
    /// The window's value is above `factor` times the key's baseline: the mean of its past
    /// whole windows.
    Unusual {
        /// How many times the baseline is unusual (e.g. 5 for "five times the usual").
        factor: f64,
    },
}

impl Condition {
    /// `above` or `unusual`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Condition::Above(_) => "above",
            Condition::Unusual { .. } => "unusual",
        }
    }
}

/// A rule: a metric, the keys it is read for, when it breaches, and how often it may alert.
///
/// A rule raises an alert for a key when a call of that key makes it breach, unless it raised
/// one for the same key less than its cooldown ago; it sends a clear when the condition ends (on
/// a later call of the key, or at the monitor's background evaluation, every second by default).
/// While the cooldown runs, a new breach is held back, and raised when the cooldown ends if the
/// condition still holds.
///
/// ```
/// use std::time::Duration;
/// use traced_llm::monitor::{Metric, Rule, Scope};
///
/// let rules = [
///     // More than 200,000 tokens per distinct id in the window.
///     Rule::above("tokens-per-user", Metric::Tokens, Scope::DistinctId, 200_000.0),
///     // An error rate above 20 %, once the window has 50 calls.
///     Rule::above("error-rate", Metric::ErrorRate, Scope::Model, 0.2).min_calls(50),
///     // A p95 latency above 20 seconds.
///     Rule::above("slow", Metric::Latency(95), Scope::Model, 20.0),
///     // Five times the user's usual tokens, and at least 20,000.
///     Rule::unusual("unusual-tokens", Metric::Tokens, Scope::DistinctId, 5.0)
///         .at_least(20_000.0)
///         .cooldown(Duration::from_secs(30 * 60)),
/// ];
/// # let _ = rules;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    name: String,
    metric: Metric,
    scope: Scope,
    condition: Condition,
    at_least: f64,
    min_calls: Option<u64>,
    cooldown: Duration,
    key: Option<String>,
}

impl Rule {
    /// Breaches when `metric` over the window of a key of `scope` is above `threshold`.
    pub fn above(name: impl Into<String>, metric: Metric, scope: Scope, threshold: f64) -> Self {
        Self::new(name, metric, scope, Condition::Above(threshold))
    }

    /// Breaches when `metric` over the window of a key of `scope` is above `factor` times the
    /// key's baseline. Give it a floor with [`Rule::at_least`], or a key that was quiet for an
    /// hour breaches on its first call.
    pub fn unusual(name: impl Into<String>, metric: Metric, scope: Scope, factor: f64) -> Self {
        Self::new(name, metric, scope, Condition::Unusual { factor })
    }

    fn new(name: impl Into<String>, metric: Metric, scope: Scope, condition: Condition) -> Self {
        Self {
            name: name.into(),
            metric,
            scope,
            condition,
            at_least: 0.0,
            min_calls: None,
            cooldown: DEFAULT_COOLDOWN,
            key: None,
        }
    }

    /// Breaches only when the value is also at least `value`.
    #[must_use]
    pub fn at_least(mut self, value: f64) -> Self {
        self.at_least = value;
        self
    }

    /// Reads a window only once it holds `calls` calls (default [`DEFAULT_MIN_CALLS`] for rates
    /// and percentiles, 0 for the rest).
    #[must_use]
    pub fn min_calls(mut self, calls: u64) -> Self {
        self.min_calls = Some(calls);
        self
    }

    /// How long the rule stays quiet for a key after raising an alert for it (default
    /// [`DEFAULT_COOLDOWN`]).
    #[must_use]
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// Watches only this key (one model, say) instead of every key of the scope.
    #[must_use]
    pub fn only(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The rule's name, unique in a monitor.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What it measures.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The keys it watches.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// When it breaches.
    pub fn condition(&self) -> Condition {
        self.condition
    }

    /// Its cooldown.
    pub fn cooldown_duration(&self) -> Duration {
        self.cooldown
    }

    /// The one key it watches, if it watches one.
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// The calls a window needs before the rule reads it.
    pub fn min_calls_needed(&self) -> u64 {
        self.min_calls
            .unwrap_or_else(|| self.metric.default_min_calls())
    }

    /// Why the rule cannot work, if it cannot.
    pub(super) fn problem(&self) -> Option<String> {
        let finite = |value: f64| value.is_finite() && value >= 0.0;
        if self.name.trim().is_empty() {
            return Some("a rule needs a name".into());
        }
        if let Metric::Latency(percentile) | Metric::TimeToFirstToken(percentile) = self.metric {
            if !(1..=99).contains(&percentile) {
                return Some(format!("percentile {percentile} is out of range (1 to 99)"));
            }
        }
        match self.condition {
            Condition::Above(threshold) if !finite(threshold) => {
                return Some(format!(
                    "threshold {threshold} must be a finite number of 0 or more"
                ))
            }
            Condition::Above(threshold) if self.metric == Metric::ErrorRate && threshold > 1.0 => {
                return Some(format!(
                    "an error rate is between 0 and 1; {threshold} can never be exceeded (write 0.2 for 20 %)"
                ))
            }
            Condition::Unusual { factor } if !(factor.is_finite() && factor > 0.0) => {
                return Some(format!("factor {factor} must be a finite number above 0"))
            }
            Condition::Unusual { .. } if !self.metric.has_baseline() => {
                return Some(format!(
                    "`{}` keeps no baseline, so it cannot be unusual; use tokens, input_tokens, output_tokens, cached_tokens, cost_usd, calls or errors",
                    self.metric
                ))
            }
            _ => {}
        }
        if !finite(self.at_least) {
            return Some(format!(
                "at_least {} must be a finite number of 0 or more",
                self.at_least
            ));
        }
        None
    }

    /// Whether the rule could begin to breach now, judged cheaply from the window's totals and
    /// the call just counted (`None` for an evaluation without a call). `false` means it
    /// cannot: a percentile only rises above a threshold with a call above it, a kind's count
    /// only with an error of that kind, and nothing breaches below `at_least` or `min_calls`.
    /// The hot path reads percentiles, kinds and baselines only past this check.
    pub(super) fn could_breach(&self, sums: &Sums, sample: Option<&Sample>) -> bool {
        if sums.calls < self.min_calls_needed() as f64 {
            return false;
        }
        let cheap = match self.metric {
            Metric::Tokens => Some(sums.input + sums.output),
            Metric::InputTokens => Some(sums.input),
            Metric::OutputTokens => Some(sums.output),
            Metric::CachedTokens => Some(sums.cached),
            Metric::CostUsd => Some(sums.cost_usd),
            Metric::Calls => Some(sums.calls),
            Metric::Errors => Some(sums.errors),
            Metric::ErrorRate if sums.calls > 0.0 => Some(sums.errors / sums.calls),
            Metric::ErrorRate => Some(0.0),
            Metric::ErrorsOf(_) | Metric::Latency(_) | Metric::TimeToFirstToken(_) => None,
        };
        if let Some(value) = cheap {
            return value >= self.at_least
                && match self.condition {
                    Condition::Above(threshold) => value > threshold,
                    Condition::Unusual { .. } => true,
                };
        }
        let Some(sample) = sample else {
            return true;
        };
        let seconds = |micros: u64| micros as f64 / 1e6;
        let threshold = match self.condition {
            Condition::Above(threshold) => threshold.max(self.at_least),
            Condition::Unusual { .. } => self.at_least,
        };
        match self.metric {
            Metric::ErrorsOf(kind) => sample.error == Some(kind),
            Metric::Latency(_) => !sample.refused() && seconds(sample.latency_us) > threshold,
            Metric::TimeToFirstToken(_) => {
                sample.ttft_us.is_some_and(|ttft| seconds(ttft) > threshold)
            }
            _ => true,
        }
    }

    /// What the rule reads in `windows` now.
    pub(super) fn read(&self, sums: &Sums, windows: &Windows<'_>) -> Reading {
        let observed = self.metric.value(sums, windows);
        let enough_calls = sums.calls >= self.min_calls_needed() as f64;
        match self.condition {
            Condition::Above(threshold) => Reading {
                observed: observed.unwrap_or(0.0),
                threshold,
                baseline: None,
                breach: enough_calls
                    && observed.is_some_and(|value| value > threshold && value >= self.at_least),
            },
            Condition::Unusual { factor } => {
                // Below the floor it cannot breach: the baseline is not worth reading.
                let baseline = if observed.is_some_and(|value| value >= self.at_least) {
                    windows
                        .baseline()
                        .and_then(|(mean, _)| self.metric.value(&mean, windows))
                } else {
                    None
                };
                let threshold = baseline.map_or(f64::INFINITY, |baseline| factor * baseline);
                Reading {
                    observed: observed.unwrap_or(0.0),
                    threshold,
                    baseline,
                    breach: enough_calls
                        && observed.is_some_and(|value| {
                            baseline.is_some() && value > threshold && value >= self.at_least
                        }),
                }
            }
        }
    }
}

/// What a rule read for one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Reading {
    pub(super) observed: f64,
    pub(super) threshold: f64,
    pub(super) baseline: Option<f64>,
    pub(super) breach: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_round_trip() {
        let metrics = [
            Metric::Tokens,
            Metric::InputTokens,
            Metric::OutputTokens,
            Metric::CachedTokens,
            Metric::CostUsd,
            Metric::Calls,
            Metric::Errors,
            Metric::ErrorsOf(ErrorKind::RateLimit),
            Metric::ErrorsOf(ErrorKind::Budget),
            Metric::ErrorRate,
            Metric::Latency(95),
            Metric::TimeToFirstToken(50),
        ];
        for metric in metrics {
            assert_eq!(Metric::parse(&metric.name()), Some(metric), "{metric}");
        }
        for bad in ["latency_p", "latency_px", "errors:nope", "ttft", ""] {
            assert_eq!(Metric::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn rules_that_cannot_work_say_why() {
        let bad = [
            Rule::above(" ", Metric::Tokens, Scope::Model, 1.0),
            Rule::above("r", Metric::Tokens, Scope::Model, f64::NAN),
            Rule::above("r", Metric::ErrorRate, Scope::Model, 20.0),
            Rule::above("r", Metric::Latency(100), Scope::Model, 1.0),
            Rule::unusual("r", Metric::ErrorRate, Scope::Model, 3.0),
            Rule::unusual("r", Metric::Tokens, Scope::Model, 0.0),
            Rule::above("r", Metric::Tokens, Scope::Model, 1.0).at_least(-1.0),
        ];
        for rule in bad {
            assert!(rule.problem().is_some(), "{rule:?}");
        }
        assert_eq!(
            Rule::unusual("r", Metric::CostUsd, Scope::DistinctId, 5.0).problem(),
            None
        );
    }
}
