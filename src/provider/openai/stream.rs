//! Chat Completions stream chunks to neutral [`StreamEvent`]s.
//!
//! Every chunk is read, including the last one with empty `choices` that carries the usage
//! (skipping it is how other crates lose the token counts). Empty strings, `usage: {}` and
//! `finish_reason: ""` from compatible servers are read as "nothing said".

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;

use super::wire::WireUsage;
use crate::provider::transport::sse::{Decoder, Flow};
use crate::provider::transport::stream_api_error;
use crate::types::StreamEvent;
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
    /// Some servers (OpenRouter, vLLM) report a failure inside the stream.
    error: Option<serde_json::Value>,
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
    content: Option<Cow<'a, str>>,
    /// DeepSeek, vLLM and llama.cpp name the reasoning `reasoning_content`.
    #[serde(borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    /// OpenRouter and Ollama name it `reasoning`.
    #[serde(borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow)]
    refusal: Option<Cow<'a, str>>,
    tool_calls: Option<Vec<ToolCallChunk>>,
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
    /// A finish reason arrived, so a body without `[DONE]` is still a complete answer.
    finished: bool,
    chunks: usize,
    /// The id and name already passed on per tool-call index: some servers repeat them in
    /// every fragment, and a repeat must not be appended twice.
    tool_heads: Vec<(usize, Option<String>, Option<String>)>,
}

impl OpenAiDecoder {
    /// Drops an id or name that repeats what this index already stated.
    fn first_statement(
        &mut self,
        index: usize,
        id: Option<String>,
        name: Option<String>,
    ) -> (Option<String>, Option<String>) {
        let position = match self.tool_heads.iter().position(|head| head.0 == index) {
            Some(position) => position,
            None => {
                self.tool_heads.push((index, None, None));
                self.tool_heads.len() - 1
            }
        };
        let head = &mut self.tool_heads[position];
        let id = match id {
            Some(id) if head.1.as_deref() == Some(id.as_str()) => None,
            Some(id) => {
                head.1 = Some(id.clone());
                Some(id)
            }
            None => None,
        };
        let name = match name {
            Some(name) if head.2.as_deref() == Some(name.as_str()) => None,
            Some(name) => {
                head.2 = Some(name.clone());
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
        // Only the first choice is followed (`n > 1` is not modelled).
        if let Some(choice) = chunk.choices.and_then(|choices| choices.0) {
            if let Some(delta) = choice.delta {
                if let Some(text) =
                    owned(delta.reasoning_content).or_else(|| owned(delta.reasoning))
                {
                    out.push_back(StreamEvent::ReasoningDelta { text });
                }
                if let Some(text) = owned(delta.content).or_else(|| owned(delta.refusal)) {
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
        if let Some(usage) = chunk.usage {
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
    use crate::types::Usage;

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
}
