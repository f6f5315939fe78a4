//! The Chat Completions and Embeddings wire formats: neutral request to JSON body, JSON answer to
//! neutral response. Bodies serialize straight from the borrowed request. Answers are read
//! leniently: every field may be missing or `null`, unknown fields are ignored.

use std::borrow::Cow;
use std::fmt;

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::provider::transport::wire::{lenient_count, lenient_usd, Body, Seq, StrMap, ToolSpec};
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

/// The JSON body of a chat call. `extra` parameters win over the typed fields. A stream always
/// asks for `stream_options.include_usage` (merged into any `stream_options` of `extra`);
/// without a stream, `stream` and `stream_options` are left out.
pub(crate) struct ChatBody<'a> {
    request: &'a ChatRequest,
    stream: bool,
    max_tokens_field: MaxTokensField,
}

impl<'a> ChatBody<'a> {
    pub(crate) fn new(
        request: &'a ChatRequest,
        stream: bool,
        max_tokens_field: MaxTokensField,
    ) -> Self {
        Self {
            request,
            stream,
            max_tokens_field,
        }
    }
}

impl Serialize for ChatBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.request;
        let mut body = Body::start(serializer, &request.extra)?;
        body.field("model", &request.model)?;
        body.field("messages", &Messages(&request.messages))?;
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
        body.optional(self.max_tokens_field.name(), request.max_tokens)?;
        if !request.stop.is_empty() {
            body.field("stop", &request.stop)?;
        }
        body.optional("seed", request.seed)?;
        body.optional("frequency_penalty", request.frequency_penalty)?;
        body.optional("presence_penalty", request.presence_penalty)?;
        body.optional(
            "response_format",
            request.response_format.as_ref().map(WireResponseFormat),
        )?;
        body.extra_except(&["stream", "stream_options"])?;
        if self.stream {
            body.forced("stream", &true)?;
            // Without it OpenAI sends no usage at all on a stream.
            let theirs = request
                .extra
                .get("stream_options")
                .and_then(Value::as_object);
            body.forced("stream_options", &StreamOptions(theirs))?;
        }
        body.end()
    }
}

/// The caller's `stream_options` with `include_usage: true`.
struct StreamOptions<'a>(Option<&'a serde_json::Map<String, Value>>);

impl Serialize for StreamOptions<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, value) in self.0.into_iter().flatten() {
            if key != "include_usage" {
                map.serialize_entry(key, value)?;
            }
        }
        map.serialize_entry("include_usage", &true)?;
        map.end()
    }
}

/// `{"type": "function", "function": {name, description, parameters}}`.
struct FunctionTool<'a>(ToolSpec<'a>);

impl Serialize for FunctionTool<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry("function", &self.0)?;
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
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", "function")?;
                map.serialize_entry("function", &StrMap([("name", name)]))?;
                map.end()
            }
        }
    }
}

struct WireResponseFormat<'a>(&'a ResponseFormat);

impl Serialize for WireResponseFormat<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ResponseFormat::Text => StrMap([("type", "text")]).serialize(serializer),
            ResponseFormat::JsonObject => StrMap([("type", "json_object")]).serialize(serializer),
            ResponseFormat::JsonSchema {
                name,
                schema,
                strict,
            } => {
                struct Schema<'a>(&'a str, &'a Value, bool);
                impl Serialize for Schema<'_> {
                    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                        let mut map = serializer.serialize_map(Some(3))?;
                        map.serialize_entry("name", self.0)?;
                        map.serialize_entry("schema", self.1)?;
                        map.serialize_entry("strict", &self.2)?;
                        map.end()
                    }
                }
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("type", "json_schema")?;
                map.serialize_entry("json_schema", &Schema(name, schema, *strict))?;
                map.end()
            }
        }
    }
}

