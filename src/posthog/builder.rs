//! Configuration of the PostHog sink: defaults, environment and validation.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::retry::RetryPolicy;
use super::stats::DeliveryError;
use super::PosthogSink;
use crate::error::{Error, Result};
use crate::util::secret::Secret;
use crate::util::url::BaseUrl;
use crate::util::{env, url};

/// PostHog Cloud US ingestion host.
pub const DEFAULT_HOST: &str = "https://us.i.posthog.com";
/// PostHog Cloud EU ingestion host.
pub const EU_HOST: &str = "https://eu.i.posthog.com";
/// Events per request; PostHog's Python SDK sends the same.
pub const DEFAULT_BATCH_SIZE: usize = 100;
/// How long a partial batch may wait before it is sent, as PostHog's Python SDK and
/// OpenTelemetry do.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(5);
/// Raw events waiting to be encoded before `capture` drops (and counts) new ones. Encoded
/// batches waiting for the server are bounded apart, by [`DEFAULT_MAX_BUFFER_BYTES`].
pub const DEFAULT_MAX_QUEUE_LEN: usize = 100_000;
/// Estimated bytes of raw events waiting to be encoded (an event of about 1 KB of JSON holds
/// about 1.8 KB in memory before it is encoded).
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// Bytes per request body as sent (compressed when gzip is on): fits a 2 MiB route with room
/// for headers.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 1_900_000;
/// Per-event size budget on `/batch/`, counting quotes and backslashes twice: PostHog
/// re-escapes the event into a Kafka record capped at 1,000,000 bytes, so this leaves a margin.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 900_000;
/// Per-event size budget on the AI route (`/i/v0/ai/batch/`), which takes larger events;
/// an event it still refuses as too large is shrunk to [`DEFAULT_MAX_EVENT_BYTES`] and sent to
/// `/batch/`.
pub const DEFAULT_MAX_AI_EVENT_BYTES: usize = 4 * 1024 * 1024;
/// Bytes per request body on the AI route, as sent.
pub const DEFAULT_MAX_AI_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Compressed batches held while PostHog is unavailable, about 400,000 events of 1 KB.
pub const DEFAULT_MAX_BUFFER_BYTES: usize = 64 * 1024 * 1024;
/// How long a batch may wait for PostHog before it is dropped (and counted).
pub const DEFAULT_MAX_BUFFER_AGE: Duration = Duration::from_secs(3600);
/// Bytes the spool may hold on disk, when one is configured.
pub const DEFAULT_SPOOL_MAX_BYTES: u64 = 256 * 1024 * 1024;
/// Requests in flight at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4;
/// How long one capture request may take, connection included.
pub const DEFAULT_CAPTURE_TIMEOUT: Duration = Duration::from_secs(10);
/// Environment variable holding the project API key.
pub const ENV_API_KEY: &str = "POSTHOG_API_KEY";
/// Environment variable holding the host.
pub const ENV_HOST: &str = "POSTHOG_HOST";
/// Environment variable holding the trace sample rate, as PostHog's SDKs read it.
pub const ENV_SAMPLE_RATE: &str = "POSTHOG_AI_TRACE_SAMPLE_RATE";

/// The smallest per-event budget accepted: room for ids, counts and truncation markers.
const MIN_EVENT_BYTES: usize = 16 * 1024;

/// Which capture route batches are posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Endpoint {
    /// `$ai_*` events to PostHog's AI route (`/i/v0/ai/batch/`, larger per-event limit), every
    /// other event to `/batch/`. When the server answers 404 or 405 on the AI route, the sink
    /// uses `/batch/` for the rest of its life and re-sends the refused batch there, each
    /// event within `/batch/`'s budget.
    #[default]
    Auto,
    /// `/batch/`, the route every PostHog SDK uses by default.
    Batch,
    /// `/i/v0/ai/batch/` for every event, with no fallback: newer servers only.
    AiBatch,
}

impl Endpoint {
    /// The path appended to the host: `/batch/`, or `/i/v0/ai/batch/` for
    /// [`Endpoint::AiBatch`] (and for `$ai_*` events with [`Endpoint::Auto`]).
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Batch | Endpoint::Auto => BATCH_PATH,
            Endpoint::AiBatch => AI_BATCH_PATH,
        }
    }
}

const BATCH_PATH: &str = "/batch/";
const AI_BATCH_PATH: &str = "/i/v0/ai/batch/";

pub use crate::sink::batch::QueueFullPolicy;

pub(crate) type ErrorCallback = Arc<dyn Fn(&DeliveryError) + Send + Sync>;

