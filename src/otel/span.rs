//! One event, one span: its name, kind, ids, times, attributes and status.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanBuilder, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags,
    TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Array, Context, KeyValue, StringValue, Value};
use serde_json::Value as Json;

use super::content;
use super::ids::{span_id_for, trace_id_for, with_lent_ids};
use super::metrics::Tokens;
use super::semconv::*;
use super::Inner;
use crate::event::{Embedding, Envelope, ErrorInfo, ErrorKind, Generation, SpanRecord};

/// The stop reason the recorder gives a call its caller dropped.
const CANCELLED: &str = "cancelled";

/// Where an event's span sits: its ids and its parent.
pub(super) struct Placement {
    trace_id: TraceId,
    span_id: SpanId,
    parent: Parent,
}

enum Parent {
    /// A root: no parent.
    None,
    /// A span of this trace.
    Span(SpanId, TraceFlags),
}

impl Placement {
    /// The ids of `envelope`'s event; `is_trace` for a trace's root (see [`super::ids`]).
    pub(super) fn of(envelope: &Envelope, is_trace: bool) -> Self {
        let mut uuid_text = uuid::Uuid::encode_buffer();
        // The service's span lends its trace and its sampling decision to the crate's spans
        // that started inside it; spans of a trace the crate alone knows reach the sampler with
        // a sampled parent.
        let service = envelope.trace_parent.map(|parent| {
            let flags = if parent.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::NOT_SAMPLED
            };
            (
                TraceId::from_bytes(parent.trace_id),
                SpanId::from_bytes(parent.span_id),
                flags,
            )
        });
        let trace_id = match (&service, &envelope.trace_id) {
            (Some((service_trace, _, _)), _) => *service_trace,
            (None, Some(text)) => trace_id_for(text),
            (None, None) => TraceId::from_bytes(envelope.uuid.into_bytes()),
        };
        let span_id = match (&envelope.span_id, &envelope.trace_id) {
            (Some(span), _) => span_id_for(span),
            (None, Some(trace)) if is_trace => span_id_for(trace),
            _ => span_id_for(envelope.uuid.hyphenated().encode_lower(&mut uuid_text)),
        };
        let parent = match (&envelope.parent_id, service) {
            // The crate's own parent wins.
            (Some(parent), Some((_, _, flags))) => Parent::Span(span_id_for(parent), flags),
            (Some(parent), None) => Parent::Span(span_id_for(parent), TraceFlags::SAMPLED),
            (None, Some((_, service_span, flags))) => Parent::Span(service_span, flags),
            (None, None) => Parent::None,
        };
        Self {
            trace_id,
            span_id,
            parent,
        }
    }

    fn context(&self) -> Context {
        match &self.parent {
            Parent::Span(parent, flags) => Context::new().with_remote_span_context(
                SpanContext::new(self.trace_id, *parent, *flags, false, TraceState::NONE),
            ),
            Parent::None => Context::new(),
        }
    }
}

/// What a span needs besides its attributes.
struct Shape<'a> {
    name: String,
    kind: SpanKind,
    envelope: &'a Envelope,
    latency: Duration,
    error: Option<Cow<'a, ErrorInfo>>,
}

