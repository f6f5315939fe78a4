use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use serde::{Deserialize, Serialize};

use super::{ChatResponse, ContentPart, ToolCall, Usage};
use crate::Result;

/// One event of a streamed chat answer, independent of any provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamEvent {
    /// The completion id and model, usually from the first chunk.
    ResponseMetadata {
        /// The provider's completion id.
        id: Option<String>,
        /// The model that answers.
        model: Option<String>,
    },
    /// A piece of the answer's text.
    TextDelta {
        /// The text to append.
        text: String,
    },
    /// A piece of the model's reasoning.
    ReasoningDelta {
        /// The text to append.
        text: String,
    },
    /// A piece of a tool call. The first piece of each `index` carries the id and name; the
    /// argument fragments of one index are appended in order.
    ToolCallDelta {
        /// Which tool call of the answer this piece belongs to.
        index: usize,
        /// The call id, when this piece states it.
        id: Option<String>,
        /// The tool name, when this piece states it.
        name: Option<String>,
        /// A fragment of the JSON arguments.
        arguments: String,
    },
    /// Token counts; a later report's stated fields win over an earlier one's (see
    /// [`Usage::merge`]).
    Usage(Usage),
    /// Why generation stopped, in the provider's words.
    Finish {
        /// The reason (`stop`, `end_turn`, `tool_calls`, ...).
        reason: String,
    },
    /// A fact the provider reported beside the answer (`system_fingerprint`, the
    /// `stop_sequence` that ended it, ...): it lands in [`ChatResponse::metadata`], as it does
    /// for an answer that was not streamed.
    Metadata {
        /// The fact's name.
        key: String,
        /// Its value.
        value: serde_json::Value,
    },
}

impl StreamEvent {
    /// A text delta.
    pub fn text(text: impl Into<String>) -> Self {
        StreamEvent::TextDelta { text: text.into() }
    }

    /// A finish event.
    pub fn finish(reason: impl Into<String>) -> Self {
        StreamEvent::Finish {
            reason: reason.into(),
        }
    }

    /// Whether this event carries part of the answer (text, reasoning or a tool call): the first
    /// such event marks the time to first token.
    pub fn is_content(&self) -> bool {
        matches!(
            self,
            StreamEvent::TextDelta { .. }
                | StreamEvent::ReasoningDelta { .. }
                | StreamEvent::ToolCallDelta { .. }
        )
    }
}

type BoxedEvents = Pin<Box<dyn Stream<Item = Result<StreamEvent>> + Send + 'static>>;

/// The stream a streaming call returns: `Send`, `Unpin`, owning everything it needs; dropping it
/// aborts the call.
///
/// Read it with [`ChatStream::next`] (no `StreamExt` import needed), or hand its text to a web
/// framework with [`ChatStream::into_text_stream`]. It is a [`Stream`] too, so every stream
/// combinator works on it.
///
/// ```
/// use traced_llm::{ChatStream, StreamEvent};
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let mut stream = ChatStream::from_events(vec![StreamEvent::text("Hel"), StreamEvent::text("lo")]);
/// let mut text = String::new();
/// while let Some(event) = stream.next().await {
///     if let StreamEvent::TextDelta { text: piece } = event? {
///         text.push_str(&piece);
///     }
/// }
/// assert_eq!(text, "Hello");
/// # Ok::<(), traced_llm::Error>(())
/// # });
/// ```
#[must_use = "streams do nothing unless polled"]
pub struct ChatStream {
    inner: BoxedEvents,
}

impl ChatStream {
    /// Wraps any stream of events; providers and your own [`LlmModel`](crate::LlmModel) return
    /// it from `chat_stream`.
    pub fn new(stream: impl Stream<Item = Result<StreamEvent>> + Send + 'static) -> Self {
        Self {
            inner: Box::pin(stream),
        }
    }

    /// A stream that plays `events`, for tests and in-process models.
    pub fn from_events(events: Vec<StreamEvent>) -> Self {
        Self::new(futures_util::stream::iter(events.into_iter().map(Ok)))
    }

    /// The next event, or `None` at the end.
    pub async fn next(&mut self) -> Option<Result<StreamEvent>> {
        std::future::poll_fn(|cx| self.inner.as_mut().poll_next(cx)).await
    }

