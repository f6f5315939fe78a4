//! The Responses API's wire format (`POST /responses`): neutral request to JSON body, JSON
//! answer to neutral response.
//!
//! Messages become `input` items: system, user and assistant messages with typed content
//! (`input_text`, `input_image`, `output_text`), tool calls `function_call` items and their
//! results `function_call_output` items. Tools are `function` tools. Parameters the API does
//! not have (stop sequences, seed, penalties) are not sent; `extra` parameters
//! (`previous_response_id`, `reasoning`, `store`, `include`, ...) pass through and win.

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::transport::wire::{lenient_count, Body, Seq, StrMap, ToolSpec};
use crate::types::{
    ChatRequest, ChatResponse, ContentPart, ImageSource, Message, ResponseFormat, Role, ToolCall,
    ToolChoice, Usage,
};

/// The JSON body of a Responses call.
pub(crate) struct ResponsesBody<'a> {
    pub(crate) request: &'a ChatRequest,
    pub(crate) stream: bool,
}

impl Serialize for ResponsesBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.request;
        let mut body = Body::start(serializer, &request.extra)?;
        body.field("model", &request.model)?;
        body.field("input", &Input(&request.messages))?;
        if !request.tools.is_empty() {
            let tools = request.tools.iter().map(|tool| {
                FunctionTool(ToolSpec {
                    tool,
                    schema_key: "parameters",
                })
            });
            body.field("tools", &Seq(tools))?;
        }
        body.optional(
            "tool_choice",
            request.tool_choice.as_ref().map(WireToolChoice),
        )?;
        body.optional("temperature", request.temperature)?;
        body.optional("top_p", request.top_p)?;
        body.optional("max_output_tokens", request.max_tokens)?;
        body.optional("text", request.response_format.as_ref().map(TextFormat))?;
        body.extra_except(&["stream"])?;
        if self.stream {
            body.forced("stream", &true)?;
        }
        body.end()
    }
}

/// `{"type": "function", "name", "description", "parameters"}`: flat, unlike Chat Completions.
struct FunctionTool<'a>(ToolSpec<'a>);

impl Serialize for FunctionTool<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tool = self.0.tool;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry("name", &tool.name)?;
        if let Some(description) = &tool.description {
            map.serialize_entry("description", description)?;
        }
        map.serialize_entry(self.0.schema_key, &tool.parameters)?;
        map.end()
    }
}

struct WireToolChoice<'a>(&'a ToolChoice);

impl Serialize for WireToolChoice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Auto => serializer.serialize_str("auto"),
            ToolChoice::None => serializer.serialize_str("none"),
            ToolChoice::Required => serializer.serialize_str("required"),
            ToolChoice::Tool(name) => {
                StrMap([("type", "function"), ("name", name)]).serialize(serializer)
            }
        }
    }
}

/// `text.format`.
struct TextFormat<'a>(&'a ResponseFormat);

impl Serialize for TextFormat<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Format<'a>(&'a ResponseFormat);
        impl Serialize for Format<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self.0 {
                    ResponseFormat::Text => StrMap([("type", "text")]).serialize(serializer),
                    ResponseFormat::JsonObject => {
                        StrMap([("type", "json_object")]).serialize(serializer)
                    }
                    ResponseFormat::JsonSchema {
                        name,
                        schema,
                        strict,
                    } => {
                        let mut map = serializer.serialize_map(Some(4))?;
                        map.serialize_entry("type", "json_schema")?;
                        map.serialize_entry("name", name)?;
                        map.serialize_entry("schema", schema)?;
                        map.serialize_entry("strict", strict)?;
                        map.end()
                    }
                }
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("format", &Format(self.0))?;
        map.end()
    }
}

/// The `input` items of a conversation.
struct Input<'a>(&'a [Message]);

impl Serialize for Input<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for message in self.0 {
            let role = message.role;
            let mut content = Vec::new();
            for part in &message.content {
                if matches!(
                    part,
                    ContentPart::ToolCall(_) | ContentPart::ToolResult { .. }
                ) && !content.is_empty()
                {
                    // What the message said before the call comes before it.
                    let said = std::mem::take(&mut content);
                    seq.serialize_element(&MessageItem {
                        role,
                        content: said,
                    })?;
                }
                match part {
                    ContentPart::ToolCall(call) => {
                        seq.serialize_element(&FunctionCallItem(call))?;
                    }
                    ContentPart::ToolResult {
                        tool_call_id,
                        content,
                        ..
                    } => seq.serialize_element(&StrMap([
                        ("type", "function_call_output"),
                        ("call_id", tool_call_id),
                        ("output", content),
                    ]))?,
                    other => content.push(other),
                }
            }
            if !content.is_empty() {
                seq.serialize_element(&MessageItem { role, content })?;
            }
        }
        seq.end()
    }
}

