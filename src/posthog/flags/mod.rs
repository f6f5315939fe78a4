//! PostHog feature flags (feature `flags`): [`PosthogFlags`], a [`FlagSource`] that evaluates
//! locally when it can and asks PostHog's `/flags` endpoint when it must.
//!
//! - **Remote evaluation** posts the person, groups and properties to `/flags/?v=2` with the
//!   project key. Answers are cached per request (distinct id, groups, properties, keys) for
//!   [`DEFAULT_FLAGS_CACHE_TTL`], at most [`DEFAULT_MAX_CACHED`] of them.
//! - **Local evaluation** needs a personal API key: the flag definitions are polled from
//!   `/api/feature_flag/local_evaluation/` every [`DEFAULT_POLL_INTERVAL`] (with `ETag`s) and
//!   evaluated in the process with PostHog's hashing, so the answers are the server's. A flag
//!   the process cannot decide (cohorts, unknown operators, properties the caller did not
//!   give, experience continuity, dependencies on such flags, ...) is asked of the server. Definitions can also come from a file,
//!   for offline runs and tests ([`PosthogFlagsBuilder::definitions_file`]).
//! - **Bounded.** Every request, and the wait for the first definitions, takes at most
//!   [`DEFAULT_FLAGS_TIMEOUT`]. A slow or failing PostHog leaves the flags it would have
//!   answered out of the snapshot (they read as off) and sets [`FlagSnapshot::error`]; nothing
//!   panics and nothing waits longer.
//!
//! posthog-rs is not used: its flag client brings reqwest's blocking client, a poller on its
//! own thread and its own capture queue for `$feature_flag_called`, where this crate needs
//! tokio tasks, the crate's transport and exposures sent through its own sinks.
//!
//! ```no_run
//! use traced_llm::flags::{FlagRequest, FlagSource};
//! use traced_llm::posthog::flags::PosthogFlags;
//!
//! # async fn run() -> traced_llm::Result<()> {
//! // POSTHOG_API_KEY, and POSTHOG_PERSONAL_API_KEY for local evaluation.
//! let flags = PosthogFlags::from_env()?;
//! let snapshot = flags.evaluate(&FlagRequest::new("user_42").key("llm-params")).await;
//! if let Some(err) = snapshot.error() {
//!     eprintln!("flags fell back to their defaults: {err}");
//! }
//! let variant = snapshot.variant_or("llm-params", "control");
//! # Ok(())
//! # }
//! ```

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::watch;

use self::local::{Definitions, Outcome};
use super::api::{self, Key, ENV_PERSONAL_API_KEY, PROVIDER};
use super::cache::TtlCache;
use crate::flags::{Exposures, Flag, FlagRequest, FlagSnapshot, FlagSource};
use crate::{Error, Result};

pub(crate) mod local;
mod remote;

pub use self::local::hash::bucket;

/// How long one request to PostHog may take, and how long an evaluation waits for the first
/// definitions; PostHog's Python SDK allows flags the same.
pub const DEFAULT_FLAGS_TIMEOUT: Duration = Duration::from_secs(3);
/// How often the flag definitions are fetched again for local evaluation, as PostHog's SDKs do.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// How long a remote answer is reused for the same request.
pub const DEFAULT_FLAGS_CACHE_TTL: Duration = Duration::from_secs(60);
/// How many remote answers are cached at most (one per distinct id and request).
pub const DEFAULT_MAX_CACHED: usize = 10_000;
/// Where the definitions for local evaluation are fetched from.
pub const LOCAL_EVALUATION_PATH: &str = "/api/feature_flag/local_evaluation/";

const LOG_TARGET: &str = "traced_llm::posthog::flags";

/// PostHog's feature flags as a [`FlagSource`]; see the [module docs](self).
///
/// A cheap `Clone` handle; clones share the definitions, the cache and the poller, which stops
/// when the last handle is dropped.
#[derive(Clone)]
pub struct PosthogFlags {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) client: reqwest::Client,
    definitions: RwLock<Option<Arc<Definitions>>>,
    etag: Mutex<Option<String>>,
    cache: TtlCache<u64, Arc<RemoteFlags>>,
    exposures: Option<Exposures>,
    /// `true` once the first fetch of definitions finished, well or not.
    first_load: watch::Sender<bool>,
    poller: Mutex<Poller>,
}

enum Poller {
    /// No personal key, or definitions given: nothing to poll.
    None,
    NotStarted,
    Running(tokio::task::JoinHandle<()>),
}

