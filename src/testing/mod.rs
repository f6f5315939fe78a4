//! An offline model for tests, benchmarks and demos.
//!
//! [`ScriptedModel`] is a test and demo double: it makes no network call and plays back the
//! answers it was given, in order. It is what the quickstart runs when no provider key is set.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream::{self, StreamExt};

use crate::types::{
    ChatRequest, ChatResponse, ChatStream, ContentPart, EmbeddingRequest, EmbeddingResponse,
    StreamAccumulator, StreamEvent,
};
use crate::{Error, LlmModel, Result};

/// A model that plays back scripted answers: responses, streams (with optional delays between
/// events) and errors. Each call takes the next answer; with [`ScriptedModel::repeat_last`] the
/// last one is served again and again.
///
/// Both kinds of call accept both kinds of answer: `chat` assembles a scripted stream into one
/// response, and `chat_stream` plays a scripted response as a stream.
///
/// ```
/// use std::time::Duration;
/// use traced_llm::testing::ScriptedModel;
/// use traced_llm::types::Usage;
/// use traced_llm::{ChatResponse, Error, StreamEvent};
///
/// let model = ScriptedModel::new()
///     .respond(ChatResponse::text_response("Hi!").with_usage(Usage::new(12, 3)))
///     .stream(vec![StreamEvent::text("Hel"), StreamEvent::text("lo")])
///     .stream_with_delay(vec![StreamEvent::text("slow")], Duration::from_millis(20))
///     .fail(Error::from_status(429, "slow down"));
/// # let _ = model;
/// ```
#[derive(Debug)]
pub struct ScriptedModel {
    provider: String,
    base_url: String,
    cache_tokens_in_input: bool,
    repeat_last: bool,
    latency: Duration,
    script: Mutex<VecDeque<Reply>>,
    calls: AtomicU64,
}

#[derive(Debug)]
enum Reply {
    Response(ChatResponse),
    Stream {
        events: Vec<StreamEvent>,
        delay: Duration,
        then_fail: Option<Error>,
    },
    Fail(Error),
    Embedding(EmbeddingResponse),
}

impl Reply {
    fn duplicate(&self) -> Self {
        match self {
            Reply::Response(response) => Reply::Response(response.clone()),
            Reply::Stream {
                events,
                delay,
                then_fail,
            } => Reply::Stream {
                events: events.clone(),
                delay: *delay,
                then_fail: then_fail.as_ref().map(Error::duplicate),
            },
            Reply::Fail(error) => Reply::Fail(error.duplicate()),
            Reply::Embedding(response) => Reply::Embedding(response.clone()),
        }
    }
}

impl Default for ScriptedModel {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedModel {
    /// A model with an empty script, provider `scripted` and no base URL.
    pub fn new() -> Self {
        Self {
            provider: "scripted".to_owned(),
            base_url: String::new(),
            cache_tokens_in_input: true,
            repeat_last: false,
            latency: Duration::ZERO,
            script: Mutex::new(VecDeque::new()),
            calls: AtomicU64::new(0),
        }
    }

