//! A call in flight: what the request said, what has arrived, and the one event it becomes.

use std::fmt;
use std::time::{Duration, Instant};

use super::scope::envelope_for;
use super::{CallContext, Recorder};
use crate::event::{Embedding, ErrorInfo, ErrorKind, Generation, ModelParameters};
use crate::types::{
    ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, Message, StreamAccumulator,
    StreamEvent, Tool, Usage,
};
use crate::{Error, LlmModel};

/// The stop reason of a call whose caller gave up before the end.
pub(crate) const CANCELLED: &str = "cancelled";

/// The error text of an embedding call dropped before it answered.
const DROPPED_EMBEDDING: &str = "embedding call dropped before it answered";

/// What a model call is about, as [`Recorder::start`] needs it: the model and where it runs,
/// the conversation, the parameters and tools, and the caller's [`CallContext`].
///
/// It borrows everything: the recorder copies only what the event keeps (no conversation at all
/// in privacy mode).
///
/// ```
/// use traced_llm::record::CallInfo;
/// use traced_llm::{CallContext, Message};
///
/// let messages = [Message::user("Hi")];
/// let context = CallContext::new().distinct_id("user_42");
/// let call = CallInfo::new("my-model", "my-provider")
///     .base_url("http://127.0.0.1:8080")
///     .messages(&messages)
///     .context(&context)
///     .stream(true);
/// # let _ = call;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CallInfo<'a> {
    model: &'a str,
    provider: &'a str,
    base_url: &'a str,
    cache_tokens_in_input: bool,
    messages: &'a [Message],
    tools: &'a [Tool],
    parameters: ModelParameters,
    context: Option<&'a CallContext>,
}

impl<'a> CallInfo<'a> {
    /// A call of `model` at `provider`, with no messages, no base URL, cached tokens counted
    /// inside the input tokens (as OpenAI does), not streamed.
    pub fn new(model: &'a str, provider: &'a str) -> Self {
        Self {
            model,
            provider,
            base_url: "",
            cache_tokens_in_input: true,
            messages: &[],
            tools: &[],
            parameters: ModelParameters::default(),
            context: None,
        }
    }

    /// What `request` says of itself (model, messages, tools, parameters, context), for a call
    /// to `model`'s provider; `stream` says whether it streams.
    pub fn from_request<M: LlmModel + ?Sized>(
        model: &'a M,
        request: &'a ChatRequest,
        stream: bool,
    ) -> Self {
        Self::new(&request.model, model.provider())
            .base_url(model.base_url())
            .cache_tokens_in_input(model.cache_tokens_in_input())
            .messages(&request.messages)
            .tools(&request.tools)
            .parameters(ModelParameters::of(request, stream))
            .context(&request.context)
    }

    /// Where the call goes (`$ai_base_url`). User info and query values are never sent.
    pub fn base_url(mut self, base_url: &'a str) -> Self {
        self.base_url = base_url;
        self
    }

    /// Whether the provider's input-token count includes cached tokens (see
    /// [`LlmModel::cache_tokens_in_input`]).
    pub fn cache_tokens_in_input(mut self, included: bool) -> Self {
        self.cache_tokens_in_input = included;
        self
    }

    /// The conversation sent.
    pub fn messages(mut self, messages: &'a [Message]) -> Self {
        self.messages = messages;
        self
    }

    /// The tools offered to the model.
    pub fn tools(mut self, tools: &'a [Tool]) -> Self {
        self.tools = tools;
        self
    }

    /// The sampling parameters, as the request stated them.
    pub fn parameters(mut self, parameters: ModelParameters) -> Self {
        self.parameters = parameters;
        self
    }

    /// Whether the call streams (`stream` of the model parameters).
    pub fn stream(mut self, stream: bool) -> Self {
        self.parameters.stream = stream;
        self
    }

    /// Who made the call and where it belongs.
    pub fn context(mut self, context: &'a CallContext) -> Self {
        self.context = Some(context);
        self
    }
}

