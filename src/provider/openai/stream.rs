//! Chat Completions stream chunks to neutral [`StreamEvent`]s.
//!
//! Every chunk is read, including the last one with empty `choices` that carries the usage
//! (skipping it is how other crates lose the token counts). Empty strings, `usage: {}` and
//! `finish_reason: ""` from compatible servers are read as "nothing said".

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use super::wire::{WireUsage, XGroq};
use crate::provider::transport::sse::{Decoder, Flow};
use crate::provider::transport::stream_api_error;
use crate::types::{StreamEvent, Usage};
use crate::{Error, Result};

// Strings borrow from the chunk where they can: a chunk is parsed on every token, so the
// allocations saved here are most of its cost.

#[derive(Debug, Deserialize)]
struct Chunk<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    choices: Option<FirstChoice<'a>>,
    usage: Option<WireUsage>,
    #[serde(borrow)]
    system_fingerprint: Option<Cow<'a, str>>,
    /// Groq can send the usage only here, on the last chunk.
    x_groq: Option<XGroq>,
    /// Perplexity's sources.
    citations: Option<IgnoredList>,
    /// Some servers (OpenRouter, vLLM) report a failure inside the stream.
    error: Option<serde_json::Value>,
}

/// Whether a list (annotations, citations) has entries, without keeping them.
#[derive(Debug, Default)]
struct IgnoredList(bool);

impl<'de> Deserialize<'de> for IgnoredList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Count;
        impl<'de> Visitor<'de> for Count {
            type Value = IgnoredList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut any = false;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(IgnoredList(any))
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(IgnoredList(false))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(IgnoredList(false))
            }
        }
        deserializer.deserialize_any(Count)
    }
}

/// The first of the `choices` (`n > 1` is not modelled); the others are skipped unread.
#[derive(Debug)]
struct FirstChoice<'a>(Option<ChunkChoice<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for FirstChoice<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct First<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for First<'a> {
            type Value = FirstChoice<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let first = seq.next_element::<ChunkChoice<'a>>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FirstChoice(first))
            }
        }
        deserializer.deserialize_seq(First(PhantomData))
    }
}

#[derive(Debug, Deserialize)]
struct ChunkChoice<'a> {
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<DeltaContent<'a>>,
    /// DeepSeek, vLLM and llama.cpp name the reasoning `reasoning_content`.
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    /// OpenRouter and Ollama name it `reasoning`.
    #[serde(borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    tool_calls: Option<Vec<ToolCallChunk>>,
    /// The search models' `url_citation`s.
    annotations: Option<IgnoredList>,
}

/// `delta.content`: a string, or (Mistral's reasoning models) a list of typed parts, `thinking`
/// parts (whose `thinking` is a string or a list of text parts) and `text` parts.
#[derive(Debug, Default)]
struct DeltaContent<'a> {
    text: Option<Cow<'a, str>>,
    thinking: Option<String>,
}

impl<'de: 'a, 'a> Deserialize<'de> for DeltaContent<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Content<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Content<'a> {
            type Value = DeltaContent<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of content parts")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(DeltaContent {
                    text: Some(Cow::Borrowed(text)),
                    thinking: None,
                })
            }
            fn visit_str<E>(self, text: &str) -> std::result::Result<Self::Value, E> {
                Ok(DeltaContent {
                    text: Some(Cow::Owned(text.to_owned())),
                    thinking: None,
                })
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(DeltaContent::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut text = String::new();
                let mut thinking = String::new();
                while let Some(part) = seq.next_element::<ContentPartChunk>()? {
                    match part.kind.as_deref() {
                        Some("thinking") | Some("reasoning") => {
                            part.thinking.append_to(&mut thinking);
                            part.text.append_to(&mut thinking);
                        }
                        Some("text") | None => part.text.append_to(&mut text),
                        // Images, references and whatever comes next are not text.
                        Some(_) => {}
                    }
                }
                Ok(DeltaContent {
                    text: (!text.is_empty()).then_some(Cow::Owned(text)),
                    thinking: (!thinking.is_empty()).then_some(thinking),
                })
            }
        }
        deserializer.deserialize_any(Content(PhantomData))
    }
}

