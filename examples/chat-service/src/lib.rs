//! The chat service `traced-llm` was made for, as a library so its tests can drive it.
//!
//! A person signs in, chats with a model whose answer streams back as server-sent events,
//! rates the answer, and runs into a token budget; every model call is traced into PostHog's
//! LLM analytics with who made it, which conversation it belongs to, which variant of the
//! model-parameters experiment it ran under, and what it cost.
//!
//! [`app`] builds the axum [`Router`](axum::Router) from a [`ChatConfig`]; [`serve`] runs it.
//! `src/main.rs` is only [`ChatConfig::from_env`] and [`serve`].
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page (sign-in, chat, feedback), with `/app.js` and `/style.css` |
//! | `POST /api/session` | sign in: `{"username", "password"}`, sets the session cookie |
//! | `GET /api/session` | who is signed in |
//! | `DELETE /api/session` | sign out |
//! | `POST /api/chat` | `{"message", "conversation_id"?}`: the answer as server-sent events |
//! | `POST /api/feedback` | `{"conversation_id", "rating": "up" \| "down"}`: `$ai_feedback` |
//! | `GET /metrics` | the monitor's live figures as JSON |

#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]

pub mod auth;
mod chat;
mod config;
pub mod demo;
mod feedback;
mod metrics;
mod page;
mod state;

use std::future::Future;

use axum::routing::{get, post};
use axum::Router;

pub use crate::chat::{topic_of, Conversations, DONE_EVENT, ERROR_EVENT};
pub use crate::config::{
    ChatConfig, ConfigError, Limits, DEFAULT_ANTHROPIC_MODEL, DEFAULT_FLAG_DEFINITIONS,
    DEFAULT_FLAG_KEY, DEFAULT_GEMINI_MODEL, DEFAULT_MODEL, DEFAULT_PORT, DEFAULT_SESSION_MAX_AGE,
    DEFAULT_SYSTEM_PROMPT, DEFAULT_TOKEN_BUDGET,
};

use crate::state::AppState;

/// The service's routes over the state `config` describes.
///
/// # Errors
/// [`ConfigError`] when the monitor or the flag source cannot be built from `config`.
pub fn app(config: ChatConfig) -> Result<Router, ConfigError> {
    let state = AppState::new(config)?;
    Ok(Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route(
            "/api/session",
            post(auth::sign_in).get(auth::whoami).delete(auth::sign_out),
        )
        .route("/api/chat", post(chat::post_chat))
        .route("/api/feedback", post(feedback::post_feedback))
        .route("/metrics", get(metrics::get_metrics))
        .with_state(state))
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open answers finish.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
