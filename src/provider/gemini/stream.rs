//! `streamGenerateContent?alt=sse` chunks to neutral [`StreamEvent`]s.
//!
//! Every chunk is a whole `GenerateContentResponse`. Its `usageMetadata` is cumulative: the
//! decoder keeps the latest value of each count and sends the usage they add up to, so the
//! last chunk's counts win and a count a chunk leaves out keeps its earlier value. Text parts
//! marked `thought` are reasoning (counted for time to first token, kept out of the output);
//! function calls arrive whole, one [`StreamEvent::ToolCallDelta`] each. The stream has no end
//! marker: it is complete when a candidate said why it finished.

use std::collections::VecDeque;

use super::wire::{grounded, GenerateResponse, UsageMetadata};
use crate::provider::transport::sse::{Decoder, Flow};
use crate::provider::transport::stream_api_error;
use crate::types::{StreamEvent, Usage};
use crate::{Error, Result};

/// The state of one Gemini stream.
#[derive(Debug, Default)]
pub(crate) struct GeminiDecoder {
    sent_metadata: bool,
    sent_search: bool,
    finished: bool,
    chunks: usize,
    /// Tool calls so far: the index of the next one.
    calls: usize,
    usage: UsageMetadata,
}

impl Decoder for GeminiDecoder {
    fn decode(&mut self, _kind: &str, data: &str, out: &mut VecDeque<StreamEvent>) -> Result<Flow> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        self.chunks += 1;
        let chunk: GenerateResponse = serde_json::from_str(data).map_err(|err| {
            Error::decode(format!("invalid stream chunk {} json: {err}", self.chunks))
                .with_status(200)
        })?;
        if let Some(error) = chunk.error.as_ref().filter(|error| !error.is_null()) {
            return Err(stream_api_error(error).with_status(200));
        }
        if !self.sent_metadata && (chunk.response_id.is_some() || chunk.model_version.is_some()) {
            self.sent_metadata = true;
            out.push_back(StreamEvent::ResponseMetadata {
                id: chunk.response_id,
                model: chunk.model_version,
            });
        }
        let candidates = chunk.candidates.unwrap_or_default();
        if candidates.is_empty() {
            if let Some(error) = chunk.prompt_feedback.as_ref().and_then(|f| f.blocked()) {
                // Blocked before any candidate: the call failed, with the reason.
                self.push_usage(chunk.usage_metadata, out);
                return Err(error);
            }
        }
        // Only the first candidate is followed (`candidateCount > 1` is not modelled).
        if let Some(candidate) = candidates.into_iter().next() {
            let parts = candidate
                .content
                .and_then(|content| content.parts)
                .unwrap_or_default();
            for part in parts {
                if let Some(call) = part.function_call {
                    let call = call.into_tool_call();
                    out.push_back(StreamEvent::ToolCallDelta {
                        index: self.calls,
                        id: Some(call.id),
                        name: Some(call.name),
                        arguments: call.arguments,
                    });
                    self.calls += 1;
                } else if let Some(text) = part.text.filter(|text| !text.is_empty()) {
                    out.push_back(if part.thought {
                        StreamEvent::ReasoningDelta { text }
                    } else {
                        StreamEvent::TextDelta { text }
                    });
                }
            }
            if !self.sent_search && grounded(candidate.grounding_metadata.as_ref()) {
                self.sent_search = true;
                out.push_back(StreamEvent::Usage(Usage::default().with_web_searches(1)));
            }
            if let Some(reason) = candidate.finish_reason.filter(|reason| !reason.is_empty()) {
                self.finished = true;
                out.push_back(StreamEvent::Finish { reason });
            }
        }
        self.push_usage(chunk.usage_metadata, out);
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

impl GeminiDecoder {
    fn push_usage(&mut self, metadata: Option<UsageMetadata>, out: &mut VecDeque<StreamEvent>) {
        if let Some(metadata) = metadata {
            self.usage.merge(&metadata);
            let usage = self.usage.to_usage();
            if !usage.is_empty() {
                out.push_back(StreamEvent::Usage(usage));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(datas: &[&str]) -> (Vec<StreamEvent>, Result<Flow>) {
        crate::provider::transport::sse::decode_all(GeminiDecoder::default(), "message", datas)
    }

    #[test]
    fn thoughts_text_calls_and_the_last_usage() {
        let (events, last) = decode_all(&[
            r#"{"candidates":[{"content":{"parts":[{"text":"Let me see","thought":true}],"role":"model"}}],"usageMetadata":{"promptTokenCount":10,"thoughtsTokenCount":4},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
            r#"{"candidates":[{"content":{"parts":[{"text":"Hi"},{"functionCall":{"name":"f","args":{"a":1}}}],"role":"model"}}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":2,"thoughtsTokenCount":4},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
            r#"{"candidates":[{"content":{"parts":[{"functionCall":{"id":"c2","name":"g","args":{}}}],"role":"model"},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":10,"candidatesTokenCount":7,"cachedContentTokenCount":6},"modelVersion":"gemini-2.5-flash","responseId":"r1"}"#,
        ]);
        assert!(last.is_ok());
        let mut decoder = GeminiDecoder::default();
        assert!(decoder.end_without_marker().is_err());
        assert_eq!(
            events,
            vec![
                StreamEvent::ResponseMetadata {
                    id: Some("r1".into()),
                    model: Some("gemini-2.5-flash".into())
                },
                StreamEvent::ReasoningDelta {
                    text: "Let me see".into()
                },
                StreamEvent::Usage(
                    Usage::default()
                        .with_input(10)
                        .with_output(4)
                        .with_reasoning(4)
                ),
                StreamEvent::text("Hi"),
                StreamEvent::ToolCallDelta {
                    index: 0,
                    id: Some("f".into()),
                    name: Some("f".into()),
                    arguments: r#"{"a":1}"#.into()
                },
                StreamEvent::Usage(Usage::new(10, 6).with_reasoning(4)),
                StreamEvent::ToolCallDelta {
                    index: 1,
                    id: Some("c2".into()),
                    name: Some("g".into()),
                    arguments: "{}".into()
                },
                StreamEvent::finish("STOP"),
                StreamEvent::Usage(Usage::new(10, 11).with_reasoning(4).with_cache_read(6)),
            ]
        );
    }

    #[test]
    fn a_prompt_blocked_in_the_stream_fails_it_with_the_reason() {
        let (events, last) = decode_all(&[
            r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":9,"totalTokenCount":9},"modelVersion":"gemini-2.5-pro"}"#,
        ]);
        let err = last.unwrap_err();
        assert_eq!(err.message(), "the prompt was blocked (PROHIBITED_CONTENT)");
        assert_eq!(err.api_error_code(), Some("PROHIBITED_CONTENT"));
        assert_eq!(err.status(), Some(200));
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Usage(Usage::default().with_input(9)))
        );
    }

    #[test]
    fn errors_and_malformed_chunks() {
        let (_, last) = decode_all(&[
            r#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
        ]);
        let err = last.unwrap_err();
        assert!(err.is_stream());
        assert_eq!(err.message(), "The model is overloaded.");
        let (_, last) = decode_all(&[r#"{"candidates": [tru"#]);
        let err = last.unwrap_err();
        assert!(err.is_decode());
        assert!(
            err.message().starts_with("invalid stream chunk 1 json"),
            "{err}"
        );
    }
}
