//! `POST /api/chat`: the flag, the traced call with the user's context, the answer as SSE.
//!
//! The answer streams as server-sent events: one `data:` frame per piece of text, then an
//! `event: done` frame whose data is `{"conversation_id", "message_count"}`; a provider error
//! in the middle ends it with an `event: error` frame, `{"error": "<readable message>"}`. The
//! conversation id and message count are also in the `x-conversation-id` and
//! `x-message-count` headers. Before the stream starts, failures are JSON `{"error"}` with
//! 400, 404, 409, 413, 429 (token budget) or 502 (provider).

mod conversation;
mod stream;
mod topic;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::sse::Sse;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use traced_llm::flags::FlagRequest;
use traced_llm::monitor::{BudgetExceeded, Spent};
use traced_llm::{CallContext, ChatRequest, Error, LlmModel, Message};
use tracing::Instrument;

pub use self::conversation::Conversations;
pub use self::stream::{DONE_EVENT, ERROR_EVENT};
pub use self::topic::topic_of;

use self::conversation::TurnError;
use self::stream::{answer_events, Answer};
use crate::auth::SignedIn;
use crate::state::{error_response, AppState};

/// What the page sends.
#[derive(Debug, Deserialize)]
pub(crate) struct ChatBody {
    message: String,
    #[serde(default)]
    conversation_id: Option<String>,
}

/// `POST /api/chat`.
pub(crate) async fn post_chat(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Json(body): Json<ChatBody>,
) -> Response {
    let SignedIn { user, session_id } = signed_in;
    let question = body.message.trim();
    if question.is_empty() {
        return error_response(StatusCode::BAD_REQUEST, "Type a message first.");
    }
    let max_chars = state.conversations.limits().max_message_chars;
    if question.chars().count() > max_chars {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("Messages are limited to {max_chars} characters."),
        );
    }
    let turn = match state
        .conversations
        .begin(&user.id, body.conversation_id.as_deref(), question)
    {
        Ok(turn) => turn,
        Err(TurnError::NotFound) => {
            return error_response(
                StatusCode::NOT_FOUND,
                "This conversation is no longer here; start a new one.",
            )
        }
        Err(TurnError::Full(max)) => {
            return error_response(
                StatusCode::CONFLICT,
                format!("This conversation has reached {max} messages; start a new one."),
            )
        }
    };

    // The experiment: the variant's payload sets this user's model parameters, reading it
    // records the exposure, and the call's events carry `$feature/<key>`.
    let flags = state
        .flags
        .evaluate(&FlagRequest::new(&user.id).key(&state.flag_key))
        .await;
    let mut request = ChatRequest::new(&state.model_name)
        .message(Message::system(&state.system_prompt))
        .context(
            CallContext::new()
                .distinct_id(&user.id)
                .trace_id(&turn.conversation_id)
                .session_id(&session_id)
                .span_name("chat")
                .property("username", &user.username)
                .property("message_count", turn.message_count())
                .property("topic", &turn.topic),
        );
    request.messages.extend(turn.messages.iter().cloned());
    if let Err(err) = flags.apply_payload(&state.flag_key, &mut request) {
        tracing::warn!(flag = %state.flag_key, error = %err, "the flag's payload is unusable; default parameters");
    }

    // With the `otel` feature the call starts under this span's OpenTelemetry context.
    let span = tracing::info_span!(
        "POST /api/chat",
        user = %user.username,
        conversation_id = %turn.conversation_id,
    );
    let stream = match state.model.chat_stream(&request).instrument(span).await {
        Ok(stream) => stream,
        Err(err) if err.is_budget() => {
            tracing::info!(user = %user.username, "refused: token budget spent");
            return error_response(StatusCode::TOO_MANY_REQUESTS, budget_message(&err));
        }
        Err(err) => {
            tracing::warn!(user = %user.username, error = %err, "the model call failed");
            return error_response(StatusCode::BAD_GATEWAY, readable(&err));
        }
    };

    let headers = [
        (
            HeaderName::from_static("x-conversation-id"),
            HeaderValue::from_str(&turn.conversation_id).expect("a uuid is a header value"),
        ),
        (
            HeaderName::from_static("x-message-count"),
            HeaderValue::from(turn.message_count()),
        ),
    ];
    let answer = Answer::new(state.clone(), user.id, turn);
    (
        headers,
        Sse::new(answer_events(stream.into_text_stream(), answer)),
    )
        .into_response()
}

/// What a person reads when the budget refused their question.
fn budget_message(err: &Error) -> String {
    let Some(refused) = BudgetExceeded::of(err) else {
        return "You have used your token budget for now; please try again later.".to_owned();
    };
    let minutes = refused.window.as_secs().div_ceil(60);
    let spent = match refused.spent {
        Spent::Tokens { spent, limit } => {
            format!("{spent} of {limit} tokens in the last {minutes} minutes")
        }
        Spent::CostUsd { spent, limit } => {
            format!("${spent:.2} of ${limit:.2} in the last {minutes} minutes")
        }
        _ => format!("your budget for the last {minutes} minutes"),
    };
    let retry = refused.retry_after.map_or(String::new(), |after| {
        let minutes = after.as_secs().div_ceil(60).max(1);
        format!(
            " Try again in about {minutes} minute{}.",
            if minutes == 1 { "" } else { "s" }
        )
    });
    format!("You have used your token budget: {spent}.{retry}")
}

/// What a person reads when the provider failed: the kind of failure, never the provider's
/// own text (which may quote the request) nor anything of the configuration.
pub(crate) fn readable(err: &Error) -> String {
    if err.is_timeout() {
        return "The model took too long to answer. Please try again.".to_owned();
    }
    if err.is_connect() {
        return "The model provider cannot be reached right now. Please try again later."
            .to_owned();
    }
    match err.status() {
        Some(429) => {
            "The model provider is busy (rate limited). Please try again in a moment.".to_owned()
        }
        Some(401 | 403) => {
            "The service's credentials for the model provider were refused.".to_owned()
        }
        Some(status) if status >= 500 => {
            format!("The model provider had a problem (HTTP {status}). Please try again.")
        }
        Some(status) => format!("The model provider refused the question (HTTP {status})."),
        None => "The model could not answer. Please try again.".to_owned(),
    }
}