/// Builds a [`PosthogSink`]; see [`PosthogSink::builder`].
///
/// Setters never fail: `build()` checks everything and returns the first bad value. Inside
/// `build()`, values set in code win over the environment ([`ENV_API_KEY`], [`ENV_HOST`]),
/// which wins over the `DEFAULT_*` constants.
///
/// ```no_run
/// use std::time::Duration;
/// use traced_llm::posthog::{PosthogSink, QueueFullPolicy};
///
/// let sink = PosthogSink::builder()
///     .api_key("phc_project_key")
///     .host("https://eu.i.posthog.com")
///     .flush_interval(Duration::from_secs(2))
///     .queue_full_policy(QueueFullPolicy::DropOldest)
///     .build()?;
/// # Ok::<(), traced_llm::Error>(())
/// ```
#[must_use]
#[derive(Clone)]
pub struct PosthogSinkBuilder {
    pub(crate) api_key: Option<Secret>,
    pub(crate) host: Option<String>,
    pub(crate) endpoint: Endpoint,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) max_queue_len: usize,
    pub(crate) max_queue_bytes: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) max_buffer_bytes: usize,
    pub(crate) max_buffer_age: Duration,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) spool_max_bytes: u64,
    pub(crate) sample_rate: Option<f64>,
    pub(crate) request_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) gzip: bool,
    pub(crate) queue_full_policy: QueueFullPolicy,
    pub(crate) on_error: Option<ErrorCallback>,
}

impl Default for PosthogSinkBuilder {
    fn default() -> Self {
        Self {
            api_key: None,
            host: None,
            endpoint: Endpoint::default(),
            batch_size: DEFAULT_BATCH_SIZE,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            max_queue_len: DEFAULT_MAX_QUEUE_LEN,
            max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_buffer_bytes: DEFAULT_MAX_BUFFER_BYTES,
            max_buffer_age: DEFAULT_MAX_BUFFER_AGE,
            spool_dir: None,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            sample_rate: None,
            request_timeout: DEFAULT_CAPTURE_TIMEOUT,
            retry: RetryPolicy::default(),
            gzip: true,
            queue_full_policy: QueueFullPolicy::default(),
            on_error: None,
        }
    }
}

