//! Responses API stream events to neutral [`StreamEvent`]s.
//!
//! Text comes in `response.output_text.delta` (and refusals in `response.refusal.delta`),
//! reasoning summaries in `response.reasoning_summary_text.delta` (reasoning: counted for time
//! to first token, kept out of the output), function calls open with
//! `response.output_item.added` and grow by `response.function_call_arguments.delta`, keyed by
//! their `output_index`. The terminal event carries the whole response: `response.completed`
//! and `response.incomplete` end the stream with its usage, status and web searches;
//! `response.failed` and `error` fail it.

use std::borrow::Cow;
use std::collections::VecDeque;

use serde::Deserialize;

use super::wire::ResponseObject;
use crate::provider::transport::sse::{Decoder, Flow};
use crate::provider::transport::stream_api_error;
use crate::types::StreamEvent;
use crate::{Error, Result};

/// The event's type, for streams whose SSE events carry no `event:` name.
#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
}

#[derive(Deserialize)]
struct TextDelta<'a> {
    #[serde(borrow)]
    delta: Cow<'a, str>,
    #[serde(default)]
    output_index: usize,
}

#[derive(Deserialize)]
struct ItemAdded {
    #[serde(default)]
    output_index: usize,
    item: AddedItem,
}

#[derive(Deserialize)]
struct AddedItem {
    #[serde(rename = "type")]
    kind: String,
    call_id: Option<String>,
    id: Option<String>,
    name: Option<String>,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize)]
struct Lifecycle {
    response: ResponseObject,
}

/// The state of one Responses stream.
#[derive(Debug, Default)]
pub(crate) struct ResponsesDecoder {
    sent_metadata: bool,
    events: usize,
}

impl ResponsesDecoder {
    fn parse<'a, T: Deserialize<'a>>(&self, data: &'a str) -> Result<T> {
        serde_json::from_str(data).map_err(|err| {
            Error::decode(format!("invalid stream event {} json: {err}", self.events))
                .with_status(200)
        })
    }

    fn metadata(&mut self, response: &ResponseObject, out: &mut VecDeque<StreamEvent>) {
        if !self.sent_metadata && (response.id.is_some() || response.model.is_some()) {
            self.sent_metadata = true;
            out.push_back(StreamEvent::ResponseMetadata {
                id: response.id.clone(),
                model: response.model.clone(),
            });
        }
    }
}

