//! What the service runs with: users, session key, model, sink, flags, clock and limits.
//!
//! Tests build a [`ChatConfig`] in code ([`ChatConfig::offline`] and the setters); `main` reads
//! it from the environment ([`ChatConfig::from_env`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use traced_llm::flags::FlagSource;
use traced_llm::monitor::{Clock, SystemClock};
use traced_llm::sink::{JsonlSink, Sink};
use traced_llm::LlmModel;

use crate::auth::{SessionKey, Users};
use crate::demo::DemoModel;

/// The port when `PORT` is unset.
pub const DEFAULT_PORT: u16 = 3000;
/// The model asked for when `CHAT_MODEL` is unset and no provider says otherwise.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
/// The model asked for from Anthropic when `CHAT_MODEL` is unset.
pub const DEFAULT_ANTHROPIC_MODEL: &str = "claude-haiku-4-5";
/// The model asked for from Gemini when `CHAT_MODEL` is unset.
pub const DEFAULT_GEMINI_MODEL: &str = "gemini-2.5-flash";
/// The feature flag whose variant payload sets the model parameters (`CHAT_FLAG`).
pub const DEFAULT_FLAG_KEY: &str = "chat-model-params";
/// Tokens a user may spend in the monitor's rolling window (ten minutes) before the chat
/// answers 429 (`CHAT_TOKEN_BUDGET`).
pub const DEFAULT_TOKEN_BUDGET: u64 = 20_000;
/// How long a session cookie is valid.
pub const DEFAULT_SESSION_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
/// The flag definitions evaluated locally when PostHog is not keyed (`CHAT_FLAGS_FILE`
/// replaces them).
pub const DEFAULT_FLAG_DEFINITIONS: &str = include_str!("../flags.json");
/// What the model is told before every conversation.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a friendly, concise assistant. Answer in a few sentences.";

/// How much the service keeps in memory per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Conversations kept per user; starting one more forgets the least recently used.
    pub max_conversations_per_user: usize,
    /// Messages (the user's and the answers) per conversation; past it the chat answers 409.
    pub max_messages_per_conversation: usize,
    /// Characters in one message; past it the chat answers 413.
    pub max_message_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_conversations_per_user: 20,
            max_messages_per_conversation: 40,
            max_message_chars: 4_000,
        }
    }
}

/// Why the service cannot start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub(crate) String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl From<traced_llm::Error> for ConfigError {
    fn from(error: traced_llm::Error) -> Self {
        // The library's errors never carry a key.
        Self(error.to_string())
    }
}

/// Everything [`app`](crate::app) needs; every part can be replaced, so tests inject the
/// model, the sink, the flags and the clock.
#[must_use]
pub struct ChatConfig {
    pub(crate) users: Users,
    pub(crate) session_key: SessionKey,
    pub(crate) session_max_age: Duration,
    pub(crate) model: Box<dyn LlmModel>,
    pub(crate) model_name: String,
    pub(crate) system_prompt: String,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) flags: Option<Arc<dyn FlagSource>>,
    pub(crate) flag_key: String,
    pub(crate) flag_definitions: Value,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) limits: Limits,
    pub(crate) token_budget: u64,
    pub(crate) error_tracking: bool,
}

impl ChatConfig {
    /// The offline service: the demo users, a random session key, the [`DemoModel`], JSON
    /// lines on stdout, the bundled flag definitions, the system clock.
    pub fn offline() -> Self {
        Self {
            users: Users::demo(),
            session_key: SessionKey::random(),
            session_max_age: DEFAULT_SESSION_MAX_AGE,
            model: Box::new(DemoModel::new()),
            model_name: DEFAULT_MODEL.to_owned(),
            system_prompt: DEFAULT_SYSTEM_PROMPT.to_owned(),
            sink: Arc::new(JsonlSink::stdout()),
            flags: None,
            flag_key: DEFAULT_FLAG_KEY.to_owned(),
            flag_definitions: serde_json::from_str(DEFAULT_FLAG_DEFINITIONS)
                .expect("the bundled flag definitions are JSON"),
            clock: Arc::new(SystemClock::new()),
            limits: Limits::default(),
            token_budget: DEFAULT_TOKEN_BUDGET,
            error_tracking: true,
        }
    }