#[derive(Debug, Deserialize)]
struct ContentPartChunk {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: TextOrParts,
    #[serde(default)]
    thinking: TextOrParts,
}

/// A string, or a list of `{"type": "text", "text": …}` parts (nested at most this once).
#[derive(Debug, Default)]
struct TextOrParts(String);

impl TextOrParts {
    fn append_to(&self, out: &mut String) {
        out.push_str(&self.0);
    }
}

impl<'de> Deserialize<'de> for TextOrParts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Part {
            #[serde(default)]
            text: Option<String>,
        }
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = TextOrParts;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of text parts")
            }
            fn visit_str<E>(self, text: &str) -> std::result::Result<Self::Value, E> {
                Ok(TextOrParts(text.to_owned()))
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(TextOrParts::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut text = String::new();
                while let Some(part) = seq.next_element::<Part>()? {
                    text.push_str(part.text.as_deref().unwrap_or_default());
                }
                Ok(TextOrParts(text))
            }
        }
        deserializer.deserialize_any(Text)
    }
}

#[derive(Debug, Deserialize)]
struct ToolCallChunk {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionChunk>,
}

#[derive(Debug, Deserialize)]
struct FunctionChunk {
    name: Option<String>,
    arguments: Option<String>,
}

/// The state of one OpenAI stream.
#[derive(Debug, Default)]
pub(crate) struct OpenAiDecoder {
    sent_metadata: bool,
    sent_fingerprint: bool,
    /// A web-search indicator (annotations, citations) was passed on.
    sent_search: bool,
    /// A finish reason arrived, so a body without `[DONE]` is still a complete answer.
    finished: bool,
    chunks: usize,
    /// The id and name already passed on per tool-call index: some servers repeat them in
    /// every fragment, and a repeat must not be appended twice. One lookup per fragment.
    tool_heads: HashMap<usize, ToolHead>,
}

#[derive(Debug, Default)]
struct ToolHead {
    id: Option<String>,
    name: Option<String>,
}

impl OpenAiDecoder {
    /// Drops an id or name that repeats what this index already stated. A different id on an
    /// index starts a new call there (Ollama numbers every call 0), whose name is new too.
    fn first_statement(
        &mut self,
        index: usize,
        id: Option<String>,
        name: Option<String>,
    ) -> (Option<String>, Option<String>) {
        let head = self.tool_heads.entry(index).or_default();
        let id = match id {
            Some(id) if head.id.as_deref() == Some(id.as_str()) => None,
            Some(id) => {
                if head.id.is_some() {
                    head.name = None;
                }
                head.id = Some(id.clone());
                Some(id)
            }
            None => None,
        };
        let name = match name {
            Some(name) if head.name.as_deref() == Some(name.as_str()) => None,
            Some(name) => {
                head.name = Some(name.clone());
                Some(name)
            }
            None => None,
        };
        (id, name)
    }
}

fn non_empty(text: Option<String>) -> Option<String> {
    text.filter(|text| !text.is_empty())
}

fn owned(text: Option<Cow<'_, str>>) -> Option<String> {
    text.filter(|text| !text.is_empty()).map(Cow::into_owned)
}