/// The conversation: one neutral message becomes one wire message, plus one `tool` message per
/// tool result before it (OpenAI wants each result in a message of its own). A message of tool
/// results alone becomes those `tool` messages only.
struct Messages<'a>(&'a [Message]);

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(None)?;
        for message in self.0 {
            let mut results = 0;
            for part in &message.content {
                if let ContentPart::ToolResult {
                    tool_call_id,
                    content,
                    ..
                } = part
                {
                    results += 1;
                    seq.serialize_element(&StrMap([
                        ("role", "tool"),
                        ("tool_call_id", tool_call_id),
                        ("content", content),
                    ]))?;
                }
            }
            if results == 0 || results < message.content.len() {
                seq.serialize_element(&WireMessage(message))?;
            }
        }
        seq.end()
    }
}

/// A message without its tool results. An assistant's content is its text (`null` when it only
/// calls tools) and its calls go in `tool_calls`; other roles send text and images.
struct WireMessage<'a>(&'a Message);

impl Serialize for WireMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let message = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("role", message.role.as_str())?;
        if message.role == Role::Assistant {
            let calls = message.content.iter().filter_map(|part| match part {
                ContentPart::ToolCall(call) => Some(WireToolCall(call)),
                _ => None,
            });
            let has_calls = calls.clone().next().is_some();
            let text = joined_text(&message.content);
            if text.is_empty() && has_calls {
                map.serialize_entry("content", &())?;
            } else {
                map.serialize_entry("content", &text)?;
            }
            if has_calls {
                map.serialize_entry("tool_calls", &Seq(calls))?;
            }
        } else {
            map.serialize_entry("content", &Content(&message.content))?;
        }
        if let Some(name) = &message.name {
            map.serialize_entry("name", name)?;
        }
        map.end()
    }
}

/// The text parts joined; borrowed when there is at most one.
fn joined_text(parts: &[ContentPart]) -> Cow<'_, str> {
    let mut texts = parts.iter().filter_map(ContentPart::as_text);
    match (texts.next(), texts.next()) {
        (None, _) => Cow::Borrowed(""),
        (Some(text), None) => Cow::Borrowed(text),
        (Some(first), Some(second)) => {
            let mut joined = String::from(first);
            joined.push_str(second);
            texts.for_each(|text| joined.push_str(text));
            Cow::Owned(joined)
        }
    }
}

struct WireToolCall<'a>(&'a ToolCall);

impl Serialize for WireToolCall<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Function<'a>(&'a ToolCall);
        impl Serialize for Function<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("name", &self.0.name)?;
                map.serialize_entry("arguments", &self.0.arguments)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("id", &self.0.id)?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry("function", &Function(self.0))?;
        map.end()
    }
}

/// The text and images of a message: a single text part as a plain string (which every server
/// accepts), nothing as `""`, anything else as an array of typed parts.
struct Content<'a>(&'a [ContentPart]);

impl Serialize for Content<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let parts = self
            .0
            .iter()
            .filter(|part| matches!(part, ContentPart::Text { .. } | ContentPart::Image { .. }));
        let mut first_two = parts.clone();
        match (first_two.next(), first_two.next()) {
            (None, _) => serializer.serialize_str(""),
            (Some(ContentPart::Text { text }), None) => serializer.serialize_str(text),
            _ => Seq(parts.map(WirePart)).serialize(serializer),
        }
    }
}

/// A text or image part.
struct WirePart<'a>(&'a ContentPart);

impl Serialize for WirePart<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        match self.0 {
            ContentPart::Text { text } => {
                map.serialize_entry("type", "text")?;
                map.serialize_entry("text", text)?;
            }
            ContentPart::Image { source } => {
                map.serialize_entry("type", "image_url")?;
                map.serialize_entry("image_url", &ImageUrl(source))?;
            }
            // `Content` passes on text and images only.
            _ => {}
        }
        map.end()
    }
}

/// `{"url": …}`: the URL, or base64 data as a `data:` URL, written without an intermediate copy.
struct ImageUrl<'a>(&'a ImageSource);

impl Serialize for ImageUrl<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct DataUrl<'a>(&'a str, &'a str);
        impl fmt::Display for DataUrl<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "data:{};base64,{}", self.0, self.1)
            }
        }
        struct Url<'a>(&'a ImageSource);
        impl Serialize for Url<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self.0 {
                    ImageSource::Url { url } => serializer.serialize_str(url),
                    ImageSource::Base64 { media_type, data } => {
                        serializer.collect_str(&DataUrl(media_type, data))
                    }
                }
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("url", &Url(self.0))?;
        map.end()
    }
}