/// A remote answer as cached.
#[derive(Debug)]
struct RemoteFlags {
    flags: BTreeMap<String, Flag>,
    incomplete: bool,
}

pub(crate) struct Config {
    pub(crate) project_key: Option<Key>,
    personal_key: Option<Key>,
    pub(crate) host: String,
    pub(crate) request_timeout: Duration,
    poll_interval: Duration,
}

impl PosthogFlags {
    /// A builder with every default.
    pub fn builder() -> PosthogFlagsBuilder {
        PosthogFlagsBuilder::default()
    }

    /// From the environment: `POSTHOG_API_KEY`, `POSTHOG_HOST` and, for local evaluation,
    /// `POSTHOG_PERSONAL_API_KEY`.
    ///
    /// # Errors
    /// As [`PosthogFlagsBuilder::build`].
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// Fetches the flag definitions now (local evaluation only), waiting at most the request
    /// timeout. The poller does this on its own; call it to start with fresh definitions or to
    /// know they load.
    ///
    /// # Errors
    /// When local evaluation is not configured, or the fetch failed; the definitions held
    /// before (if any) stay in use.
    pub async fn load_definitions(&self) -> Result<()> {
        if self.shared.config.personal_key.is_none() {
            return Err(Error::builder(format!(
                "posthog: local evaluation needs a personal API key ({ENV_PERSONAL_API_KEY})"
            ))
            .with_provider(PROVIDER));
        }
        self.shared.load_definitions().await
    }

    /// Whether flag definitions are held, so flags are evaluated in the process.
    pub fn has_definitions(&self) -> bool {
        self.shared.current().is_some()
    }

    /// Stops polling for definitions; the ones held stay in use.
    pub fn stop_polling(&self) {
        let mut poller = self.shared.lock_poller();
        if let Poller::Running(task) = &*poller {
            task.abort();
        }
        *poller = Poller::None;
    }

    async fn definitions(&self) -> Option<Arc<Definitions>> {
        self.shared.start_poller();
        if let Some(definitions) = self.shared.current() {
            return Some(definitions);
        }
        if matches!(*self.shared.lock_poller(), Poller::None) {
            return None;
        }
        // The first fetch is under way: wait for it, within the request timeout.
        let mut first_load = self.shared.first_load.subscribe();
        let waited = tokio::time::timeout(
            self.shared.config.request_timeout,
            first_load.wait_for(|done| *done),
        )
        .await;
        if waited.is_err() {
            tracing::debug!(target: LOG_TARGET, "flag definitions not loaded in time; asking the server");
        }
        self.shared.current()
    }
}

impl Shared {
    fn lock_poller(&self) -> std::sync::MutexGuard<'_, Poller> {
        self.poller
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn current(&self) -> Option<Arc<Definitions>> {
        self.definitions
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Starts the poller on the current tokio runtime, once; again if the runtime it ran on
    /// has gone.
    fn start_poller(self: &Arc<Self>) {
        let mut poller = self.lock_poller();
        match &*poller {
            Poller::NotStarted => {}
            Poller::Running(task) if task.is_finished() => {}
            _ => return,
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(self);
        let interval = self.config.poll_interval;
        *poller = Poller::Running(runtime.spawn(poll(weak, interval)));
    }

    async fn load_definitions(&self) -> Result<()> {
        let result = self.fetch_definitions().await;
        self.first_load.send_replace(true);
        result
    }

    async fn fetch_definitions(&self) -> Result<()> {
        let (Some(personal_key), Some(project_key)) =
            (&self.config.personal_key, &self.config.project_key)
        else {
            return Ok(());
        };
        let url = api::url(
            &self.config.host,
            LOCAL_EVALUATION_PATH,
            &[("token", project_key.expose()), ("send_cohorts", "")],
        )?;
        let mut request = api::authorized(self.client.get(url), personal_key)?;
        let etag = self
            .etag
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if let Some(etag) = etag.filter(|_| self.current().is_some()) {
            request = request.header(reqwest::header::IF_NONE_MATCH, etag);
        }
        let answer = api::send(request, self.config.request_timeout, "flag definitions").await?;
        if answer.status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(());
        }
        if !answer.status.is_success() {
            return Err(api::status_error("flag definitions", &answer));
        }
        let body = api::json("flag definitions", &answer)?;
        let definitions = Definitions::from_json(&body)
            .map_err(|why| Error::decode(why).with_provider(PROVIDER))?;
        if !definitions.unreadable.is_empty() {
            tracing::debug!(target: LOG_TARGET, flags = ?definitions.unreadable, "flag definitions the local evaluator cannot read; the server evaluates them");
        }
        *self
            .definitions
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(definitions));
        *self
            .etag
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = answer.etag;
        Ok(())
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Poller::Running(task) = &*self.lock_poller() {
            task.abort();
        }
    }
}