impl PosthogSinkBuilder {
    /// A builder with every default and no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// The project API key (`phc_…`); [`ENV_API_KEY`] when not set here. Required.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Secret::new(key));
        self
    }

    /// The PostHog host: [`DEFAULT_HOST`] (US), [`EU_HOST`], or a self-hosted URL, with or
    /// without a path prefix; [`ENV_HOST`] when not set here, else [`DEFAULT_HOST`].
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The route batches are posted to; [`Endpoint::Auto`] by default.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Events per request (default [`DEFAULT_BATCH_SIZE`]); a full batch leaves at once.
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events;
        self
    }

    /// How long a partial batch waits (default [`DEFAULT_FLUSH_INTERVAL`]).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Raw events waiting to be encoded before the [`QueueFullPolicy`] applies (default
    /// [`DEFAULT_MAX_QUEUE_LEN`]).
    pub fn max_queue_len(mut self, events: usize) -> Self {
        self.max_queue_len = events;
        self
    }

    /// Estimated bytes of raw events waiting to be encoded before the [`QueueFullPolicy`]
    /// applies (default [`DEFAULT_MAX_QUEUE_BYTES`]).
    pub fn max_queue_bytes(mut self, bytes: usize) -> Self {
        self.max_queue_bytes = bytes;
        self
    }

    /// Bytes per request body as sent, compressed when gzip is on (default
    /// [`DEFAULT_MAX_BATCH_BYTES`] on `/batch/`, [`DEFAULT_MAX_AI_BATCH_BYTES`] on the AI
    /// route; a value set here holds on both).
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Per-event budget, quotes and backslashes counted twice (default
    /// [`DEFAULT_MAX_EVENT_BYTES`] on `/batch/`, [`DEFAULT_MAX_AI_EVENT_BYTES`] on the AI
    /// route; a value set here holds on both). Larger events are shrunk to fit; one that cannot be is
    /// dropped and counted (`dropped_oversize`), never sent to fail its batch.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// Bytes of compressed batches held while PostHog is unavailable (default
    /// [`DEFAULT_MAX_BUFFER_BYTES`]); when it is full, the oldest go to the spool, or are
    /// dropped and counted.
    pub fn max_buffer_bytes(mut self, bytes: usize) -> Self {
        self.max_buffer_bytes = bytes;
        self
    }

    /// How long a batch may wait for PostHog (default [`DEFAULT_MAX_BUFFER_AGE`]).
    pub fn max_buffer_age(mut self, age: Duration) -> Self {
        self.max_buffer_age = age;
        self
    }

    /// A directory for the durable spool (off by default). Batches that overflow the outage
    /// buffer, or that shutdown could not deliver by its deadline, are written there, and the
    /// next sink started with the same directory sends them first. One process owns a spool at
    /// a time: `build()` fails while another holds it.
    pub fn spool_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spool_dir = Some(dir.into());
        self
    }

    /// Bytes the spool may hold (default [`DEFAULT_SPOOL_MAX_BYTES`]); the oldest files make
    /// room for new ones, counted as dropped.
    pub fn spool_max_bytes(mut self, bytes: u64) -> Self {
        self.spool_max_bytes = bytes;
        self
    }

    /// Keeps this fraction of traces, in `[0, 1]` (default: all; [`ENV_SAMPLE_RATE`] when not
    /// set here). A trace is kept when the 32-bit FNV-1a hash of its `$ai_trace_id`, divided by
    /// 2^32, is below the rate, the algorithm PostHog proposed for its SDKs, so a whole trace
    /// is kept or left out, in every SDK alike. Kept events carry `$ai_trace_sample_rate`;
    /// events without a trace id are always kept; left-out events are counted
    /// ([`SinkStats::sampled_out`](super::SinkStats::sampled_out)).
    pub fn sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = Some(rate);
        self
    }

    /// How long one request may take (default [`DEFAULT_CAPTURE_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long batches wait, and how often the endpoint is probed, while PostHog is
    /// unavailable.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Gzip request bodies (on by default; PostHog accepts gzip on every version).
    pub fn gzip(mut self, enabled: bool) -> Self {
        self.gzip = enabled;
        self
    }

    /// What to drop when the queue is full (default [`QueueFullPolicy::DropNewest`]).
    pub fn queue_full_policy(mut self, policy: QueueFullPolicy) -> Self {
        self.queue_full_policy = policy;
        self
    }

    /// Called on the sink's thread for each batch finally lost (rejected, too large, refused
    /// key, buffer full, too old, or undelivered at shutdown). It gets counts and statuses, never the key or event content. Keep it quick and
    /// never block in it: the same thread keeps the flush and shutdown deadlines.
    pub fn on_error(mut self, callback: impl Fn(&DeliveryError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(callback));
        self
    }

    /// Checks the configuration and starts the background worker.
    ///
    /// # Errors
    /// [`Error::is_builder`] for the first invalid value: no key, a personal (`phx_`) key, a
    /// host that is not an `http(s)` URL, a zero size, count or duration, a sample rate outside
    /// `[0, 1]`, or a spool directory that cannot be used or that another process holds.
    pub fn build(self) -> Result<PosthogSink> {
        let config = self.validate()?;
        PosthogSink::start(config)
    }

    pub(crate) fn validate(self) -> Result<Config> {
        let api_key = match (&self.api_key, env::var(ENV_API_KEY)) {
            (Some(key), _) => key.clone(),
            (None, Some(key)) => Secret::new(key),
            (None, None) if env::is_set(ENV_API_KEY) => {
                return Err(Error::builder(format!(
                    "posthog: {ENV_API_KEY} is set but blank; give it the project API key (phc_…)"
                )))
            }
            (None, None) => {
                return Err(Error::builder(format!(
                    "posthog: no project API key (set it in code or in {ENV_API_KEY})"
                )))
            }
        };
        if api_key.is_blank() {
            return Err(Error::builder("posthog: the project API key is empty"));
        }
        let key = api_key.expose();
        if key.starts_with("phx_") {
            return Err(Error::builder(
                "posthog: a personal API key (phx_) was given; capture needs the project API key (phc_)",
            ));
        }
        if !key.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::builder(
                "posthog: the project API key holds whitespace or non-ASCII characters",
            ));
        }
        let env_host = env::var(ENV_HOST);
        let host = self
            .host
            .as_deref()
            .or(env_host.as_deref())
            .unwrap_or(DEFAULT_HOST)
            .trim();
        let batch_url = endpoint_url(host, BATCH_PATH)?;
        let ai_url = endpoint_url(host, AI_BATCH_PATH)?;
        if self.batch_size == 0 {
            return Err(Error::builder("posthog: batch size must be at least 1"));
        }
        if self.flush_interval.is_zero() {
            return Err(Error::builder("posthog: flush interval must not be zero"));
        }
        if self.max_queue_len == 0 {
            return Err(Error::builder(
                "posthog: maximum queue length must be at least 1",
            ));
        }
        if self.max_event_bytes < MIN_EVENT_BYTES {
            return Err(Error::builder(format!(
                "posthog: maximum event bytes must be at least {MIN_EVENT_BYTES}"
            )));
        }
        if self.max_batch_bytes < MIN_EVENT_BYTES {
            return Err(Error::builder(format!(
                "posthog: maximum batch bytes must be at least {MIN_EVENT_BYTES}"
            )));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::builder("posthog: request timeout must not be zero"));
        }
        if self.max_queue_bytes == 0 || self.max_buffer_bytes == 0 || self.spool_max_bytes == 0 {
            return Err(Error::builder(
                "posthog: queue, buffer and spool sizes must not be zero",
            ));
        }
        if self.max_buffer_age.is_zero() {
            return Err(Error::builder(
                "posthog: maximum buffer age must not be zero",
            ));
        }
        let retry = self.retry;
        if retry.initial_backoff.is_zero()
            || retry.max_backoff.is_zero()
            || retry.hang_after.is_zero()
        {
            return Err(Error::builder(
                "posthog: backoff and hang durations must not be zero",
            ));
        }
        let sample_rate = match self.sample_rate {
            Some(rate) if (0.0..=1.0).contains(&rate) => Some(rate),
            Some(rate) => {
                return Err(Error::builder(format!(
                    "posthog: sample rate {rate} is not between 0 and 1"
                )))
            }
            None => sample_rate_from_env(),
        }
        // A rate of 1 samples nothing out, and marks nothing.
        .filter(|rate| *rate < 1.0);
        Ok(Config {
            api_key,
            host: url::display(host),
            batch_url,
            ai_url,
            endpoint: self.endpoint,
            batch_size: self.batch_size,
            flush_interval: self.flush_interval,
            max_queue_len: self.max_queue_len,
            max_queue_bytes: self.max_queue_bytes,
            max_batch_bytes: self.max_batch_bytes,
            max_event_bytes: self.max_event_bytes,
            max_buffer_bytes: self.max_buffer_bytes,
            max_buffer_age: self.max_buffer_age,
            spool_dir: self.spool_dir,
            spool_max_bytes: self.spool_max_bytes,
            sample_rate,
            request_timeout: self.request_timeout,
            retry: self.retry,
            gzip: self.gzip,
            queue_full_policy: self.queue_full_policy,
            on_error: self.on_error,
        })
    }
}

