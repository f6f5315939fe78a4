//! The Messages API wire format: neutral request to JSON body, JSON answer to neutral response.
//! Bodies serialize straight from the borrowed request.

use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::provider::transport::wire::{lenient_count, Body, Seq, StrMap, ToolSpec};
use crate::types::{
    ChatRequest, ChatResponse, ContentPart, ImageSource, Message, Role, ToolCall, ToolChoice, Usage,
};

/// The JSON body of a call. System messages become the top-level `system`; tool results go in
/// `user` turns; `max_tokens`, which the API requires, falls back to `default_max_tokens`.
///
/// `seed`, the frequency and presence penalties and `response_format` have no Messages API
/// counterpart and are not sent; `extra` wins over the typed fields. `stream` is sent for a
/// stream only, whatever `extra` says.
pub(crate) struct MessagesBody<'a> {
    request: &'a ChatRequest,
    stream: bool,
    default_max_tokens: u32,
}

impl<'a> MessagesBody<'a> {
    pub(crate) fn new(request: &'a ChatRequest, stream: bool, default_max_tokens: u32) -> Self {
        Self {
            request,
            stream,
            default_max_tokens,
        }
    }
}

impl Serialize for MessagesBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.request;
        let mut body = Body::start(serializer, &request.extra)?;
        body.field("model", &request.model)?;
        body.field(
            "max_tokens",
            &request.max_tokens.unwrap_or(self.default_max_tokens),
        )?;
        let mut system = system_texts(&request.messages);
        match (system.next(), system.next()) {
            (None, _) => {}
            (Some(text), None) => body.field("system", text)?,
            _ => {
                let blocks = system_texts(&request.messages)
                    .map(|text| StrMap([("type", "text"), ("text", text)]));
                body.field("system", &Seq(blocks))?;
            }
        }
        body.field("messages", &Turns(&request.messages))?;
        if !request.tools.is_empty() {
            let tools = request.tools.iter().map(|tool| ToolSpec {
                tool,
                schema_key: "input_schema",
            });
            body.field("tools", &Seq(tools))?;
        }
        body.optional(
            "tool_choice",
            request.tool_choice.as_ref().map(WireToolChoice),
        )?;
        body.optional("temperature", request.temperature)?;
        body.optional("top_p", request.top_p)?;
        if !request.stop.is_empty() {
            body.field("stop_sequences", &request.stop)?;
        }
        body.extra_except(&["stream"])?;
        if self.stream {
            body.forced("stream", &true)?;
        }
        body.end()
    }
}

/// The text parts of every system message, in order.
fn system_texts(messages: &[Message]) -> impl Iterator<Item = &str> + Clone {
    messages
        .iter()
        .filter(|message| message.role == Role::System)
        .flat_map(|message| message.content.iter().filter_map(ContentPart::as_text))
}

struct WireToolChoice<'a>(&'a ToolChoice);

impl Serialize for WireToolChoice<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ToolChoice::Auto => StrMap([("type", "auto")]).serialize(serializer),
            ToolChoice::None => StrMap([("type", "none")]).serialize(serializer),
            ToolChoice::Required => StrMap([("type", "any")]).serialize(serializer),
            ToolChoice::Tool(name) => {
                StrMap([("type", "tool"), ("name", name)]).serialize(serializer)
            }
        }
    }
}

/// The conversation without system messages, as turns: each message is one, but consecutive
/// tool messages (system messages between them aside) share one `user` turn.
struct Turns<'a>(&'a [Message]);

impl Serialize for Turns<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(None)?;
        let mut messages = self
            .0
            .iter()
            .filter(|message| message.role != Role::System)
            .peekable();
        while let Some(message) = messages.next() {
            if message.role != Role::Tool {
                seq.serialize_element(&Turn {
                    role: message.role,
                    messages: std::slice::from_ref(&message),
                })?;
                continue;
            }
            let mut run = vec![message];
            while let Some(next) = messages.next_if(|next| next.role == Role::Tool) {
                run.push(next);
            }
            seq.serialize_element(&Turn {
                role: Role::Tool,
                messages: &run,
            })?;
        }
        seq.end()
    }
}

/// One turn: `assistant` or `user`, with the blocks of its messages; a lone text block is sent
/// as a plain string.
struct Turn<'a, 'm> {
    role: Role,
    messages: &'a [&'m Message],
}

impl Serialize for Turn<'_, '_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let role = if self.role == Role::Assistant {
            "assistant"
        } else {
            "user"
        };
        let parts = self.messages.iter().flat_map(|message| &message.content);
        let mut first_two = parts.clone();
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("role", role)?;
        match (first_two.next(), first_two.next()) {
            (Some(ContentPart::Text { text }), None) => map.serialize_entry("content", text)?,
            _ => map.serialize_entry("content", &Seq(parts.map(WireBlock)))?,
        }
        map.end()
    }
}

/// One content block.
struct WireBlock<'a>(&'a ContentPart);