/// `usage` of an answer or a chunk, with what compatible servers add to it: DeepSeek's
/// `prompt_cache_hit_tokens`, OpenRouter's `prompt_tokens_details.cache_write_tokens` and
/// `cost`, LiteLLM's top-level `cache_creation_input_tokens` / `cache_read_input_tokens` (and
/// `cache_creation_tokens` in the details), Anthropic's `server_tool_use` forwarded by proxies.
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
    /// LiteLLM passes Anthropic's cache counts on at the top level.
    #[serde(default, deserialize_with = "lenient_count")]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    cache_read_input_tokens: Option<u64>,
    /// OpenRouter: what the call cost, in USD (credits).
    #[serde(default, deserialize_with = "lenient_usd")]
    cost: Option<f64>,
    server_tool_use: Option<ServerToolUse>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptDetails {
    #[serde(default, deserialize_with = "lenient_count")]
    cached_tokens: Option<u64>,
    /// OpenRouter's cache writes.
    #[serde(default, deserialize_with = "lenient_count")]
    cache_write_tokens: Option<u64>,
    /// LiteLLM's cache writes.
    #[serde(default, deserialize_with = "lenient_count")]
    cache_creation_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct CompletionDetails {
    #[serde(default, deserialize_with = "lenient_count")]
    reasoning_tokens: Option<u64>,
}

/// Server-side tools the provider ran (Anthropic's shape, as proxies forward it).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ServerToolUse {
    #[serde(default, deserialize_with = "lenient_count")]
    pub(crate) web_search_requests: Option<u64>,
}

impl WireUsage {
    pub(crate) fn to_usage(&self) -> Usage {
        let details = self.prompt_tokens_details.as_ref();
        Usage {
            input_tokens: self.prompt_tokens,
            output_tokens: self.completion_tokens,
            cache_read_input_tokens: details
                .and_then(|details| details.cached_tokens)
                .or(self.prompt_cache_hit_tokens)
                .or(self.cache_read_input_tokens),
            cache_creation_input_tokens: details
                .and_then(|details| details.cache_write_tokens.or(details.cache_creation_tokens))
                .or(self.cache_creation_input_tokens),
            reasoning_tokens: self
                .completion_tokens_details
                .as_ref()
                .and_then(|details| details.reasoning_tokens),
            web_search_count: self
                .server_tool_use
                .as_ref()
                .and_then(|tools| tools.web_search_requests),
            cost_usd: self.cost,
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
    /// Groq can state the usage here only.
    x_groq: Option<XGroq>,
    /// Perplexity's sources: the answer searched the web.
    citations: Option<Value>,
}

/// Groq's own block, on answers and on the last chunk of a stream.
#[derive(Debug, Deserialize)]
pub(crate) struct XGroq {
    pub(crate) usage: Option<WireUsage>,
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
    /// `url_citation`s of the search models: the answer searched the web.
    annotations: Option<Value>,
}

/// Whether a list (annotations, citations) has an entry: PostHog's SDKs count such an answer
/// as one web search when the provider states no count.
pub(crate) fn lists_something(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_array)
        .is_some_and(|items| !items.is_empty())
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
        let usage = self
            .usage
            .or_else(|| self.x_groq.and_then(|groq| groq.usage))
            .map(|usage| usage.to_usage())
            .unwrap_or_default();
        let mut response = ChatResponse {
            id: self.id,
            model: self.model,
            usage,
            ..ChatResponse::default()
        };
        let cited = lists_something(self.citations.as_ref());
        if let Some(fingerprint) = self.system_fingerprint.filter(|f| !f.is_empty()) {
            response
                .metadata
                .insert("system_fingerprint".into(), fingerprint.into());
        }
        let choice = self.choices.unwrap_or_default().into_iter().next();
        let annotated = choice
            .as_ref()
            .and_then(|choice| choice.message.as_ref())
            .is_some_and(|message| lists_something(message.annotations.as_ref()));
        if (cited || annotated) && response.usage.web_search_count.is_none() {
            response.usage.web_search_count = Some(1);
        }
        let Some(choice) = choice else {
            return response;
        };
        response.finish_reason = choice.finish_reason.filter(|reason| !reason.is_empty());
        let Some(message) = choice.message else {
            return response;
        };
        let text = match message.content {
            Some(Value::String(text)) => text,
            // Some servers send content as an array of typed parts (Mistral: `thinking` parts,
            // then `text` parts); only the text is the answer.
            Some(Value::Array(parts)) => parts
                .iter()
                .filter(|part| {
                    part.get("type")
                        .and_then(Value::as_str)
                        .is_none_or(|kind| kind == "text")
                })
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

/// The JSON body of an embedding call; `extra` parameters win.
pub(crate) struct EmbeddingBody<'a>(pub(crate) &'a EmbeddingRequest);

impl Serialize for EmbeddingBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.0;
        let mut body = Body::start(serializer, &request.extra)?;
        body.field("model", &request.model)?;
        body.field("input", &request.input)?;
        body.field("encoding_format", "float")?;
        body.optional("dimensions", request.dimensions)?;
        body.extra_except(&[])?;
        body.end()
    }
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
    use serde_json::json;

