//! The opt-in content attributes as the GenAI conventions' JSON: `gen_ai.input.messages`,
//! `gen_ai.output.messages`, `gen_ai.system_instructions`, `gen_ai.tool.definitions`.
//!
//! Built only when content capture is on and the call was not private. Inline base64 media
//! never leaves the process, as on every other path: it becomes `[base64 image/png redacted]`.

use serde_json::{json, Map, Value};

use crate::types::{ContentPart, ImageSource, Message, Role, Tool};

/// Providers whose API takes system instructions apart from the conversation: their system
/// messages go to `gen_ai.system_instructions`, everyone else's stay in the input messages.
const SEPARATE_SYSTEM_INSTRUCTIONS: [&str; 5] = [
    "anthropic",
    "aws.bedrock",
    "gcp.gemini",
    "gcp.gen_ai",
    "gcp.vertex_ai",
];

/// `(gen_ai.system_instructions, gen_ai.input.messages)` of a conversation sent to `provider`
/// (a `gen_ai.provider.name`); the first is `None` when there are no separate instructions.
pub(super) fn input_messages(provider: &str, messages: &[Message]) -> (Option<String>, String) {
    let separate = SEPARATE_SYSTEM_INSTRUCTIONS.contains(&provider);
    let mut instructions = Vec::new();
    let mut conversation = Vec::with_capacity(messages.len());
    for message in messages {
        if separate && message.role == Role::System {
            instructions.extend(message.content.iter().map(part));
        } else {
            conversation.push(chat_message(
                message.role.as_str(),
                message.name.as_deref(),
                &message.content,
                None,
            ));
        }
    }
    let instructions = (!instructions.is_empty()).then(|| Value::Array(instructions).to_string());
    (instructions, Value::Array(conversation).to_string())
}

/// `gen_ai.output.messages`: the answer as one assistant message (one choice).
pub(super) fn output_messages(parts: &[ContentPart], finish_reason: &str) -> String {
    Value::Array(vec![chat_message(
        "assistant",
        None,
        parts,
        Some(finish_reason),
    )])
    .to_string()
}

/// `gen_ai.tool.definitions`: every tool offered, as a function with its schema.
pub(super) fn tool_definitions(tools: &[Tool]) -> String {
    let tools = tools
        .iter()
        .map(|tool| {
            let mut definition = Map::new();
            definition.insert("type".into(), "function".into());
            definition.insert("name".into(), tool.name.clone().into());
            if let Some(description) = &tool.description {
                definition.insert("description".into(), description.clone().into());
            }
            if !tool.parameters.is_null() {
                definition.insert("parameters".into(), tool.parameters.clone());
            }
            Value::Object(definition)
        })
        .collect();
    Value::Array(tools).to_string()
}

fn chat_message(
    role: &str,
    name: Option<&str>,
    parts: &[ContentPart],
    finish_reason: Option<&str>,
) -> Value {
    let mut message = Map::new();
    message.insert("role".into(), role.into());
    message.insert("parts".into(), parts.iter().map(part).collect());
    if let Some(name) = name {
        message.insert("name".into(), name.into());
    }
    if let Some(finish_reason) = finish_reason {
        message.insert("finish_reason".into(), finish_reason.into());
    }
    Value::Object(message)
}

fn part(part: &ContentPart) -> Value {
    match part {
        ContentPart::Text { text } => json!({"type": "text", "content": text}),
        ContentPart::Image { source } => image(source),
        ContentPart::ToolCall(call) => json!({
            "type": "tool_call",
            "id": call.id,
            "name": call.name,
            // Structured when the model wrote valid JSON, the text as it came otherwise.
            "arguments": call.parsed_arguments().unwrap_or_else(|_| call.arguments.clone().into()),
        }),
        ContentPart::ToolResult {
            tool_call_id,
            content,
            ..
        } => json!({"type": "tool_call_response", "id": tool_call_id, "response": content}),
    }
}

fn image(source: &ImageSource) -> Value {
    match source {
        ImageSource::Url { url } => match data_url_media_type(url) {
            Some(media_type) => redacted_image(media_type),
            None => json!({"type": "uri", "modality": "image", "uri": url}),
        },
        ImageSource::Base64 { media_type, .. } => redacted_image(media_type),
    }
}

fn redacted_image(media_type: &str) -> Value {
    json!({
        "type": "blob",
        "modality": "image",
        "mime_type": media_type,
        "content": format!("[base64 {media_type} redacted]"),
    })
}

/// The media type of a `data:<type>;base64,` URL.
fn data_url_media_type(url: &str) -> Option<&str> {
    let header = url.strip_prefix("data:")?.split(',').next()?;
    header.strip_suffix(";base64")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ToolCall;

    #[test]
    fn system_messages_stay_in_the_conversation_unless_the_api_takes_them_apart() {
        let messages = [Message::system("Be brief."), Message::user("Hi")];
        let (instructions, input) = input_messages("openai", &messages);
        assert_eq!(instructions, None);
        assert_eq!(
            serde_json::from_str::<Value>(&input).unwrap(),
            json!([
                {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
                {"role": "user", "parts": [{"type": "text", "content": "Hi"}]},
            ])
        );
        let (instructions, input) = input_messages("anthropic", &messages);
        assert_eq!(
            instructions.as_deref(),
            Some(r#"[{"content":"Be brief.","type":"text"}]"#)
        );
        assert_eq!(
            serde_json::from_str::<Value>(&input).unwrap(),
            json!([{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}])
        );
    }

    #[test]
    fn tool_calls_results_and_images_follow_the_schema() {
        let messages = [
            Message::new(
                Role::User,
                vec![
                    ContentPart::image_url("https://example.com/cat.png"),
                    ContentPart::image_base64("image/png", "iVBORw0KGgo="),
                    ContentPart::image_url("data:image/jpeg;base64,/9j/4AAQ"),
                ],
            ),
            Message::assistant_tool_calls([ToolCall::new(
                "call_1",
                "weather",
                r#"{"city":"Paris"}"#,
            )]),
            Message::tool_result("call_1", "rainy"),
        ];
        let (_, input) = input_messages("openai", &messages);
        assert_eq!(
            serde_json::from_str::<Value>(&input).unwrap(),
            json!([
                {"role": "user", "parts": [
                    {"type": "uri", "modality": "image", "uri": "https://example.com/cat.png"},
                    {"type": "blob", "modality": "image", "mime_type": "image/png",
                     "content": "[base64 image/png redacted]"},
                    {"type": "blob", "modality": "image", "mime_type": "image/jpeg",
                     "content": "[base64 image/jpeg redacted]"},
                ]},
                {"role": "assistant", "parts": [
                    {"type": "tool_call", "id": "call_1", "name": "weather", "arguments": {"city": "Paris"}},
                ]},
                {"role": "tool", "parts": [
                    {"type": "tool_call_response", "id": "call_1", "response": "rainy"},
                ]},
            ])
        );
        let output = output_messages(&[ContentPart::text("Rainy.")], "stop");
        assert_eq!(
            serde_json::from_str::<Value>(&output).unwrap(),
            json!([{"role": "assistant", "parts": [{"type": "text", "content": "Rainy."}], "finish_reason": "stop"}])
        );
    }
}