impl Decoder for ResponsesDecoder {
    fn decode(&mut self, kind: &str, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow> {
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(Flow::Continue);
        }
        self.events += 1;
        let named;
        let kind = if kind == "message" {
            named = self.parse::<Kind>(data)?;
            named.kind.as_ref()
        } else {
            kind
        };
        match kind {
            "response.output_text.delta" | "response.refusal.delta" => {
                let delta: TextDelta = self.parse(data)?;
                if !delta.delta.is_empty() {
                    out.push_back(StreamEvent::text(delta.delta.into_owned()));
                }
            }
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                let delta: TextDelta = self.parse(data)?;
                if !delta.delta.is_empty() {
                    out.push_back(StreamEvent::ReasoningDelta {
                        text: delta.delta.into_owned(),
                    });
                }
            }
            "response.output_item.added" => {
                let added: ItemAdded = self.parse(data)?;
                if added.item.kind == "function_call" {
                    out.push_back(StreamEvent::ToolCallDelta {
                        index: added.output_index,
                        id: added.item.call_id.or(added.item.id),
                        name: added.item.name,
                        arguments: added.item.arguments,
                    });
                }
            }
            "response.function_call_arguments.delta" => {
                let delta: TextDelta = self.parse(data)?;
                if !delta.delta.is_empty() {
                    out.push_back(StreamEvent::ToolCallDelta {
                        index: delta.output_index,
                        id: None,
                        name: None,
                        arguments: delta.delta.into_owned(),
                    });
                }
            }
            "response.created" | "response.in_progress" => {
                let event: Lifecycle = self.parse(data)?;
                self.metadata(&event.response, out);
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let event: Lifecycle = self.parse(data)?;
                let response = event.response;
                self.metadata(&response, out);
                let usage = response.usage();
                if !usage.is_empty() {
                    out.push_back(StreamEvent::Usage(usage));
                }
                if let Some(error) = response.failure() {
                    return Err(error);
                }
                if let Some(details) = response.incomplete_details.filter(|d| !d.is_null()) {
                    out.push_back(StreamEvent::Metadata {
                        key: "incomplete_details".into(),
                        value: details,
                    });
                }
                let status = response
                    .status
                    .filter(|status| !status.is_empty())
                    .unwrap_or_else(|| kind.trim_start_matches("response.").to_owned());
                out.push_back(StreamEvent::Finish { reason: status });
                return Ok(Flow::Done);
            }
            "error" => {
                let error: serde_json::Value = self.parse(data)?;
                let error = error.get("error").cloned().unwrap_or(error);
                return Err(stream_api_error(&error).with_status(200));
            }
            // Item and part boundaries, `.done` events that repeat the deltas, web-search
            // progress, and whatever comes next.
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn end_without_marker(&mut self) -> Result<()> {
        Err(Error::stream("the stream ended before the response completed").with_status(200))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Usage;

    fn decode(events: &[(&str, &str)]) -> (Vec<StreamEvent>, Result<Flow>) {
        let mut decoder = ResponsesDecoder::default();
        let mut out = VecDeque::new();
        let mut last = Ok(Flow::Continue);
        for (kind, data) in events {
            last = decoder.decode(kind, data, &mut out);
            if last.is_err() {
                break;
            }
        }
        (out.into_iter().collect(), last)
    }

    #[test]
    fn text_reasoning_calls_and_the_completed_usage() {
        let (events, last) = decode(&[
            (
                "response.created",
                r#"{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","model":"gpt-5","status":"in_progress","output":[],"usage":null}}"#,
            ),
            (
                "response.reasoning_summary_text.delta",
                r#"{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","output_index":0,"summary_index":0,"delta":"Thinking"}"#,
            ),
            (
                "response.output_item.added",
                r#"{"type":"response.output_item.added","output_index":1,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"weather","arguments":""}}"#,
            ),
            (
                "response.function_call_arguments.delta",
                r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":1,"delta":"{\"city\":"}"#,
            ),
            (
                "response.function_call_arguments.delta",
                r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":1,"delta":"\"Paris\"}"}"#,
            ),
            (
                "message",
                r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":2,"content_index":0,"delta":"Hi"}"#,
            ),
            (
                "response.completed",
                r#"{"type":"response.completed","response":{"id":"resp_1","model":"gpt-5","status":"completed","output":[{"type":"web_search_call","id":"ws_1","status":"completed"}],"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":8},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":5}}}}"#,
            ),
        ]);
        assert_eq!(last.unwrap(), Flow::Done);
        assert_eq!(
            events,
            vec![
                StreamEvent::ResponseMetadata {
                    id: Some("resp_1".into()),
                    model: Some("gpt-5".into())
                },
                StreamEvent::ReasoningDelta {
                    text: "Thinking".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 1,
                    id: Some("call_1".into()),
                    name: Some("weather".into()),
                    arguments: String::new()
                },
                StreamEvent::ToolCallDelta {
                    index: 1,
                    id: None,
                    name: None,
                    arguments: "{\"city\":".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 1,
                    id: None,
                    name: None,
                    arguments: "\"Paris\"}".into()
                },
                StreamEvent::text("Hi"),
                StreamEvent::Usage(
                    Usage::new(20, 9)
                        .with_cache_read(8)
                        .with_reasoning(5)
                        .with_web_searches(1)
                ),
                StreamEvent::finish("completed"),
            ]
        );
    }

    #[test]
    fn incomplete_failed_and_error_events() {
        let (events, last) = decode(&[(
            "response.incomplete",
            r#"{"type":"response.incomplete","response":{"id":"resp_2","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":3,"output_tokens":16}}}"#,
        )]);
        assert_eq!(last.unwrap(), Flow::Done);
        assert_eq!(events.last(), Some(&StreamEvent::finish("incomplete")));
        let (_, last) = decode(&[(
            "response.failed",
            r#"{"type":"response.failed","response":{"id":"resp_3","status":"failed","error":{"code":"server_error","message":"Something broke."}}}"#,
        )]);
        let err = last.unwrap_err();
        assert!(err.is_stream());
        assert_eq!(err.message(), "Something broke.");
        let (_, last) = decode(&[(
            "error",
            r#"{"type":"error","code":"rate_limit_exceeded","message":"Slow down.","param":null}"#,
        )]);
        let err = last.unwrap_err();
        assert_eq!(err.message(), "Slow down.");
        assert_eq!(err.api_error_code(), Some("rate_limit_exceeded"));
        let (_, last) = decode(&[("response.output_text.delta", "{broken")]);
        assert!(last.unwrap_err().is_decode());
    }
}