    use super::*;
    use crate::types::Tool;

    /// The body's bytes, parsed back.
    fn chat_body(request: &ChatRequest, stream: bool, field: MaxTokensField) -> Value {
        let bytes = serde_json::to_vec(&ChatBody::new(request, stream, field)).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

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

    #[test]
    fn extra_keys_replace_typed_fields_without_duplicates() {
        let request = ChatRequest::new("m")
            .message(Message::user("hi"))
            .temperature(0.1)
            .max_tokens(9)
            .extra("temperature", 0.9)
            .extra("model", "other")
            .extra("stream", true)
            .extra("stream_options", "not an object");
        let bytes =
            serde_json::to_vec(&ChatBody::new(&request, true, MaxTokensField::MaxTokens)).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        for key in [
            "\"model\"",
            "\"temperature\"",
            "\"stream\"",
            "\"stream_options\"",
        ] {
            assert_eq!(text.matches(key).count(), 1, "{key} in {text}");
        }
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({
                "model": "other",
                "messages": [{"role": "user", "content": "hi"}],
                "temperature": 0.9,
                "max_tokens": 9,
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
        // Without a stream, `stream` and `stream_options` go, even from `extra`.
        let body = chat_body(&request, false, MaxTokensField::MaxTokens);
        assert_eq!(body.get("stream"), None);
        assert_eq!(body.get("stream_options"), None);
    }

    #[test]
    fn results_get_messages_of_their_own_and_empty_content_is_a_string() {
        let request = ChatRequest::new("m")
            .message(Message::new(
                Role::User,
                vec![
                    ContentPart::ToolResult {
                        tool_call_id: "a".into(),
                        content: "1".into(),
                        is_error: true,
                    },
                    ContentPart::text("and"),
                ],
            ))
            .message(Message::new(Role::User, Vec::new()))
            .message(Message::new(
                Role::Assistant,
                vec![ContentPart::text("a"), ContentPart::text("b")],
            ));
        assert_eq!(
            chat_body(&request, false, MaxTokensField::MaxTokens)["messages"],
            json!([
                {"role": "tool", "tool_call_id": "a", "content": "1"},
                {"role": "user", "content": "and"},
                {"role": "user", "content": ""},
                {"role": "assistant", "content": "ab"},
            ])
        );
    }

    #[test]
    fn embedding_bodies_let_extra_win() {
        let request = EmbeddingRequest::new("e", ["a"]).dimensions(3);
        let mut request = request;
        request
            .extra
            .insert("encoding_format".into(), "base64".into());
        let bytes = serde_json::to_vec(&EmbeddingBody(&request)).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&bytes).unwrap(),
            json!({"model": "e", "input": ["a"], "encoding_format": "base64", "dimensions": 3})
        );
    }
}