struct FunctionCallItem<'a>(&'a ToolCall);

impl Serialize for FunctionCallItem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let call = self.0;
        StrMap([
            ("type", "function_call"),
            ("call_id", &call.id),
            ("name", &call.name),
            ("arguments", &call.arguments),
        ])
        .serialize(serializer)
    }
}

struct MessageItem<'a> {
    role: Role,
    content: Vec<&'a ContentPart>,
}

impl Serialize for MessageItem<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let role = match self.role {
            Role::Tool => "user",
            other => other.as_str(),
        };
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("role", role)?;
        match self.content.as_slice() {
            [ContentPart::Text { text }] => map.serialize_entry("content", text)?,
            parts => map.serialize_entry(
                "content",
                &Seq(parts.iter().map(|part| InputPart {
                    part,
                    assistant: self.role == Role::Assistant,
                })),
            )?,
        }
        map.end()
    }
}

#[derive(Clone, Copy)]
struct InputPart<'a> {
    part: &'a ContentPart,
    assistant: bool,
}

impl Serialize for InputPart<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.part {
            ContentPart::Text { text } => {
                let kind = if self.assistant {
                    "output_text"
                } else {
                    "input_text"
                };
                StrMap([("type", kind), ("text", text)]).serialize(serializer)
            }
            ContentPart::Image { source } => {
                let url = match source {
                    ImageSource::Url { url } => std::borrow::Cow::Borrowed(url.as_str()),
                    ImageSource::Base64 { media_type, data } => {
                        std::borrow::Cow::Owned(format!("data:{media_type};base64,{data}"))
                    }
                };
                StrMap([("type", "input_image"), ("image_url", &url)]).serialize(serializer)
            }
            // Calls and results are items of their own; never here.
            ContentPart::ToolCall(_) | ContentPart::ToolResult { .. } => {
                serializer.serialize_unit()
            }
        }
    }
}

/// `usage` of a response.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default, deserialize_with = "lenient_count")]
    input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    output_tokens: Option<u64>,
    input_tokens_details: Option<InputDetails>,
    output_tokens_details: Option<OutputDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct InputDetails {
    #[serde(default, deserialize_with = "lenient_count")]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct OutputDetails {
    #[serde(default, deserialize_with = "lenient_count")]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    pub(crate) fn to_usage(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_input_tokens: self
                .input_tokens_details
                .as_ref()
                .and_then(|details| details.cached_tokens),
            reasoning_tokens: self
                .output_tokens_details
                .as_ref()
                .and_then(|details| details.reasoning_tokens),
            ..Usage::default()
        }
    }
}

/// A response object: the non-streamed answer, and what the terminal stream events carry.
#[derive(Debug, Deserialize)]
pub(crate) struct ResponseObject {
    pub(crate) id: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) error: Option<Value>,
    pub(crate) incomplete_details: Option<Value>,
    #[serde(default)]
    pub(crate) output: Option<Vec<OutputItem>>,
    pub(crate) usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutputItem {
    Message {
        #[serde(default)]
        content: Vec<OutputContent>,
    },
    FunctionCall {
        call_id: Option<String>,
        id: Option<String>,
        name: Option<String>,
        arguments: Option<String>,
    },
    WebSearchCall {},
    /// Reasoning and whatever comes next: not part of the answer.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutputContent {
    OutputText {
        #[serde(default)]
        text: String,
    },
    Refusal {
        #[serde(default)]
        refusal: String,
    },
    #[serde(other)]
    Other,
}

impl ResponseObject {
    /// What the response says beside its output: usage, web searches, status, metadata.
    pub(crate) fn usage(&self) -> Usage {
        let mut usage = self
            .usage
            .as_ref()
            .map(WireUsage::to_usage)
            .unwrap_or_default();
        let searches = self
            .output
            .iter()
            .flatten()
            .filter(|item| matches!(item, OutputItem::WebSearchCall {}))
            .count() as u64;
        if searches > 0 {
            usage.web_search_count = Some(searches);
        }
        usage
    }