impl fmt::Debug for PosthogSinkBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosthogSinkBuilder")
            .field("api_key", &self.api_key)
            .field(
                "host",
                &url::display(self.host.as_deref().unwrap_or(DEFAULT_HOST)),
            )
            .field("endpoint", &self.endpoint)
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("max_queue_len", &self.max_queue_len)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("max_buffer_bytes", &self.max_buffer_bytes)
            .field("max_buffer_age", &self.max_buffer_age)
            .field("spool_dir", &self.spool_dir)
            .field("sample_rate", &self.sample_rate)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("gzip", &self.gzip)
            .field("queue_full_policy", &self.queue_full_policy)
            .field("on_error", &self.on_error.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// A checked configuration.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) api_key: Secret,
    /// As safe to show: without user info or query values.
    pub(crate) host: String,
    pub(crate) batch_url: reqwest::Url,
    pub(crate) ai_url: reqwest::Url,
    pub(crate) endpoint: Endpoint,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) max_queue_len: usize,
    pub(crate) max_queue_bytes: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) max_buffer_bytes: usize,
    pub(crate) max_buffer_age: Duration,
    pub(crate) spool_dir: Option<PathBuf>,
    pub(crate) spool_max_bytes: u64,
    pub(crate) sample_rate: Option<f64>,
    pub(crate) request_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) gzip: bool,
    pub(crate) queue_full_policy: QueueFullPolicy,
    pub(crate) on_error: Option<ErrorCallback>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosthogSink")
            .field("api_key", &self.api_key)
            .field("host", &self.host)
            .field("endpoint", &self.endpoint)
            .field("batch_size", &self.batch_size)
            .field("flush_interval", &self.flush_interval)
            .field("max_queue_len", &self.max_queue_len)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("max_buffer_bytes", &self.max_buffer_bytes)
            .field("max_buffer_age", &self.max_buffer_age)
            .field("spool_dir", &self.spool_dir)
            .field("sample_rate", &self.sample_rate)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("gzip", &self.gzip)
            .field("queue_full_policy", &self.queue_full_policy)
            .finish_non_exhaustive()
    }
}