    /// The answer's text pieces, as they arrive: every other event is consumed and dropped
    /// (usage and finish reason still reach a traced call's event). An error ends the stream
    /// after it is yielded.
    ///
    /// `Unpin + Send + 'static`, so it can be a web response body as it is, e.g. with axum:
    /// `Sse::new(stream.into_text_stream().map(|text| Ok::<_, Error>(Event::default().data(text?))))`.
    pub fn into_text_stream(self) -> TextStream {
        TextStream {
            inner: self,
            done: false,
        }
    }

    /// Reads the whole stream and folds it into the response a non-streaming call would have
    /// given.
    ///
    /// # Errors
    /// The first error the stream yields.
    pub async fn collect_response(mut self) -> Result<ChatResponse> {
        let mut accumulator = StreamAccumulator::new();
        while let Some(event) = self.next().await {
            accumulator.observe(&event?);
        }
        Ok(accumulator.into_response())
    }
}

impl Stream for ChatStream {
    type Item = Result<StreamEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChatStream").finish_non_exhaustive()
    }
}

/// The text of a [`ChatStream`], piece by piece; see [`ChatStream::into_text_stream`].
#[must_use = "streams do nothing unless polled"]
#[derive(Debug)]
pub struct TextStream {
    inner: ChatStream,
    done: bool,
}

impl TextStream {
    /// The next piece of text, or `None` at the end.
    pub async fn next(&mut self) -> Option<Result<String>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for TextStream {
    type Item = Result<String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if self.done {
                return Poll::Ready(None);
            }
            match std::task::ready!(Pin::new(&mut self.inner).poll_next(cx)) {
                Some(Ok(StreamEvent::TextDelta { text })) => return Poll::Ready(Some(Ok(text))),
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    self.done = true;
                    return Poll::Ready(Some(Err(error)));
                }
                None => {
                    self.done = true;
                    return Poll::Ready(None);
                }
            }
        }
    }
}

/// Folds stream events into the response a non-streaming call would have given: text, tool calls
/// assembled from their fragments, usage merged field by field, finish reason, id and model.
///
/// A traced stream folds its events with it, and so can code that records a stream of its own
/// (see [`record`](crate::record)).
///
/// ```
/// use traced_llm::types::{StreamAccumulator, Usage};
/// use traced_llm::StreamEvent;
///
/// let mut accumulator = StreamAccumulator::new();
/// for event in [
///     StreamEvent::text("4"),
///     StreamEvent::Usage(Usage::new(9, 1)),
///     StreamEvent::finish("stop"),
/// ] {
///     accumulator.observe(&event);
/// }
/// let response = accumulator.into_response();
/// assert_eq!(response.text(), "4");
/// assert_eq!(response.usage.output_tokens, Some(1));
/// ```
#[derive(Debug, Default)]
pub struct StreamAccumulator {
    /// Privacy mode keeps usage, ids and the finish reason, never content.
    skip_content: bool,
    text: String,
    tool_calls: Vec<PartialToolCall>,
    /// The call each index is being assembled into: one lookup per fragment, however many
    /// calls the answer has.
    open_calls: HashMap<usize, usize>,
    usage: Usage,
    finish: Option<String>,
    id: Option<String>,
    model: Option<String>,
    metadata: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug)]
struct PartialToolCall {
    index: usize,
    id: String,
    name: String,
    arguments: String,
}

impl StreamAccumulator {
    /// An empty accumulator that keeps everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// An accumulator that keeps usage, ids and the finish reason but no text or tool call.
    pub(crate) fn without_content() -> Self {
        Self {
            skip_content: true,
            ..Self::default()
        }
    }