/// Fetches the definitions now and every `interval`, while a handle lives.
async fn poll(shared: Weak<Shared>, interval: Duration) {
    let mut warned = false;
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        match strong.load_definitions().await {
            Ok(()) => warned = false,
            Err(err) if !warned => {
                warned = true;
                tracing::warn!(target: LOG_TARGET, error = %err, "cannot fetch flag definitions; flags are evaluated by the server until they load");
            }
            Err(err) => {
                tracing::debug!(target: LOG_TARGET, error = %err, "cannot fetch flag definitions");
            }
        }
        drop(strong);
        tokio::time::sleep(interval).await;
    }
}

#[async_trait]
impl FlagSource for PosthogFlags {
    async fn evaluate(&self, request: &FlagRequest) -> FlagSnapshot {
        let mut flags = BTreeMap::new();
        // Keys the server must answer; `None` means every flag.
        let mut remote_keys: Option<Vec<String>> = None;
        let definitions = self.definitions().await;
        if let Some(definitions) = &definitions {
            let now = SystemTime::now();
            let mut pending = Vec::new();
            let mut decide = |key: &str, flags: &mut BTreeMap<String, Flag>| {
                match definitions.flags.get(key) {
                    Some(definition) => {
                        match local::evaluate(definitions, definition, request, now) {
                            Outcome::Decided(flag) => {
                                flags.insert(key.to_owned(), flag);
                            }
                            Outcome::Undecided(why) => {
                                tracing::debug!(target: LOG_TARGET, flag = key, why, "flag left to the server");
                                pending.push(key.to_owned());
                            }
                        }
                    }
                    // Unknown here: perhaps made since the last poll.
                    None => pending.push(key.to_owned()),
                }
            };
            if request.keys.is_empty() {
                let keys: Vec<&String> = definitions
                    .flags
                    .keys()
                    .chain(&definitions.unreadable)
                    .collect();
                for key in keys {
                    decide(key, &mut flags);
                }
            } else {
                for key in &request.keys {
                    decide(key, &mut flags);
                }
            }
            pending.sort();
            pending.dedup();
            remote_keys = Some(pending);
        } else if !request.keys.is_empty() {
            remote_keys = Some(request.keys.clone());
        }
        let mut error = None;
        let needs_server = remote_keys.as_ref().is_none_or(|keys| !keys.is_empty());
        if needs_server {
            let keys = remote_keys.unwrap_or_default();
            match self.remote(request, &keys).await {
                Ok(answer) => {
                    for (key, flag) in &answer.flags {
                        if keys.is_empty() || keys.contains(key) {
                            flags.insert(key.clone(), flag.clone());
                        }
                    }
                    let missing = keys.iter().any(|key| !answer.flags.contains_key(key));
                    if answer.incomplete && (keys.is_empty() || missing) {
                        error = Some(
                            Error::other("posthog could not compute some flags; they read as off")
                                .with_provider(PROVIDER),
                        );
                    }
                }
                Err(err) => error = Some(err),
            }
        }
        let mut snapshot =
            FlagSnapshot::builder(request.distinct_id.as_str()).groups(request.groups.clone());
        for (key, flag) in flags {
            snapshot = snapshot.flag(key, flag);
        }
        if let Some(error) = error {
            snapshot = snapshot.error(error);
        }
        if let Some(exposures) = &self.shared.exposures {
            snapshot = snapshot.exposures(exposures.clone());
        }
        snapshot.build()
    }
}

impl PosthogFlags {
    /// The server's answer for `keys` (every flag when empty), from the cache when fresh.
    async fn remote(&self, request: &FlagRequest, keys: &[String]) -> Result<Arc<RemoteFlags>> {
        let fingerprint = fingerprint(request, keys);
        if let Some(cached) = self.shared.cache.get(&fingerprint) {
            if cached.fresh {
                return Ok(cached.value);
            }
        }
        let answer = remote::evaluate(&self.shared, request, keys).await?;
        let answer = Arc::new(RemoteFlags {
            flags: answer.flags,
            incomplete: answer.incomplete,
        });
        self.shared.cache.insert(fingerprint, Arc::clone(&answer));
        Ok(answer)
    }

