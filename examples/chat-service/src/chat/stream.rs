//! The answer as server-sent events, stored in the conversation however it ends.

use std::convert::Infallible;

use axum::response::sse::Event;
use futures_util::stream::{self, Stream};
use traced_llm::types::TextStream;

use super::conversation::Turn;
use super::readable;
use crate::state::AppState;

/// The name of the last frame of a complete answer.
pub const DONE_EVENT: &str = "done";
/// The name of the last frame of an answer the provider broke off.
pub const ERROR_EVENT: &str = "error";

/// The answer so far. Dropped, it stores the question and what arrived of the answer: a
/// complete one, or the part a person saw before they stopped it (the traced stream, dropped
/// beside it, records that call as cancelled). An answer that failed is not stored.
pub(crate) struct Answer {
    state: AppState,
    user_id: String,
    turn: Option<Turn>,
    text: String,
}

impl Answer {
    pub(crate) fn new(state: AppState, user_id: String, turn: Turn) -> Self {
        Self {
            state,
            user_id,
            turn: Some(turn),
            text: String::new(),
        }
    }

    fn done_frame(&self) -> Event {
        let turn = self.turn.as_ref().expect("the turn is kept until drop");
        Event::default().event(DONE_EVENT).data(
            serde_json::json!({
                "conversation_id": turn.conversation_id,
                "message_count": turn.message_count(),
            })
            .to_string(),
        )
    }
}

impl Drop for Answer {
    fn drop(&mut self) {
        if let Some(turn) = self.turn.take() {
            if !self.text.is_empty() {
                let text = std::mem::take(&mut self.text);
                self.state.conversations.finish(&self.user_id, turn, text);
            }
        }
    }
}

/// One `data:` frame per piece of `text`, then `event: done` (or `event: error`).
pub(crate) fn answer_events(
    text: TextStream,
    answer: Answer,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    stream::unfold(Some((text, answer)), |state| async move {
        let (mut text, mut answer) = state?;
        loop {
            match text.next().await {
                Some(Ok(piece)) if piece.is_empty() => continue,
                Some(Ok(piece)) => {
                    answer.text.push_str(&piece);
                    let frame = Event::default().data(piece);
                    return Some((Ok(frame), Some((text, answer))));
                }
                Some(Err(err)) => {
                    tracing::warn!(error = %err, "the answer broke off");
                    answer.turn = None;
                    let frame = Event::default()
                        .event(ERROR_EVENT)
                        .data(serde_json::json!({ "error": readable(&err) }).to_string());
                    return Some((Ok(frame), None));
                }
                None => {
                    // The traced call ends (and is recorded) before the last frame goes out.
                    drop(text);
                    let frame = answer.done_frame();
                    return Some((Ok(frame), None));
                }
            }
        }
    })
}
