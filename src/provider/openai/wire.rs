//! The Chat Completions and Embeddings wire formats: neutral request to JSON body, JSON answer to
//! neutral response. Answers are read leniently: every field may be missing or `null`, unknown
//! fields are ignored.

use serde::Deserialize;

use crate::provider::http::lenient_count;
use serde_json::{json, Map, Value};

use crate::types::{
    ChatRequest, ChatResponse, ContentPart, EmbeddingRequest, EmbeddingResponse, ImageSource,
    Message, ResponseFormat, Role, ToolCall, ToolChoice, Usage,
};

/// Which name the output-token limit goes by. OpenAI's newer models only accept
/// `max_completion_tokens`; most compatible servers only know `max_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MaxTokensField {
    MaxTokens,
    MaxCompletionTokens,
}

impl MaxTokensField {
    fn name(self) -> &'static str {
        match self {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// The JSON body of a chat call. `extra` parameters are written last, so they win.
pub(crate) fn chat_body(request: &ChatRequest, stream: bool, max_field: MaxTokensField) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), request.model.clone().into());
    let mut messages = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        push_message(&mut messages, message);
    }
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| {
                let mut function = Map::new();
                function.insert("name".into(), tool.name.clone().into());
                if let Some(description) = &tool.description {
                    function.insert("description".into(), description.clone().into());
                }
                function.insert("parameters".into(), tool.parameters.clone());
                json!({"type": "function", "function": function})
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = &request.tool_choice {
        let choice = match choice {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
        body.insert("tool_choice".into(), choice);
    }
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            body.insert(key.into(), value);
        }
    };
    put("temperature", request.temperature.map(Value::from));
    put("top_p", request.top_p.map(Value::from));
    put(max_field.name(), request.max_tokens.map(Value::from));
    put(
        "stop",
        (!request.stop.is_empty()).then(|| Value::from(request.stop.clone())),
    );
    put("seed", request.seed.map(Value::from));
    put(
        "frequency_penalty",
        request.frequency_penalty.map(Value::from),
    );
    put(
        "presence_penalty",
        request.presence_penalty.map(Value::from),
    );
    put(
        "response_format",
        request.response_format.as_ref().map(|format| match format {
            ResponseFormat::Text => json!({"type": "text"}),
            ResponseFormat::JsonObject => json!({"type": "json_object"}),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => json!({
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": strict}
            }),
        }),
    );
    for (key, value) in &request.extra {
        body.insert(key.clone(), value.clone());
    }
    if stream {
        body.insert("stream".into(), Value::Bool(true));
        // Without it OpenAI sends no usage at all on a stream; merged into any options the
        // caller passed.
        let options = body
            .entry("stream_options")
            .or_insert_with(|| Value::Object(Map::new()));
        if !options.is_object() {
            *options = Value::Object(Map::new());
        }
        if let Value::Object(options) = options {
            options.insert("include_usage".into(), Value::Bool(true));
        }
    } else {
        body.remove("stream");
        body.remove("stream_options");
    }
    Value::Object(body)
}

/// One neutral message becomes one wire message, plus one `tool` message per tool result (OpenAI
/// wants each result in a message of its own).
fn push_message(out: &mut Vec<Value>, message: &Message) {
    let mut results = Vec::new();
    let mut texts_and_images = Vec::new();
    let mut calls = Vec::new();
    for part in &message.content {
        match part {
            ContentPart::ToolResult {
                tool_call_id,
                content,
                ..
            } => results.push(json!({
                "role": "tool",
                "tool_call_id": tool_call_id,
                "content": content,
            })),
            ContentPart::ToolCall(call) => calls.push(json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            })),
            other => texts_and_images.push(other),
        }
    }
    let only_results = !results.is_empty() && texts_and_images.is_empty() && calls.is_empty();
    out.extend(results);
    if only_results {
        return;
    }
    let mut wire = Map::new();
    wire.insert("role".into(), message.role.as_str().into());
    if message.role == Role::Assistant {
        let text: String = texts_and_images
            .iter()
            .filter_map(|part| part.as_text())
            .collect();
        let content = if text.is_empty() && !calls.is_empty() {
            Value::Null
        } else {
            Value::String(text)
        };
        wire.insert("content".into(), content);
        if !calls.is_empty() {
            wire.insert("tool_calls".into(), Value::Array(calls));
        }
    } else {
        wire.insert("content".into(), content_value(&texts_and_images));
    }
    if let Some(name) = &message.name {
        wire.insert("name".into(), name.clone().into());
    }
    out.push(Value::Object(wire));
}