    /// How many remote answers are cached now.
    pub fn cached_answers(&self) -> usize {
        self.shared.cache.len()
    }
}

/// What a remote answer depends on, hashed: person, groups, properties, keys.
fn fingerprint(request: &FlagRequest, keys: &[String]) -> u64 {
    let mut hasher = DefaultHasher::new();
    request.distinct_id.hash(&mut hasher);
    keys.hash(&mut hasher);
    for part in [
        &request.groups,
        &request.person_properties,
        &request.group_properties,
    ] {
        // serde_json's maps are sorted, so the same request always writes the same text.
        Value::Object(part.clone()).to_string().hash(&mut hasher);
    }
    hasher.finish()
}

impl fmt::Debug for PosthogFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = &self.shared.config;
        f.debug_struct("PosthogFlags")
            .field("host", &config.host)
            .field("api_key", &config.project_key)
            .field("personal_api_key", &config.personal_key)
            .field("request_timeout", &config.request_timeout)
            .field("poll_interval", &config.poll_interval)
            .field("has_definitions", &self.has_definitions())
            .field("cached_answers", &self.shared.cache.len())
            .field("exposures", &self.shared.exposures.is_some())
            .finish()
    }
}

/// Builds [`PosthogFlags`]; see [`PosthogFlags::builder`].
///
/// Setters never fail; `build()` checks everything and returns the first bad value. Values set
/// here win over the environment (`POSTHOG_API_KEY`, `POSTHOG_HOST`,
/// `POSTHOG_PERSONAL_API_KEY`), which wins over the `DEFAULT_*` constants.
///
/// ```
/// use std::time::Duration;
/// use traced_llm::posthog::flags::PosthogFlags;
///
/// // Offline: definitions from a file or a value, no key needed.
/// let flags = PosthogFlags::builder()
///     .definitions(serde_json::json!({"flags": [
///         {"key": "llm-params", "active": true, "filters": {"groups": [{"rollout_percentage": 100}]}}
///     ]}))
///     .request_timeout(Duration::from_millis(500))
///     .build()?;
/// assert!(flags.has_definitions());
/// # Ok::<(), traced_llm::Error>(())
/// ```
#[must_use]
#[derive(Clone)]
pub struct PosthogFlagsBuilder {
    api_key: Option<String>,
    personal_api_key: Option<String>,
    host: Option<String>,
    definitions: Option<GivenDefinitions>,
    request_timeout: Duration,
    poll_interval: Duration,
    cache_ttl: Duration,
    max_cached: usize,
    exposures: Option<Exposures>,
}

/// Definitions given in code.
#[derive(Clone)]
enum GivenDefinitions {
    Value(Value),
    File(PathBuf),
}

impl Default for PosthogFlagsBuilder {
    fn default() -> Self {
        Self {
            api_key: None,
            personal_api_key: None,
            host: None,
            definitions: None,
            request_timeout: DEFAULT_FLAGS_TIMEOUT,
            poll_interval: DEFAULT_POLL_INTERVAL,
            cache_ttl: DEFAULT_FLAGS_CACHE_TTL,
            max_cached: DEFAULT_MAX_CACHED,
            exposures: None,
        }
    }
}

impl PosthogFlagsBuilder {
    /// The project API key (`phc_…`), for `/flags`; `POSTHOG_API_KEY` when not set here.
    /// Without one (and without definitions) `build()` fails.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// A personal API key (`phx_…`) with feature-flag read access, which turns on local
    /// evaluation; `POSTHOG_PERSONAL_API_KEY` when not set here.
    pub fn personal_api_key(mut self, key: impl Into<String>) -> Self {
        self.personal_api_key = Some(key.into());
        self
    }

    /// The PostHog host; `POSTHOG_HOST` when not set here, else
    /// [`DEFAULT_HOST`](crate::posthog::DEFAULT_HOST).
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Flag definitions to evaluate locally, in the shape the local-evaluation endpoint
    /// answers (`{"flags": [...], "group_type_mapping": {...}}`). They replace polling.
    pub fn definitions(mut self, definitions: Value) -> Self {
        self.definitions = Some(GivenDefinitions::Value(definitions));
        self
    }

