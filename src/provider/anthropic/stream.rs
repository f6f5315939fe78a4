//! Messages API stream events to neutral [`StreamEvent`]s.
//!
//! Usage comes in two parts: input and cache tokens in `message_start`, output tokens in
//! `message_delta`. Each part is emitted with only the fields it states, and
//! [`Usage::merge`](crate::Usage::merge) keeps the earlier ones, so a silent field never erases
//! a value. Tool arguments are streamed as `partial_json` fragments and checked at the block's
//! end.

use std::collections::{HashMap, VecDeque};

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::wire::WireUsage;
use crate::provider::transport::sse::{Decoder, Flow};
use crate::provider::transport::stream_api_error;
use crate::types::{StreamEvent, Usage};
use crate::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: usize,
        content_block: BlockStart,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: Option<MessageDeltaBody>,
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        #[serde(default)]
        error: serde_json::Value,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct StartMessage {
    id: Option<String>,
    model: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: Option<String>,
        name: Option<String>,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        #[serde(default)]
        text: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    ThinkingDelta {
        #[serde(default)]
        thinking: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
    stop_sequence: Option<String>,
}

/// A `tool_use` block being streamed.
#[derive(Debug)]
struct OpenTool {
    name: String,
    arguments: String,
}

/// The state of one Anthropic stream.
#[derive(Debug, Default)]
pub(crate) struct AnthropicDecoder {
    /// Open `tool_use` blocks by content-block index: one lookup per fragment.
    tools: HashMap<usize, OpenTool>,
    stopped: bool,
    events: usize,
}

impl Decoder for AnthropicDecoder {
    fn decode(&mut self, _kind: &str, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow> {
        if data.trim().is_empty() {
            return Ok(Flow::Continue);
        }
        self.events += 1;
        let event: Event = serde_json::from_str(data).map_err(|err| {
            Error::decode(format!("invalid stream event {} json: {err}", self.events))
                .with_status(200)
        })?;
        match event {
            Event::MessageStart { message } => {
                out.push_back(StreamEvent::ResponseMetadata {
                    id: message.id,
                    model: message.model,
                });
                if let Some(usage) = message.usage {
                    // Output tokens here are a placeholder; `message_delta` states them.
                    let usage = Usage {
                        output_tokens: None,
                        ..usage.to_usage()
                    };
                    if !usage.is_empty() {
                        out.push_back(StreamEvent::Usage(usage));
                    }
                }
            }
            Event::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                BlockStart::Text { text } if !text.is_empty() => {
                    out.push_back(StreamEvent::TextDelta { text });
                }
                BlockStart::Thinking { thinking } if !thinking.is_empty() => {
                    out.push_back(StreamEvent::ReasoningDelta { text: thinking });
                }
                BlockStart::ToolUse { id, name } => {
                    self.tools.insert(
                        index,
                        OpenTool {
                            name: name.clone().unwrap_or_default(),
                            arguments: String::new(),
                        },
                    );
                    out.push_back(StreamEvent::ToolCallDelta {
                        index,
                        id,
                        name,
                        arguments: String::new(),
                    });
                }
                _ => {}
            },
            Event::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } if !text.is_empty() => {
                    out.push_back(StreamEvent::TextDelta { text });
                }
                BlockDelta::ThinkingDelta { thinking } if !thinking.is_empty() => {
                    out.push_back(StreamEvent::ReasoningDelta { text: thinking });
                }
                BlockDelta::InputJsonDelta { partial_json } if !partial_json.is_empty() => {
                    // Fragments of server tools' blocks (not `tool_use`) are not the caller's.
                    if let Some(tool) = self.tools.get_mut(&index) {
                        tool.arguments.push_str(&partial_json);
                        out.push_back(StreamEvent::ToolCallDelta {
                            index,
                            id: None,
                            name: None,
                            arguments: partial_json,
                        });
                    }
                }
                _ => {}
            },
            Event::ContentBlockStop { index } => {
                if let Some(tool) = self.tools.remove(&index) {
                    if tool.arguments.trim().is_empty() {
                        // A tool without arguments: `{}`, so the call's arguments are JSON.
                        out.push_back(StreamEvent::ToolCallDelta {
                            index,
                            id: None,
                            name: None,
                            arguments: "{}".to_owned(),
                        });
                    } else if serde_json::from_str::<IgnoredAny>(&tool.arguments).is_err() {
                        // Kept as the model wrote it; only the fact is logged, not the text.
                        tracing::warn!(
                            target: "traced_llm::provider",
                            tool = %tool.name,
                            index,
                            "anthropic tool arguments are not valid json; kept as text"
                        );
                    }
                }
            }
            Event::MessageDelta { delta, usage } => {
                let (reason, sequence) = match delta {
                    Some(delta) => (delta.stop_reason, delta.stop_sequence),
                    None => (None, None),
                };
                if let Some(reason) = reason.filter(|reason| !reason.is_empty()) {
                    self.stopped = true;
                    out.push_back(StreamEvent::Finish { reason });
                }
                if let Some(sequence) = sequence {
                    out.push_back(StreamEvent::Metadata {
                        key: "stop_sequence".to_owned(),
                        value: sequence.into(),
                    });
                }
                if let Some(usage) = usage {
                    let usage = usage.to_usage();
                    if !usage.is_empty() {
                        out.push_back(StreamEvent::Usage(usage));
                    }
                }
            }
            Event::MessageStop => return Ok(Flow::Done),
            Event::Ping | Event::Unknown => {}
            Event::Error { error } => {
                return Err(stream_api_error(&error));
            }
        }
        Ok(Flow::Continue)
    }

    fn end_without_marker(&mut self) -> Result<()> {
        if self.stopped {
            Ok(())
        } else {
            Err(Error::stream("the stream ended before message_stop").with_status(200))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(datas: &[&str]) -> (Vec<StreamEvent>, Result<Flow>) {
        crate::provider::transport::sse::decode_all(AnthropicDecoder::default(), "", datas)
    }

    #[test]
    fn tool_without_arguments_gets_an_empty_object_and_bad_json_is_kept() {
        let (events, last) = decode_all(&[
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t1","name":"now","input":{}}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"t2","name":"f","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\": tru"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"some_future_event","x":1}"#,
        ]);
        assert!(matches!(last, Ok(Flow::Continue)));
        assert_eq!(
            events,
            vec![
                StreamEvent::ToolCallDelta {
                    index: 0,
                    id: Some("t1".into()),
                    name: Some("now".into()),
                    arguments: String::new()
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    id: None,
                    name: None,
                    arguments: "{}".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 1,
                    id: Some("t2".into()),
                    name: Some("f".into()),
                    arguments: String::new()
                },
                StreamEvent::ToolCallDelta {
                    index: 1,
                    id: None,
                    name: None,
                    arguments: "{\"a\": tru".into()
                },
            ]
        );
    }

    #[test]
    fn error_events_fail_the_stream_with_their_type() {
        let (_, last) = decode_all(&[
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ]);
        let err = last.unwrap_err();
        assert!(err.is_stream());
        assert_eq!(err.api_error_type(), Some("overloaded_error"));
        assert_eq!(err.message(), "Overloaded");
    }

    #[test]
    fn a_body_cut_before_the_stop_reason_is_an_error() {
        let mut decoder = AnthropicDecoder::default();
        assert!(decoder.end_without_marker().unwrap_err().is_stream());
    }

    #[test]
    fn ttl_split_web_searches_and_stop_sequence_are_read() {
        let mut decoder = AnthropicDecoder::default();
        let mut out = VecDeque::new();
        for data in [
            r#"{"type":"message_start","message":{"id":"msg_1","model":"claude-sonnet-4-5","usage":{"input_tokens":12,"cache_creation_input_tokens":700,"cache_read_input_tokens":50,"cache_creation":{"ephemeral_5m_input_tokens":300,"ephemeral_1h_input_tokens":400},"output_tokens":1}}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"usage":{"output_tokens":20,"server_tool_use":{"web_search_requests":2}}}"#,
        ] {
            decoder.decode("message", data, &mut out).unwrap();
        }
        let events: Vec<_> = out.into_iter().collect();
        assert_eq!(
            events[1],
            StreamEvent::Usage(
                Usage::default()
                    .with_input(12)
                    .with_cache_read(50)
                    .with_cache_creation_ttl(300, 400)
            )
        );
        assert_eq!(
            &events[2..],
            &[
                StreamEvent::finish("stop_sequence"),
                StreamEvent::Metadata {
                    key: "stop_sequence".into(),
                    value: "END".into()
                },
                StreamEvent::Usage(Usage::default().with_output(20).with_web_searches(2)),
            ]
        );
    }
}