/// One model call being recorded: started by [`Recorder::start`], it sends exactly one
/// `Generation` event when it ends.
///
/// End it with [`succeed`](CallInProgress::succeed) (a whole response),
/// [`finish`](CallInProgress::finish) (a stream that ran to its end, after
/// [`observe`](CallInProgress::observe) saw its events) or [`fail`](CallInProgress::fail).
/// Dropped without that — the caller's future or stream dropped, a task aborted — it is sent
/// with stop reason `cancelled`, keeping whatever the stream delivered.
///
/// ```
/// use traced_llm::record::{CallInfo, Recorder};
/// use traced_llm::sink::InMemorySink;
/// use traced_llm::types::Usage;
/// use traced_llm::StreamEvent;
///
/// let events = InMemorySink::new();
/// let recorder = Recorder::new(events.clone());
/// let mut call = recorder.start(CallInfo::new("my-model", "my-provider").stream(true));
/// call.observe(&StreamEvent::text("Hello"));
/// call.observe(&StreamEvent::Usage(Usage::new(12, 1)));
/// call.finish();
/// assert_eq!(events.generations()[0].output_text(), "Hello");
/// ```
#[must_use = "a call is sent when it ends; dropping it at once records a cancelled call"]
pub struct CallInProgress {
    recorder: Recorder,
    call: Option<Call>,
}

/// The state of a call that has not ended yet.
struct Call {
    started: Instant,
    private: bool,
    generation: Generation,
    /// Set once the provider answered with a stream.
    stream: Option<StreamState>,
}

struct StreamState {
    accumulated: StreamAccumulator,
    first_token: Option<Instant>,
}

/// How a call ended.
enum Ending<'a> {
    Response(&'a ChatResponse),
    StreamEnd,
    Failed(ErrorInfo),
    Cancelled,
}

impl CallInProgress {
    pub(super) fn start(recorder: &Recorder, info: CallInfo<'_>) -> Self {
        let context = info.context;
        let private = context
            .and_then(|context| context.privacy_mode)
            .unwrap_or(recorder.privacy_mode());
        let mut generation = Generation::new(info.model, info.provider);
        if let Some(context) = context {
            generation.envelope = envelope_for(context);
            generation.price = context.price;
        } else {
            generation.envelope = envelope_for(&CallContext::default());
        }
        generation.base_url = super::display_url(info.base_url);
        generation.cache_tokens_in_input = info.cache_tokens_in_input;
        generation.input = (!private).then(|| info.messages.to_vec());
        generation.parameters = info.parameters;
        generation.tools = info.tools.to_vec();
        Self {
            recorder: recorder.clone(),
            call: Some(Call {
                started: Instant::now(),
                private,
                generation,
                stream: None,
            }),
        }
    }

    /// Whether this call withholds content (privacy mode, model-wide or per call).
    pub fn is_private(&self) -> bool {
        self.call.as_ref().is_some_and(|call| call.private)
    }

    /// The provider answered with a stream: from now on a failure is a failure mid-stream (HTTP
    /// status 200 unless the error names one) and keeps the partial output. [`observe`] marks
    /// it too.
    ///
    /// [`observe`]: CallInProgress::observe
    pub fn streaming(&mut self) {
        if let Some(call) = &mut self.call {
            call.stream_state();
        }
    }

    /// Folds one stream event in: text, tool-call fragments, usage, finish reason, ids. The
    /// first text, reasoning or tool-call piece marks the time to first token.
    pub fn observe(&mut self, event: &StreamEvent) {
        if let Some(call) = &mut self.call {
            let state = call.stream_state();
            if state.first_token.is_none() && event.is_content() {
                state.first_token = Some(Instant::now());
            }
            state.accumulated.observe(event);
        }
    }

    /// The call answered with `response`.
    pub fn succeed(mut self, response: &ChatResponse) {
        self.end(Ending::Response(response));
    }

