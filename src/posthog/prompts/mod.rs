//! Prompts managed in PostHog (feature `prompts`): [`Prompts::get`] fetches a prompt by name
//! and version or label, caches it, serves a stale copy when PostHog fails, and falls back to a
//! prompt in code when there is no copy at all.
//!
//! A [`Prompt`] compiles its `{{variable}}` placeholders ([`Prompt::compile`]), applies the
//! model parameters stored with it to a request ([`Prompt::apply_config`], as a flag's payload
//! is applied), and names itself on the call's event (`$ai_prompt_name`,
//! `$ai_prompt_version`), which PostHog's prompt experiments break metrics down by.
//!
//! ```no_run
//! use traced_llm::posthog::prompts::{PromptVersion, Prompts};
//! use traced_llm::{ChatRequest, Message};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // POSTHOG_PERSONAL_API_KEY, POSTHOG_API_KEY and POSTHOG_HOST.
//! let prompts = Prompts::from_env()?;
//! let prompt = prompts
//!     .get_or("support-system", PromptVersion::label("production"), "You help {{company}}'s customers.")
//!     .await;
//! let mut request = ChatRequest::new("gpt-5-mini");
//! prompt.apply_config(&mut request)?; // model, temperature, ... and the prompt's name on the event
//! let request = request.message(Message::system(prompt.compile([("company", "Acme")])?));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::api::{self, Key, PROVIDER};
use super::cache::TtlCache;
use crate::event::PromptRef;
use crate::types::{ChatRequest, ModelParams, ParamsError};
use crate::{Error, Result};

/// How long a fetched prompt is served from the cache, as PostHog's SDKs do.
pub const DEFAULT_PROMPT_CACHE_TTL: Duration = Duration::from_secs(300);
/// How long one prompt request may take.
pub const DEFAULT_PROMPTS_TIMEOUT: Duration = Duration::from_secs(10);
/// How many (name, version) entries the cache holds at most.
pub const DEFAULT_MAX_CACHED_PROMPTS: usize = 1_000;
/// PostHog Cloud's app host (US), where the prompt API lives.
pub const DEFAULT_APP_HOST: &str = "https://us.posthog.com";

const LOG_TARGET: &str = "traced_llm::posthog::prompts";

/// Which version of a prompt to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum PromptVersion {
    /// The newest version.
    #[default]
    Latest,
    /// A published version number.
    Number(u64),
    /// The version a label points to now (`"production"`, ...).
    Label(String),
}

impl PromptVersion {
    /// The version `label` points to.
    pub fn label(label: impl Into<String>) -> Self {
        PromptVersion::Label(label.into())
    }
}

impl From<u64> for PromptVersion {
    fn from(version: u64) -> Self {
        PromptVersion::Number(version)
    }
}

impl From<&str> for PromptVersion {
    fn from(label: &str) -> Self {
        PromptVersion::Label(label.to_owned())
    }
}

impl fmt::Display for PromptVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromptVersion::Latest => f.write_str("latest"),
            PromptVersion::Number(version) => write!(f, "version {version}"),
            PromptVersion::Label(label) => write!(f, "label {label:?}"),
        }
    }
}

/// Where a [`Prompt`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PromptSource {
    /// Fetched from PostHog just now.
    Api,
    /// From the cache, younger than its time to live.
    Cache,
    /// From the cache, older than its time to live: PostHog failed (see [`Prompt::error`]).
    StaleCache,
    /// The text given in code: PostHog failed and nothing was cached.
    CodeFallback,
}

/// A prompt template, its version and stored model parameters.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Prompt {
    /// The prompt's name.
    pub name: String,
    /// Its version; `None` for a code fallback.
    pub version: Option<u64>,
    /// The label it was fetched through, when PostHog said.
    pub label: Option<String>,
    /// The template, with `{{variable}}` placeholders.
    pub template: String,
    /// The model parameters (or agent configuration) stored with this version.
    pub config: Option<Map<String, Value>>,
    /// Where it came from.
    pub source: PromptSource,
    error: Option<Arc<Error>>,
}

/// `{{name}}` placeholders the caller gave no value for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prompt {prompt:?} needs variables that were not given: {}", missing.join(", "))]
#[non_exhaustive]
pub struct CompileError {
    /// The prompt's name.
    pub prompt: String,
    /// The variables without a value, in the order they first appear.
    pub missing: Vec<String>,
}