    /// Reports `provider` as the provider's name.
    #[must_use]
    pub fn with_provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// Reports `base_url` as the base URL.
    #[must_use]
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Declares whether input tokens include cached tokens (see
    /// [`LlmModel::cache_tokens_in_input`]).
    #[must_use]
    pub fn with_cache_tokens_in_input(mut self, included: bool) -> Self {
        self.cache_tokens_in_input = included;
        self
    }

    /// Waits `latency` before every answer (before the response, the error, or the stream).
    #[must_use]
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Serves the last answer forever instead of running out.
    #[must_use]
    pub fn repeat_last(mut self) -> Self {
        self.repeat_last = true;
        self
    }

    fn push(self, reply: Reply) -> Self {
        self.script
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push_back(reply);
        self
    }

    /// Answers the next call with `response`.
    #[must_use]
    pub fn respond(self, response: ChatResponse) -> Self {
        self.push(Reply::Response(response))
    }

    /// Answers the next call with a stream of `events`, all at once.
    #[must_use]
    pub fn stream(self, events: Vec<StreamEvent>) -> Self {
        self.stream_with_delay(events, Duration::ZERO)
    }

    /// Answers the next call with a stream of `events`, waiting `delay` before each one.
    #[must_use]
    pub fn stream_with_delay(self, events: Vec<StreamEvent>, delay: Duration) -> Self {
        self.push(Reply::Stream {
            events,
            delay,
            then_fail: None,
        })
    }

    /// Answers the next call with a stream of `events` that then breaks with `error`.
    #[must_use]
    pub fn stream_then_fail(self, events: Vec<StreamEvent>, error: Error) -> Self {
        self.push(Reply::Stream {
            events,
            delay: Duration::ZERO,
            then_fail: Some(error),
        })
    }

    /// Answers the next embedding call with `response`.
    #[must_use]
    pub fn embedding(self, response: EmbeddingResponse) -> Self {
        self.push(Reply::Embedding(response))
    }

    /// Fails the next call with `error`, before any answer.
    #[must_use]
    pub fn fail(self, error: Error) -> Self {
        self.push(Reply::Fail(error))
    }

    /// How many calls were made.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    async fn next_reply(&self) -> Result<Reply> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let mut script = self
            .script
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let reply = if self.repeat_last && script.len() == 1 {
            script.front().map(Reply::duplicate)
        } else {
            script.pop_front()
        };
        reply.ok_or_else(|| {
            Error::other("the scripted model has no answer left").with_provider(&self.provider)
        })
    }
}

#[async_trait]
impl LlmModel for ScriptedModel {
    async fn chat(&self, _request: &ChatRequest) -> Result<ChatResponse> {
        match self.next_reply().await? {
            Reply::Response(response) => Ok(response),
            Reply::Fail(error) => Err(error),
            Reply::Embedding(_) => Err(mismatch("an embedding", "chat")),
            Reply::Stream {
                events,
                delay,
                then_fail,
            } => {
                tokio::time::sleep(delay * events.len() as u32).await;
                match then_fail {
                    Some(error) => Err(error),
                    None => Ok(assemble(events)),
                }
            }
        }
    }

    async fn chat_stream(&self, _request: &ChatRequest) -> Result<ChatStream> {
        let (events, delay, then_fail) = match self.next_reply().await? {
            Reply::Fail(error) => return Err(error),
            Reply::Embedding(_) => return Err(mismatch("an embedding", "chat_stream")),
            Reply::Response(response) => (disassemble(response), Duration::ZERO, None),
            Reply::Stream {
                events,
                delay,
                then_fail,
            } => (events, delay, then_fail),
        };
        let items = events
            .into_iter()
            .map(Ok)
            .chain(then_fail.map(Err))
            .collect::<Vec<_>>();
        if delay.is_zero() {
            Ok(ChatStream::new(stream::iter(items)))
        } else {
            Ok(ChatStream::new(stream::iter(items).then(
                move |item| async move {
                    tokio::time::sleep(delay).await;
                    item
                },
            )))
        }
    }

    async fn embed(&self, _request: &EmbeddingRequest) -> Result<EmbeddingResponse> {
        match self.next_reply().await? {
            Reply::Embedding(response) => Ok(response),
            Reply::Fail(error) => Err(error),
            _ => Err(mismatch("a chat answer", "embed")),
        }
    }

    fn provider(&self) -> &str {
        &self.provider
    }

    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn cache_tokens_in_input(&self) -> bool {
        self.cache_tokens_in_input
    }
}

/// The script's next answer does not fit the call made.
fn mismatch(scripted: &str, call: &str) -> Error {
    Error::other(format!(
        "the scripted model's next answer is {scripted}, which `{call}` cannot give"
    ))
}

/// A stream's events folded into one response, the way a traced stream folds them.
fn assemble(events: Vec<StreamEvent>) -> ChatResponse {
    let mut accumulated = StreamAccumulator::new();
    for event in &events {
        accumulated.observe(event);
    }
    accumulated.into_response()
}

/// A response played as a stream: metadata, content, usage, finish.
fn disassemble(response: ChatResponse) -> Vec<StreamEvent> {
    let mut events = vec![StreamEvent::ResponseMetadata {
        id: response.id,
        model: response.model,
    }];
    let mut tool_index = 0;
    for part in response.content {
        match part {
            ContentPart::Text { text } => events.push(StreamEvent::TextDelta { text }),
            ContentPart::ToolCall(call) => {
                events.push(StreamEvent::ToolCallDelta {
                    index: tool_index,
                    id: Some(call.id),
                    name: Some(call.name),
                    arguments: call.arguments,
                });
                tool_index += 1;
            }
            _ => {}
        }
    }
    if !response.usage.is_empty() {
        events.push(StreamEvent::Usage(response.usage));
    }
    if let Some(reason) = response.finish_reason {
        events.push(StreamEvent::Finish { reason });
    }
    events
}
