//! Chat Completions JSON (as other crates serialize their requests) to the neutral types.

use serde_json::Value;

use crate::event::ModelParameters;
use crate::types::{ContentPart, Message, Role, Tool, ToolCall};

fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str)
}

/// The messages of a Chat Completions request body.
pub(crate) fn messages(body: &Value) -> Vec<Message> {
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return Vec::new();
    };
    messages.iter().map(message).collect()
}

fn message(value: &Value) -> Message {
    let role = match text(value.get("role")) {
        Some("system") | Some("developer") => Role::System,
        Some("assistant") => Role::Assistant,
        Some("tool") | Some("function") => Role::Tool,
        _ => Role::User,
    };
    let mut parts = Vec::new();
    if role == Role::Tool {
        parts.push(ContentPart::ToolResult {
            tool_call_id: text(value.get("tool_call_id"))
                .unwrap_or_default()
                .to_owned(),
            content: content_text(value.get("content")),
            is_error: false,
        });
    } else {
        match value.get("content") {
            Some(Value::String(text)) => parts.push(ContentPart::text(text.clone())),
            Some(Value::Array(items)) => {
                for item in items {
                    match text(item.get("type")) {
                        Some("image_url") => {
                            let url = item
                                .get("image_url")
                                .and_then(|image| image.get("url").or(Some(image)))
                                .and_then(Value::as_str)
                                .unwrap_or_default();
                            parts.push(ContentPart::image_url(url));
                        }
                        _ => {
                            if let Some(text) =
                                text(item.get("text")).or_else(|| text(item.get("refusal")))
                            {
                                parts.push(ContentPart::text(text));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        for call in value
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let function = call.get("function");
            parts.push(ContentPart::ToolCall(ToolCall::new(
                text(call.get("id")).unwrap_or_default(),
                text(function.and_then(|f| f.get("name"))).unwrap_or_default(),
                text(function.and_then(|f| f.get("arguments"))).unwrap_or_default(),
            )));
        }
    }
    let mut message = Message::new(role, parts);
    if let Some(name) = text(value.get("name")) {
        message = message.with_name(name);
    }
    message
}

fn content_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| text(item.get("text")))
            .collect(),
        Some(other) if !other.is_null() => other.to_string(),
        _ => String::new(),
    }
}

/// The function tools of a Chat Completions request body.
pub(crate) fn tools(body: &Value) -> Vec<Tool> {
    body.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            let function = tool.get("function")?;
            let mut tool = Tool::new(
                text(function.get("name")).unwrap_or_default(),
                "",
                function.get("parameters").cloned().unwrap_or(Value::Null),
            );
            tool.description = text(function.get("description")).map(str::to_owned);
            Some(tool)
        })
        .collect()
}

/// The sampling parameters of a Chat Completions request body.
pub(crate) fn parameters(body: &Value, stream: bool) -> ModelParameters {
    let number = |key: &str| body.get(key).and_then(Value::as_f64);
    ModelParameters {
        temperature: number("temperature"),
        top_p: number("top_p"),
        frequency_penalty: number("frequency_penalty"),
        presence_penalty: number("presence_penalty"),
        max_tokens: body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens"))
            .and_then(Value::as_u64)
            .and_then(|tokens| u32::try_from(tokens).ok()),
        seed: body.get("seed").and_then(Value::as_i64),
        stop: match body.get("stop") {
            Some(Value::String(stop)) => vec![stop.clone()],
            Some(Value::Array(stops)) => stops
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        },
        stream,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn chat_completions_json_reads_back_as_neutral_messages() {
        let body = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "image_url", "image_url": {"url": "https://x/a.png"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "description": "does f", "parameters": {"type": "object"}}}],
            "temperature": 0.5, "max_completion_tokens": 9, "stop": "END"
        });
        let messages = messages(&body);
        assert_eq!(messages[0], Message::system("Be brief."));
        assert_eq!(
            messages[1],
            Message::user("Hi").with_part(ContentPart::image_url("https://x/a.png"))
        );
        assert_eq!(
            messages[2],
            Message::assistant_tool_calls([ToolCall::new("c1", "f", "{}")])
        );
        assert_eq!(messages[3], Message::tool_result("c1", "ok"));
        assert_eq!(
            tools(&body),
            vec![Tool::new("f", "does f", json!({"type": "object"}))]
        );
        let parameters = parameters(&body, true);
        assert_eq!(parameters.temperature, Some(0.5));
        assert_eq!(parameters.max_tokens, Some(9));
        assert_eq!(parameters.stop, vec!["END".to_owned()]);
    }
}
