//! Monitor settings, rules and budgets from a small TOML or JSON file, so operators can change
//! them without a rebuild.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;

use super::budget::Budget;
use super::rule::{Metric, Rule, Scope};

/// What a rules file says: window settings, rules and budgets. Everything is optional; what the
/// file leaves out keeps the builder's value or default.
///
/// The TOML form (JSON has the same fields, `rules` an array of objects). Metrics: `tokens`,
/// `input_tokens`, `output_tokens`, `cached_tokens`, `cost_usd`, `calls`, `errors`,
/// `errors:<kind>`, `error_rate`, `latency_p<N>`, `ttft_p<N>` (see [`Metric`]); durations as
/// `"90s"`, `"10m"`, `"1h 30m"` or seconds.
///
/// ```
/// use traced_llm::monitor::MonitorConfig;
///
/// let config = MonitorConfig::from_toml_str(r#"
/// window = "10m"             # the rolling window every rule and budget reads
/// buckets = 10               # its resolution: 10 buckets of 1 minute
/// baseline_windows = 6       # past windows "unusual" compares with
/// max_distinct_ids = 10000   # least recently seen ids are evicted beyond this
///
/// [budget]                   # per distinct id and window
/// tokens = 200000
/// cost_usd = 5.0
/// distinct_ids = { "team-batch" = { tokens = 2000000 } }
///
/// [[rules]]
/// name = "tokens-per-user"
/// metric = "tokens"          # or input_tokens, cost_usd, errors:rate_limit, latency_p95, ...
/// per = "distinct_id"        # model, provider or distinct_id
/// above = 200000
///
/// [[rules]]
/// name = "unusual-tokens"
/// metric = "tokens"
/// per = "distinct_id"
/// unusual = 5                # five times the id's mean past window...
/// at_least = 20000           # ...and at least this much
/// cooldown = "30m"
///
/// [[rules]]
/// name = "error-rate"
/// metric = "error_rate"
/// per = "model"
/// above = 0.2
/// min_calls = 50
///
/// [[rules]]
/// name = "slow"
/// metric = "latency_p95"     # seconds
/// per = "model"
/// key = "gpt-5.5"            # this model only
/// above = 20
/// "#)?;
/// assert_eq!(config.rules.len(), 4);
/// # Ok::<(), traced_llm::monitor::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MonitorConfig {
    /// The rolling window.
    pub window: Option<Duration>,
    /// Buckets per window.
    pub buckets: Option<u32>,
    /// Past windows kept for baselines.
    pub baseline_windows: Option<u32>,
    /// Whole windows a key must have been tracked for before it has a baseline.
    pub min_baseline_windows: Option<u32>,
    /// Distinct ids tracked at most.
    pub max_distinct_ids: Option<usize>,
    /// Models tracked at most.
    pub max_models: Option<usize>,
    /// Providers tracked at most.
    pub max_providers: Option<usize>,
    /// The rules.
    pub rules: Vec<Rule>,
    /// The budget of every distinct id without one of its own.
    pub budget: Option<Budget>,
    /// Budgets of particular distinct ids.
    pub budgets: BTreeMap<String, Budget>,
}

impl MonitorConfig {
    /// Reads TOML.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the line and column of the first problem: bad syntax, an
    /// unknown setting, metric or scope, a rule that cannot work.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|err| {
            let (line, column) = err
                .span()
                .map(|span| line_and_column(text, span.start))
                .unzip();
            ConfigError {
                origin: None,
                line,
                column,
                message: err.message().trim_end().to_owned(),
            }
        })?;
        Ok(file.into())
    }

    /// Reads JSON.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the line and column of the first problem.
    pub fn from_json_str(text: &str) -> Result<Self, ConfigError> {
        let file: File = serde_json::from_str(text).map_err(|err| {
            let (line, column) = (err.line(), err.column());
            let full = err.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
            ConfigError {
                origin: None,
                line: (line > 0).then_some(line),
                column: (line > 0).then_some(column),
                message,
            }
        })?;
        Ok(file.into())
    }

    /// Reads a `.toml` or `.json` file.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the file (and the line, for a bad file), when it cannot be
    /// read, has another extension, or is invalid.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError {
            origin: Some(origin.clone()),
            line: None,
            column: None,
            message: format!("cannot read the file: {err}"),
        })?;
        let parsed = match path.extension().and_then(|extension| extension.to_str()) {
            Some(extension) if extension.eq_ignore_ascii_case("toml") => Self::from_toml_str(&text),
            Some(extension) if extension.eq_ignore_ascii_case("json") => Self::from_json_str(&text),
            _ => Err(ConfigError {
                origin: None,
                line: None,
                column: None,
                message: "a rules file ends in .toml or .json".to_owned(),
            }),
        };
        parsed.map_err(|err| ConfigError {
            origin: Some(origin),
            ..err
        })
    }
}