impl Prompt {
    /// A prompt from code, as [`Prompts::get_or`] serves it when PostHog cannot.
    pub fn from_code(name: impl Into<String>, template: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: None,
            label: None,
            template: template.into(),
            config: None,
            source: PromptSource::CodeFallback,
            error: None,
        }
    }

    /// Why PostHog's copy could not be had, for a stale or fallback prompt.
    pub fn error(&self) -> Option<&Error> {
        self.error.as_deref()
    }

    /// The template with every `{{name}}` (letters, digits, `_`, `-`, `.`) replaced by the
    /// value of `name`; other text, braces included, is left as it is.
    ///
    /// # Errors
    /// [`CompileError`] naming every placeholder without a value.
    ///
    /// ```
    /// use traced_llm::posthog::prompts::Prompt;
    ///
    /// let prompt = Prompt::from_code("greeting", "Hello {{user.name}}, welcome to {{company}}!");
    /// assert_eq!(
    ///     prompt.compile([("user.name", "Ada"), ("company", "Acme")]).unwrap(),
    ///     "Hello Ada, welcome to Acme!"
    /// );
    /// let err = prompt.compile([("company", "Acme")]).unwrap_err();
    /// assert_eq!(err.to_string(), "prompt \"greeting\" needs variables that were not given: user.name");
    /// ```
    pub fn compile<I, K, V>(&self, variables: I) -> Result<String, CompileError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: fmt::Display,
    {
        let variables: Vec<(K, V)> = variables.into_iter().collect();
        let lookup = |name: &str| {
            variables
                .iter()
                .find(|(key, _)| key.as_ref() == name)
                .map(|(_, value)| value)
        };
        let mut out = String::with_capacity(self.template.len());
        let mut missing: Vec<String> = Vec::new();
        let mut rest = self.template.as_str();
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let name_len = after
                .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
                .unwrap_or(after.len());
            if name_len > 0 && after[name_len..].starts_with("}}") {
                let name = &after[..name_len];
                match lookup(name) {
                    Some(value) => out.push_str(&value.to_string()),
                    None => {
                        if !missing.iter().any(|known| known == name) {
                            missing.push(name.to_owned());
                        }
                    }
                }
                rest = &after[name_len + 2..];
            } else {
                out.push_str("{{");
                rest = after;
            }
        }
        out.push_str(rest);
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(CompileError {
                prompt: self.name.clone(),
                missing,
            })
        }
    }

    /// The parameters stored with this version, as a flag's payload would give them.
    ///
    /// # Errors
    /// [`ParamsError`] when the stored config is not a valid parameter object.
    pub fn params(&self) -> Result<ModelParams, ParamsError> {
        match &self.config {
            Some(config) => ModelParams::from_json(&Value::Object(config.clone())),
            None => Ok(ModelParams::default()),
        }
    }

    /// Applies the stored model parameters to `request` (see [`ChatRequest::apply_params`])
    /// and names this prompt on the request's context, so the call's event carries
    /// `$ai_prompt_name` and `$ai_prompt_version`.
    ///
    /// # Errors
    /// [`ParamsError`] when the stored config is not a valid parameter object; `request` is
    /// then left exactly as it was.
    pub fn apply_config(&self, request: &mut ChatRequest) -> Result<(), ParamsError> {
        self.params()?.apply(request);
        request.context.prompt = Some(self.reference());
        Ok(())
    }

    /// The name and version, as a call names the prompt it used.
    pub fn reference(&self) -> PromptRef {
        PromptRef {
            name: self.name.clone(),
            version: self.version,
        }
    }
}

impl From<&Prompt> for PromptRef {
    fn from(prompt: &Prompt) -> Self {
        prompt.reference()
    }
}

/// PostHog's prompt API, with a cache; see the [module docs](self).
///
/// A cheap `Clone` handle; clones share the cache.
#[derive(Clone)]
pub struct Prompts {
    shared: Arc<Shared>,
}

struct Shared {
    personal_key: Key,
    project_key: Key,
    host: String,
    request_timeout: Duration,
    client: reqwest::Client,
    cache: TtlCache<(String, PromptVersion), Prompt>,
}

impl Prompts {
    /// A builder with every default.
    pub fn builder() -> PromptsBuilder {
        PromptsBuilder::default()
    }

    /// From the environment: `POSTHOG_PERSONAL_API_KEY`, `POSTHOG_API_KEY` and `POSTHOG_HOST`.
    ///
    /// # Errors
    /// As [`PromptsBuilder::build`].
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// The prompt `name` at `version`: from the cache while it is fresh, else from PostHog,
    /// else the stale cached copy ([`PromptSource::StaleCache`]).
    ///
    /// # Errors
    /// When PostHog fails and nothing is cached: [`Error::status`] 404 for a prompt or version
    /// that does not exist, 401/403 for a key without access, a timeout, ...
    pub async fn get(&self, name: &str, version: impl Into<PromptVersion>) -> Result<Prompt> {
        let key = (name.to_owned(), version.into());
        let cached = self.shared.cache.get(&key);
        if let Some(cached) = &cached {
            if cached.fresh {
                let mut prompt = cached.value.clone();
                prompt.source = PromptSource::Cache;
                return Ok(prompt);
            }
        }
        match self.fetch(&key.0, &key.1).await {
            Ok(prompt) => {
                self.shared.cache.insert(key, prompt.clone());
                Ok(prompt)
            }
            Err(err) => match cached {
                Some(cached) => {
                    tracing::warn!(target: LOG_TARGET, prompt = name, error = %err, "cannot fetch the prompt; serving the stale cached copy");
                    let mut prompt = cached.value;
                    prompt.source = PromptSource::StaleCache;
                    prompt.error = Some(Arc::new(err));
                    Ok(prompt)
                }
                None => Err(err),
            },
        }
    }