impl Serialize for WireBlock<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        match self.0 {
            ContentPart::Text { text } => {
                map.serialize_entry("type", "text")?;
                map.serialize_entry("text", text)?;
            }
            ContentPart::Image { source } => {
                map.serialize_entry("type", "image")?;
                map.serialize_entry("source", &WireImage(source))?;
            }
            ContentPart::ToolCall(call) => {
                // `input` must be an object; arguments the model wrote as invalid JSON cannot
                // be sent back as they were.
                let input = match call.parsed_arguments() {
                    Ok(value @ Value::Object(_)) => value,
                    _ => Value::Object(Map::new()),
                };
                map.serialize_entry("type", "tool_use")?;
                map.serialize_entry("id", &call.id)?;
                map.serialize_entry("name", &call.name)?;
                map.serialize_entry("input", &input)?;
            }
            ContentPart::ToolResult {
                tool_call_id,
                content,
                is_error,
            } => {
                map.serialize_entry("type", "tool_result")?;
                map.serialize_entry("tool_use_id", tool_call_id)?;
                map.serialize_entry("content", content)?;
                if *is_error {
                    map.serialize_entry("is_error", &true)?;
                }
            }
        }
        map.end()
    }
}

/// Anthropic takes base64 images as `{type: base64}`, so a `data:` URL is unpacked.
struct WireImage<'a>(&'a ImageSource);

impl Serialize for WireImage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(3))?;
        let (media_type, data) = match self.0 {
            ImageSource::Base64 { media_type, data } => (media_type.as_str(), data.as_str()),
            ImageSource::Url { url } => match url
                .strip_prefix("data:")
                .and_then(|rest| rest.split_once(";base64,"))
            {
                Some(parts) => parts,
                None => {
                    map.serialize_entry("type", "url")?;
                    map.serialize_entry("url", url)?;
                    return map.end();
                }
            },
        };
        map.serialize_entry("type", "base64")?;
        map.serialize_entry("media_type", media_type)?;
        map.serialize_entry("data", data)?;
        map.end()
    }
}

/// `usage` as the Messages API states it, in answers, `message_start` and `message_delta`:
/// cache writes split by cache lifetime in `cache_creation`, server tools in `server_tool_use`.
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
    cache_creation: Option<CacheCreation>,
    server_tool_use: Option<ServerToolUse>,
}

#[derive(Debug, Default, Deserialize)]
struct CacheCreation {
    #[serde(default, deserialize_with = "lenient_count")]
    ephemeral_5m_input_tokens: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct ServerToolUse {
    #[serde(default, deserialize_with = "lenient_count")]
    web_search_requests: Option<u64>,
}

impl WireUsage {
    pub(crate) fn to_usage(&self) -> Usage {
        let ttl = self.cache_creation.as_ref();
        let five_minutes = ttl.and_then(|ttl| ttl.ephemeral_5m_input_tokens);
        let one_hour = ttl.and_then(|ttl| ttl.ephemeral_1h_input_tokens);
        let split = match (five_minutes, one_hour) {
            (None, None) => None,
            (five, one) => Some(five.unwrap_or(0).saturating_add(one.unwrap_or(0))),
        };
        Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cache_read_input_tokens: self.cache_read_input_tokens,
            cache_creation_input_tokens: self.cache_creation_input_tokens.or(split),
            cache_creation_5m_input_tokens: five_minutes,
            cache_creation_1h_input_tokens: one_hour,
            web_search_count: self
                .server_tool_use
                .as_ref()
                .and_then(|tools| tools.web_search_requests),
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
    use serde_json::json;

    use super::*;
    use crate::types::Tool;

    /// The body's bytes, parsed back.
    fn messages_body(request: &ChatRequest, stream: bool, default_max_tokens: u32) -> Value {
        let body = MessagesBody::new(request, stream, default_max_tokens);
        serde_json::from_slice(&serde_json::to_vec(&body).unwrap()).unwrap()
    }

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

    #[test]
    fn extra_keys_replace_typed_fields_and_stream_follows_the_call() {
        let request = ChatRequest::new("m")
            .message(Message::user("Hi"))
            .max_tokens(10)
            .extra("max_tokens", 20)
            .extra("stream", true)
            .extra("stream_options", json!({"x": 1}));
        let bytes = serde_json::to_vec(&MessagesBody::new(&request, false, 4096)).unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.matches("\"max_tokens\"").count(), 1, "{text}");
        // Only `stream` is the call's to decide; other keys pass through.
        assert_eq!(
            serde_json::from_str::<Value>(&text).unwrap(),
            json!({"model": "m", "max_tokens": 20, "stream_options": {"x": 1},
                   "messages": [{"role": "user", "content": "Hi"}]})
        );
        assert_eq!(messages_body(&request, true, 4096)["stream"], true);
    }

    #[test]
    fn tool_results_share_a_turn_across_system_messages() {
        let request = ChatRequest::new("m")
            .message(Message::user("go"))
            .message(Message::tool_result("a", "1"))
            .message(Message::system("mid"))
            .message(Message::tool_result("b", "2"))
            .message(Message::assistant("done"))
            .message(Message::new(Role::User, Vec::new()));
        let body = messages_body(&request, false, 4096);
        assert_eq!(body["system"], "mid");
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": "go"},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "a", "content": "1"},
                    {"type": "tool_result", "tool_use_id": "b", "content": "2"},
                ]},
                {"role": "assistant", "content": "done"},
                {"role": "user", "content": []},
            ])
        );
    }
}