/// A single text part is sent as a plain string (which every server accepts); anything else as
/// an array of typed parts.
fn content_value(parts: &[&ContentPart]) -> Value {
    if let [ContentPart::Text { text }] = parts {
        return Value::String(text.clone());
    }
    if parts.is_empty() {
        return Value::String(String::new());
    }
    let parts = parts
        .iter()
        .filter_map(|part| match part {
            ContentPart::Text { text } => Some(json!({"type": "text", "text": text})),
            ContentPart::Image { source } => {
                let url = match source {
                    ImageSource::Url { url } => url.clone(),
                    ImageSource::Base64 { media_type, data } => {
                        format!("data:{media_type};base64,{data}")
                    }
                };
                Some(json!({"type": "image_url", "image_url": {"url": url}}))
            }
            _ => None,
        })
        .collect();
    Value::Array(parts)
}

/// `usage` of an answer or a chunk.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default, deserialize_with = "lenient_count")]
    prompt_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
    /// DeepSeek's name for cached prompt tokens.
    #[serde(default, deserialize_with = "lenient_count")]
    prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default, deserialize_with = "lenient_count")]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default, deserialize_with = "lenient_count")]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    pub(crate) fn to_usage(&self) -> Usage {
        Usage {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            cache_read_input_tokens: self
                .prompt_tokens_details
                .as_ref()
                .and_then(|details| details.cached_tokens)
                .or(self.prompt_cache_hit_tokens),
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|details| details.reasoning_tokens),
            ..Usage::default()
        }
    }
}

/// A non-streamed chat completion.
#[derive(Debug, Deserialize)]
pub(crate) struct Completion {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    usage: Option<WireUsage>,
    system_fingerprint: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    message: Option<AnswerMessage>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AnswerMessage {
    content: Option<Value>,
    refusal: Option<String>,
    tool_calls: Option<Vec<AnswerToolCall>>,
}

#[derive(Debug, Deserialize)]
struct AnswerToolCall {
    id: Option<String>,
    function: Option<AnswerFunction>,
}

#[derive(Debug, Deserialize)]
struct AnswerFunction {
    name: Option<String>,
    arguments: Option<Value>,
}

impl Completion {
    /// The first choice as the neutral response (`n > 1` is not modelled).
    pub(crate) fn into_response(self) -> ChatResponse {
        let mut response = ChatResponse {
            id: self.id,
            model: self.model,
            usage: self.usage.map(|usage| usage.to_usage()).unwrap_or_default(),
            ..ChatResponse::default()
        };
        if let Some(fingerprint) = self.system_fingerprint.filter(|f| !f.is_empty()) {
            response
                .metadata
                .insert("system_fingerprint".into(), fingerprint.into());
        }
        let Some(choice) = self.choices.unwrap_or_default().into_iter().next() else {
            return response;
        };
        response.finish_reason = choice.finish_reason.filter(|reason| !reason.is_empty());
        let Some(message) = choice.message else {
            return response;
        };
        let text = match message.content {
            Some(Value::String(text)) => text,
            // Some servers send content as an array of text parts.
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|part| part.get("text").and_then(Value::as_str))
                .collect(),
            _ => String::new(),
        };
        let text = if text.is_empty() {
            message.refusal.unwrap_or_default()
        } else {
            text
        };
        if !text.is_empty() {
            response.content.push(ContentPart::text(text));
        }
        for call in message.tool_calls.unwrap_or_default() {
            let function = call.function.unwrap_or(AnswerFunction {
                name: None,
                arguments: None,
            });
            let arguments = match function.arguments {
                Some(Value::String(text)) => text,
                Some(Value::Null) | None => String::new(),
                // A few servers send the arguments as an object.
                Some(other) => other.to_string(),
            };
            response.content.push(ContentPart::ToolCall(ToolCall::new(
                call.id.unwrap_or_default(),
                function.name.unwrap_or_default(),
                arguments,
            )));
        }
        response
    }
}

/// The JSON body of an embedding call.
pub(crate) fn embedding_body(request: &EmbeddingRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), request.model.clone().into());
    body.insert("input".into(), Value::from(request.input.clone()));
    body.insert("encoding_format".into(), "float".into());
    if let Some(dimensions) = request.dimensions {
        body.insert("dimensions".into(), dimensions.into());
    }
    for (key, value) in &request.extra {
        body.insert(key.clone(), value.clone());
    }
    Value::Object(body)
}

