//! A traced rig [`CompletionModel`]: wrap the model an agent is built from, and every
//! completion the agent makes is a `$ai_generation` with tokens and latency.
//!
//! ```no_run
//! use rig_core::agent::AgentBuilder;
//! use rig_core::completion::Prompt;
//! use std::future::IntoFuture;
//! use traced_llm::adapters::rig::TracedCompletionModel;
//! use traced_llm::record::Recorder;
//! use traced_llm::trace::Tracer;
//!
//! # async fn run<M: rig_core::completion::CompletionModel + 'static>(model: M) -> Result<(), Box<dyn std::error::Error>> {
//! let recorder = Recorder::builder().build();
//! let traced = TracedCompletionModel::new(model, recorder.clone()).provider("openai");
//! let agent = AgentBuilder::new(traced).preamble("Be brief.").build();
//!
//! // One agent run, one trace: its calls are generations inside the span.
//! let span = recorder.tracer().trace("support-agent");
//! let answer = span.in_scope(agent.prompt("Where is my parcel?").into_future()).await?;
//! span.end();
//! println!("{answer}");
//! # Ok(())
//! # }
//! ```
//!
//! Token counts come from rig's [`Usage`](rig_core::completion::Usage), whose zeros mean "not
//! reported": a zero count is left out of the event rather than sent as 0. rig's cached input
//! tokens are inside its input tokens; its tool-use prompt tokens are added to the input.
//! Streamed completions (`stream`) pass through unrecorded: rig's stream type cannot be
//! rebuilt around an observer without losing what it carries.

use std::fmt;

use rig_core::completion::{
    AssistantContent, CompletionError, CompletionModel, CompletionRequest, CompletionResponse,
    Message as RigMessage,
};
use rig_core::message::{ToolResultContent, UserContent};
use rig_core::streaming::StreamingCompletionResponse;

use crate::event::ModelParameters;
use crate::record::{CallInfo, Recorder};
use crate::types::{ChatResponse, ContentPart, Message, Role, Tool, ToolCall, Usage};
use crate::{CallContext, Error};

/// A rig completion model whose completions are recorded; see the [module docs](self).
#[derive(Clone)]
pub struct TracedCompletionModel<M> {
    inner: M,
    recorder: Recorder,
    model: String,
    provider: String,
    base_url: String,
    context: CallContext,
}

impl<M> TracedCompletionModel<M> {
    /// Records the completions of `model` with `recorder`. The provider is `rig` until
    /// [`provider`](Self::provider) names the real one (PostHog prices by it).
    pub fn new(model: M, recorder: Recorder) -> Self {
        Self {
            inner: model,
            recorder,
            model: String::new(),
            provider: "rig".to_owned(),
            base_url: String::new(),
            context: CallContext::default(),
        }
    }

    /// The model name events carry when a request names none (`$ai_model`).
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// The provider (`$ai_provider`): `openai`, `anthropic`, `gemini`, ...
    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// Where the calls go (`$ai_base_url`).
    #[must_use]
    pub fn base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into();
        self
    }

    /// Who makes the calls and where they belong, for every call of this model.
    #[must_use]
    pub fn context(mut self, context: CallContext) -> Self {
        self.context = context;
        self
    }

    /// The wrapped model.
    pub fn get_ref(&self) -> &M {
        &self.inner
    }

    /// The wrapped model, mutably.
    pub fn get_mut(&mut self) -> &mut M {
        &mut self.inner
    }

    /// The wrapped model.
    pub fn into_inner(self) -> M {
        self.inner
    }
}

impl<M> fmt::Debug for TracedCompletionModel<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedCompletionModel")
            .field("model", &self.model)
            .field("provider", &self.provider)
            .field("recorder", &self.recorder)
            .finish_non_exhaustive()
    }
}

impl<M: CompletionModel> CompletionModel for TracedCompletionModel<M> {
    type Response = M::Response;
    type StreamingResponse = M::StreamingResponse;
    type Client = M::Client;

    /// The model `model` of `client`, recorded with the recorder the environment names
    /// ([`RecorderBuilder::build`](crate::record::RecorderBuilder::build)).
    fn make(client: &Self::Client, model: impl Into<String>) -> Self {
        let model = model.into();
        Self::new(M::make(client, model.clone()), Recorder::builder().build()).model(model)
    }

