use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{ContentPart, ToolCall, Usage};

/// The answer to a non-streaming chat call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatResponse {
    /// The provider's id for the completion (`chatcmpl-…`, `msg_…`).
    pub id: Option<String>,
    /// The model that answered, as the provider names it.
    pub model: Option<String>,
    /// The assistant's content: text, reasoning-free; tool calls as [`ContentPart::ToolCall`].
    pub content: Vec<ContentPart>,
    /// Why generation stopped, in the provider's words (`stop`, `end_turn`, `tool_calls`, ...).
    pub finish_reason: Option<String>,
    /// Token counts.
    pub usage: Usage,
    /// Other facts the provider reported, such as `system_fingerprint`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl ChatResponse {
    /// A response holding one text part.
    pub fn text_response(text: impl Into<String>) -> Self {
        Self {
            content: vec![ContentPart::text(text)],
            ..Self::default()
        }
    }

    /// Sets the completion id.
    #[must_use]
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the model.
    #[must_use]
    pub fn with_model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Sets the finish reason.
    #[must_use]
    pub fn with_finish_reason(mut self, reason: impl Into<String>) -> Self {
        self.finish_reason = Some(reason.into());
        self
    }

    /// Sets the usage.
    #[must_use]
    pub fn with_usage(mut self, usage: Usage) -> Self {
        self.usage = usage;
        self
    }

    /// Adds a content part.
    #[must_use]
    pub fn with_part(mut self, part: ContentPart) -> Self {
        self.content.push(part);
        self
    }

    /// All text parts joined.
    pub fn text(&self) -> String {
        self.content.iter().filter_map(ContentPart::as_text).collect()
    }

    /// The tool calls, in order.
    pub fn tool_calls(&self) -> impl Iterator<Item = &ToolCall> {
        self.content.iter().filter_map(|part| match part {
            ContentPart::ToolCall(call) => Some(call),
            _ => None,
        })
    }
}
