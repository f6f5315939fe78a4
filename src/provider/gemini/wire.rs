//! The Gemini API's wire format (`generateContent`, `streamGenerateContent`, `embedContent`,
//! `batchEmbedContents`): neutral request to JSON body, JSON answer to neutral response.
//!
//! Bodies serialize straight from the borrowed request. Answers are read leniently: every field
//! may be missing, unknown fields are ignored.
//!
//! What the counts of `usageMetadata` include, and how they become [`Usage`]:
//!
//! - `promptTokenCount` includes `cachedContentTokenCount` (so the provider's
//!   [`cache_tokens_in_input`](crate::LlmModel::cache_tokens_in_input) is `true`);
//!   `toolUsePromptTokenCount` (search results and other tool prompts) is apart from it and
//!   billed as input, so the input tokens are their sum;
//! - `candidatesTokenCount` excludes `thoughtsTokenCount`, which is billed as output: the output
//!   tokens are their sum and the reasoning tokens are the thoughts (the PostHog mapping sends
//!   them apart again, as PostHog expects for Gemini).

use std::collections::HashMap;

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::provider::transport::wire::{lenient_count, Seq, StrMap};
use crate::types::{
    ChatRequest, ChatResponse, ContentPart, EmbeddingRequest, EmbeddingResponse, ImageSource,
    Message, ResponseFormat, Role, ToolCall, ToolChoice, Usage,
};

/// `extra` keys that belong inside `generationConfig` rather than at the top of the body.
const GENERATION_KEYS: [&str; 20] = [
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "stopSequences",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "candidateCount",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "speechConfig",
    "mediaResolution",
    "enableEnhancedCivicAnswers",
    "imageConfig",
];

/// The key an `extra` parameter has inside `generationConfig`, if it belongs there (`top_k`
/// is accepted for `topK`).
fn generation_key(key: &str) -> Option<&str> {
    match key {
        "top_k" => Some("topK"),
        _ => GENERATION_KEYS.iter().copied().find(|known| *known == key),
    }
}

/// The JSON body of a `generateContent` or `streamGenerateContent` call.
pub(crate) struct GenerateBody<'a>(pub(crate) &'a ChatRequest);

impl Serialize for GenerateBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let request = self.0;
        let extra = &request.extra;
        let mut map = serializer.serialize_map(None)?;
        let system: Vec<&Message> = request
            .messages
            .iter()
            .filter(|message| message.role == Role::System)
            .collect();
        if !extra.contains_key("contents") {
            map.serialize_entry("contents", &Contents(&request.messages))?;
        }
        if !system.is_empty() && !extra.contains_key("systemInstruction") {
            map.serialize_entry("systemInstruction", &SystemInstruction(&system))?;
        }
        if !request.tools.is_empty() && !extra.contains_key("tools") {
            map.serialize_entry("tools", &[FunctionDeclarations(request)])?;
        }
        if let Some(choice) = &request.tool_choice {
            if !extra.contains_key("toolConfig") {
                map.serialize_entry("toolConfig", &ToolConfig(choice))?;
            }
        }
        let config = GenerationConfig(request);
        if config.has_entries() {
            map.serialize_entry("generationConfig", &config)?;
        }
        for (key, value) in extra {
            if key != "generationConfig" && generation_key(key).is_none() {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

/// The conversation without its system messages: `user` and `model` turns; tool results go in
/// `user` turns as `functionResponse` parts, named after the call they answer.
struct Contents<'a>(&'a [Message]);

impl Serialize for Contents<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Gemini answers a call by the function's name; the conversation knows it by call id.
        let names: HashMap<&str, &str> = self
            .0
            .iter()
            .flat_map(|message| &message.content)
            .filter_map(|part| match part {
                ContentPart::ToolCall(call) => Some((call.id.as_str(), call.name.as_str())),
                _ => None,
            })
            .collect();
        let mut seq = serializer.serialize_seq(None)?;
        for message in self.0.iter().filter(|message| message.role != Role::System) {
            seq.serialize_element(&Content {
                message,
                names: &names,
            })?;
        }
        seq.end()
    }
}

struct Content<'a> {
    message: &'a Message,
    names: &'a HashMap<&'a str, &'a str>,
}