/// A rules file that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file, when the text came from one.
    pub origin: Option<String>,
    /// The line of the problem, from 1.
    pub line: Option<usize>,
    /// The column of the problem, from 1.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid monitor rules")?;
        if let Some(origin) = &self.origin {
            write!(f, " in {origin}")?;
        }
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, " at line {line}, column {column}")?,
            (Some(line), None) => write!(f, " at line {line}")?,
            _ => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// The line and column (from 1) of byte `offset` in `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |newline| {
            before[newline + 1..].chars().count()
        })
        + 1;
    (line, column)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, deserialize_with = "duration")]
    window: Option<Duration>,
    buckets: Option<u32>,
    baseline_windows: Option<u32>,
    min_baseline_windows: Option<u32>,
    max_distinct_ids: Option<usize>,
    max_models: Option<usize>,
    max_providers: Option<usize>,
    #[serde(default)]
    rules: Vec<FileRule>,
    budget: Option<FileBudget>,
}

impl From<File> for MonitorConfig {
    fn from(file: File) -> Self {
        let (budget, budgets) = match file.budget {
            Some(FileBudget {
                tokens,
                cost_usd,
                distinct_ids,
            }) => {
                let default = (tokens.is_some() || cost_usd.is_some()).then_some(Budget {
                    max_tokens: tokens,
                    max_cost_usd: cost_usd,
                });
                (default, distinct_ids)
            }
            None => (None, BTreeMap::new()),
        };
        Self {
            window: file.window,
            buckets: file.buckets,
            baseline_windows: file.baseline_windows,
            min_baseline_windows: file.min_baseline_windows,
            max_distinct_ids: file.max_distinct_ids,
            max_models: file.max_models,
            max_providers: file.max_providers,
            rules: file.rules.into_iter().map(|rule| rule.0).collect(),
            budget,
            budgets,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBudget {
    tokens: Option<u64>,
    cost_usd: Option<f64>,
    #[serde(default)]
    distinct_ids: BTreeMap<String, Budget>,
}

/// A rule, checked while it is read so that the error carries its position.
#[derive(Deserialize)]
#[serde(try_from = "RuleFields")]
struct FileRule(Rule);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFields {
    name: String,
    metric: MetricName,
    per: Scope,
    above: Option<f64>,
    unusual: Option<f64>,
    at_least: Option<f64>,
    min_calls: Option<u64>,
    #[serde(default, deserialize_with = "duration")]
    cooldown: Option<Duration>,
    key: Option<String>,
}

impl TryFrom<RuleFields> for FileRule {
    type Error = String;

    fn try_from(fields: RuleFields) -> Result<Self, String> {
        let RuleFields {
            name,
            metric,
            per,
            above,
            unusual,
            at_least,
            min_calls,
            cooldown,
            key,
        } = fields;
        let mut rule = match (above, unusual) {
            (Some(threshold), None) => Rule::above(name.clone(), metric.0, per, threshold),
            (None, Some(factor)) => Rule::unusual(name.clone(), metric.0, per, factor),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "rule `{name}` has both `above` and `unusual`; give one"
                ))
            }
            (None, None) => {
                return Err(format!(
                    "rule `{name}` needs `above = <threshold>` or `unusual = <factor>`"
                ))
            }
        };
        if let Some(value) = at_least {
            rule = rule.at_least(value);
        }
        if let Some(calls) = min_calls {
            rule = rule.min_calls(calls);
        }
        if let Some(cooldown) = cooldown {
            rule = rule.cooldown(cooldown);
        }
        if let Some(key) = key {
            rule = rule.only(key);
        }
        match rule.problem() {
            Some(problem) => Err(format!("rule `{name}`: {problem}")),
            None => Ok(FileRule(rule)),
        }
    }
}

struct MetricName(Metric);

impl<'de> Deserialize<'de> for MetricName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Metric::parse(&name).map(MetricName).ok_or_else(|| {
            de::Error::custom(format!(
                "unknown metric `{name}`, expected tokens, input_tokens, output_tokens, cached_tokens, cost_usd, calls, errors, errors:<kind> (e.g. errors:rate_limit), error_rate, latency_p<1-99> or ttft_p<1-99>"
            ))
        })
    }
}

/// A duration as text (`"90s"`, `"10m"`, `"1h 30m"`) or a number of seconds.
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Seconds(f64),
    }
    let parsed = match Raw::deserialize(deserializer)? {
        Raw::Text(text) => humantime::parse_duration(&text).map_err(|err| {
            de::Error::custom(format!(
                "`{text}` is not a duration ({err}); write e.g. \"90s\", \"10m\" or \"1h 30m\""
            ))
        })?,
        Raw::Seconds(seconds) => Duration::try_from_secs_f64(seconds)
            .map_err(|_| de::Error::custom(format!("{seconds} is not a number of seconds")))?,
    };
    Ok(Some(parsed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_count_from_one() {
        let text = "a\nbc\nd";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 3), (2, 2));
        assert_eq!(line_and_column(text, 5), (3, 1));
    }
}
