//! The Messages API wire format: neutral request to JSON body, JSON answer to neutral response.

use serde::Deserialize;

use crate::provider::http::lenient_count;
use serde_json::{json, Map, Value};

use crate::types::{
    ChatRequest, ChatResponse, ContentPart, ImageSource, Role, ToolCall, ToolChoice, Usage,
};

/// The JSON body of a call. System messages become the top-level `system`; tool results go in
/// `user` turns; `max_tokens`, which the API requires, falls back to `default_max_tokens`.
///
/// `seed`, the frequency and presence penalties and `response_format` have no Messages API
/// counterpart and are not sent; `extra` is written last, so it wins.
pub(crate) fn messages_body(request: &ChatRequest, stream: bool, default_max_tokens: u32) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), request.model.clone().into());
    body.insert(
        "max_tokens".into(),
        request.max_tokens.unwrap_or(default_max_tokens).into(),
    );

    let mut system = Vec::new();
    let mut messages: Vec<(Role, Vec<Value>)> = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        if message.role == Role::System {
            system.extend(message.content.iter().filter_map(|part| part.as_text()));
            continue;
        }
        let blocks: Vec<Value> = message.content.iter().map(block).collect();
        // Consecutive tool results belong in one user turn.
        match messages.last_mut() {
            Some((last_role, last_blocks))
                if message.role == Role::Tool && *last_role == Role::Tool =>
            {
                last_blocks.extend(blocks);
            }
            _ => messages.push((message.role, blocks)),
        }
    }
    match system.as_slice() {
        [] => {}
        [text] => {
            body.insert("system".into(), (*text).into());
        }
        texts => {
            let blocks = texts
                .iter()
                .map(|text| json!({"type": "text", "text": text}))
                .collect();
            body.insert("system".into(), Value::Array(blocks));
        }
    }
    let messages = messages
        .into_iter()
        .map(|(role, blocks)| {
            let role = if role == Role::Assistant {
                "assistant"
            } else {
                "user"
            };
            let content = match blocks.as_slice() {
                [block] if block["type"] == "text" => block["text"].clone(),
                _ => Value::Array(blocks),
            };
            json!({"role": role, "content": content})
        })
        .collect();
    body.insert("messages".into(), Value::Array(messages));

    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                let mut wire = Map::new();
                wire.insert("name".into(), tool.name.clone().into());
                if let Some(description) = &tool.description {
                    wire.insert("description".into(), description.clone().into());
                }
                wire.insert("input_schema".into(), tool.parameters.clone());
                Value::Object(wire)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!({"type": "auto"}),
            ToolChoice::None => json!({"type": "none"}),
            ToolChoice::Required => json!({"type": "any"}),
            ToolChoice::Tool(name) => json!({"type": "tool", "name": name}),
        };
        body.insert("tool_choice".into(), choice);
    }
    if let Some(temperature) = request.temperature {
        body.insert("temperature".into(), temperature.into());
    }
    if let Some(top_p) = request.top_p {
        body.insert("top_p".into(), top_p.into());
    }
    if !request.stop.is_empty() {
        body.insert("stop_sequences".into(), request.stop.clone().into());
    }
    for (key, value) in &request.extra {
        body.insert(key.clone(), value.clone());
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
    } else {
        body.remove("stream");
    }
    Value::Object(body)
}

fn block(part: &ContentPart) -> Value {
    match part {
        ContentPart::Text { text } => json!({"type": "text", "text": text}),
        ContentPart::Image { source } => json!({"type": "image", "source": image_source(source)}),
        ContentPart::ToolCall(call) => {
            // `input` must be an object; arguments the model wrote as invalid JSON cannot be
            // sent back as they were.
            let input = match call.parsed_arguments() {
                Ok(value @ Value::Object(_)) => value,
                _ => Value::Object(Map::new()),
            };
            json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input})
        }
        ContentPart::ToolResult {
            tool_call_id,
            content,
            is_error,
        } => {
            let mut wire = json!({
                "type": "tool_result",
                "tool_use_id": tool_call_id,
                "content": content,
            });
            if *is_error {
                wire["is_error"] = Value::Bool(true);
            }
            wire
        }
    }
}