impl Serialize for Content<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let role = match self.message.role {
            Role::Assistant => "model",
            Role::User | Role::Tool | Role::System => "user",
        };
        let parts = self.message.content.iter().map(|part| Part {
            part,
            names: self.names,
        });
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("role", role)?;
        map.serialize_entry("parts", &Seq(parts))?;
        map.end()
    }
}

#[derive(Clone, Copy)]
struct Part<'a> {
    part: &'a ContentPart,
    names: &'a HashMap<&'a str, &'a str>,
}

impl Serialize for Part<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self.part {
            ContentPart::Text { text } => map.serialize_entry("text", text)?,
            ContentPart::Image { source } => match source {
                ImageSource::Base64 { media_type, data } => map.serialize_entry(
                    "inlineData",
                    &StrMap([("mimeType", media_type), ("data", data)]),
                )?,
                ImageSource::Url { url } => match data_url(url) {
                    Some((media_type, data)) => map.serialize_entry(
                        "inlineData",
                        &StrMap([("mimeType", media_type), ("data", data)]),
                    )?,
                    None => map.serialize_entry("fileData", &StrMap([("fileUri", url)]))?,
                },
            },
            ContentPart::ToolCall(call) => map.serialize_entry("functionCall", &Call(call))?,
            ContentPart::ToolResult {
                tool_call_id,
                content,
                is_error,
            } => {
                let name = self
                    .names
                    .get(tool_call_id.as_str())
                    .copied()
                    .unwrap_or(tool_call_id);
                map.serialize_entry(
                    "functionResponse",
                    &FunctionResponse {
                        name,
                        content,
                        is_error: *is_error,
                    },
                )?;
            }
        }
        map.end()
    }
}

/// `{"name", "args"}`: the arguments as the object the model wrote (`{}` when they are not
/// valid JSON, which Gemini would refuse).
struct Call<'a>(&'a ToolCall);

impl Serialize for Call<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let args = serde_json::from_str::<Value>(&self.0.arguments)
            .ok()
            .filter(Value::is_object)
            .unwrap_or_else(|| Value::Object(Map::new()));
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("name", &self.0.name)?;
        map.serialize_entry("args", &args)?;
        map.end()
    }
}

/// `{"name", "response"}`: a result that is a JSON object is the response; any other text is
/// wrapped as `{"result": …}` (`{"error": …}` for a failed tool).
struct FunctionResponse<'a> {
    name: &'a str,
    content: &'a str,
    is_error: bool,
}

impl Serialize for FunctionResponse<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let parsed = serde_json::from_str::<Value>(self.content)
            .ok()
            .filter(Value::is_object);
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("name", self.name)?;
        match parsed {
            Some(object) if !self.is_error => map.serialize_entry("response", &object)?,
            _ => {
                let key = if self.is_error { "error" } else { "result" };
                map.serialize_entry("response", &StrMap([(key, self.content)]))?;
            }
        }
        map.end()
    }
}

/// The media type and base64 data of a `data:<type>;base64,<data>` URL.
fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (header, data) = rest.split_once(',')?;
    Some((header.strip_suffix(";base64")?, data))
}

/// `{"parts": [...]}` of every system message, in order.
struct SystemInstruction<'a>(&'a [&'a Message]);

impl Serialize for SystemInstruction<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let empty = HashMap::new();
        let parts = self
            .0
            .iter()
            .flat_map(|message| &message.content)
            .map(|part| Part {
                part,
                names: &empty,
            });
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("parts", &Seq(parts))?;
        map.end()
    }
}

/// `{"functionDeclarations": [{name, description, parameters}]}`.
struct FunctionDeclarations<'a>(&'a ChatRequest);

impl Serialize for FunctionDeclarations<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let tools = self
            .0
            .tools
            .iter()
            .map(|tool| crate::provider::transport::wire::ToolSpec {
                tool,
                schema_key: "parameters",
            });
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("functionDeclarations", &Seq(tools))?;
        map.end()
    }
}

/// `{"functionCallingConfig": {"mode", "allowedFunctionNames"}}`.
struct ToolConfig<'a>(&'a ToolChoice);