    /// Folds one event in. Called once per chunk, so it only appends.
    pub fn observe(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::TextDelta { text } => {
                if !self.skip_content {
                    self.text.push_str(text);
                }
            }
            StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => {
                if !self.skip_content {
                    self.tool_call(*index, id.as_deref(), name.as_deref(), arguments);
                }
            }
            StreamEvent::Usage(usage) => self.usage.merge(usage),
            StreamEvent::Finish { reason } => self.finish = Some(reason.clone()),
            StreamEvent::ResponseMetadata { id, model } => {
                if id.is_some() {
                    self.id.clone_from(id);
                }
                if model.is_some() {
                    self.model.clone_from(model);
                }
            }
            StreamEvent::Metadata { key, value } => {
                self.metadata.insert(key.clone(), value.clone());
            }
            StreamEvent::ReasoningDelta { .. } => {}
        }
    }

    /// Folds a tool-call fragment into the call its index is assembling. A fragment that
    /// names an id other than the one its index already has starts a new call on that index:
    /// Ollama numbers every call of an answer 0.
    fn tool_call(&mut self, index: usize, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let current = self.open_calls.get(&index).copied();
        let position = match current {
            Some(position)
                if id.is_none_or(|id| {
                    let open = &self.tool_calls[position].id;
                    open.is_empty() || open == id
                }) =>
            {
                position
            }
            _ => {
                self.tool_calls.push(PartialToolCall {
                    index,
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                let position = self.tool_calls.len() - 1;
                self.open_calls.insert(index, position);
                position
            }
        };
        // The id and name arrive once, on the first piece; a server that repeats them on later
        // pieces must not double them.
        let call = &mut self.tool_calls[position];
        if let (Some(id), true) = (id, call.id.is_empty()) {
            call.id.push_str(id);
        }
        if let (Some(name), true) = (name, call.name.is_empty()) {
            call.name.push_str(name);
        }
        call.arguments.push_str(arguments);
    }

    /// The usage reported so far.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }

    /// Everything that arrived, as one response.
    pub fn into_response(mut self) -> ChatResponse {
        ChatResponse {
            id: self.id.take(),
            model: self.model.take(),
            finish_reason: self.finish.take(),
            usage: self.usage,
            metadata: std::mem::take(&mut self.metadata),
            content: self.into_content(),
        }
    }

    /// The answer as content parts: the text, then the tool calls by index.
    fn into_content(mut self) -> Vec<ContentPart> {
        let mut parts = Vec::with_capacity(1 + self.tool_calls.len());
        if !self.text.is_empty() {
            parts.push(ContentPart::Text { text: self.text });
        }
        // Stable: calls that share an index stay in the order they came.
        self.tool_calls.sort_by_key(|call| call.index);
        parts.extend(self.tool_calls.into_iter().map(|call| {
            ContentPart::ToolCall(ToolCall {
                id: call.id,
                name: call.name,
                arguments: call.arguments,
            })
        }));
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(index: usize, id: Option<&str>, name: Option<&str>, arguments: &str) -> StreamEvent {
        StreamEvent::ToolCallDelta {
            index,
            id: id.map(str::to_owned),
            name: name.map(str::to_owned),
            arguments: arguments.to_owned(),
        }
    }

    #[test]
    fn a_new_id_on_a_used_index_starts_a_new_call() {
        let mut accumulator = StreamAccumulator::new();
        for event in [
            call(0, Some("call_a"), Some("weather"), "{\"city\":"),
            call(0, None, None, "\"Paris\"}"),
            call(0, Some("call_b"), Some("weather"), "{\"city\":\"Rome\"}"),
            // A repeat of the open call's id continues it.
            call(0, Some("call_b"), None, ""),
        ] {
            accumulator.observe(&event);
        }
        let calls: Vec<_> = accumulator.into_response().tool_calls().cloned().collect();
        assert_eq!(
            calls,
            vec![
                ToolCall::new("call_a", "weather", r#"{"city":"Paris"}"#),
                ToolCall::new("call_b", "weather", r#"{"city":"Rome"}"#),
            ]
        );
        for call in &calls {
            call.parsed_arguments().expect("valid json");
        }
    }

    #[test]
    fn many_distinct_indexes_assemble_in_one_pass() {
        // With a linear lookup per fragment this is 10^10 comparisons; with one map lookup it
        // is a blink.
        const CALLS: usize = 100_000;
        let mut accumulator = StreamAccumulator::new();
        for index in (0..CALLS).rev() {
            accumulator.observe(&call(index, Some("c"), Some("f"), "{"));
        }
        for index in 0..CALLS {
            accumulator.observe(&call(index, None, None, "}"));
        }
        let response = accumulator.into_response();
        assert_eq!(response.tool_calls().count(), CALLS);
        assert!(response.tool_calls().all(|call| call.arguments == "{}"));
    }

    #[test]
    fn stream_metadata_lands_in_the_response() {
        let mut accumulator = StreamAccumulator::new();
        accumulator.observe(&StreamEvent::Metadata {
            key: "system_fingerprint".into(),
            value: "fp_9".into(),
        });
        let response = accumulator.into_response();
        assert_eq!(response.metadata["system_fingerprint"], "fp_9");
    }
}