impl Inner {
    pub(super) fn export_generation(&self, generation: &Generation) {
        if !self.spans && self.metrics.is_none() {
            return;
        }
        let tokens = tokens_of(generation);
        let provider = provider_name(&generation.provider);
        let request_model = model_or(&generation.request_model, &generation.model);
        let cancelled =
            generation.error.is_none() && generation.stop_reason.as_deref() == Some(CANCELLED);
        let answered = generation.error.is_none() && !cancelled;
        // The model that answered: the one the provider named, or the one asked for when the
        // call answered without naming one.
        let response_model =
            (answered || generation.model != request_model).then_some(generation.model.as_str());
        let error = match &generation.error {
            Some(error) => Some(Cow::Borrowed(error)),
            None if cancelled => Some(Cow::Owned(ErrorInfo::new(
                ErrorKind::Cancelled,
                "cancelled by the caller",
            ))),
            None => None,
        };
        let parameters = &generation.parameters;
        let envelope = &generation.envelope;

        // One vector for the span and the measurements: the attributes they share come first,
        // the metrics read that prefix (plus one slot of their own) before the span takes it.
        let content = self.capture_content && generation.input.is_some();
        let capacity = COMMON_ATTRIBUTES
            + 1
            + count([
                parameters.temperature.is_some(),
                parameters.top_p.is_some(),
                parameters.max_tokens.is_some(),
                parameters.frequency_penalty.is_some(),
                parameters.presence_penalty.is_some(),
                !parameters.stop.is_empty(),
                parameters.seed.is_some(),
                parameters.stream,
                generation.completion_id.is_some(),
                true,
                parameters.stream,
                tokens.input.is_some(),
                tokens.output.is_some(),
                tokens.cache_read.is_some(),
                tokens.cache_write.is_some(),
                tokens.reasoning.is_some(),
            ])
            + if content { 4 } else { 0 }
            + IDENTITY_ATTRIBUTES
            + envelope.properties.len();
        let mut attributes = Vec::with_capacity(capacity);
        common(
            &mut attributes,
            OPERATION_CHAT,
            provider,
            request_model,
            response_model,
            error.as_deref(),
        );
        if let Some(instruments) = &self.metrics {
            let time_to_first_chunk = parameters
                .stream
                .then_some(generation.time_to_first_token)
                .flatten()
                .map(|ttft| ttft.as_secs_f64());
            instruments.record_chat(
                &mut attributes,
                generation.latency.as_secs_f64(),
                time_to_first_chunk,
                &tokens,
            );
        }
        if !self.spans {
            return;
        }
        push_server(&mut attributes, &generation.base_url);
        push_some(
            &mut attributes,
            GEN_AI_REQUEST_TEMPERATURE,
            parameters.temperature,
        );
        push_some(&mut attributes, GEN_AI_REQUEST_TOP_P, parameters.top_p);
        push_some(
            &mut attributes,
            GEN_AI_REQUEST_MAX_TOKENS,
            parameters.max_tokens.map(i64::from),
        );
        push_some(
            &mut attributes,
            GEN_AI_REQUEST_FREQUENCY_PENALTY,
            parameters.frequency_penalty,
        );
        push_some(
            &mut attributes,
            GEN_AI_REQUEST_PRESENCE_PENALTY,
            parameters.presence_penalty,
        );
        if !parameters.stop.is_empty() {
            attributes.push(KeyValue::new(
                GEN_AI_REQUEST_STOP_SEQUENCES,
                strings(&parameters.stop),
            ));
        }
        push_some(&mut attributes, GEN_AI_REQUEST_SEED, parameters.seed);
        if parameters.stream {
            attributes.push(KeyValue::new(GEN_AI_REQUEST_STREAM, true));
        }
        if let Some(id) = &generation.completion_id {
            attributes.push(KeyValue::new(GEN_AI_RESPONSE_ID, id.clone()));
        }
        let finish_reason = match (&error, &generation.stop_reason) {
            (Some(_), _) => Some(FINISH_REASON_ERROR),
            (None, Some(reason)) => Some(reason.as_str()),
            (None, None) => None,
        };
        if let Some(reason) = finish_reason {
            attributes.push(KeyValue::new(
                GEN_AI_RESPONSE_FINISH_REASONS,
                Value::Array(Array::String(vec![finish_reason_value(reason)])),
            ));
        }
        if parameters.stream {
            push_some(
                &mut attributes,
                GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
                generation
                    .time_to_first_token
                    .map(|ttft| ttft.as_secs_f64()),
            );
        }
        push_tokens(&mut attributes, &tokens);
        if self.capture_content {
            if let Some(input) = &generation.input {
                let (instructions, messages) = content::input_messages(provider, input);
                if let Some(instructions) = instructions {
                    attributes.push(KeyValue::new(GEN_AI_SYSTEM_INSTRUCTIONS, instructions));
                }
                attributes.push(KeyValue::new(GEN_AI_INPUT_MESSAGES, messages));
                if !generation.tools.is_empty() {
                    attributes.push(KeyValue::new(
                        GEN_AI_TOOL_DEFINITIONS,
                        content::tool_definitions(&generation.tools),
                    ));
                }
            }
            if let Some(output) = &generation.output {
                attributes.push(KeyValue::new(
                    GEN_AI_OUTPUT_MESSAGES,
                    content::output_messages(output, finish_reason.unwrap_or("unknown")),
                ));
            }
        }
        let shape = Shape {
            name: span_name(OPERATION_CHAT, request_model),
            kind: SpanKind::Client,
            envelope,
            latency: generation.latency,
            error,
        };
        self.emit_span(shape, Placement::of(envelope, false), attributes);
    }