/// [`ENV_SAMPLE_RATE`], when it holds a rate in `[0, 1]`; any other value is ignored with a
/// warning, as PostHog's SDKs do.
fn sample_rate_from_env() -> Option<f64> {
    let text = std::env::var(ENV_SAMPLE_RATE).ok()?;
    match text.trim().parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Some(rate),
        _ => {
            tracing::warn!(
                target: "traced_llm::posthog",
                value = %text,
                "{ENV_SAMPLE_RATE} is not a rate between 0 and 1; sampling is off"
            );
            None
        }
    }
}

/// `host` joined with the endpoint's path, keeping any path prefix of a self-hosted install.
fn endpoint_url(host: &str, path: &str) -> Result<reqwest::Url> {
    BaseUrl::parse(host, "posthog: host")?.join(path, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(builder: PosthogSinkBuilder) -> String {
        builder.validate().unwrap_err().to_string()
    }

    #[test]
    fn url_keeps_path_prefix_and_picks_endpoint() {
        let url = endpoint_url("https://ph.example.com/ingest/", Endpoint::AiBatch.path()).unwrap();
        assert_eq!(url.as_str(), "https://ph.example.com/ingest/i/v0/ai/batch/");
        let url = endpoint_url(DEFAULT_HOST, Endpoint::Batch.path()).unwrap();
        assert_eq!(url.as_str(), "https://us.i.posthog.com/batch/");
    }

    #[test]
    fn first_bad_value_is_returned() {
        assert!(error_of(PosthogSinkBuilder::new()).contains("no project API key"));
        let keyed = || PosthogSinkBuilder::new().api_key("phc_abc");
        assert!(error_of(keyed().host("ftp://x")).contains("not an http(s) URL"));
        assert!(error_of(keyed().host("not a url")).contains("not an http(s) URL"));
        assert!(error_of(keyed().batch_size(0).max_queue_len(0)).contains("batch size"));
        assert!(error_of(keyed().max_queue_len(0)).contains("queue length"));
        assert!(error_of(keyed().flush_interval(Duration::ZERO)).contains("flush interval"));
        assert!(error_of(keyed().request_timeout(Duration::ZERO)).contains("request timeout"));
        assert!(error_of(PosthogSinkBuilder::new().api_key("phx_personal")).contains("phx_"));
        assert!(error_of(PosthogSinkBuilder::new().api_key("  ")).contains("empty"));
        assert!(error_of(keyed().sample_rate(1.5)).contains("sample rate"));
        assert!(error_of(keyed().sample_rate(f64::NAN)).contains("sample rate"));
        assert!(keyed().validate().is_ok());
    }

    #[test]
    fn debug_hides_the_key() {
        let builder = PosthogSinkBuilder::new().api_key("phc_very_secret_value");
        let shown = format!("{builder:?}");
        assert!(!shown.contains("very_secret"), "{shown}");
        assert!(shown.contains("phc_…redacted"));
        let error = error_of(PosthogSinkBuilder::new().api_key("phx_very_secret_value"));
        assert!(!error.contains("very_secret"));
    }

    #[test]
    fn the_host_is_shown_without_its_secrets() {
        let keyed = || PosthogSinkBuilder::new().api_key("phc_abc");
        let builder = keyed().host("https://user:host-password@ph.example.com/ingest");
        let shown = format!("{builder:?}");
        assert!(
            !shown.contains("host-password") && !shown.contains("user:"),
            "{shown}"
        );
        assert!(shown.contains("https://ph.example.com/ingest"), "{shown}");
        let config = builder.validate().unwrap();
        // Requests still carry the credentials; what is shown does not.
        assert_eq!(config.batch_url.password(), Some("host-password"));
        assert_eq!(config.ai_url.password(), Some("host-password"));
        let shown = format!("{config:?}");
        assert!(!shown.contains("host-password"), "{shown}");
        let sink = keyed()
            .host("http://user:host-password@127.0.0.1:9/ingest")
            .build()
            .unwrap();
        assert_eq!(sink.url(), "http://127.0.0.1:9/ingest/batch/");
        assert_eq!(sink.ai_url(), "http://127.0.0.1:9/ingest/i/v0/ai/batch/");

        let error = error_of(keyed().host("https://ph.example.com/?token=query-secret"));
        assert!(!error.contains("query-secret"), "{error}");
        assert!(error.contains("token=[redacted]"), "{error}");
    }
}
