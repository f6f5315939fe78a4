//! Configuration of the PostHog sink: defaults, environment and validation.

use std::fmt;
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
/// Events waiting for delivery before new ones are dropped (and counted).
pub const DEFAULT_MAX_QUEUE_LEN: usize = 10_000;
/// Uncompressed bytes per request; keeps gzip bodies far below the server's 2 MiB (old) and
/// 20 MiB (current) caps.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
/// Per-event size budget, counting quotes and backslashes twice: PostHog re-escapes the event
/// into a Kafka record capped at 1,000,000 bytes, so this leaves a margin.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 900_000;
/// How long one capture request may take, connection included.
pub const DEFAULT_CAPTURE_TIMEOUT: Duration = Duration::from_secs(10);
/// Environment variable holding the project API key.
pub const ENV_API_KEY: &str = "POSTHOG_API_KEY";
/// Environment variable holding the host.
pub const ENV_HOST: &str = "POSTHOG_HOST";

/// The smallest per-event budget accepted: room for ids, counts and truncation markers.
const MIN_EVENT_BYTES: usize = 16 * 1024;

/// Which capture route batches are posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Endpoint {
    /// `/batch/`, the route every PostHog SDK uses by default.
    #[default]
    Batch,
    /// `/i/v0/ai/batch/`, PostHog's AI lane: same body, larger per-event limit, newer servers
    /// only.
    AiBatch,
}

impl Endpoint {
    /// The path appended to the host.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Batch => "/batch/",
            Endpoint::AiBatch => "/i/v0/ai/batch/",
        }
    }
}

/// What `capture` does when the queue is full. Either way the drop is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum QueueFullPolicy {
    /// Keep what is queued and drop the new event (cheapest; PostHog's Python SDK does this).
    #[default]
    DropNewest,
    /// Drop the oldest queued event to make room (keeps the most recent calls).
    DropOldest,
}

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
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_event_bytes: usize,
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
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
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

    /// The route batches are posted to; [`Endpoint::Batch`] by default.
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

    /// Events held for delivery before the [`QueueFullPolicy`] applies (default
    /// [`DEFAULT_MAX_QUEUE_LEN`]).
    pub fn max_queue_len(mut self, events: usize) -> Self {
        self.max_queue_len = events;
        self
    }

    /// Uncompressed bytes per request (default [`DEFAULT_MAX_BATCH_BYTES`]).
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.max_batch_bytes = bytes;
        self
    }

    /// Per-event budget, quotes and backslashes counted twice (default
    /// [`DEFAULT_MAX_EVENT_BYTES`]). Larger events are shrunk to fit, never dropped.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    /// How long one request may take (default [`DEFAULT_CAPTURE_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Which failures are retried, how often and how long apart.
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

    /// Called on the sink's thread for each batch finally lost (rejected, too large, or out of
    /// retries). It gets counts and statuses, never the key or event content. Keep it quick and
    /// never block in it: the same thread keeps the flush and shutdown deadlines.
    pub fn on_error(mut self, callback: impl Fn(&DeliveryError) + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(callback));
        self
    }

    /// Checks the configuration and starts the background worker.
    ///
    /// # Errors
    /// [`Error::is_builder`] for the first invalid value: no key, a personal (`phx_`) key, a
    /// host that is not an `http(s)` URL, a zero size, count or duration.
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
        let url = endpoint_url(host, self.endpoint)?;
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
        Ok(Config {
            api_key,
            host: url::display(host),
            url,
            endpoint: self.endpoint,
            batch_size: self.batch_size,
            flush_interval: self.flush_interval,
            max_queue_len: self.max_queue_len,
            max_batch_bytes: self.max_batch_bytes,
            max_event_bytes: self.max_event_bytes,
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
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("max_event_bytes", &self.max_event_bytes)
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
    pub(crate) url: reqwest::Url,
    pub(crate) endpoint: Endpoint,
    pub(crate) batch_size: usize,
    pub(crate) flush_interval: Duration,
    pub(crate) max_queue_len: usize,
    pub(crate) max_batch_bytes: usize,
    pub(crate) max_event_bytes: usize,
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
            .field("max_batch_bytes", &self.max_batch_bytes)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("gzip", &self.gzip)
            .field("queue_full_policy", &self.queue_full_policy)
            .finish_non_exhaustive()
    }
}

/// `host` joined with the endpoint's path, keeping any path prefix of a self-hosted install.
fn endpoint_url(host: &str, endpoint: Endpoint) -> Result<reqwest::Url> {
    BaseUrl::parse(host, "posthog: host")?.join(endpoint.path(), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(builder: PosthogSinkBuilder) -> String {
        builder.validate().unwrap_err().to_string()
    }

    #[test]
    fn url_keeps_path_prefix_and_picks_endpoint() {
        let url = endpoint_url("https://ph.example.com/ingest/", Endpoint::AiBatch).unwrap();
        assert_eq!(url.as_str(), "https://ph.example.com/ingest/i/v0/ai/batch/");
        let url = endpoint_url(DEFAULT_HOST, Endpoint::Batch).unwrap();
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
        assert_eq!(config.url.password(), Some("host-password"));
        let shown = format!("{config:?}");
        assert!(!shown.contains("host-password"), "{shown}");

        let error = error_of(keyed().host("https://ph.example.com/?token=query-secret"));
        assert!(!error.contains("query-secret"), "{error}");
        assert!(error.contains("token=[redacted]"), "{error}");
    }
}