    /// The stream ran to its end: the event carries what [`observe`](CallInProgress::observe)
    /// saw.
    pub fn finish(mut self) {
        self.end(Ending::StreamEnd);
    }

    /// The call failed with `error`: before any answer (HTTP status from the error, else 0), or
    /// mid-stream (partial output kept; status from the error, else 200).
    pub fn fail(mut self, error: &Error) {
        self.end(Ending::Failed(ErrorInfo::from_error(error)));
    }

    /// The call failed for a reason told by `error`, for clients whose errors are not this
    /// crate's [`Error`] (and for refusals such as a spent budget).
    pub fn fail_with(mut self, error: ErrorInfo) {
        self.end(Ending::Failed(error));
    }

    /// The caller gave up: the event goes out with stop reason `cancelled`. Dropping the call
    /// does the same.
    pub fn cancel(mut self) {
        self.end(Ending::Cancelled);
    }

    fn end(&mut self, ending: Ending<'_>) {
        if let Some(call) = self.call.take() {
            self.recorder.emit(call.into_generation(ending).into());
        }
    }
}

impl Drop for CallInProgress {
    fn drop(&mut self) {
        self.end(Ending::Cancelled);
    }
}

impl fmt::Debug for CallInProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("CallInProgress");
        if let Some(call) = &self.call {
            debug
                .field("model", &call.generation.model)
                .field("provider", &call.generation.provider)
                .field("streaming", &call.stream.is_some());
        }
        debug.field("ended", &self.call.is_none()).finish()
    }
}

impl Call {
    fn stream_state(&mut self) -> &mut StreamState {
        let private = self.private;
        self.stream.get_or_insert_with(|| StreamState {
            accumulated: if private {
                StreamAccumulator::without_content()
            } else {
                StreamAccumulator::new()
            },
            first_token: None,
        })
    }

    fn into_generation(mut self, ending: Ending<'_>) -> Generation {
        let started = self.started;
        let generation = &mut self.generation;
        generation.latency = started.elapsed();
        let streamed = self.stream.is_some();
        if let Some(state) = self.stream.take() {
            generation.time_to_first_token = state.first_token.map(|at| at - started);
            let response = state.accumulated.into_response();
            take_response(generation, response, self.private);
        }
        match ending {
            Ending::Response(response) => {
                generation.http_status = 200;
                apply_response(generation, response, self.private);
            }
            Ending::StreamEnd => generation.http_status = 200,
            Ending::Failed(mut error) => {
                let fallback = if streamed { 200 } else { 0 };
                generation.http_status = error.status.unwrap_or(fallback);
                if self.private {
                    error.withhold_message();
                }
                generation.error = Some(error);
            }
            Ending::Cancelled => {
                generation.http_status = if streamed { 200 } else { 0 };
                generation.stop_reason = Some(CANCELLED.to_owned());
            }
        }
        self.generation
    }
}

/// What a whole response says, copied into the event.
fn apply_response(generation: &mut Generation, response: &ChatResponse, private: bool) {
    if let Some(model) = &response.model {
        generation.model.clone_from(model);
    }
    generation.usage = response.usage;
    generation.stop_reason.clone_from(&response.finish_reason);
    generation.completion_id.clone_from(&response.id);
    generation.output = (!private).then(|| response.content.clone());
    if !response.metadata.is_empty() {
        generation.provider_metadata.clone_from(&response.metadata);
    }
}

/// What a stream assembled, moved into the event.
fn take_response(generation: &mut Generation, response: ChatResponse, private: bool) {
    if let Some(model) = response.model {
        generation.model = model;
    }
    generation.usage = response.usage;
    generation.stop_reason = response.finish_reason;
    generation.completion_id = response.id;
    generation.output = (!private).then_some(response.content);
    if !response.metadata.is_empty() {
        generation.provider_metadata = response.metadata;
    }
}

