//! Every OpenTelemetry name this crate writes: attribute keys, their well-known values, and
//! metric instruments.
//!
//! The names follow the GenAI semantic conventions of `open-telemetry/semantic-conventions-genai`
//! (v0.1, status *Development*): `client-inference.md` for chat spans and metrics,
//! `client-embeddings.md` for embeddings, `gen-ai-token-metrics.md` for token counters, and
//! `gen-ai-agent-spans.md` for agents. The conventions moved there from
//! `open-telemetry/semantic-conventions` in its v1.42.0, which deprecated every `gen_ai.*` name;
//! the `opentelemetry-semantic-conventions` crate marks them all `#[deprecated]`, so this crate
//! keeps its own constants, here and nowhere else.
//!
//! The older metric names of semantic-conventions v1.37–v1.41 (`gen_ai.client.operation.*`,
//! `gen_ai.client.token.usage`), still what most dashboards query, are the `LEGACY_*` constants;
//! [`MetricNames`](super::MetricNames) picks either generation or both.

/// `gen_ai.operation.name`: what the span or measurement is about (`chat`, `embeddings`,
/// `invoke_agent`).
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// `gen_ai.provider.name`: who serves the model (`openai`, `anthropic`, `azure.ai.openai`, ...).
pub const GEN_AI_PROVIDER_NAME: &str = "gen_ai.provider.name";
/// `gen_ai.conversation.id`: a conversation id the caller gave (never one the crate made up).
pub const GEN_AI_CONVERSATION_ID: &str = "gen_ai.conversation.id";
/// `gen_ai.prompt.name`: the managed prompt the work used.
pub const GEN_AI_PROMPT_NAME: &str = "gen_ai.prompt.name";
/// `gen_ai.prompt.version`: its version, as the prompt store numbers it.
pub const GEN_AI_PROMPT_VERSION: &str = "gen_ai.prompt.version";
/// `gen_ai.agent.name`: the name of an agent run (a trace's name).
pub const GEN_AI_AGENT_NAME: &str = "gen_ai.agent.name";

/// `gen_ai.request.model`: the model asked for.
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// `gen_ai.request.temperature` (double).
pub const GEN_AI_REQUEST_TEMPERATURE: &str = "gen_ai.request.temperature";
/// `gen_ai.request.top_p` (double).
pub const GEN_AI_REQUEST_TOP_P: &str = "gen_ai.request.top_p";
/// `gen_ai.request.max_tokens` (int).
pub const GEN_AI_REQUEST_MAX_TOKENS: &str = "gen_ai.request.max_tokens";
/// `gen_ai.request.frequency_penalty` (double).
pub const GEN_AI_REQUEST_FREQUENCY_PENALTY: &str = "gen_ai.request.frequency_penalty";
/// `gen_ai.request.presence_penalty` (double).
pub const GEN_AI_REQUEST_PRESENCE_PENALTY: &str = "gen_ai.request.presence_penalty";
/// `gen_ai.request.stop_sequences` (string array).
pub const GEN_AI_REQUEST_STOP_SEQUENCES: &str = "gen_ai.request.stop_sequences";
/// `gen_ai.request.seed` (int).
pub const GEN_AI_REQUEST_SEED: &str = "gen_ai.request.seed";
/// `gen_ai.request.stream` (boolean): set, to `true`, on streamed calls only.
pub const GEN_AI_REQUEST_STREAM: &str = "gen_ai.request.stream";

/// `gen_ai.response.id`: the provider's completion id.
pub const GEN_AI_RESPONSE_ID: &str = "gen_ai.response.id";
/// `gen_ai.response.model`: the model that answered.
pub const GEN_AI_RESPONSE_MODEL: &str = "gen_ai.response.model";
/// `gen_ai.response.finish_reasons` (string array, one per choice; `error` for a call that
/// failed, was cancelled or was cut short).
pub const GEN_AI_RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
/// `gen_ai.response.time_to_first_chunk` (double, seconds): streamed calls only.
pub const GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";

/// `gen_ai.usage.input_tokens`: every input token, cached ones included.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// `gen_ai.usage.output_tokens`: every output token, reasoning ones included.
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// `gen_ai.usage.cache_read.input_tokens`: input tokens served from the provider's cache.
pub const GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
/// `gen_ai.usage.cache_write.input_tokens`: input tokens written to the provider's cache (was
/// `cache_creation`).
pub const GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: &str = "gen_ai.usage.cache_write.input_tokens";
/// `gen_ai.usage.reasoning.output_tokens`: output tokens spent reasoning.
pub const GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";