    /// Reads the configuration from the process environment; see [`ChatConfig::from_lookup`].
    ///
    /// # Errors
    /// [`ConfigError`] for the first variable that is set but unusable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (an environment), starting from
    /// [`ChatConfig::offline`]:
    ///
    /// - `CHAT_USERS`: `name:password,name:password` (names of letters, digits, `_` and `-`);
    /// - `SESSION_SECRET`: signs session cookies, so they survive a restart;
    /// - `OPENAI_API_KEY` (and `OPENAI_BASE_URL`), else `ANTHROPIC_API_KEY`, else
    ///   `GEMINI_API_KEY` or `GOOGLE_API_KEY` (and `GEMINI_BASE_URL`): a real provider;
    /// - `CHAT_MODEL`: the model to ask for;
    /// - `POSTHOG_API_KEY` (and `POSTHOG_HOST`): events and flags go to PostHog;
    /// - `CHAT_FLAG`, `CHAT_FLAGS_FILE`: the experiment's flag and, offline, its definitions;
    /// - `CHAT_TOKEN_BUDGET`: tokens per user per ten minutes.
    ///
    /// The provider and PostHog clients read their own variables from the process environment.
    ///
    /// # Errors
    /// [`ConfigError`] for the first variable that is set but unusable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let set = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let mut config = Self::offline();
        if let Some(users) = set("CHAT_USERS") {
            config.users = Users::parse(&users)?;
        }
        if let Some(secret) = set("SESSION_SECRET") {
            config.session_key = SessionKey::from_secret(&secret)?;
        }
        if set("OPENAI_API_KEY").is_some() {
            config.model = Box::new(traced_llm::provider::OpenAi::from_env()?);
        } else if set("ANTHROPIC_API_KEY").is_some() {
            config.model = Box::new(traced_llm::provider::Anthropic::from_env()?);
            config.model_name = DEFAULT_ANTHROPIC_MODEL.to_owned();
        } else if set("GEMINI_API_KEY")
            .or_else(|| set("GOOGLE_API_KEY"))
            .is_some()
        {
            config.model = Box::new(traced_llm::provider::Gemini::from_env()?);
            config.model_name = DEFAULT_GEMINI_MODEL.to_owned();
        }
        if let Some(model) = set("CHAT_MODEL") {
            config.model_name = model;
        }
        if set("POSTHOG_API_KEY").is_some() {
            let sink = traced_llm::posthog::PosthogSink::from_env()?;
            config.sink = Arc::new(sink);
            config.flags = Some(Arc::new(
                traced_llm::posthog::flags::PosthogFlags::builder()
                    .exposures(traced_llm::flags::Exposures::from_arc(
                        Arc::clone(&config.sink),
                        traced_llm::flags::DEFAULT_MAX_EXPOSURES,
                    ))
                    .build()?,
            ));
        }
        if let Some(flag) = set("CHAT_FLAG") {
            config.flag_key = flag;
        }
        if let Some(path) = set("CHAT_FLAGS_FILE") {
            let text = std::fs::read_to_string(&path)
                .map_err(|err| ConfigError::new(format!("CHAT_FLAGS_FILE {path}: {err}")))?;
            config.flag_definitions = serde_json::from_str(&text)
                .map_err(|err| ConfigError::new(format!("CHAT_FLAGS_FILE {path}: {err}")))?;
        }
        if let Some(budget) = set("CHAT_TOKEN_BUDGET") {
            config.token_budget = budget.trim().parse().map_err(|_| {
                ConfigError::new(format!(
                    "CHAT_TOKEN_BUDGET must be a whole number, got {budget:?}"
                ))
            })?;
        }
        Ok(config)
    }

    /// Who may sign in.
    pub fn users(mut self, users: Users) -> Self {
        self.users = users;
        self
    }

    /// The key that signs session cookies.
    pub fn session_key(mut self, key: SessionKey) -> Self {
        self.session_key = key;
        self
    }

    /// How long a session cookie is valid.
    pub fn session_max_age(mut self, max_age: Duration) -> Self {
        self.session_max_age = max_age;
        self
    }

    /// The model that answers (it is traced and budgeted by the service).
    pub fn model(mut self, model: impl LlmModel + 'static) -> Self {
        self.model = Box::new(model);
        self
    }

    /// The model name asked for, before the experiment's payload may change it.
    pub fn model_name(mut self, name: impl Into<String>) -> Self {
        self.model_name = name.into();
        self
    }

    /// The system prompt of every conversation.
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.system_prompt = prompt.into();
        self
    }

    /// Where events go (the monitor sees them too).
    pub fn sink(mut self, sink: impl Sink + 'static) -> Self {
        self.sink = Arc::new(sink);
        self
    }

    /// Where events go, shared.
    pub fn shared_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.sink = sink;
        self
    }

    /// The flag source; without one the flag definitions are evaluated locally, and their
    /// exposures go to the sink.
    pub fn flags(mut self, flags: impl FlagSource + 'static) -> Self {
        self.flags = Some(Arc::new(flags));
        self
    }

    /// The flag whose variant payload sets the model parameters.
    pub fn flag_key(mut self, key: impl Into<String>) -> Self {
        self.flag_key = key.into();
        self
    }

    /// The flag definitions evaluated locally (PostHog's local-evaluation JSON).
    pub fn flag_definitions(mut self, definitions: Value) -> Self {
        self.flag_definitions = definitions;
        self
    }

    /// The monitor's clock; the session cookies' time comes from its wall clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How much is kept in memory per user.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Tokens a user may spend per monitor window.
    pub fn token_budget(mut self, tokens: u64) -> Self {
        self.token_budget = tokens;
        self
    }

    /// Whether failed calls also send `$exception` (on by default).
    pub fn error_tracking(mut self, enabled: bool) -> Self {
        self.error_tracking = enabled;
        self
    }

    /// The users who may sign in, for printing their names at start.
    pub fn usernames(&self) -> Vec<&str> {
        self.users.names().collect()
    }

    /// The provider that answers, for printing at start.
    pub fn provider(&self) -> &str {
        self.model.provider()
    }

    /// The model asked for, for printing at start.
    pub fn model_name_in_use(&self) -> &str {
        &self.model_name
    }

    /// The sink, so `main` can flush it before it exits.
    pub fn event_sink(&self) -> Arc<dyn Sink> {
        Arc::clone(&self.sink)
    }
}

impl Limits {
    /// Keeps `conversations` per user.
    #[must_use]
    pub fn max_conversations_per_user(mut self, conversations: usize) -> Self {
        self.max_conversations_per_user = conversations.max(1);
        self
    }

    /// Keeps `messages` per conversation.
    #[must_use]
    pub fn max_messages_per_conversation(mut self, messages: usize) -> Self {
        self.max_messages_per_conversation = messages.max(2);
        self
    }

    /// Accepts messages of up to `chars` characters.
    #[must_use]
    pub fn max_message_chars(mut self, chars: usize) -> Self {
        self.max_message_chars = chars.max(1);
        self
    }
}

impl fmt::Debug for ChatConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Users and the session key print redacted by their own Debug.
        f.debug_struct("ChatConfig")
            .field("users", &self.users)
            .field("session_key", &self.session_key)
            .field("provider", &self.model.provider())
            .field("model_name", &self.model_name)
            .field("sink", &self.sink)
            .field("flags", &self.flags)
            .field("flag_key", &self.flag_key)
            .field("limits", &self.limits)
            .field("token_budget", &self.token_budget)
            .field("error_tracking", &self.error_tracking)
            .finish_non_exhaustive()
    }
}
