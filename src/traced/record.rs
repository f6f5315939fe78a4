//! What a call records while it runs, and how it becomes an event.

use std::time::{Instant, SystemTime};

use uuid::Uuid;

use crate::context::CallContext;
use crate::event::{Envelope, ErrorInfo, Generation, ModelParameters};
use crate::pricing::ModelPrice;
use crate::trace::SpanScope;
use crate::types::{ChatRequest, ChatResponse, ContentPart, StreamEvent, ToolCall, Usage};
use crate::{Error, LlmModel};

/// The stop reason of a call whose caller gave up before the end.
pub(crate) const CANCELLED: &str = "cancelled";

/// A call in flight: when it started and what the request said, waiting for its outcome.
#[derive(Debug)]
pub(crate) struct CallRecord {
    started: Instant,
    private: bool,
    price: Option<ModelPrice>,
    generation: Generation,
}

impl CallRecord {
    /// Takes the request's side of the event. Nothing is serialized here: the request's parts
    /// are copied as they are, and sinks turn them into JSON later.
    pub(crate) fn start<M: LlmModel + ?Sized>(
        model: &M,
        request: &ChatRequest,
        default_private: bool,
        stream: bool,
    ) -> Self {
        let private = request.context.privacy_mode.unwrap_or(default_private);
        let mut generation = Generation::new(request.model.clone(), model.provider());
        generation.envelope = envelope_for(&request.context);
        generation.base_url = model.base_url().to_owned();
        generation.cache_tokens_in_input = model.cache_tokens_in_input();
        generation.input = (!private).then(|| request.messages.clone());
        generation.parameters = ModelParameters {
            temperature: request.temperature,
            max_tokens: request.max_tokens,
            top_p: request.top_p,
            frequency_penalty: request.frequency_penalty,
            presence_penalty: request.presence_penalty,
            stop: request.stop.clone(),
            seed: request.seed,
            stream,
        };
        generation.tools = request.tools.clone();
        Self {
            started: Instant::now(),
            private,
            price: request.context.price,
            generation,
        }
    }

    /// The price this call names for itself, if any.
    pub(crate) fn price(&self) -> Option<&ModelPrice> {
        self.price.as_ref()
    }

    pub(crate) fn is_private(&self) -> bool {
        self.private
    }

    /// The call answered.
    pub(crate) fn succeed(mut self, response: &ChatResponse) -> Generation {
        let generation = &mut self.generation;
        generation.latency = self.started.elapsed();
        if let Some(model) = &response.model {
            generation.model.clone_from(model);
        }
        generation.usage = response.usage;
        generation.http_status = 200;
        generation.stop_reason.clone_from(&response.finish_reason);
        generation.completion_id.clone_from(&response.id);
        generation.output = (!self.private).then(|| response.content.clone());
        if !response.metadata.is_empty() {
            generation.provider_metadata.clone_from(&response.metadata);
        }
        self.generation
    }

    fn error_info(&self, error: &Error) -> ErrorInfo {
        let mut info = ErrorInfo::from_error(error);
        if self.private {
            info.withhold_message();
        }
        info
    }

    /// The call failed before any answer arrived.
    pub(crate) fn fail(mut self, error: &Error) -> Generation {
        self.generation.latency = self.started.elapsed();
        self.generation.http_status = error.status().unwrap_or(0);
        self.generation.error = Some(self.error_info(error));
        self.generation
    }

    /// The caller dropped the call before it answered.
    pub(crate) fn cancel(mut self) -> Generation {
        self.generation.latency = self.started.elapsed();
        self.generation.http_status = 0;
        self.generation.stop_reason = Some(CANCELLED.to_owned());
        self.generation
    }

    /// The stream ended, broke or was dropped; `accumulated` is what arrived.
    pub(crate) fn finish_stream(
        mut self,
        mut accumulated: StreamAccumulator,
        ending: StreamEnding<'_>,
    ) -> Generation {
        let generation = &mut self.generation;
        generation.latency = self.started.elapsed();
        generation.time_to_first_token = accumulated.first_token.map(|at| at - self.started);
        generation.usage = accumulated.usage;
        generation.http_status = 200;
        generation.completion_id = accumulated.id.take();
        generation.stop_reason = accumulated.finish.take();
        if let Some(model) = accumulated.model.take() {
            generation.model = model;
        }
        if !self.private {
            generation.output = Some(accumulated.output());
        }
        match ending {
            StreamEnding::Completed => {}
            StreamEnding::Failed(error) => {
                generation.http_status = error.status().unwrap_or(200);
                let mut info = ErrorInfo::from_error(error);
                if self.private {
                    info.withhold_message();
                }
                generation.error = Some(info);
            }
            StreamEnding::Cancelled => generation.stop_reason = Some(CANCELLED.to_owned()),
        }
        self.generation
    }
}