/// `gen_ai.input.messages` (opt-in content): the conversation sent, as JSON.
pub const GEN_AI_INPUT_MESSAGES: &str = "gen_ai.input.messages";
/// `gen_ai.output.messages` (opt-in content): the answer, one message per choice, as JSON.
pub const GEN_AI_OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
/// `gen_ai.system_instructions` (opt-in content): system instructions the provider takes apart
/// from the conversation, as JSON.
pub const GEN_AI_SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
/// `gen_ai.tool.definitions` (opt-in content): the tools offered to the model, as JSON.
pub const GEN_AI_TOOL_DEFINITIONS: &str = "gen_ai.tool.definitions";

/// `gen_ai.token.modality`, on the token counters: always `unknown`, since providers do not
/// split usage by modality for this crate.
pub const GEN_AI_TOKEN_MODALITY: &str = "gen_ai.token.modality";
/// `gen_ai.token.type`, on the legacy `gen_ai.client.token.usage` histogram: `input` or
/// `output`.
pub const GEN_AI_TOKEN_TYPE: &str = "gen_ai.token.type";

/// `server.address`: the host the call went to.
pub const SERVER_ADDRESS: &str = "server.address";
/// `server.port` (int): the port the call went to, explicit or the scheme's default.
pub const SERVER_PORT: &str = "server.port";
/// `error.type`: the class of failure, [`ErrorKind::as_str`](crate::event::ErrorKind::as_str)
/// (`timeout`, `rate_limit`, `server`, `cancelled`, ...).
pub const ERROR_TYPE: &str = "error.type";

/// `posthog.distinct_id`: the person, as PostHog's OTLP intake reads it.
pub const POSTHOG_DISTINCT_ID: &str = "posthog.distinct_id";

/// `chat`: a model call. PostHog's OTLP intake turns only this operation into `$ai_generation`.
pub const OPERATION_CHAT: &str = "chat";
/// `embeddings`: an embedding call.
pub const OPERATION_EMBEDDINGS: &str = "embeddings";
/// `invoke_agent`: a trace or a span of work inside it.
pub const OPERATION_INVOKE_AGENT: &str = "invoke_agent";

/// The finish reason of a call that failed, was cancelled or was cut short.
pub const FINISH_REASON_ERROR: &str = "error";
/// The token modality this crate reports.
pub const TOKEN_MODALITY_UNKNOWN: &str = "unknown";
/// `gen_ai.token.type` of input tokens (legacy histogram).
pub const TOKEN_TYPE_INPUT: &str = "input";
/// `gen_ai.token.type` of output tokens (legacy histogram).
pub const TOKEN_TYPE_OUTPUT: &str = "output";

/// Histogram, `s`: how long a chat call took, to the last chunk or the failure.
pub const METRIC_INFERENCE_DURATION: &str = "gen_ai.client.inference.duration";
/// Histogram, `s`: time to the first chunk of a streamed chat call.
pub const METRIC_INFERENCE_TIME_TO_FIRST_CHUNK: &str =
    "gen_ai.client.inference.time_to_first_chunk";
/// Counter, `{token}`: input tokens, cached ones included.
pub const METRIC_INFERENCE_USAGE_INPUT_TOKENS: &str = "gen_ai.client.inference.usage.input_tokens";
/// Counter, `{token}`: output tokens, reasoning ones included.
pub const METRIC_INFERENCE_USAGE_OUTPUT_TOKENS: &str =
    "gen_ai.client.inference.usage.output_tokens";
/// Counter, `{token}`: input tokens read from the provider's cache.
pub const METRIC_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS: &str =
    "gen_ai.client.inference.usage.cache_read.input_tokens";
/// Counter, `{token}`: input tokens written to the provider's cache.
pub const METRIC_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS: &str =
    "gen_ai.client.inference.usage.cache_write.input_tokens";
/// Counter, `{token}`: output tokens spent reasoning.
pub const METRIC_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS: &str =
    "gen_ai.client.inference.usage.reasoning.output_tokens";
/// Histogram, `s`: how long an embedding call took.
pub const METRIC_EMBEDDINGS_DURATION: &str = "gen_ai.client.embeddings.duration";
/// Histogram, `{token}`: input tokens of each embedding call.
pub const METRIC_EMBEDDINGS_INPUT_TOKENS: &str = "gen_ai.client.embeddings.operation.input_tokens";

/// Legacy histogram, `s` (semantic-conventions v1.37–v1.41): duration of chat and embedding
/// calls.
pub const LEGACY_METRIC_OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// Legacy histogram, `s` (semantic-conventions v1.37–v1.41): time to the first chunk.
pub const LEGACY_METRIC_TIME_TO_FIRST_CHUNK: &str = "gen_ai.client.operation.time_to_first_chunk";
/// Legacy histogram, `{token}` (semantic-conventions v1.3x): tokens per call by
/// `gen_ai.token.type`.
pub const LEGACY_METRIC_TOKEN_USAGE: &str = "gen_ai.client.token.usage";

/// Bucket boundaries, in seconds, of the duration and time-to-first-chunk histograms.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// Bucket boundaries of the token histograms.
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