    /// The failure a `failed` response reports, as an error.
    pub(crate) fn failure(&self) -> Option<crate::Error> {
        if self.status.as_deref() != Some("failed") {
            return None;
        }
        let message = self
            .error
            .as_ref()
            .and_then(|error| error.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("the response failed")
            .to_owned();
        let code = self
            .error
            .as_ref()
            .and_then(|error| error.get("code"))
            .and_then(Value::as_str);
        let mut error = crate::Error::stream(message).with_status(200);
        if let Some(code) = code {
            error = error.with_api_error_code(code);
        }
        Some(error)
    }

    /// The neutral response; a failed one is an error.
    pub(crate) fn into_response(self) -> crate::Result<ChatResponse> {
        if let Some(error) = self.failure() {
            return Err(error);
        }
        let mut response = ChatResponse {
            usage: self.usage(),
            ..ChatResponse::default()
        };
        if let Some(details) = self.incomplete_details.filter(|d| !d.is_null()) {
            response
                .metadata
                .insert("incomplete_details".into(), details);
        }
        response.id = self.id;
        response.model = self.model;
        response.finish_reason = self.status.filter(|status| !status.is_empty());
        let mut text = String::new();
        for item in self.output.unwrap_or_default() {
            match item {
                OutputItem::Message { content } => {
                    for part in content {
                        match part {
                            OutputContent::OutputText { text: piece } => text.push_str(&piece),
                            OutputContent::Refusal { refusal } => text.push_str(&refusal),
                            OutputContent::Other => {}
                        }
                    }
                }
                OutputItem::FunctionCall {
                    call_id,
                    id,
                    name,
                    arguments,
                } => response.content.push(ContentPart::ToolCall(ToolCall::new(
                    call_id.or(id).unwrap_or_default(),
                    name.unwrap_or_default(),
                    arguments.unwrap_or_default(),
                ))),
                OutputItem::WebSearchCall {} | OutputItem::Other => {}
            }
        }
        if !text.is_empty() {
            response.content.insert(0, ContentPart::text(text));
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::types::Tool;

    #[test]
    fn every_request_field_is_mapped() {
        let request = ChatRequest::new("gpt-5")
            .message(Message::system("Be brief."))
            .message(
                Message::user("What is this?")
                    .with_part(ContentPart::image_base64("image/png", "iVBOR")),
            )
            .message(
                Message::assistant("Let me look.").with_part(ContentPart::ToolCall(ToolCall::new(
                    "call_1", "lookup", "{}",
                ))),
            )
            .message(Message::tool_result("call_1", "a cat"))
            .tool(Tool::new("lookup", "Looks up", json!({"type": "object"})))
            .tool_choice(ToolChoice::Tool("lookup".into()))
            .temperature(0.3)
            .max_tokens(50)
            .stop("ignored")
            .response_format(ResponseFormat::JsonObject)
            .extra("previous_response_id", "resp_prev")
            .extra("reasoning", json!({"effort": "low", "summary": "auto"}));
        let body: Value = serde_json::from_slice(
            &serde_json::to_vec(&ResponsesBody {
                request: &request,
                stream: true,
            })
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "model": "gpt-5",
                "input": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [
                        {"type": "input_text", "text": "What is this?"},
                        {"type": "input_image", "image_url": "data:image/png;base64,iVBOR"},
                    ]},
                    {"role": "assistant", "content": "Let me look."},
                    {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "call_1", "output": "a cat"},
                ],
                "tools": [{"type": "function", "name": "lookup", "description": "Looks up", "parameters": {"type": "object"}}],
                "tool_choice": {"type": "function", "name": "lookup"},
                "temperature": 0.3,
                "max_output_tokens": 50,
                "text": {"format": {"type": "json_object"}},
                "previous_response_id": "resp_prev",
                "reasoning": {"effort": "low", "summary": "auto"},
                "stream": true,
            })
        );
    }

    #[test]
    fn answers_become_text_calls_usage_and_searches() {
        let answer: ResponseObject = serde_json::from_value(json!({
            "id": "resp_1", "object": "response", "status": "completed", "model": "gpt-5-2025-08-07",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}]},
                {"type": "web_search_call", "id": "ws_1", "status": "completed"},
                {"type": "message", "id": "msg_1", "role": "assistant", "content": [
                    {"type": "output_text", "text": "Sunny", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "f", "arguments": "{\"a\":1}"}
            ],
            "usage": {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 40},
                      "output_tokens": 30, "output_tokens_details": {"reasoning_tokens": 20}, "total_tokens": 130}
        }))
        .unwrap();
        let response = answer.into_response().unwrap();
        assert_eq!(response.text(), "Sunny");
        assert_eq!(
            response.tool_calls().collect::<Vec<_>>(),
            vec![&ToolCall::new("call_9", "f", r#"{"a":1}"#)]
        );
        assert_eq!(
            response.usage,
            Usage::new(100, 30)
                .with_cache_read(40)
                .with_reasoning(20)
                .with_web_searches(1)
        );
        assert_eq!(response.id.as_deref(), Some("resp_1"));
        assert_eq!(response.finish_reason.as_deref(), Some("completed"));
    }

    #[test]
    fn a_failed_response_is_an_error() {
        let answer: ResponseObject = serde_json::from_value(json!({
            "id": "resp_2", "status": "failed",
            "error": {"code": "server_error", "message": "The model failed."}
        }))
        .unwrap();
        let err = answer.into_response().unwrap_err();
        assert_eq!(err.message(), "The model failed.");
        assert_eq!(err.api_error_code(), Some("server_error"));
    }
}
