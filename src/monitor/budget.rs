//! Budgets: what a distinct id may spend in the window, checked before a call is made.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::Monitor;
use crate::record::CallContext;
use crate::types::{ChatRequest, ChatResponse, ChatStream, EmbeddingRequest, EmbeddingResponse};
use crate::{Error, LlmModel, Result};

/// What one distinct id may spend in the monitor's rolling window: tokens (input plus output),
/// cost in USD, or both. A call is refused once the window's spending reached a limit.
///
/// ```
/// use traced_llm::monitor::Budget;
///
/// let budget = Budget::tokens(200_000).with_cost_usd(5.0);
/// assert_eq!(budget.max_tokens, Some(200_000));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Budget {
    /// Tokens (input plus output) per window.
    #[serde(default, rename = "tokens", skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// USD per window, at the event's cost or the monitor's prices.
    #[serde(default, rename = "cost_usd", skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
}

impl Budget {
    /// At most `tokens` tokens per window.
    pub const fn tokens(tokens: u64) -> Self {
        Self {
            max_tokens: Some(tokens),
            max_cost_usd: None,
        }
    }

    /// At most `usd` per window.
    pub const fn cost_usd(usd: f64) -> Self {
        Self {
            max_tokens: None,
            max_cost_usd: Some(usd),
        }
    }

    /// No limit: for an id exempt from the default budget.
    pub const fn unlimited() -> Self {
        Self {
            max_tokens: None,
            max_cost_usd: None,
        }
    }

    /// Adds a token limit.
    #[must_use]
    pub const fn with_tokens(self, tokens: u64) -> Self {
        Self {
            max_tokens: Some(tokens),
            ..self
        }
    }

    /// Adds a cost limit.
    #[must_use]
    pub const fn with_cost_usd(self, usd: f64) -> Self {
        Self {
            max_cost_usd: Some(usd),
            ..self
        }
    }

    pub(super) fn problem(&self) -> Option<String> {
        match self.max_cost_usd {
            Some(usd) if !(usd.is_finite() && usd >= 0.0) => Some(format!(
                "a cost budget must be a finite number of USD of 0 or more, not {usd}"
            )),
            _ => None,
        }
    }
}

/// Which limit a refused call hit, and what was spent.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Spent {
    /// Tokens spent in the window, and the limit.
    Tokens {
        /// Input plus output tokens in the window.
        spent: u64,
        /// The budget's limit.
        limit: u64,
    },
    /// USD spent in the window, and the limit.
    CostUsd {
        /// Cost in the window.
        spent: f64,
        /// The budget's limit.
        limit: f64,
    },
}

/// A call refused before it was made: the distinct id's budget for the window is spent.
///
/// [`Monitor::check`] returns it; [`Budgeted`] turns it into an [`Error`] of kind
/// [`ErrorKind::Budget`](crate::event::ErrorKind::Budget) that carries it as its source (get
/// it back with [`BudgetExceeded::of`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BudgetExceeded {
    /// Whose budget.
    pub distinct_id: String,
    /// The limit hit, and what was spent.
    pub spent: Spent,
    /// The rolling window budgets are measured over.
    pub window: Duration,
    /// When enough of the window's spending will have left it for a call to pass.
    pub retry_after: Option<Duration>,
}

impl BudgetExceeded {
    /// The refusal inside `error`, when `error` is one.
    pub fn of(error: &Error) -> Option<&BudgetExceeded> {
        std::error::Error::source(error)?.downcast_ref()
    }
}

impl fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let window = humantime::format_duration(self.window);
        match self.spent {
            Spent::Tokens { spent, limit } => write!(
                f,
                "{} spent {spent} of {limit} tokens in the last {window}",
                self.distinct_id
            )?,
            Spent::CostUsd { spent, limit } => write!(
                f,
                "{} spent ${spent:.4} of ${limit:.4} in the last {window}",
                self.distinct_id
            )?,
        }
        if let Some(after) = self.retry_after {
            let after = Duration::from_secs(after.as_secs().max(1));
            write!(f, "; retry in {}", humantime::format_duration(after))?;
        }
        Ok(())
    }
}

impl std::error::Error for BudgetExceeded {}

impl From<BudgetExceeded> for Error {
    fn from(refused: BudgetExceeded) -> Self {
        Error::budget(refused.to_string()).with_source(refused)
    }
}

/// A model whose calls are checked against the monitor's budget first: a call for a distinct
/// id whose budget is spent is refused with an [`Error`] of kind
/// [`ErrorKind::Budget`](crate::event::ErrorKind::Budget), without reaching the model.
///
/// Put it inside the [`TracedModel`](crate::TracedModel), so that the refused call is recorded
/// like any failed call: an event with `$ai_error_type: "budget"`. Calls without a distinct id
/// are never refused.
///
/// ```
/// use traced_llm::monitor::{Budget, Budgeted, Monitor};
/// use traced_llm::sink::{Fanout, InMemorySink};
/// use traced_llm::testing::ScriptedModel;
/// use traced_llm::{CallContext, ChatRequest, ChatResponse, LlmModel, Message, TracedModel};
/// use traced_llm::types::Usage;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let monitor = Monitor::builder().budget(Budget::tokens(1_000)).build().unwrap();
/// let events = InMemorySink::new();
/// let answer = ChatResponse::text_response("...").with_usage(Usage::new(900, 200));
/// let model = TracedModel::new(
///     Budgeted::new(ScriptedModel::new().respond(answer).repeat_last(), monitor.clone()),
///     Fanout::new().with(monitor.clone()).with(events.clone()),
/// );
/// let request = ChatRequest::new("gpt-5-mini")
///     .message(Message::user("Go on"))
///     .context(CallContext::new().distinct_id("user_42"));
///
/// assert!(model.chat(&request).await.is_ok()); // 1,100 tokens: the budget is now spent
/// let refused = model.chat(&request).await.unwrap_err();
/// assert!(refused.is_budget());
/// assert_eq!(events.generations()[1].error.as_ref().unwrap().kind.as_str(), "budget");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Budgeted<M> {
    inner: M,
    monitor: Monitor,
}

impl<M> Budgeted<M> {
    /// Checks every call of `inner` against `monitor`'s budgets.
    pub fn new(inner: M, monitor: Monitor) -> Self {
        Self { inner, monitor }
    }

    /// The monitor whose budgets apply.
    pub fn monitor(&self) -> &Monitor {
        &self.monitor
    }

    /// The wrapped model.
    pub fn get_ref(&self) -> &M {
        &self.inner
    }

    /// The wrapped model, mutably.
    pub fn get_mut(&mut self) -> &mut M {
        &mut self.inner
    }

    /// Unwraps the model.
    pub fn into_inner(self) -> M {
        self.inner
    }

    fn check(&self, context: &CallContext) -> Result<()> {
        match &context.distinct_id {
            Some(distinct_id) => self.monitor.check(distinct_id).map_err(Error::from),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl<M: LlmModel> LlmModel for Budgeted<M> {
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse> {
        self.check(&request.context)?;
        self.inner.chat(request).await
    }

    async fn chat_stream(&self, request: &ChatRequest) -> Result<ChatStream> {
        self.check(&request.context)?;
        self.inner.chat_stream(request).await
    }

    async fn embed(&self, request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        self.check(&request.context)?;
        self.inner.embed(request).await
    }

    fn provider(&self) -> &str {
        self.inner.provider()
    }

    fn base_url(&self) -> &str {
        self.inner.base_url()
    }

    fn cache_tokens_in_input(&self) -> bool {
        self.inner.cache_tokens_in_input()
    }
}