    pub(super) fn export_embedding(&self, embedding: &Embedding) {
        if !self.spans && self.metrics.is_none() {
            return;
        }
        let error = embedding.error.as_ref();
        let request_model = model_or(&embedding.request_model, &embedding.model);
        let response_model = (error.is_none() || embedding.model != request_model)
            .then_some(embedding.model.as_str());
        let envelope = &embedding.envelope;
        let mut attributes = Vec::with_capacity(
            COMMON_ATTRIBUTES + 2 + IDENTITY_ATTRIBUTES + envelope.properties.len(),
        );
        common(
            &mut attributes,
            OPERATION_EMBEDDINGS,
            provider_name(&embedding.provider),
            request_model,
            response_model,
            error,
        );
        if let Some(instruments) = &self.metrics {
            instruments.record_embeddings(
                &mut attributes,
                embedding.latency.as_secs_f64(),
                embedding.usage.input_tokens,
            );
        }
        if !self.spans {
            return;
        }
        push_server(&mut attributes, &embedding.base_url);
        push_some(
            &mut attributes,
            GEN_AI_USAGE_INPUT_TOKENS,
            embedding.usage.input_tokens.and_then(to_i64),
        );
        let shape = Shape {
            name: span_name(OPERATION_EMBEDDINGS, request_model),
            kind: SpanKind::Client,
            envelope,
            latency: embedding.latency,
            error: error.map(Cow::Borrowed),
        };
        self.emit_span(shape, Placement::of(envelope, false), attributes);
    }

    pub(super) fn export_span(&self, span: &SpanRecord) {
        if !self.spans {
            return;
        }
        let name = span.envelope.span_name.as_deref().unwrap_or("span");
        let mut attributes = Vec::with_capacity(8);
        attributes.push(KeyValue::new(GEN_AI_OPERATION_NAME, OPERATION_INVOKE_AGENT));
        attributes.push(KeyValue::new(GEN_AI_AGENT_NAME, name.to_owned()));
        if let Some(error) = &span.error {
            attributes.push(KeyValue::new(ERROR_TYPE, error.kind.as_str()));
        }
        let shape = Shape {
            name: span_name(OPERATION_INVOKE_AGENT, name),
            kind: SpanKind::Internal,
            envelope: &span.envelope,
            latency: span.latency,
            error: span.error.as_ref().map(Cow::Borrowed),
        };
        self.emit_span(
            shape,
            Placement::of(&span.envelope, span.is_trace),
            attributes,
        );
    }

    /// Builds the span with its real start and end, under its parent, with the event's ids.
    fn emit_span(&self, shape: Shape<'_>, placement: Placement, mut attributes: Vec<KeyValue>) {
        let envelope = shape.envelope;
        push_identity(&mut attributes, envelope);
        push_custom(&mut attributes, &envelope.properties);
        let builder = SpanBuilder::from_name(shape.name)
            .with_kind(shape.kind)
            .with_start_time(envelope.timestamp)
            .with_attributes(attributes);
        let context = placement.context();
        let mut span = with_lent_ids(placement.trace_id, placement.span_id, || {
            self.tracer.build_with_context(builder, &context)
        });
        let built = span.span_context();
        if built.is_valid() && built.span_id() != placement.span_id {
            warn_foreign_ids();
        }
        if let Some(error) = &shape.error {
            span.set_status(Status::error(error.to_string()));
        }
        span.end_with_timestamp(envelope.timestamp + shape.latency);
    }
}

/// `{operation} {subject}`, the conventions' span name.
fn span_name(operation: &str, subject: &str) -> String {
    let mut name = String::with_capacity(operation.len() + 1 + subject.len());
    name.push_str(operation);
    name.push(' ');
    name.push_str(subject);
    name
}

fn warn_foreign_ids() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            target: "traced_llm",
            "the OpenTelemetry tracer provider does not use traced_llm::otel::TracedIdGenerator: \
             LLM spans get random ids, so spans of a trace do not point at their parents and ids \
             differ from PostHog's"
        );
    }
}