impl Serialize for ToolConfig<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Calling<'a>(&'a ToolChoice);
        impl Serialize for Calling<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                match self.0 {
                    ToolChoice::Auto => map.serialize_entry("mode", "AUTO")?,
                    ToolChoice::None => map.serialize_entry("mode", "NONE")?,
                    ToolChoice::Required => map.serialize_entry("mode", "ANY")?,
                    ToolChoice::Tool(name) => {
                        map.serialize_entry("mode", "ANY")?;
                        map.serialize_entry("allowedFunctionNames", &[name])?;
                    }
                }
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("functionCallingConfig", &Calling(self.0))?;
        map.end()
    }
}

/// `generationConfig`: the typed parameters, then the `extra` keys that belong here, then the
/// entries of an `extra` `generationConfig` object; a later one replaces an earlier one of the
/// same name, so no key is written twice.
struct GenerationConfig<'a>(&'a ChatRequest);

impl GenerationConfig<'_> {
    /// The entries, in order, each key once (the caller's win).
    fn entries(&self) -> Vec<(&str, Value)> {
        let request = self.0;
        let mut entries: Vec<(&str, Value)> = Vec::new();
        let mut put = |key: &'static str, value: Option<Value>| {
            if let Some(value) = value {
                entries.push((key, value));
            }
        };
        put("temperature", request.temperature.map(Value::from));
        put("topP", request.top_p.map(Value::from));
        put("maxOutputTokens", request.max_tokens.map(Value::from));
        put(
            "stopSequences",
            (!request.stop.is_empty()).then(|| Value::from(request.stop.clone())),
        );
        put("seed", request.seed.map(Value::from));
        put("presencePenalty", request.presence_penalty.map(Value::from));
        put(
            "frequencyPenalty",
            request.frequency_penalty.map(Value::from),
        );
        match &request.response_format {
            Some(ResponseFormat::Text) => put("responseMimeType", Some("text/plain".into())),
            Some(ResponseFormat::JsonObject) => {
                put("responseMimeType", Some("application/json".into()));
            }
            Some(ResponseFormat::JsonSchema { schema, .. }) => {
                put("responseMimeType", Some("application/json".into()));
                put("responseJsonSchema", Some(schema.clone()));
            }
            None => {}
        }
        let caller = request
            .extra
            .iter()
            .filter_map(|(key, value)| generation_key(key).map(|key| (key, value)))
            .chain(
                request
                    .extra
                    .get("generationConfig")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .map(|(key, value)| (key.as_str(), value)),
            );
        for (key, value) in caller {
            entries.retain(|(known, _)| *known != key);
            entries.push((key, value.clone()));
        }
        entries
    }

    fn has_entries(&self) -> bool {
        let request = self.0;
        request.temperature.is_some()
            || request.top_p.is_some()
            || request.max_tokens.is_some()
            || !request.stop.is_empty()
            || request.seed.is_some()
            || request.presence_penalty.is_some()
            || request.frequency_penalty.is_some()
            || request.response_format.is_some()
            || request.extra.keys().any(|key| {
                generation_key(key).is_some()
                    || (key == "generationConfig" && request.extra[key].is_object())
            })
    }
}

impl Serialize for GenerationConfig<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = self.entries();
        let mut map = serializer.serialize_map(Some(entries.len()))?;
        for (key, value) in &entries {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// `usageMetadata`, on answers and (cumulative) on stream chunks.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    #[serde(default, deserialize_with = "lenient_count")]
    pub(crate) prompt_token_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub(crate) candidates_token_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub(crate) cached_content_token_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub(crate) thoughts_token_count: Option<u64>,
    #[serde(default, deserialize_with = "lenient_count")]
    pub(crate) tool_use_prompt_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Folds a later report in: what it states wins.
    pub(crate) fn merge(&mut self, later: &UsageMetadata) {
        fn keep(earlier: &mut Option<u64>, later: Option<u64>) {
            if later.is_some() {
                *earlier = later;
            }
        }
        keep(&mut self.prompt_token_count, later.prompt_token_count);
        keep(
            &mut self.candidates_token_count,
            later.candidates_token_count,
        );
        keep(
            &mut self.cached_content_token_count,
            later.cached_content_token_count,
        );
        keep(&mut self.thoughts_token_count, later.thoughts_token_count);
        keep(
            &mut self.tool_use_prompt_token_count,
            later.tool_use_prompt_token_count,
        );
    }

    /// The neutral usage: billed input (prompt plus tool-use prompt), billed output
    /// (candidates plus thoughts), thoughts as reasoning; see the module docs.
    pub(crate) fn to_usage(self) -> Usage {
        fn sum(a: Option<u64>, b: Option<u64>) -> Option<u64> {
            match (a, b) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
            }
        }
        Usage {
            input_tokens: sum(self.prompt_token_count, self.tool_use_prompt_token_count),
            output_tokens: sum(self.candidates_token_count, self.thoughts_token_count),
            cache_read_input_tokens: self.cached_content_token_count,
            reasoning_tokens: self.thoughts_token_count,
            ..Usage::default()
        }
    }
}