    /// As [`definitions`](Self::definitions), read from a JSON file by `build()`.
    pub fn definitions_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.definitions = Some(GivenDefinitions::File(path.into()));
        self
    }

    /// How long one request may take (default [`DEFAULT_FLAGS_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How often definitions are fetched again (default [`DEFAULT_POLL_INTERVAL`]).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// How long a remote answer is reused (default [`DEFAULT_FLAGS_CACHE_TTL`]; zero turns the
    /// cache off).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How many remote answers are cached at most (default [`DEFAULT_MAX_CACHED`]).
    pub fn max_cached(mut self, answers: usize) -> Self {
        self.max_cached = answers;
        self
    }

    /// Reports reading a flag to `exposures` (PostHog's `$feature_flag_called`), once per
    /// (distinct id, flag, value). Without it, snapshots report nothing.
    pub fn exposures(mut self, exposures: Exposures) -> Self {
        self.exposures = Some(exposures);
        self
    }

    /// Checks the configuration. Polling starts at the first evaluation, on the runtime that
    /// makes it.
    ///
    /// # Errors
    /// [`Error::is_builder`] for the first bad value: neither a project key nor definitions; a
    /// key of the wrong kind; a host that is not an `http(s)` URL; a zero timeout or interval;
    /// a definitions file that cannot be read or parsed.
    pub fn build(self) -> Result<PosthogFlags> {
        let project_key = api::key_from(self.api_key.as_deref(), super::ENV_API_KEY);
        if let Some(key) = &project_key {
            api::check_key(key, "project API key", false)?;
        }
        let personal_key =
            api::key_from(self.personal_api_key.as_deref(), api::ENV_PERSONAL_API_KEY);
        if let Some(key) = &personal_key {
            api::check_key(key, "personal API key", true)?;
        }
        let host = api::host_from(self.host.as_deref(), super::DEFAULT_HOST)?;
        if self.request_timeout.is_zero() {
            return Err(Error::builder(
                "posthog: flags request timeout must not be zero",
            ));
        }
        if self.poll_interval.is_zero() {
            return Err(Error::builder(
                "posthog: flags poll interval must not be zero",
            ));
        }
        let definitions = match self.definitions {
            None => None,
            Some(given) => Some(Arc::new(read_definitions(given)?)),
        };
        if project_key.is_none() && definitions.is_none() {
            return Err(Error::builder(format!(
                "posthog: flags need the project API key (set it in code or in {}) or definitions to evaluate locally",
                super::ENV_API_KEY
            )));
        }
        if personal_key.is_some() && project_key.is_none() && definitions.is_none() {
            return Err(Error::builder(
                "posthog: local evaluation needs the project API key beside the personal one",
            ));
        }
        let poller = if definitions.is_none() && personal_key.is_some() {
            Poller::NotStarted
        } else {
            Poller::None
        };
        let client = api::client(self.request_timeout)?;
        let (first_load, _) = watch::channel(definitions.is_some());
        Ok(PosthogFlags {
            shared: Arc::new(Shared {
                config: Config {
                    project_key,
                    personal_key,
                    host,
                    request_timeout: self.request_timeout,
                    poll_interval: self.poll_interval,
                },
                client,
                definitions: RwLock::new(definitions),
                etag: Mutex::new(None),
                cache: TtlCache::new(self.cache_ttl, self.max_cached),
                exposures: self.exposures,
                first_load,
                poller: Mutex::new(poller),
            }),
        })
    }
}

fn read_definitions(given: GivenDefinitions) -> Result<Definitions> {
    let value = match given {
        GivenDefinitions::Value(value) => value,
        GivenDefinitions::File(path) => {
            let text = std::fs::read_to_string(&path).map_err(|err| {
                Error::builder(format!(
                    "posthog: cannot read flag definitions from {}",
                    path.display()
                ))
                .with_source(err)
            })?;
            serde_json::from_str(&text).map_err(|err| {
                Error::builder(format!(
                    "posthog: flag definitions in {} are not json: {err}",
                    path.display()
                ))
            })?
        }
    };
    Definitions::from_json(&value)
        .map_err(|why| Error::builder(format!("posthog: invalid flag definitions: {why}")))
}

impl fmt::Debug for PosthogFlagsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PosthogFlagsBuilder")
            .field("api_key", &self.api_key.as_deref().map(Key::new))
            .field(
                "personal_api_key",
                &self.personal_api_key.as_deref().map(Key::new),
            )
            .field("host", &self.host.as_deref().map(api::display_url))
            .field("definitions", &self.definitions.is_some())
            .field("request_timeout", &self.request_timeout)
            .field("poll_interval", &self.poll_interval)
            .field("cache_ttl", &self.cache_ttl)
            .field("max_cached", &self.max_cached)
            .field("exposures", &self.exposures.is_some())
            .finish()
    }
}
