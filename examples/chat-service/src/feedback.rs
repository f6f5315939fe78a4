//! `POST /api/feedback`: 👍 or 👎 on an answer, sent as `$ai_feedback` for its conversation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use traced_llm::event::Feedback;

use crate::auth::SignedIn;
use crate::state::{error_response, AppState};

/// A thumbs up or down.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Rating {
    Up,
    Down,
}

/// What the page sends: the conversation (the trace) the answer belongs to, the rating, and
/// the answer's message count.
#[derive(Debug, Deserialize)]
pub(crate) struct FeedbackBody {
    conversation_id: String,
    rating: Rating,
    #[serde(default)]
    message_count: Option<u64>,
}

/// `POST /api/feedback`: 204, or 404 for a conversation that is not the user's.
pub(crate) async fn post_feedback(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Json(body): Json<FeedbackBody>,
) -> Response {
    let user = signed_in.user;
    if !state.conversations.owns(&user.id, &body.conversation_id) {
        return error_response(StatusCode::NOT_FOUND, "There is no such conversation.");
    }
    let feedback = match body.rating {
        Rating::Up => Feedback::thumbs_up(&body.conversation_id),
        Rating::Down => Feedback::thumbs_down(&body.conversation_id),
    };
    let mut feedback = feedback.with_distinct_id(&user.id);
    let properties = &mut feedback.envelope.properties;
    properties.insert("username".into(), user.username.clone().into());
    if let Some(count) = body.message_count {
        properties.insert("message_count".into(), count.into());
    }
    state.tracer.feedback(feedback);
    StatusCode::NO_CONTENT.into_response()
}