/// What an embedding call is about, as [`Recorder::start_embedding`] needs it.
#[derive(Debug, Clone)]
#[must_use]
pub struct EmbeddingInfo<'a> {
    model: &'a str,
    provider: &'a str,
    base_url: &'a str,
    input: &'a [String],
    context: Option<&'a CallContext>,
}

impl<'a> EmbeddingInfo<'a> {
    /// An embedding call of `model` at `provider`.
    pub fn new(model: &'a str, provider: &'a str) -> Self {
        Self {
            model,
            provider,
            base_url: "",
            input: &[],
            context: None,
        }
    }

    /// What `request` says of itself, for a call to `model`'s provider.
    pub fn from_request<M: LlmModel + ?Sized>(model: &'a M, request: &'a EmbeddingRequest) -> Self {
        Self::new(&request.model, model.provider())
            .base_url(model.base_url())
            .input(&request.input)
            .context(&request.context)
    }

    /// Where the call goes.
    pub fn base_url(mut self, base_url: &'a str) -> Self {
        self.base_url = base_url;
        self
    }

    /// The texts embedded.
    pub fn input(mut self, input: &'a [String]) -> Self {
        self.input = input;
        self
    }

    /// Who made the call and where it belongs.
    pub fn context(mut self, context: &'a CallContext) -> Self {
        self.context = Some(context);
        self
    }
}

/// One embedding call being recorded: it sends exactly one `Embedding` event when it ends,
/// and one with an error of kind [`ErrorKind::Cancelled`] when dropped before.
#[must_use = "a call is sent when it ends; dropping it at once records a cancelled call"]
pub struct EmbeddingInProgress {
    recorder: Recorder,
    call: Option<(Instant, bool, Embedding)>,
}

impl EmbeddingInProgress {
    pub(super) fn start(recorder: &Recorder, info: EmbeddingInfo<'_>) -> Self {
        let default_context = CallContext::default();
        let context = info.context.unwrap_or(&default_context);
        let private = context.privacy_mode.unwrap_or(recorder.privacy_mode());
        let embedding = Embedding {
            envelope: envelope_for(context),
            model: info.model.to_owned(),
            request_model: info.model.to_owned(),
            provider: info.provider.to_owned(),
            base_url: super::display_url(info.base_url),
            input: (!private).then(|| info.input.to_vec()),
            usage: Usage::default(),
            latency: Duration::ZERO,
            http_status: 200,
            error: None,
            price: context.price,
            cost: None,
            exception_id: None,
        };
        Self {
            recorder: recorder.clone(),
            call: Some((Instant::now(), private, embedding)),
        }
    }

    /// The call answered with `response`.
    pub fn succeed(mut self, response: &EmbeddingResponse) {
        if let Some((started, _, mut embedding)) = self.call.take() {
            embedding.latency = started.elapsed();
            embedding.usage = response.usage;
            if let Some(model) = &response.model {
                embedding.model.clone_from(model);
            }
            self.recorder.emit(embedding.into());
        }
    }

    /// The call failed with `error`.
    pub fn fail(mut self, error: &Error) {
        self.fail_info(ErrorInfo::from_error(error));
    }

    fn fail_info(&mut self, mut error: ErrorInfo) {
        if let Some((started, private, mut embedding)) = self.call.take() {
            embedding.latency = started.elapsed();
            embedding.http_status = error.status.unwrap_or(0);
            if private {
                error.withhold_message();
            }
            embedding.error = Some(error);
            self.recorder.emit(embedding.into());
        }
    }
}

impl Drop for EmbeddingInProgress {
    fn drop(&mut self) {
        self.fail_info(ErrorInfo::new(ErrorKind::Cancelled, DROPPED_EMBEDDING));
    }
}

impl fmt::Debug for EmbeddingInProgress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingInProgress")
            .field("ended", &self.call.is_none())
            .finish_non_exhaustive()
    }
}