/// A `generateContent` answer, or one chunk of a stream.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenerateResponse {
    #[serde(default)]
    pub(crate) candidates: Option<Vec<Candidate>>,
    pub(crate) prompt_feedback: Option<PromptFeedback>,
    pub(crate) usage_metadata: Option<UsageMetadata>,
    pub(crate) model_version: Option<String>,
    pub(crate) response_id: Option<String>,
    /// An error reported inside a stream.
    pub(crate) error: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Candidate {
    pub(crate) content: Option<CandidateContent>,
    pub(crate) finish_reason: Option<String>,
    pub(crate) finish_message: Option<String>,
    /// Sources of a grounded answer: it searched the web.
    pub(crate) grounding_metadata: Option<Value>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CandidateContent {
    #[serde(default)]
    pub(crate) parts: Option<Vec<AnswerPart>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AnswerPart {
    pub(crate) text: Option<String>,
    /// A thought summary, not the answer.
    #[serde(default)]
    pub(crate) thought: bool,
    pub(crate) function_call: Option<FunctionCall>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FunctionCall {
    pub(crate) id: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) args: Option<Value>,
}

impl FunctionCall {
    /// The call as the neutral type: its id (the name when Gemini gives none; results are
    /// matched by name anyway) and its arguments as JSON text.
    pub(crate) fn into_tool_call(self) -> ToolCall {
        let name = self.name.unwrap_or_default();
        let id = self
            .id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| name.clone());
        let arguments = match self.args {
            Some(Value::Null) | None => "{}".to_owned(),
            Some(args) => args.to_string(),
        };
        ToolCall::new(id, name, arguments)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    pub(crate) block_reason: Option<String>,
    pub(crate) block_reason_message: Option<String>,
}

impl PromptFeedback {
    /// The error of a prompt Gemini blocked before any candidate: the block reason as its type
    /// and code, and in its message.
    pub(crate) fn blocked(&self) -> Option<crate::Error> {
        let reason = self
            .block_reason
            .as_deref()
            .filter(|reason| !reason.is_empty())?;
        let message = match &self.block_reason_message {
            Some(detail) if !detail.is_empty() => {
                format!("the prompt was blocked ({reason}): {detail}")
            }
            _ => format!("the prompt was blocked ({reason})"),
        };
        Some(
            crate::Error::other(message)
                .with_status(200)
                .with_api_error_type("prompt_blocked")
                .with_api_error_code(reason),
        )
    }
}

/// Whether a grounding block cites anything: PostHog's SDKs count such an answer as a search.
pub(crate) fn grounded(metadata: Option<&Value>) -> bool {
    let Some(metadata) = metadata.and_then(Value::as_object) else {
        return false;
    };
    ["groundingChunks", "webSearchQueries", "groundingSupports"]
        .iter()
        .any(|key| {
            metadata
                .get(*key)
                .and_then(Value::as_array)
                .is_some_and(|items| !items.is_empty())
        })
}

impl GenerateResponse {
    /// The first candidate as the neutral response. A prompt blocked before any candidate is
    /// an error.
    pub(crate) fn into_response(self) -> crate::Result<ChatResponse> {
        let candidates = self.candidates.unwrap_or_default();
        if candidates.is_empty() {
            if let Some(error) = self
                .prompt_feedback
                .as_ref()
                .and_then(PromptFeedback::blocked)
            {
                return Err(error);
            }
        }
        let mut response = ChatResponse {
            id: self.response_id,
            model: self.model_version,
            usage: self
                .usage_metadata
                .map(UsageMetadata::to_usage)
                .unwrap_or_default(),
            ..ChatResponse::default()
        };
        let Some(candidate) = candidates.into_iter().next() else {
            return Ok(response);
        };
        if grounded(candidate.grounding_metadata.as_ref()) {
            response.usage.web_search_count = Some(1);
        }
        response.finish_reason = candidate.finish_reason.filter(|reason| !reason.is_empty());
        if let Some(message) = candidate.finish_message.filter(|m| !m.is_empty()) {
            response
                .metadata
                .insert("finish_message".into(), message.into());
        }
        let parts = candidate
            .content
            .and_then(|content| content.parts)
            .unwrap_or_default();
        let mut text = String::new();
        for part in parts {
            if let Some(call) = part.function_call {
                response
                    .content
                    .push(ContentPart::ToolCall(call.into_tool_call()));
            } else if let Some(piece) = part.text.filter(|_| !part.thought) {
                text.push_str(&piece);
            }
        }
        if !text.is_empty() {
            response.content.insert(0, ContentPart::text(text));
        }
        Ok(response)
    }
}

/// The JSON body of an `embedContent` call (one text).
pub(crate) struct EmbedBody<'a> {
    pub(crate) request: &'a EmbeddingRequest,
    pub(crate) text: &'a str,
    /// `models/…`, written in each request of a batch.
    pub(crate) model: Option<&'a str>,
}

impl Serialize for EmbedBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct TextContent<'a>(&'a str);
        impl Serialize for TextContent<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("parts", &[StrMap([("text", self.0)])])?;
                map.end()
            }
        }
        let request = self.request;
        let mut map = serializer.serialize_map(None)?;
        if let Some(model) = self.model {
            map.serialize_entry("model", model)?;
        }
        map.serialize_entry("content", &TextContent(self.text))?;
        if let Some(dimensions) = request.dimensions {
            if !request.extra.contains_key("outputDimensionality") {
                map.serialize_entry("outputDimensionality", &dimensions)?;
            }
        }
        for (key, value) in &request.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// The JSON body of a `batchEmbedContents` call: one request per text.