/// Tokens as the conventions count them: input includes cached tokens, so a provider that
/// reports them apart (Anthropic) has its cache reads and writes added back in.
pub(super) fn tokens_of(generation: &Generation) -> Tokens {
    let usage = &generation.usage;
    let input = if generation.cache_tokens_in_input {
        usage.input_tokens
    } else {
        let cached = usage.cache_read_input_tokens.unwrap_or(0)
            + usage.cache_creation_input_tokens.unwrap_or(0);
        match usage.input_tokens {
            Some(input) => Some(input + cached),
            None if cached > 0 => Some(cached),
            None => None,
        }
    };
    Tokens {
        input,
        output: usage.output_tokens,
        cache_read: usage.cache_read_input_tokens,
        cache_write: usage.cache_creation_input_tokens,
        reasoning: usage.reasoning_tokens,
    }
}

/// How many attributes [`common`] and [`push_server`] write at most.
const COMMON_ATTRIBUTES: usize = 7;
/// How many attributes [`push_identity`] writes at most.
const IDENTITY_ATTRIBUTES: usize = 4;

fn count<const N: usize>(present: [bool; N]) -> usize {
    present.into_iter().filter(|&present| present).count()
}

/// The attributes spans and measurements share.
fn common(
    attributes: &mut Vec<KeyValue>,
    operation: &'static str,
    provider: &str,
    request_model: &str,
    response_model: Option<&str>,
    error: Option<&ErrorInfo>,
) {
    attributes.push(KeyValue::new(GEN_AI_OPERATION_NAME, operation));
    attributes.push(KeyValue::new(
        GEN_AI_PROVIDER_NAME,
        well_known(provider, &PROVIDERS),
    ));
    attributes.push(KeyValue::new(
        GEN_AI_REQUEST_MODEL,
        request_model.to_owned(),
    ));
    if let Some(model) = response_model {
        attributes.push(KeyValue::new(GEN_AI_RESPONSE_MODEL, model.to_owned()));
    }
    if let Some(error) = error {
        attributes.push(KeyValue::new(ERROR_TYPE, error.kind.as_str()));
    }
}

/// `server.address` and `server.port`, on spans only: the metric series stay one per provider
/// and model, and each measurement hashes two attributes fewer.
fn push_server(attributes: &mut Vec<KeyValue>, base_url: &str) {
    if let Some((address, port)) = server_of(base_url) {
        attributes.push(KeyValue::new(SERVER_ADDRESS, address.to_owned()));
        if let Some(port) = port {
            attributes.push(KeyValue::new(SERVER_PORT, i64::from(port)));
        }
    }
}

fn push_tokens(attributes: &mut Vec<KeyValue>, tokens: &Tokens) {
    for (key, count) in [
        (GEN_AI_USAGE_INPUT_TOKENS, tokens.input),
        (GEN_AI_USAGE_OUTPUT_TOKENS, tokens.output),
        (GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, tokens.cache_read),
        (GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, tokens.cache_write),
        (GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, tokens.reasoning),
    ] {
        push_some(attributes, key, count.and_then(to_i64));
    }
}

/// The request's model, or the event's model when the event names no request model (events
/// built by hand).
fn model_or<'a>(request_model: &'a str, model: &'a str) -> &'a str {
    if request_model.is_empty() {
        model
    } else {
        request_model
    }
}

/// The person, the conversation and the prompt, when the caller named them: the conversation is
/// the session, else a trace id the caller named — never an id the crate made up.
fn push_identity(attributes: &mut Vec<KeyValue>, envelope: &Envelope) {
    let conversation = envelope.session_id.as_ref().or(envelope
        .trace_id
        .as_ref()
        .filter(|_| envelope.trace_id_named));
    if let Some(conversation) = conversation {
        attributes.push(KeyValue::new(GEN_AI_CONVERSATION_ID, conversation.clone()));
    }
    if let Some(distinct_id) = &envelope.distinct_id {
        attributes.push(KeyValue::new(POSTHOG_DISTINCT_ID, distinct_id.clone()));
    }
    if let Some(prompt) = &envelope.prompt {
        attributes.push(KeyValue::new(GEN_AI_PROMPT_NAME, prompt.name.clone()));
        if let Some(version) = prompt.version {
            attributes.push(KeyValue::new(GEN_AI_PROMPT_VERSION, version.to_string()));
        }
    }
}