/// How a stream ended.
#[derive(Debug)]
pub(crate) enum StreamEnding<'a> {
    Completed,
    Failed(&'a Error),
    Cancelled,
}

/// The envelope of a call's event, from what the caller said of it and the span it runs in.
///
/// Explicit ids in the context win; the enclosing span (see [`crate::trace`]) fills the rest. A
/// call nested under a parent gets a span id of its own, so it is a node of the trace tree.
pub(crate) fn envelope_for(context: &CallContext) -> Envelope {
    let mut envelope = Envelope::at(SystemTime::now());
    envelope.distinct_id.clone_from(&context.distinct_id);
    envelope.trace_id.clone_from(&context.trace_id);
    envelope.session_id.clone_from(&context.session_id);
    envelope.span_id.clone_from(&context.span_id);
    envelope.parent_id.clone_from(&context.parent_id);
    envelope.span_name.clone_from(&context.span_name);
    if let Some(scope) = SpanScope::current() {
        scope.fill(&mut envelope);
    }
    if envelope.parent_id.is_some() && envelope.span_id.is_none() {
        envelope.span_id = Some(Uuid::now_v7().hyphenated().to_string());
    }
    if !context.properties.is_empty() {
        envelope.properties.clone_from(&context.properties);
    }
    if !context.groups.is_empty() {
        envelope.groups.clone_from(&context.groups);
    }
    envelope
}

/// What a stream delivered so far: text, tool calls assembled from their fragments, usage.
#[derive(Debug, Default)]
pub(crate) struct StreamAccumulator {
    keep_content: bool,
    text: String,
    tool_calls: Vec<PartialToolCall>,
    usage: Usage,
    finish: Option<String>,
    id: Option<String>,
    model: Option<String>,
    first_token: Option<Instant>,
}

#[derive(Debug)]
struct PartialToolCall {
    index: usize,
    id: String,
    name: String,
    arguments: String,
}

impl StreamAccumulator {
    /// `keep_content` is false in privacy mode: then only usage, ids and timing are kept.
    pub(crate) fn new(keep_content: bool) -> Self {
        Self {
            keep_content,
            ..Self::default()
        }
    }

    /// Folds one stream event in. Called once per chunk, so it only appends.
    pub(crate) fn observe(&mut self, event: &StreamEvent) {
        if self.first_token.is_none() && event.is_content() {
            self.first_token = Some(Instant::now());
        }
        match event {
            StreamEvent::TextDelta { text } => {
                if self.keep_content {
                    self.text.push_str(text);
                }
            }
            StreamEvent::ToolCallDelta {
                index,
                id,
                name,
                arguments,
            } => {
                if self.keep_content {
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
            StreamEvent::ReasoningDelta { .. } => {}
        }
    }

    fn tool_call(&mut self, index: usize, id: Option<&str>, name: Option<&str>, arguments: &str) {
        let position = match self.tool_calls.iter().position(|call| call.index == index) {
            Some(position) => position,
            None => {
                self.tool_calls.push(PartialToolCall {
                    index,
                    id: String::new(),
                    name: String::new(),
                    arguments: String::new(),
                });
                self.tool_calls.len() - 1
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

    /// Everything that arrived, as the response a non-streaming call would have given.
    pub(crate) fn into_response(mut self) -> ChatResponse {
        ChatResponse {
            id: self.id.take(),
            model: self.model.take(),
            finish_reason: self.finish.take(),
            usage: self.usage,
            content: self.output(),
            ..ChatResponse::default()
        }
    }

    /// The answer as content parts: the text, then the tool calls by index.
    fn output(mut self) -> Vec<ContentPart> {
        let mut parts = Vec::with_capacity(1 + self.tool_calls.len());
        if !self.text.is_empty() {
            parts.push(ContentPart::Text { text: self.text });
        }
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