    /// As [`get`](Self::get), with `fallback` as the template when PostHog fails and nothing
    /// is cached ([`PromptSource::CodeFallback`]; [`Prompt::error`] says why). Never fails.
    pub async fn get_or(
        &self,
        name: &str,
        version: impl Into<PromptVersion>,
        fallback: &str,
    ) -> Prompt {
        match self.get(name, version).await {
            Ok(prompt) => prompt,
            Err(err) => {
                tracing::warn!(target: LOG_TARGET, prompt = name, error = %err, "cannot fetch the prompt; using the one in code");
                let mut prompt = Prompt::from_code(name, fallback);
                prompt.error = Some(Arc::new(err));
                prompt
            }
        }
    }

    /// Forgets the cached copies of `name` (every prompt when `None`).
    pub fn clear_cache(&self, name: Option<&str>) {
        self.shared
            .cache
            .retain(|(cached, _)| name.is_some_and(|name| name != cached));
    }

    async fn fetch(&self, name: &str, version: &PromptVersion) -> Result<Prompt> {
        let shared = &self.shared;
        let version_text;
        let mut query = vec![("token", shared.project_key.expose())];
        match version {
            PromptVersion::Latest => {}
            PromptVersion::Number(number) => {
                version_text = number.to_string();
                query.push(("version", version_text.as_str()));
            }
            PromptVersion::Label(label) => query.push(("label", label.as_str())),
        }
        let mut url = api::url(
            &shared.host,
            "/api/environments/@current/llm_prompts/name/",
            &query,
        )?;
        url.path_segments_mut()
            .map_err(|()| Error::builder("posthog: the host cannot take a path"))?
            .pop_if_empty()
            .push(name)
            .push("");
        let request = api::authorized(shared.client.get(url), &shared.personal_key)?;
        let what = format!("prompt {name:?} ({version})");
        let answer = api::send(request, shared.request_timeout, &what).await?;
        if !answer.status.is_success() {
            let mut error = api::status_error(&what, &answer);
            if answer.status == reqwest::StatusCode::NOT_FOUND {
                error =
                    Error::from_status(404, format!("{what} not found")).with_provider(PROVIDER);
            }
            return Err(error);
        }
        let body = api::json(&what, &answer)?;
        let invalid = || {
            Error::decode(format!("{what}: the answer is not a prompt"))
                .with_status(answer.status.as_u16())
                .with_provider(PROVIDER)
        };
        let template = body
            .get("prompt")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        let fetched_name = body
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        let number = body
            .get("version")
            .and_then(Value::as_u64)
            .ok_or_else(invalid)?;
        let label = body.get("label").and_then(Value::as_str).map(str::to_owned);
        if let PromptVersion::Label(wanted) = version {
            if label.as_deref() != Some(wanted) {
                tracing::warn!(target: LOG_TARGET, prompt = name, wanted = %wanted, got = ?label, "PostHog answered another label than asked for; it may not support prompt labels and sent the latest version");
            }
        }
        Ok(Prompt {
            name: fetched_name.to_owned(),
            version: Some(number),
            label,
            template: template.to_owned(),
            config: body.get("config").and_then(Value::as_object).cloned(),
            source: PromptSource::Api,
            error: None,
        })
    }
}

impl fmt::Debug for Prompts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompts")
            .field("host", &self.shared.host)
            .field("personal_api_key", &self.shared.personal_key)
            .field("api_key", &self.shared.project_key)
            .field("request_timeout", &self.shared.request_timeout)
            .field("cached", &self.shared.cache.len())
            .finish()
    }
}

/// Builds [`Prompts`]; see [`Prompts::builder`]. Values set here win over the environment,
/// which wins over the `DEFAULT_*` constants; `build()` returns the first bad value.
#[must_use]
#[derive(Clone)]
pub struct PromptsBuilder {
    personal_api_key: Option<String>,
    api_key: Option<String>,
    host: Option<String>,
    cache_ttl: Duration,
    request_timeout: Duration,
    max_cached: usize,
}

impl Default for PromptsBuilder {
    fn default() -> Self {
        Self {
            personal_api_key: None,
            api_key: None,
            host: None,
            cache_ttl: DEFAULT_PROMPT_CACHE_TTL,
            request_timeout: DEFAULT_PROMPTS_TIMEOUT,
            max_cached: DEFAULT_MAX_CACHED_PROMPTS,
        }
    }
}