    async fn completion(
        &self,
        request: CompletionRequest,
    ) -> Result<CompletionResponse<Self::Response>, CompletionError> {
        let messages = messages(&request);
        let tools: Vec<Tool> = request
            .tools
            .iter()
            .map(|tool| Tool::new(&tool.name, &tool.description, tool.parameters.clone()))
            .collect();
        let parameters = ModelParameters {
            temperature: request.temperature,
            max_tokens: request
                .max_tokens
                .and_then(|tokens| u32::try_from(tokens).ok()),
            ..ModelParameters::default()
        };
        let model = request.model.clone().unwrap_or_else(|| self.model.clone());
        let call = self.recorder.start(
            CallInfo::new(&model, &self.provider)
                .base_url(&self.base_url)
                .messages(&messages)
                .tools(&tools)
                .parameters(parameters)
                .context(&self.context),
        );
        match self.inner.completion(request).await {
            Ok(response) => {
                call.succeed(&chat_response(&response));
                Ok(response)
            }
            Err(err) => {
                call.fail(&error_of(&err).with_provider(&self.provider));
                Err(err)
            }
        }
    }

    async fn stream(
        &self,
        request: CompletionRequest,
    ) -> Result<StreamingCompletionResponse<Self::StreamingResponse>, CompletionError> {
        self.inner.stream(request).await
    }
}

/// rig's request as the neutral conversation: the preamble first, then the history.
fn messages(request: &CompletionRequest) -> Vec<Message> {
    let mut messages = Vec::new();
    if let Some(preamble) = request.preamble.as_ref().filter(|p| !p.is_empty()) {
        messages.push(Message::system(preamble.clone()));
    }
    for message in request.chat_history.iter() {
        messages.push(match message {
            RigMessage::System { content } => Message::system(content.clone()),
            RigMessage::User { content } => {
                let mut role = Role::User;
                let parts = content
                    .iter()
                    .filter_map(|part| match part {
                        UserContent::Text(text) => Some(ContentPart::text(text.text.clone())),
                        UserContent::ToolResult(result) => {
                            role = Role::Tool;
                            let content = result
                                .content
                                .iter()
                                .filter_map(|item| match item {
                                    ToolResultContent::Text(text) => Some(text.text.as_str()),
                                    _ => None,
                                })
                                .collect::<String>();
                            Some(ContentPart::ToolResult {
                                tool_call_id: result.call_id.clone().unwrap_or(result.id.clone()),
                                content,
                                is_error: false,
                            })
                        }
                        _ => None,
                    })
                    .collect();
                Message::new(role, parts)
            }
            RigMessage::Assistant { content, .. } => {
                Message::new(Role::Assistant, assistant_parts(content.iter()))
            }
        });
    }
    messages
}

fn assistant_parts<'a>(content: impl Iterator<Item = &'a AssistantContent>) -> Vec<ContentPart> {
    content
        .filter_map(|part| match part {
            AssistantContent::Text(text) => Some(ContentPart::text(text.text.clone())),
            AssistantContent::ToolCall(call) => Some(ContentPart::ToolCall(ToolCall::new(
                call.call_id.clone().unwrap_or(call.id.clone()),
                call.function.name.clone(),
                call.function.arguments.to_string(),
            ))),
            // Reasoning stays out of the output, as everywhere in this crate.
            _ => None,
        })
        .collect()
}

/// rig's response as the neutral one; rig's zero counts are "not reported".
fn chat_response<R>(response: &CompletionResponse<R>) -> ChatResponse {
    fn known(count: u64) -> Option<u64> {
        (count > 0).then_some(count)
    }
    let usage = &response.usage;
    let input = usage
        .input_tokens
        .saturating_add(usage.tool_use_prompt_tokens);
    let neutral = Usage {
        input_tokens: known(input),
        output_tokens: known(usage.output_tokens),
        cache_read_input_tokens: known(usage.cached_input_tokens),
        cache_creation_input_tokens: known(usage.cache_creation_input_tokens),
        reasoning_tokens: known(usage.reasoning_tokens),
        ..Usage::default()
    };
    let mut chat = ChatResponse {
        content: assistant_parts(response.choice.iter()),
        usage: neutral,
        ..ChatResponse::default()
    };
    chat.id.clone_from(&response.message_id);
    chat
}

/// rig's error as this crate's, for the event.
fn error_of(error: &CompletionError) -> Error {
    match error {
        CompletionError::JsonError(err) => Error::decode(err.to_string()),
        CompletionError::ProviderError(message) => Error::other(message.clone()),
        other => Error::other(other.to_string()),
    }
}