/// Anthropic takes base64 images as `{type: base64}`, so a `data:` URL is unpacked.
fn image_source(source: &ImageSource) -> Value {
    match source {
        ImageSource::Base64 { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ImageSource::Url { url } => {
            if let Some((media_type, data)) = url
                .strip_prefix("data:")
                .and_then(|rest| rest.split_once(";base64,"))
            {
                json!({"type": "base64", "media_type": media_type, "data": data})
            } else {
                json!({"type": "url", "url": url})
            }
        }
    }
}

/// `usage` as the Messages API states it, in answers, `message_start` and `message_delta`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default, deserialize_with = "lenient_count")]
    pub(crate) input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub(crate) output_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub(crate) cache_read_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub(crate) cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    pub(crate) fn to_usage(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens,
            cache_creation_input_tokens: self.cache_creation_input_tokens,
            ..Usage::default()
        }
    }
}

/// A non-streamed answer.
#[derive(Debug, Deserialize)]
pub(crate) struct MessageAnswer {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    content: Option<Vec<AnswerBlock>>,
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnswerBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Thinking, server tools and whatever comes next: not part of the answer's content.
    #[serde(other)]
    Other,
}

impl MessageAnswer {
    pub(crate) fn into_response(self) -> ChatResponse {
        let mut response = ChatResponse {
            id: self.id,
            model: self.model,
            finish_reason: self.stop_reason.filter(|reason| !reason.is_empty()),
            usage: self.usage.map(|usage| usage.to_usage()).unwrap_or_default(),
            ..ChatResponse::default()
        };
        if let Some(sequence) = self.stop_sequence {
            response
                .metadata
                .insert("stop_sequence".into(), sequence.into());
        }
        for block in self.content.unwrap_or_default() {
            match block {
                AnswerBlock::Text { text } if !text.is_empty() => {
                    response.content.push(ContentPart::text(text));
                }
                AnswerBlock::ToolUse { id, name, input } => {
                    let arguments = if input.is_null() {
                        "{}".to_owned()
                    } else {
                        input.to_string()
                    };
                    response
                        .content
                        .push(ContentPart::ToolCall(ToolCall::new(id, name, arguments)));
                }
                _ => {}
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Message, Tool};

    #[test]
    fn system_tools_images_and_results_are_mapped() {
        let request = ChatRequest::new("claude-sonnet-4-5")
            .message(Message::system("Be brief."))
            .message(Message::system("Use tools."))
            .message(
                Message::user("Look:")
                    .with_part(ContentPart::image_base64("image/png", "iVBOR"))
                    .with_part(ContentPart::image_url("data:image/jpeg;base64,/9j/"))
                    .with_part(ContentPart::image_url("https://example.com/cat.png")),
            )
            .message(Message::assistant_tool_calls([
                ToolCall::new("toolu_1", "lookup", r#"{"q":"cats"}"#),
                ToolCall::new("toolu_2", "lookup", "not json"),
            ]))
            .message(Message::tool_result("toolu_1", "two cats"))
            .message(Message::new(
                Role::Tool,
                vec![ContentPart::ToolResult {
                    tool_call_id: "toolu_2".into(),
                    content: "bad input".into(),
                    is_error: true,
                }],
            ))
            .tool(Tool::new("lookup", "Looks up", json!({"type": "object"})))
            .tool_choice(ToolChoice::Required)
            .temperature(0.3)
            .top_p(0.8)
            .stop("END")
            .seed(3)
            .extra("metadata", json!({"user_id": "u1"}));
        let body = messages_body(&request, true, 4096);
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 4096,
                "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use tools."}],
                "messages": [
                    {"role": "user", "content": [
                        {"type": "text", "text": "Look:"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"}},
                        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
                    ]},
                    {"role": "assistant", "content": [
                        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cats"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "two cats"},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "bad input", "is_error": true},
                    ]},
                ],
                "tools": [{"name": "lookup", "description": "Looks up", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "any"},
                "temperature": 0.3,
                "top_p": 0.8,
                "stop_sequences": ["END"],
                "metadata": {"user_id": "u1"},
                "stream": true,
            })
        );
    }

    #[test]
    fn a_single_text_becomes_a_string_and_max_tokens_is_kept() {
        let request = ChatRequest::new("m")
            .message(Message::system("S"))
            .message(Message::user("Hi"))
            .max_tokens(10);
        let body = messages_body(&request, false, 4096);
        assert_eq!(
            body,
            json!({"model": "m", "max_tokens": 10, "system": "S",
                   "messages": [{"role": "user", "content": "Hi"}]})
        );
    }
}