impl PromptsBuilder {
    /// A personal API key (`phx_…`) with prompt read access; `POSTHOG_PERSONAL_API_KEY` when
    /// not set here. Required.
    pub fn personal_api_key(mut self, key: impl Into<String>) -> Self {
        self.personal_api_key = Some(key.into());
        self
    }

    /// The project API key (`phc_…`), which names the project; `POSTHOG_API_KEY` when not set
    /// here. Required.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    /// The PostHog host; `POSTHOG_HOST` when not set here, else [`DEFAULT_APP_HOST`].
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// How long a fetched prompt is served from the cache (default
    /// [`DEFAULT_PROMPT_CACHE_TTL`]; zero fetches every time, keeping copies for failures).
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// How long one request may take (default [`DEFAULT_PROMPTS_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How many (name, version) entries are cached at most (default
    /// [`DEFAULT_MAX_CACHED_PROMPTS`]).
    pub fn max_cached(mut self, entries: usize) -> Self {
        self.max_cached = entries;
        self
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::is_builder`] for the first bad value: no personal or project key, a key of the
    /// wrong kind, a host that is not an `http(s)` URL, a zero timeout.
    pub fn build(self) -> Result<Prompts> {
        let personal_key =
            api::key_from(self.personal_api_key.as_deref(), api::ENV_PERSONAL_API_KEY).ok_or_else(
                || {
                    Error::builder(format!(
                        "posthog: prompts need a personal API key (set it in code or in {})",
                        api::ENV_PERSONAL_API_KEY
                    ))
                },
            )?;
        api::check_key(&personal_key, "personal API key", true)?;
        let project_key =
            api::key_from(self.api_key.as_deref(), super::ENV_API_KEY).ok_or_else(|| {
                Error::builder(format!(
                    "posthog: prompts need the project API key (set it in code or in {})",
                    super::ENV_API_KEY
                ))
            })?;
        api::check_key(&project_key, "project API key", false)?;
        let host = api::host_from(self.host.as_deref(), DEFAULT_APP_HOST)?;
        if self.request_timeout.is_zero() {
            return Err(Error::builder(
                "posthog: prompts request timeout must not be zero",
            ));
        }
        Ok(Prompts {
            shared: Arc::new(Shared {
                personal_key,
                project_key,
                host,
                request_timeout: self.request_timeout,
                client: api::client(self.request_timeout)?,
                cache: TtlCache::new(self.cache_ttl, self.max_cached),
            }),
        })
    }
}

impl fmt::Debug for PromptsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptsBuilder")
            .field(
                "personal_api_key",
                &self.personal_api_key.as_deref().map(Key::new),
            )
            .field("api_key", &self.api_key.as_deref().map(Key::new))
            .field("host", &self.host.as_deref().map(api::display_url))
            .field("cache_ttl", &self.cache_ttl)
            .field("request_timeout", &self.request_timeout)
            .field("max_cached", &self.max_cached)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_replaces_known_names_and_leaves_other_braces() {
        let prompt = Prompt::from_code("p", "{{a}} {{ b }} {{c-d.e}} {{}} {{a}}{{x");
        assert_eq!(
            prompt.compile([("a", "1"), ("c-d.e", "2")]).unwrap(),
            "1 {{ b }} 2 {{}} 1{{x"
        );
        let numbers = Prompt::from_code("p", "{{n}} items");
        assert_eq!(numbers.compile([("n", 3)]).unwrap(), "3 items");
        let err = Prompt::from_code("p", "{{b}}{{a}}{{b}}")
            .compile(Vec::<(&str, &str)>::new())
            .unwrap_err();
        assert_eq!(err.missing, ["b", "a"]);
    }

    #[test]
    fn config_applies_like_a_payload_and_names_the_prompt() {
        let mut prompt = Prompt::from_code("support", "x");
        prompt.version = Some(3);
        prompt.config = Some(
            serde_json::json!({"model": "gpt-5-mini", "temperature": 0.2})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let mut request = ChatRequest::new("gpt-5");
        prompt.apply_config(&mut request).unwrap();
        assert_eq!(request.model, "gpt-5-mini");
        assert_eq!(request.temperature, Some(0.2));
        assert_eq!(
            request.context.prompt,
            Some(PromptRef::new("support").version(3))
        );
        prompt.config = Some(
            serde_json::json!({"temperature": "warm"})
                .as_object()
                .cloned()
                .unwrap(),
        );
        let mut request = ChatRequest::new("gpt-5");
        assert!(prompt.apply_config(&mut request).is_err());
        assert_eq!(request, ChatRequest::new("gpt-5"));
    }
}
