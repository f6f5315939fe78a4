use std::pin::Pin;

use futures_core::Stream;
use serde::{Deserialize, Serialize};

use super::Usage;
use crate::Result;

/// One event of a streamed chat answer, independent of any provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamEvent {
    /// The completion id and model, usually from the first chunk.
    ResponseMetadata {
        /// The provider's completion id.
        id: Option<String>,
        /// The model that answers.
        model: Option<String>,
    },
    /// A piece of the answer's text.
    TextDelta {
        /// The text to append.
        text: String,
    },
    /// A piece of the model's reasoning.
    ReasoningDelta {
        /// The text to append.
        text: String,
    },
    /// A piece of a tool call. The first piece of each `index` carries the id and name; the
    /// argument fragments of one index are appended in order.
    ToolCallDelta {
        /// Which tool call of the answer this piece belongs to.
        index: usize,
        /// The call id, when this piece states it.
        id: Option<String>,
        /// The tool name, when this piece states it.
        name: Option<String>,
        /// A fragment of the JSON arguments.
        arguments: String,
    },
    /// Token counts; a later report's stated fields win over an earlier one's (see
    /// [`Usage::merge`]).
    Usage(Usage),
    /// Why generation stopped, in the provider's words.
    Finish {
        /// The reason (`stop`, `end_turn`, `tool_calls`, ...).
        reason: String,
    },
}

impl StreamEvent {
    /// A text delta.
    pub fn text(text: impl Into<String>) -> Self {
        StreamEvent::TextDelta { text: text.into() }
    }

    /// A finish event.
    pub fn finish(reason: impl Into<String>) -> Self {
        StreamEvent::Finish {
            reason: reason.into(),
        }
    }

    /// Whether this event carries part of the answer (text, reasoning or a tool call): the first
    /// such event marks the time to first token.
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            StreamEvent::TextDelta { .. }
                | StreamEvent::ReasoningDelta { .. }
                | StreamEvent::ToolCallDelta { .. }
        )
    }
}

/// The stream a provider returns: boxed, `Send`, owning everything it needs.
pub type ChatStream = Pin<Box<dyn Stream<Item = Result<StreamEvent>> + Send + 'static>>;
