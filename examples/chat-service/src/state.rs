//! What every route shares: the traced model, the monitor, the flags, the conversations.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use traced_llm::flags::{Exposures, FlagSource, DEFAULT_MAX_EXPOSURES};
use traced_llm::monitor::{Budget, Budgeted, Clock, Monitor};
use traced_llm::posthog::flags::PosthogFlags;
use traced_llm::sink::Fanout;
use traced_llm::trace::Tracer;
use traced_llm::{LlmModel, TracedModel};

use crate::auth::{SessionKey, Users};
use crate::chat::Conversations;
use crate::config::{ChatConfig, ConfigError, Limits};

/// The model as the routes call it: budgeted first, then traced, so a refusal is recorded.
pub(crate) type ChatModel = TracedModel<Budgeted<Box<dyn LlmModel>>>;

/// The routes' shared state; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) users: Users,
    pub(crate) session_key: SessionKey,
    pub(crate) session_max_age: Duration,
    pub(crate) clock: SharedClock,
    pub(crate) model: ChatModel,
    pub(crate) tracer: Tracer,
    pub(crate) monitor: Monitor,
    pub(crate) flags: Arc<dyn FlagSource>,
    pub(crate) flag_key: String,
    pub(crate) model_name: String,
    pub(crate) system_prompt: String,
    pub(crate) conversations: Conversations,
}

impl AppState {
    pub(crate) fn new(config: ChatConfig) -> Result<Self, ConfigError> {
        let clock = SharedClock(config.clock);
        let monitor = Monitor::builder()
            .budget(Budget::tokens(config.token_budget))
            .shared_alert_sink(Arc::clone(&config.sink))
            .clock(clock.clone())
            .build()
            .map_err(|err| ConfigError::new(format!("monitor: {err}")))?;
        let model = TracedModel::builder(Budgeted::new(config.model, monitor.clone()))
            .sink(
                Fanout::new()
                    .with(monitor.clone())
                    .with_shared(Arc::clone(&config.sink)),
            )
            .error_tracking(config.error_tracking)
            .build();
        let flags = match config.flags {
            Some(flags) => flags,
            None => Arc::new(
                PosthogFlags::builder()
                    .definitions(config.flag_definitions)
                    .exposures(Exposures::from_arc(
                        Arc::clone(&config.sink),
                        DEFAULT_MAX_EXPOSURES,
                    ))
                    .build()?,
            ),
        };
        let limits: Limits = config.limits;
        Ok(Self {
            inner: Arc::new(Inner {
                users: config.users,
                session_key: config.session_key,
                session_max_age: config.session_max_age,
                clock,
                tracer: model.tracer(),
                model,
                monitor,
                flags,
                flag_key: config.flag_key,
                model_name: config.model_name,
                system_prompt: config.system_prompt,
                conversations: Conversations::new(limits),
            }),
        })
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState")
            .field("users", &self.users)
            .field("model_name", &self.model_name)
            .field("flag_key", &self.flag_key)
            .finish_non_exhaustive()
    }
}

/// The injected clock, shared by the monitor and the session cookies.
#[derive(Debug, Clone)]
pub(crate) struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> Duration {
        self.0.now()
    }

    fn wall(&self) -> SystemTime {
        self.0.wall()
    }
}

/// `{"error": message}` with `status`: what the page shows in its banner.
pub(crate) fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}