/// An embeddings answer.
#[derive(Debug, Deserialize)]
pub(crate) struct Embeddings {
    #[serde(default)]
    data: Vec<EmbeddingData>,
    model: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
struct EmbeddingData {
    index: Option<usize>,
    embedding: Vec<f32>,
}

impl Embeddings {
    /// Vectors in input order, whatever order the server listed them in.
    pub(crate) fn into_response(mut self) -> EmbeddingResponse {
        self.data
            .sort_by_key(|item| item.index.unwrap_or(usize::MAX));
        let usage = self
            .usage
            .map(|usage| Usage {
                input_tokens: usage.prompt_tokens,
                ..Usage::default()
            })
            .unwrap_or_default();
        let mut response = EmbeddingResponse::new(
            self.data.into_iter().map(|item| item.embedding).collect(),
            usage,
        );
        response.model = self.model;
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Tool;

    #[test]
    fn every_request_field_is_mapped() {
        let request = ChatRequest::new("gpt-4o")
            .message(Message::system("Be brief."))
            .message(
                Message::user("What is in these?")
                    .with_part(ContentPart::image_url("https://example.com/a.png"))
                    .with_part(ContentPart::image_base64("image/png", "iVBORw0K"))
                    .with_name("ada"),
            )
            .message(Message::assistant_tool_calls([ToolCall::new(
                "call_1",
                "lookup",
                r#"{"q":"cats"}"#,
            )]))
            .message(Message::tool_result("call_1", "two cats"))
            .tool(Tool::new(
                "lookup",
                "Looks things up",
                json!({"type": "object"}),
            ))
            .tool_choice(ToolChoice::Tool("lookup".into()))
            .temperature(0.5)
            .top_p(0.9)
            .max_tokens(100)
            .stop("END")
            .seed(7)
            .frequency_penalty(0.1)
            .presence_penalty(0.2)
            .response_format(ResponseFormat::JsonObject)
            .extra("service_tier", "flex")
            .extra("temperature", 0.7);
        let body = chat_body(&request, true, MaxTokensField::MaxTokens);
        assert_eq!(
            body,
            json!({
                "model": "gpt-4o",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "name": "ada", "content": [
                        {"type": "text", "text": "What is in these?"},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    ]},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_1", "type": "function",
                         "function": {"name": "lookup", "arguments": "{\"q\":\"cats\"}"}}
                    ]},
                    {"role": "tool", "tool_call_id": "call_1", "content": "two cats"},
                ],
                "tools": [{"type": "function", "function": {
                    "name": "lookup", "description": "Looks things up", "parameters": {"type": "object"}
                }}],
                "tool_choice": {"type": "function", "function": {"name": "lookup"}},
                "temperature": 0.7,
                "top_p": 0.9,
                "max_tokens": 100,
                "stop": ["END"],
                "seed": 7,
                "frequency_penalty": 0.1,
                "presence_penalty": 0.2,
                "response_format": {"type": "json_object"},
                "service_tier": "flex",
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
    }

    #[test]
    fn include_usage_is_forced_into_caller_stream_options() {
        let request =
            ChatRequest::new("m").extra("stream_options", json!({"include_usage": false, "x": 1}));
        let body = chat_body(&request, true, MaxTokensField::MaxCompletionTokens);
        assert_eq!(
            body["stream_options"],
            json!({"include_usage": true, "x": 1})
        );
        let body = chat_body(
            &request.max_tokens(5),
            false,
            MaxTokensField::MaxCompletionTokens,
        );
        assert_eq!(body.get("stream_options"), None);
        assert_eq!(body["max_completion_tokens"], 5);
    }

    #[test]
    fn assistant_text_with_tool_calls_and_json_schema() {
        let request = ChatRequest::new("m")
            .message(
                Message::assistant("Let me check.")
                    .with_part(ContentPart::ToolCall(ToolCall::new("c", "f", "{}"))),
            )
            .response_format(ResponseFormat::JsonSchema {
                name: "answer".into(),
                schema: json!({"type": "object"}),
                strict: true,
            })
            .tool_choice(ToolChoice::Required);
        let body = chat_body(&request, false, MaxTokensField::MaxTokens);
        assert_eq!(
            body["messages"][0],
            json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ]})
        );
        assert_eq!(body["tool_choice"], "required");
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": true}})
        );
    }
}
