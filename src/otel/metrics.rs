//! The GenAI metric instruments, created once per sink.

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;

use super::semconv::*;
use super::MetricNames;

/// Token counts as the conventions count them: input tokens include cached ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tokens {
    pub(super) input: Option<u64>,
    pub(super) output: Option<u64>,
    pub(super) cache_read: Option<u64>,
    pub(super) cache_write: Option<u64>,
    pub(super) reasoning: Option<u64>,
}

pub(super) struct Instruments {
    latest: Option<Latest>,
    legacy: Option<Legacy>,
}

struct Latest {
    duration: Histogram<f64>,
    time_to_first_chunk: Histogram<f64>,
    input_tokens: Counter<u64>,
    output_tokens: Counter<u64>,
    cache_read_tokens: Counter<u64>,
    cache_write_tokens: Counter<u64>,
    reasoning_tokens: Counter<u64>,
    embeddings_duration: Histogram<f64>,
    embeddings_input_tokens: Histogram<u64>,
}

struct Legacy {
    duration: Histogram<f64>,
    time_to_first_chunk: Histogram<f64>,
    token_usage: Histogram<u64>,
}

fn seconds(meter: &Meter, name: &'static str, description: &'static str) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(DURATION_BUCKETS.to_vec())
        .build()
}

fn tokens(meter: &Meter, name: &'static str, description: &'static str) -> Counter<u64> {
    meter
        .u64_counter(name)
        .with_unit("{token}")
        .with_description(description)
        .build()
}

fn token_histogram(meter: &Meter, name: &'static str, description: &'static str) -> Histogram<u64> {
    meter
        .u64_histogram(name)
        .with_unit("{token}")
        .with_description(description)
        .with_boundaries(TOKEN_BUCKETS.to_vec())
        .build()
}

impl Instruments {
    pub(super) fn new(meter: &Meter, names: MetricNames) -> Self {
        let latest = names.latest().then(|| Latest {
            duration: seconds(
                meter,
                METRIC_INFERENCE_DURATION,
                "GenAI client inference operation duration.",
            ),
            time_to_first_chunk: seconds(
                meter,
                METRIC_INFERENCE_TIME_TO_FIRST_CHUNK,
                "Time to receive the first chunk of a streamed response.",
            ),
            input_tokens: tokens(
                meter,
                METRIC_INFERENCE_USAGE_INPUT_TOKENS,
                "Input tokens used, cached tokens included.",
            ),
            output_tokens: tokens(
                meter,
                METRIC_INFERENCE_USAGE_OUTPUT_TOKENS,
                "Output tokens used, reasoning tokens included.",
            ),
            cache_read_tokens: tokens(
                meter,
                METRIC_INFERENCE_USAGE_CACHE_READ_INPUT_TOKENS,
                "Input tokens served from the provider's cache.",
            ),
            cache_write_tokens: tokens(
                meter,
                METRIC_INFERENCE_USAGE_CACHE_WRITE_INPUT_TOKENS,
                "Input tokens written to the provider's cache.",
            ),
            reasoning_tokens: tokens(
                meter,
                METRIC_INFERENCE_USAGE_REASONING_OUTPUT_TOKENS,
                "Output tokens spent reasoning.",
            ),
            embeddings_duration: seconds(
                meter,
                METRIC_EMBEDDINGS_DURATION,
                "GenAI client embeddings operation duration.",
            ),
            embeddings_input_tokens: token_histogram(
                meter,
                METRIC_EMBEDDINGS_INPUT_TOKENS,
                "Input tokens of each embeddings operation.",
            ),
        });
        let legacy = names.legacy().then(|| Legacy {
            duration: seconds(
                meter,
                LEGACY_METRIC_OPERATION_DURATION,
                "GenAI operation duration.",
            ),
            time_to_first_chunk: seconds(
                meter,
                LEGACY_METRIC_TIME_TO_FIRST_CHUNK,
                "Time to receive the first chunk of a streamed response.",
            ),
            token_usage: token_histogram(
                meter,
                LEGACY_METRIC_TOKEN_USAGE,
                "Number of input and output tokens used.",
            ),
        });
        Self { latest, legacy }
    }

    /// Records a chat call: `attributes` are the shared ones (operation, provider, models,
    /// server, error type).
    pub(super) fn record_chat(
        &self,
        attributes: &mut Vec<KeyValue>,
        duration: f64,
        time_to_first_chunk: Option<f64>,
        tokens: &Tokens,
    ) {
        if let Some(latest) = &self.latest {
            latest.duration.record(duration, attributes);
            if let Some(ttfc) = time_to_first_chunk {
                latest.time_to_first_chunk.record(ttfc, attributes);
            }
            attributes.push(KeyValue::new(GEN_AI_TOKEN_MODALITY, TOKEN_MODALITY_UNKNOWN));
            // Every call counts its input and output, zero when the provider said nothing, as
            // the conventions ask; the subsets only when reported.
            latest
                .input_tokens
                .add(tokens.input.unwrap_or(0), attributes);
            latest
                .output_tokens
                .add(tokens.output.unwrap_or(0), attributes);
            if let Some(count) = tokens.cache_read {
                latest.cache_read_tokens.add(count, attributes);
            }
            if let Some(count) = tokens.cache_write {
                latest.cache_write_tokens.add(count, attributes);
            }
            if let Some(count) = tokens.reasoning {
                latest.reasoning_tokens.add(count, attributes);
            }
            attributes.pop();
        }
        if let Some(legacy) = &self.legacy {
            legacy.duration.record(duration, attributes);
            if let Some(ttfc) = time_to_first_chunk {
                legacy.time_to_first_chunk.record(ttfc, attributes);
            }
            legacy.record_tokens(attributes, tokens.input, tokens.output);
        }
    }

    /// Records an embedding call.
    pub(super) fn record_embeddings(
        &self,
        attributes: &mut Vec<KeyValue>,
        duration: f64,
        input_tokens: Option<u64>,
    ) {
        if let Some(latest) = &self.latest {
            latest.embeddings_duration.record(duration, attributes);
            if let Some(count) = input_tokens {
                latest.embeddings_input_tokens.record(count, attributes);
            }
        }
        if let Some(legacy) = &self.legacy {
            legacy.duration.record(duration, attributes);
            legacy.record_tokens(attributes, input_tokens, None);
        }
    }
}

impl Legacy {
    /// `gen_ai.client.token.usage` by `gen_ai.token.type`, for the counts the provider reported.
    fn record_tokens(
        &self,
        attributes: &mut Vec<KeyValue>,
        input: Option<u64>,
        output: Option<u64>,
    ) {
        for (kind, count) in [(TOKEN_TYPE_INPUT, input), (TOKEN_TYPE_OUTPUT, output)] {
            if let Some(count) = count {
                attributes.push(KeyValue::new(GEN_AI_TOKEN_TYPE, kind));
                self.token_usage.record(count, attributes);
                attributes.pop();
            }
        }
    }
}