impl Decoder for OpenAiDecoder {
    fn decode(&mut self, _kind: &str, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow> {
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(Flow::Done);
        }
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        self.chunks += 1;
        let chunk: Chunk = serde_json::from_str(data).map_err(|err| {
            Error::decode(format!("invalid stream chunk {} json: {err}", self.chunks))
                .with_status(200)
        })?;
        if let Some(error) = chunk.error.as_ref().filter(|error| !error.is_null()) {
            return Err(stream_api_error(error).with_status(200));
        }
        if !self.sent_metadata {
            // Azure opens with a content-filter chunk whose id and model are empty strings, so
            // the first chunk that names either is the one that counts.
            let id = owned(chunk.id);
            let model = owned(chunk.model);
            if id.is_some() || model.is_some() {
                self.sent_metadata = true;
                out.push_back(StreamEvent::ResponseMetadata { id, model });
            }
        }
        if !self.sent_fingerprint {
            if let Some(fingerprint) = owned(chunk.system_fingerprint) {
                self.sent_fingerprint = true;
                out.push_back(StreamEvent::Metadata {
                    key: "system_fingerprint".to_owned(),
                    value: fingerprint.into(),
                });
            }
        }
        let mut searched = chunk.citations.is_some_and(|list| list.0);
        // Only the first choice is followed (`n > 1` is not modelled).
        if let Some(choice) = chunk.choices.and_then(|choices| choices.0) {
            if let Some(delta) = choice.delta {
                searched |= delta.annotations.is_some_and(|list| list.0);
                let content = delta.content.unwrap_or_default();
                if let Some(text) = owned(delta.reasoning_content)
                    .or_else(|| owned(delta.reasoning))
                    .or(content.thinking)
                {
                    out.push_back(StreamEvent::ReasoningDelta { text });
                }
                if let Some(text) = owned(content.text).or_else(|| owned(delta.refusal)) {
                    out.push_back(StreamEvent::TextDelta { text });
                }
                for (position, call) in delta.tool_calls.into_iter().flatten().enumerate() {
                    let (name, arguments) = match call.function {
                        Some(function) => (
                            non_empty(function.name),
                            function.arguments.unwrap_or_default(),
                        ),
                        None => (None, String::new()),
                    };
                    let index = call.index.unwrap_or(position);
                    let (id, name) = self.first_statement(index, non_empty(call.id), name);
                    if id.is_none() && name.is_none() && arguments.is_empty() {
                        continue;
                    }
                    out.push_back(StreamEvent::ToolCallDelta {
                        index,
                        id,
                        name,
                        arguments,
                    });
                }
            }
            if let Some(reason) = owned(choice.finish_reason) {
                self.finished = true;
                out.push_back(StreamEvent::Finish { reason });
            }
        }
        if searched && !self.sent_search {
            // One search at least; a count the usage states later wins.
            self.sent_search = true;
            out.push_back(StreamEvent::Usage(Usage {
                web_search_count: Some(1),
                ..Usage::default()
            }));
        }
        if let Some(usage) = chunk
            .usage
            .or_else(|| chunk.x_groq.and_then(|groq| groq.usage))
        {
            let usage = usage.to_usage();
            if !usage.is_empty() {
                out.push_back(StreamEvent::Usage(usage));
            }
        }
        Ok(Flow::Continue)
    }