/// The caller's custom properties, under their own names; the crate's attributes win.
fn push_custom(attributes: &mut Vec<KeyValue>, properties: &serde_json::Map<String, Json>) {
    for (key, value) in properties {
        if attributes.iter().any(|kv| kv.key.as_str() == key) {
            continue;
        }
        let value = match value {
            Json::Null => continue,
            Json::Bool(flag) => Value::Bool(*flag),
            Json::Number(number) => match number.as_i64() {
                Some(int) => Value::I64(int),
                None => Value::F64(number.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(text) => Value::String(text.clone().into()),
            other => Value::String(other.to_string().into()),
        };
        attributes.push(KeyValue::new(key.clone(), value));
    }
}

fn push_some<T: Into<Value>>(attributes: &mut Vec<KeyValue>, key: &'static str, value: Option<T>) {
    if let Some(value) = value {
        attributes.push(KeyValue::new(key, value));
    }
}

fn to_i64(count: u64) -> Option<i64> {
    i64::try_from(count).ok()
}

fn strings(values: &[String]) -> Value {
    Value::Array(Array::String(
        values
            .iter()
            .map(|value| StringValue::from(value.clone()))
            .collect(),
    ))
}

/// Provider names the conventions list (and this crate's providers use): sent without a copy.
const PROVIDERS: [&str; 17] = [
    "openai",
    "anthropic",
    "azure.ai.openai",
    "azure.ai.inference",
    "aws.bedrock",
    "cohere",
    "deepseek",
    "gcp.gemini",
    "gcp.gen_ai",
    "gcp.vertex_ai",
    "groq",
    "ibm.watsonx.ai",
    "mistral_ai",
    "moonshot_ai",
    "perplexity",
    "x_ai",
    "ollama",
];

/// Finish reasons the providers send most: sent without a copy.
const FINISH_REASONS: [&str; 9] = [
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    FINISH_REASON_ERROR,
];

/// `text` as an attribute value: the static copy when `known` has it, else an owned one.
fn well_known(text: &str, known: &[&'static str]) -> StringValue {
    match known.iter().find(|candidate| **candidate == text) {
        Some(name) => StringValue::from(*name),
        None => StringValue::from(text.to_owned()),
    }
}

fn finish_reason_value(reason: &str) -> StringValue {
    well_known(reason, &FINISH_REASONS)
}

/// `gen_ai.provider.name` for the crate's provider label: the conventions' well-known names for
/// the labels this crate and its users give, the label itself otherwise.
pub(super) fn provider_name(provider: &str) -> &str {
    match provider {
        "azure" | "azure_openai" | "azure-openai" => "azure.ai.openai",
        "gemini" | "google" | "google_ai" => "gcp.gemini",
        "vertex" | "vertex_ai" | "vertexai" => "gcp.vertex_ai",
        "bedrock" | "aws_bedrock" => "aws.bedrock",
        "mistral" => "mistral_ai",
        "xai" | "x-ai" | "grok" => "x_ai",
        "moonshot" => "moonshot_ai",
        "watsonx" => "ibm.watsonx.ai",
        other => other,
    }
}

/// `server.address` and `server.port` of a base URL; the port is the URL's, else its scheme's
/// default.
pub(super) fn server_of(base_url: &str) -> Option<(&str, Option<u16>)> {
    let (default_port, rest) = if let Some(rest) = base_url.strip_prefix("https://") {
        (Some(443), rest)
    } else if let Some(rest) = base_url.strip_prefix("http://") {
        (Some(80), rest)
    } else {
        (
            None,
            base_url
                .split_once("://")
                .map_or(base_url, |(_, rest)| rest),
        )
    };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(port) => Some(port.parse().ok()?),
        None => default_port,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_address_and_port_come_from_the_base_url() {
        assert_eq!(
            server_of("https://api.openai.com/v1"),
            Some(("api.openai.com", Some(443)))
        );
        assert_eq!(
            server_of("http://127.0.0.1:8080/v1"),
            Some(("127.0.0.1", Some(8080)))
        );
        assert_eq!(server_of("http://[::1]:11434"), Some(("::1", Some(11434))));
        assert_eq!(server_of("http://localhost"), Some(("localhost", Some(80))));
        assert_eq!(server_of(""), None);
        assert_eq!(server_of("grpc://host:5"), Some(("host", Some(5))));
    }

    #[test]
    fn exclusive_cache_counts_are_added_to_the_input() {
        let mut generation = Generation::new("claude-sonnet-4-5", "anthropic");
        generation.cache_tokens_in_input = false;
        generation.usage = crate::types::Usage::new(10, 5)
            .with_cache_read(100)
            .with_cache_creation(20);
        assert_eq!(tokens_of(&generation).input, Some(130));
        generation.cache_tokens_in_input = true;
        assert_eq!(tokens_of(&generation).input, Some(10));
    }
}