pub(crate) struct BatchEmbedBody<'a> {
    pub(crate) request: &'a EmbeddingRequest,
    pub(crate) model: &'a str,
}

impl Serialize for BatchEmbedBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let requests = self.request.input.iter().map(|text| EmbedBody {
            request: self.request,
            text,
            model: Some(self.model),
        });
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("requests", &Seq(requests))?;
        map.end()
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct Values {
    #[serde(default)]
    values: Vec<f32>,
}

/// An `embedContent` or `batchEmbedContents` answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EmbedAnswer {
    embedding: Option<Values>,
    #[serde(default)]
    embeddings: Vec<Values>,
    usage_metadata: Option<UsageMetadata>,
}

impl EmbedAnswer {
    pub(crate) fn into_response(self) -> EmbeddingResponse {
        let vectors = match self.embedding {
            Some(one) => vec![one.values],
            None => self.embeddings.into_iter().map(|e| e.values).collect(),
        };
        let usage = Usage {
            input_tokens: self.usage_metadata.and_then(|u| u.prompt_token_count),
            ..Usage::default()
        };
        EmbeddingResponse::new(vectors, usage)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::types::Tool;

    fn body(request: &ChatRequest) -> Value {
        serde_json::from_slice(&serde_json::to_vec(&GenerateBody(request)).unwrap()).unwrap()
    }

    #[test]
    fn every_request_field_is_mapped() {
        let request = ChatRequest::new("gemini-2.5-flash")
            .message(Message::system("Be brief."))
            .message(
                Message::user("What is in these?")
                    .with_part(ContentPart::image_base64("image/png", "iVBORw0K"))
                    .with_part(ContentPart::image_url("data:image/jpeg;base64,/9j/"))
                    .with_part(ContentPart::image_url("gs://bucket/cat.png")),
            )
            .message(Message::assistant_tool_calls([ToolCall::new(
                "call_1",
                "lookup",
                r#"{"q":"cats"}"#,
            )]))
            .message(Message::tool_result("call_1", "two cats"))
            .message(Message::tool_result("call_1", r#"{"count":2}"#))
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
            .response_format(ResponseFormat::JsonSchema {
                name: "a".into(),
                schema: json!({"type": "object"}),
                strict: true,
            })
            .extra("top_k", 40)
            .extra("thinkingConfig", json!({"includeThoughts": true}))
            .extra(
                "safetySettings",
                json!([{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]),
            )
            .extra("generationConfig", json!({"temperature": 0.2}));
        assert_eq!(
            body(&request),
            json!({
                "contents": [
                    {"role": "user", "parts": [
                        {"text": "What is in these?"},
                        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0K"}},
                        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}},
                        {"fileData": {"fileUri": "gs://bucket/cat.png"}},
                    ]},
                    {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {"q": "cats"}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"result": "two cats"}}}]},
                    {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"count": 2}}}]},
                ],
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "tools": [{"functionDeclarations": [
                    {"name": "lookup", "description": "Looks things up", "parameters": {"type": "object"}}
                ]}],
                "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}},
                "generationConfig": {
                    "temperature": 0.2,
                    "topP": 0.9,
                    "maxOutputTokens": 100,
                    "stopSequences": ["END"],
                    "seed": 7,
                    "responseMimeType": "application/json",
                    "responseJsonSchema": {"type": "object"},
                    "topK": 40,
                    "thinkingConfig": {"includeThoughts": true},
                },
                "safetySettings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}],
            })
        );
    }

    #[test]
    fn a_plain_request_has_no_generation_config() {
        let request = ChatRequest::new("m").message(Message::user("hi"));
        assert_eq!(
            body(&request),
            json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
        );
    }

    #[test]
    fn usage_counts_thoughts_as_output_and_tool_prompts_as_input() {
        let metadata: UsageMetadata = serde_json::from_value(json!({
            "promptTokenCount": 1000, "candidatesTokenCount": 50, "cachedContentTokenCount": 600,
            "thoughtsTokenCount": 200, "toolUsePromptTokenCount": 30, "totalTokenCount": 1280
        }))
        .unwrap();
        assert_eq!(
            metadata.to_usage(),
            Usage::new(1030, 250)
                .with_cache_read(600)
                .with_reasoning(200)
        );
    }

    #[test]
    fn a_blocked_prompt_is_an_error_naming_the_reason() {
        let answer: GenerateResponse = serde_json::from_value(json!({
            "promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []},
            "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8}
        }))
        .unwrap();
        let err = answer.into_response().unwrap_err();
        assert_eq!(err.message(), "the prompt was blocked (SAFETY)");
        assert_eq!(err.api_error_type(), Some("prompt_blocked"));
        assert_eq!(err.api_error_code(), Some("SAFETY"));
    }

    #[test]
    fn answers_keep_text_calls_and_reasons_but_not_thoughts() {
        let answer: GenerateResponse = serde_json::from_value(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "Thinking about it", "thought": true},
                {"text": "It is "},
                {"text": "sunny."},
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}}}
            ]}, "finishReason": "STOP", "groundingMetadata": {"webSearchQueries": ["paris weather"]}}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 3},
            "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"
        }))
        .unwrap();
        let response = answer.into_response().unwrap();
        assert_eq!(response.text(), "It is sunny.");
        assert_eq!(
            response.tool_calls().collect::<Vec<_>>(),
            vec![&ToolCall::new("weather", "weather", r#"{"city":"Paris"}"#)]
        );
        assert_eq!(response.finish_reason.as_deref(), Some("STOP"));
        assert_eq!(response.usage.web_search_count, Some(1));
        assert_eq!(response.usage.output_tokens, Some(8));
        assert_eq!(response.id.as_deref(), Some("resp-1"));
    }

    #[test]
    fn embeddings_of_one_and_many() {
        let request = EmbeddingRequest::new("gemini-embedding-001", ["a", "b"]).dimensions(3);
        let batch = serde_json::to_value(BatchEmbedBody {
            request: &request,
            model: "models/gemini-embedding-001",
        })
        .unwrap();
        assert_eq!(
            batch,
            json!({"requests": [
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 3},
                {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]}, "outputDimensionality": 3},
            ]})
        );
        let answer: EmbedAnswer =
            serde_json::from_value(json!({"embeddings": [{"values": [0.1]}, {"values": [0.2]}]}))
                .unwrap();
        assert_eq!(
            answer.into_response().embeddings,
            vec![vec![0.1], vec![0.2]]
        );
        let one: EmbedAnswer =
            serde_json::from_value(json!({"embedding": {"values": [1.0]}})).unwrap();
        assert_eq!(one.into_response().embeddings, vec![vec![1.0]]);
    }
}