    fn end_without_marker(&mut self) -> Result<()> {
        if self.finished {
            Ok(())
        } else {
            Err(Error::stream("the stream ended before the answer finished").with_status(200))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(datas: &[&str]) -> (Vec<StreamEvent>, Result<Flow>) {
        crate::provider::transport::sse::decode_all(OpenAiDecoder::default(), "message", datas)
    }

    #[test]
    fn tolerates_what_compatible_servers_send() {
        let (events, last) = decode_all(&[
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":null,"x_unknown":1}"#,
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":""}],"usage":{}}"#,
            r#"{"id":"c1","model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"prompt_tokens_details":null}}"#,
            "[DONE]",
        ]);
        assert_eq!(
            events,
            vec![
                StreamEvent::ResponseMetadata {
                    id: Some("c1".into()),
                    model: Some("m".into())
                },
                StreamEvent::text("Hi"),
                StreamEvent::Usage(Usage::new(5, 1)),
            ]
        );
        assert_eq!(last.unwrap(), Flow::Done);
    }

    #[test]
    fn repeated_tool_call_ids_and_names_are_passed_on_once() {
        let (events, _) = decode_all(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]}}]}"#,
        ]);
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCallDelta {
                    index: 0,
                    id: Some("call_1".into()),
                    name: Some("f".into()),
                    arguments: String::new()
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    id: None,
                    name: None,
                    arguments: "{}".into()
                },
            ]
        );
    }

    #[test]
    fn azure_filter_chunks_and_extra_choices_are_skipped() {
        let (events, _) = decode_all(&[
            r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#,
            r#"{"id":"chatcmpl-9","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"A"},"content_filter_results":{}},{"index":1,"delta":{"content":"B"}}]}"#,
            r#"{"id":"chatcmpl-9","model":"gpt-4o","choices":null}"#,
        ]);
        assert_eq!(
            events,
            vec![
                StreamEvent::ResponseMetadata {
                    id: Some("chatcmpl-9".into()),
                    model: Some("gpt-4o".into())
                },
                StreamEvent::text("A"),
            ]
        );
    }

    #[test]
    fn odd_token_counts_are_read_not_fatal() {
        let (events, last) = decode_all(&[
            r#"{"choices":[],"usage":{"prompt_tokens":5.0,"completion_tokens":"2","prompt_tokens_details":{"cached_tokens":null},"prompt_cache_hit_tokens":1}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":-1,"completion_tokens":[]}}"#,
        ]);
        assert!(last.is_ok());
        assert_eq!(
            events,
            vec![StreamEvent::Usage(Usage::new(5, 2).with_cache_read(1))]
        );
    }

    #[test]
    fn reasoning_content_becomes_reasoning_deltas() {
        let (events, _) = decode_all(&[
            r#"{"choices":[{"delta":{"reasoning_content":"think"}}]}"#,
            r#"{"choices":[{"delta":{"reasoning":"more"}}]}"#,
        ]);
        assert_eq!(
            events,
            vec![
                StreamEvent::ReasoningDelta {
                    text: "think".into()
                },
                StreamEvent::ReasoningDelta {
                    text: "more".into()
                },
            ]
        );
    }

    #[test]
    fn in_stream_error_objects_fail_the_stream() {
        let (_, last) = decode_all(&[
            r#"{"error":{"message":"upstream overloaded","type":"server_error","code":502}}"#,
        ]);
        let err = last.unwrap_err();
        assert!(err.is_stream());
        assert_eq!(err.message(), "upstream overloaded");
        assert_eq!(err.api_error_type(), Some("server_error"));
        assert_eq!(err.api_error_code(), Some("502"));
    }

    #[test]
    fn malformed_json_is_a_decode_error_with_context() {
        let (_, last) = decode_all(&[r#"{"choices":[{"delta":{"content":"a"}}]}"#, "{not json"]);
        let err = last.unwrap_err();
        assert!(err.is_decode());
        assert!(
            err.message().starts_with("invalid stream chunk 2 json: "),
            "{}",
            err.message()
        );
    }

    #[test]
    fn groq_usage_in_x_groq_on_the_last_chunk() {
        let (events, _) = decode_all(&[
            r#"{"id":"chatcmpl-g","model":"llama-3.3-70b-versatile","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
            r#"{"id":"chatcmpl-g","model":"llama-3.3-70b-versatile","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_01","usage":{"queue_time":0.01,"prompt_tokens":18,"prompt_time":0.002,"completion_tokens":2,"completion_time":0.004,"total_tokens":20,"total_time":0.006}}}"#,
            "[DONE]",
        ]);
        assert_eq!(events.last(), Some(&StreamEvent::Usage(Usage::new(18, 2))));
    }

    #[test]
    fn mistral_content_parts_split_thinking_from_text() {
        let (events, last) = decode_all(&[
            r#"{"id":"m1","model":"magistral-medium-latest","choices":[{"index":0,"delta":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"Six times seven"}]}]}}]}"#,
            r#"{"id":"m1","model":"magistral-medium-latest","choices":[{"index":0,"delta":{"content":[{"type":"text","text":"42"}]}}]}"#,
            r#"{"id":"m1","model":"magistral-medium-latest","choices":[{"index":0,"delta":{"content":"."},"finish_reason":"stop"}]}"#,
        ]);
        assert!(last.is_ok());
        assert_eq!(
            &events[1..],
            &[
                StreamEvent::ReasoningDelta {
                    text: "Six times seven".into()
                },
                StreamEvent::text("42"),
                StreamEvent::text("."),
                StreamEvent::finish("stop"),
            ]
        );
    }

    #[test]
    fn proxy_cache_writes_cost_and_fingerprint_are_read() {
        let (events, _) = decode_all(&[
            r#"{"id":"gen-1","model":"anthropic/claude-sonnet-4","system_fingerprint":"fp_1","choices":[{"delta":{"content":"a"}}]}"#,
            r#"{"id":"gen-1","model":"anthropic/claude-sonnet-4","system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":2000,"completion_tokens":10,"prompt_tokens_details":{"cached_tokens":1200,"cache_write_tokens":500},"cost":0.00123,"is_byok":false}}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":1,"cache_creation_input_tokens":300,"cache_read_input_tokens":40}}"#,
        ]);
        assert_eq!(
            events,
            vec![
                StreamEvent::ResponseMetadata {
                    id: Some("gen-1".into()),
                    model: Some("anthropic/claude-sonnet-4".into())
                },
                StreamEvent::Metadata {
                    key: "system_fingerprint".into(),
                    value: "fp_1".into()
                },
                StreamEvent::text("a"),
                StreamEvent::Usage(
                    Usage::new(2000, 10)
                        .with_cache_read(1200)
                        .with_cache_creation(500)
                        .with_cost_usd(0.00123)
                ),
                StreamEvent::Usage(
                    Usage::new(10, 1)
                        .with_cache_read(40)
                        .with_cache_creation(300)
                ),
            ]
        );
    }

    #[test]
    fn a_new_id_on_a_used_index_is_a_new_call_with_its_name() {
        let (events, _) = decode_all(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_a","function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_b","function":{"name":"weather","arguments":"{\"city\":\"Rome\"}"}}]}}]}"#,
        ]);
        assert_eq!(
            events[1],
            StreamEvent::ToolCallDelta {
                index: 0,
                id: Some("call_b".into()),
                name: Some("weather".into()),
                arguments: r#"{"city":"Rome"}"#.into()
            }
        );
    }

    #[test]
    fn sixty_thousand_distinct_tool_call_indexes_each_stay_one_call() {
        // A map lookup per fragment, in the decoder and in the accumulator: one pass, however
        // many indexes. Correctness only; no clock.
        const CALLS: usize = 60_000;
        let opens: Vec<String> = (0..CALLS)
            .map(|index| {
                format!(
                    r#"{{"choices":[{{"delta":{{"tool_calls":[{{"index":{index},"id":"call_{index}","function":{{"name":"f","arguments":"{{\"n\":"}}}}]}}}}]}}"#
                )
            })
            .collect();
        let closes: Vec<String> = (0..CALLS)
            .rev()
            .map(|index| {
                format!(
                    r#"{{"choices":[{{"delta":{{"tool_calls":[{{"index":{index},"id":"call_{index}","function":{{"arguments":"{index}}}"}}}}]}}}}]}}"#
                )
            })
            .collect();
        let datas: Vec<&str> = opens.iter().chain(&closes).map(String::as_str).collect();
        let (events, last) = decode_all(&datas);
        assert!(last.is_ok());
        let mut accumulator = crate::types::StreamAccumulator::new();
        for event in &events {
            accumulator.observe(event);
        }
        let response = accumulator.into_response();
        let calls: Vec<_> = response.tool_calls().collect();
        assert_eq!(calls.len(), CALLS);
        for (index, call) in calls.iter().enumerate() {
            assert_eq!(call.id, format!("call_{index}"));
            assert_eq!(call.arguments, format!(r#"{{"n":{index}}}"#));
        }
    }

    #[test]
    fn annotations_and_citations_count_one_web_search() {
        let (events, _) = decode_all(&[
            r#"{"choices":[{"delta":{"content":"See","annotations":[{"type":"url_citation","url_citation":{"url":"https://example.com"}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":" this"}}],"citations":["https://example.com"]}"#,
        ]);
        let searches: Vec<_> = events
            .iter()
            .filter(|event| matches!(event, StreamEvent::Usage(_)))
            .collect();
        assert_eq!(
            searches,
            vec![&StreamEvent::Usage(Usage::default().with_web_searches(1))]
        );
    }
}
