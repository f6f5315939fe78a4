//! The mapping from [`Event`] to PostHog's capture format: the one place that knows the `$ai_*`
//! property names.
//!
//! [`capture_event`] is a pure function: it borrows the event and returns a value that
//! serializes straight to the JSON PostHog's `/batch/` endpoint takes for one event, with no
//! intermediate `serde_json::Value`. Sinks call it on their own thread, never on the caller's.
//!
//! Property precedence: custom properties override the crate's own, except for the facts the
//! crate knows to be true: the error fields (`$ai_is_error`, `$ai_error`, `$ai_error_type`),
//! `$ai_http_status`, `$process_person_profile: false` on a personless event, and what an
//! exposure or an exception says of itself (`$feature_flag*`, `$exception_*`).
//!
//! Flags on an event's envelope become `$feature/<key>` (the value: `true`, `false` or the
//! variant) and `$active_feature_flags` (the keys that are on, sorted), as PostHog's own SDKs
//! send them; a prompt becomes `$ai_prompt_name` and `$ai_prompt_version`. Exposures are
//! `$feature_flag_called` and exceptions `$exception` events: plain PostHog events, which the
//! AI-only capture lanes refuse, so send them to `/batch/`.
//!
//! Alerts ([`Event::Alert`]) have no PostHog event of their own, so they are sent as the custom
//! events [`ALERT_EVENT`] (`llm_alert`) and [`ALERT_CLEARED_EVENT`] (`llm_alert_cleared`):
//!
//! | property | value |
//! |---|---|
//! | `alert_id` | the same uuid on an alert and the clear that ends it |
//! | `alert_state` | `raised` or `cleared` |
//! | `alert_rule` | the rule's name |
//! | `alert_metric` | `tokens`, `input_tokens`, `output_tokens`, `cached_tokens`, `cost_usd`, `calls`, `errors`, `errors:<kind>`, `error_rate`, `latency_p<N>`, `ttft_p<N>` |
//! | `alert_condition` | `above` or `unusual` |
//! | `alert_scope`, `alert_key` | `model`, `provider` or `distinct_id`, and which one |
//! | `alert_window_seconds` | the rolling window the metric was read over |
//! | `alert_observed` | the metric over the window (on a clear: when it cleared) |
//! | `alert_threshold` | what it had to exceed: the threshold, or factor × baseline |
//! | `alert_baseline`, `alert_factor` | `unusual` rules: the key's mean past window, and the factor |
//! | `alert_sample_trace_ids` | trace ids of the key's latest calls, newest first |
//! | `alert_raised_at`, `alert_firing_seconds` | on a clear: when it was raised, for how long |
//! | `$ai_model` / `$ai_provider` | the key, for model and provider alerts |
//!
//! An alert about a distinct id is that person's event; the others are personless. Like
//! exposures and exceptions, alerts are plain PostHog events, for `/batch/`.

use std::time::Duration;

#[cfg(feature = "posthog")]
pub(crate) mod size;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::{Map, Value};

use crate::event::{
    Alert, AlertState, Embedding, Envelope, Event, EventKind, Exception, Feedback, FlagExposure,
    Generation, Metric, ModelParameters, SpanRecord,
};
use crate::flags::{Flag, FlagSnapshot};
use crate::pricing::Cost;
use crate::types::{ContentPart, ImageSource, Message, Role, Tool, ToolCall};

/// The value of `$lib` and `$ai_lib`.
pub const LIB_NAME: &str = "traced-llm";
/// The value of `$lib_version` and `$ai_lib_version`.
pub const LIB_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `$ai_input`, the conversation: the size guard drops its oldest messages first.
pub(crate) const INPUT: &str = "$ai_input";
/// The property the size guard adds when it had to remove whole properties.
#[cfg(feature = "posthog")]
pub(crate) const TRUNCATION_NOTE: &str = "$ai_traced_llm_truncated";
/// Set on events kept by trace sampling: the rate they were sampled at.
#[cfg(feature = "posthog")]
pub(crate) const TRACE_SAMPLE_RATE: &str = "$ai_trace_sample_rate";
/// Properties whose strings are identities or labels, never content: the size guard never cuts
/// them.
#[cfg(feature = "posthog")]
pub(crate) const KEPT_PROPERTIES: [&str; 14] = [
    "$ai_trace_id",
    "$ai_session_id",
    "$ai_span_id",
    "$ai_parent_id",
    "$ai_span_name",
    "$ai_model",
    "$ai_provider",
    "$ai_lib",
    "$ai_lib_version",
    "$lib",
    "$lib_version",
    "$ai_completion_id",
    "$ai_stop_reason",
    "$groups",
];

/// Whether the size guard must leave `key` alone: identities, labels, and the flags and prompt
/// experiments break metrics down by.
#[cfg(feature = "posthog")]
pub(crate) fn is_kept(key: &str) -> bool {
    KEPT_PROPERTIES.contains(&key)
        || key.starts_with(FEATURE_PREFIX)
        || matches!(
            key,
            ACTIVE_FLAGS | "$ai_prompt_name" | "$ai_prompt_version" | EXCEPTION_LINK
        )
}

/// `$feature/<key>`: a flag's value on an event.
const FEATURE_PREFIX: &str = "$feature/";
/// The keys of the flags that are on.
const ACTIVE_FLAGS: &str = "$active_feature_flags";
/// The generation's link to its `$exception`.
const EXCEPTION_LINK: &str = "$exception_event_id";
/// What an exposure or exception says of itself; no custom property overrides it.
const OWN_KEYS: [&str; 9] = [
    "$feature_flag",
    "$feature_flag_response",
    "$feature_flag_id",
    "$feature_flag_version",
    "$feature_flag_reason",
    "$feature_flag_request_id",
    "$exception_list",
    "$exception_level",
    "$exception_fingerprint",
];

/// What a failed call, embedding or span says of its failure; no custom property overrides it.
const ERROR_KEYS: [&str; 3] = ["$ai_is_error", "$ai_error", "$ai_error_type"];
/// The answer's HTTP status; no custom property overrides it.
const HTTP_STATUS: &str = "$ai_http_status";
/// `false` on a personless event; no custom property overrides it, or every trace id would
/// become a person.
const PERSON_PROFILE: &str = "$process_person_profile";

/// PostHog's capture format of `event`: serialize it (e.g. with `serde_json::to_writer`) to get
/// `{"event", "distinct_id", "uuid", "timestamp", "properties"}`.
///
/// ```
/// use traced_llm::event::{Event, Generation};
/// use traced_llm::posthog;
///
/// let event = Event::from(Generation::new("gpt-4o-mini", "openai"));
/// let json = posthog::capture_event(&event).to_json();
/// assert_eq!(json["event"], "$ai_generation");
/// assert_eq!(json["properties"]["$ai_model"], "gpt-4o-mini");
/// // No distinct id: a personless event keyed by its trace id.
/// assert_eq!(json["distinct_id"], json["properties"]["$ai_trace_id"]);
/// assert_eq!(json["properties"]["$process_person_profile"], false);
/// ```
pub fn capture_event(event: &Event) -> CaptureEvent<'_> {
    CaptureEvent { event }
}

/// The custom event an alert is sent as when it is raised.
pub const ALERT_EVENT: &str = "llm_alert";
/// The custom event that follows [`ALERT_EVENT`] when the alert's condition ends.
pub const ALERT_CLEARED_EVENT: &str = "llm_alert_cleared";

/// PostHog's name for `event`: `$ai_generation`, `$ai_embedding`, `$ai_span`, `$ai_trace`,
/// `$ai_feedback`, `$ai_metric`, or for alerts [`ALERT_EVENT`] and [`ALERT_CLEARED_EVENT`].
pub fn event_name(event: &Event) -> &'static str {
    if let Event::Alert(alert) = event {
        return match alert.state {
            AlertState::Raised => ALERT_EVENT,
            AlertState::Cleared => ALERT_CLEARED_EVENT,
        };
    }
    match event.kind() {
        EventKind::Generation => "$ai_generation",
        EventKind::Embedding => "$ai_embedding",
        EventKind::Span => "$ai_span",
        EventKind::Trace => "$ai_trace",
        EventKind::Feedback => "$ai_feedback",
        EventKind::Metric => "$ai_metric",
        EventKind::FlagExposure => "$feature_flag_called",
        EventKind::Exception => "$exception",
        EventKind::Alert => ALERT_EVENT,
    }
}

/// One event in PostHog's capture format; see [`capture_event`].
#[derive(Debug, Clone, Copy)]
pub struct CaptureEvent<'a> {
    event: &'a Event,
}

impl CaptureEvent<'_> {
    /// The event as a JSON value, for tests and inspection.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a capture event always serializes")
    }
}

impl Serialize for CaptureEvent<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let envelope = self.event.envelope();
        // A call without a trace is its own trace, named by its uuid: formatted on the stack.
        let mut uuid_text = uuid::Uuid::encode_buffer();
        let trace_id: &str = match &envelope.trace_id {
            Some(trace_id) => trace_id,
            None => envelope.uuid.hyphenated().encode_lower(&mut uuid_text),
        };
        let distinct_id = envelope.distinct_id.as_deref().unwrap_or(trace_id);
        let mut map = serializer.serialize_map(Some(5))?;
        map.serialize_entry("event", event_name(self.event))?;
        map.serialize_entry("distinct_id", distinct_id)?;
        map.serialize_entry("uuid", &envelope.uuid.hyphenated())?;
        map.serialize_entry(
            "timestamp",
            &DisplayStr(humantime::format_rfc3339_micros(envelope.timestamp)),
        )?;
        map.serialize_entry(
            "properties",
            &Properties {
                event: self.event,
                trace_id,
            },
        )?;
        map.end()
    }
}

struct Properties<'a> {
    event: &'a Event,
    trace_id: &'a str,
}

impl Serialize for Properties<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let envelope = self.event.envelope();
        let mut out = PropertyWriter {
            map: serializer.serialize_map(None)?,
            custom: &envelope.properties,
        };
        match self.event {
            Event::FlagExposure(exposure) => return write_exposure(out, exposure),
            Event::Exception(exception) => return write_exception(out, exception, self.trace_id),
            Event::Alert(alert) => return write_alert(out, alert),
            _ => write_envelope(&mut out, envelope, self.trace_id)?,
        }
        let error = match self.event {
            Event::Generation(generation) => {
                write_generation(&mut out, generation)?;
                Some(generation.error.as_ref())
            }
            Event::Embedding(embedding) => {
                write_embedding(&mut out, embedding)?;
                Some(embedding.error.as_ref())
            }
            Event::Span(span) => {
                write_span(&mut out, span)?;
                Some(span.error.as_ref())
            }
            Event::Feedback(feedback) => {
                write_feedback(&mut out, feedback)?;
                None
            }
            Event::Metric(metric) => {
                write_metric(&mut out, metric)?;
                None
            }
            Event::FlagExposure(_) | Event::Exception(_) | Event::Alert(_) => None,
        };
        let personless = envelope.distinct_id.is_none();
        for (key, value) in &envelope.properties {
            let protected = ERROR_KEYS.contains(&key.as_str())
                || key == HTTP_STATUS
                || (personless && key == PERSON_PROFILE);
            if !protected {
                out.map.serialize_entry(key, value)?;
            }
        }
        if let Some(error) = error {
            out.map.serialize_entry("$ai_is_error", &error.is_some())?;
            if let Some(error) = error {
                out.map.serialize_entry("$ai_error", &DisplayStr(error))?;
                out.map
                    .serialize_entry("$ai_error_type", error.kind.as_str())?;
            }
        }
        out.map.end()
    }
}

/// Writes the crate's own properties, leaving out those a custom property overrides.
struct PropertyWriter<'a, M> {
    map: M,
    custom: &'a Map<String, Value>,
}

impl<M: SerializeMap> PropertyWriter<'_, M> {
    fn put<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), M::Error> {
        if self.custom.is_empty() || !self.custom.contains_key(key) {
            self.map.serialize_entry(key, value)?;
        }
        Ok(())
    }

    fn put_some<T: Serialize>(&mut self, key: &str, value: Option<T>) -> Result<(), M::Error> {
        match value {
            Some(value) => self.put(key, &value),
            None => Ok(()),
        }
    }
}

fn write_envelope<M: SerializeMap>(
    out: &mut PropertyWriter<'_, M>,
    envelope: &Envelope,
    trace_id: &str,
) -> Result<(), M::Error> {
    out.put("$ai_trace_id", trace_id)?;
    out.put_some("$ai_session_id", envelope.session_id.as_deref())?;
    out.put_some("$ai_span_id", envelope.span_id.as_deref())?;
    out.put_some("$ai_parent_id", envelope.parent_id.as_deref())?;
    out.put_some("$ai_span_name", envelope.span_name.as_deref())?;
    out.put("$ai_lib", LIB_NAME)?;
    out.put("$ai_lib_version", LIB_VERSION)?;
    out.put("$lib", LIB_NAME)?;
    out.put("$lib_version", LIB_VERSION)?;
    if envelope.distinct_id.is_none() {
        out.map.serialize_entry(PERSON_PROFILE, &false)?;
    }
    if !envelope.groups.is_empty() {
        out.put("$groups", &envelope.groups)?;
    }
    if let Some(prompt) = &envelope.prompt {
        out.put("$ai_prompt_name", &prompt.name)?;
        out.put_some("$ai_prompt_version", prompt.version)?;
    }
    if let Some(flags) = &envelope.flags {
        write_flags(out, flags)?;
    }
    Ok(())
}

/// `$feature/<key>` for every flag and `$active_feature_flags` for those that are on.
fn write_flags<M: SerializeMap>(
    out: &mut PropertyWriter<'_, M>,
    flags: &FlagSnapshot,
) -> Result<(), M::Error> {
    let mut key = String::from(FEATURE_PREFIX);
    for (name, flag) in flags.iter() {
        key.truncate(FEATURE_PREFIX.len());
        key.push_str(name);
        out.put(&key, &flag.value)?;
    }
    if !flags.is_empty() {
        out.put(ACTIVE_FLAGS, &ActiveKeys(flags))?;
    }
    Ok(())
}

/// The sorted keys of the flags that are on.
struct ActiveKeys<'a>(&'a FlagSnapshot);

impl Serialize for ActiveKeys<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.active_keys())
    }
}

/// Writes what every plain (non-AI) event carries: the library, groups and flags.
fn write_plain_envelope<M: SerializeMap>(
    out: &mut PropertyWriter<'_, M>,
    envelope: &Envelope,
) -> Result<(), M::Error> {
    out.put("$lib", LIB_NAME)?;
    out.put("$lib_version", LIB_VERSION)?;
    if !envelope.groups.is_empty() {
        out.put("$groups", &envelope.groups)?;
    }
    if let Some(flags) = &envelope.flags {
        write_flags(out, flags)?;
    }
    Ok(())
}

/// The custom properties, but for the keys the event says of itself.
fn write_custom<M: SerializeMap>(
    out: &mut PropertyWriter<'_, M>,
    envelope: &Envelope,
) -> Result<(), M::Error> {
    let personless = envelope.distinct_id.is_none();
    for (key, value) in &envelope.properties {
        let protected = OWN_KEYS.contains(&key.as_str())
            || ERROR_KEYS.contains(&key.as_str())
            || (personless && key == PERSON_PROFILE);
        if !protected {
            out.map.serialize_entry(key, value)?;
        }
    }
    Ok(())
}

/// `$feature_flag_called`: PostHog experiments' exposure event, as PostHog's SDKs send it.
fn write_exposure<M: SerializeMap>(
    mut out: PropertyWriter<'_, M>,
    exposure: &FlagExposure,
) -> Result<M::Ok, M::Error> {
    let envelope = &exposure.envelope;
    write_plain_envelope(&mut out, envelope)?;
    let flag: &Flag = &exposure.flag;
    out.map.serialize_entry("$feature_flag", &exposure.key)?;
    out.map
        .serialize_entry("$feature_flag_response", &flag.value)?;
    out.put(&format!("{FEATURE_PREFIX}{}", exposure.key), &flag.value)?;
    out.put(
        "locally_evaluated",
        &matches!(flag.origin, crate::flags::FlagOrigin::Local),
    )?;
    if let Some(id) = flag.id {
        out.map.serialize_entry("$feature_flag_id", &id)?;
    }
    if let Some(version) = flag.version {
        out.map.serialize_entry("$feature_flag_version", &version)?;
    }
    if let Some(reason) = &flag.reason {
        out.map.serialize_entry("$feature_flag_reason", reason)?;
    }
    if let Some(request_id) = &flag.request_id {
        out.map
            .serialize_entry("$feature_flag_request_id", request_id)?;
    }
    if envelope.distinct_id.is_none() {
        out.map.serialize_entry(PERSON_PROFILE, &false)?;
    }
    write_custom(&mut out, envelope)?;
    out.map.end()
}

/// `$exception` in the format PostHog's SDKs use: one entry in `$exception_list` typed by the
/// error's kind, valued by its message, with a `generic`, handled mechanism. It carries the
/// failed call's trace and person, and a fingerprint by kind, so error tracking groups LLM
/// failures by kind.
fn write_exception<M: SerializeMap>(
    mut out: PropertyWriter<'_, M>,
    exception: &Exception,
    trace_id: &str,
) -> Result<M::Ok, M::Error> {
    struct ExceptionList<'a>(&'a Exception);
    impl Serialize for ExceptionList<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            struct Entry<'a>(&'a Exception);
            impl Serialize for Entry<'_> {
                fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                    struct Mechanism;
                    impl Serialize for Mechanism {
                        fn serialize<S: Serializer>(
                            &self,
                            serializer: S,
                        ) -> Result<S::Ok, S::Error> {
                            let mut map = serializer.serialize_map(Some(3))?;
                            map.serialize_entry("type", "generic")?;
                            map.serialize_entry("handled", &true)?;
                            map.serialize_entry("synthetic", &false)?;
                            map.end()
                        }
                    }
                    let mut map = serializer.serialize_map(Some(3))?;
                    map.serialize_entry("type", self.0.error.kind.as_str())?;
                    map.serialize_entry("value", &DisplayStr(&self.0.error))?;
                    map.serialize_entry("mechanism", &Mechanism)?;
                    map.end()
                }
            }
            serializer.collect_seq([Entry(self.0)])
        }
    }
    let envelope = &exception.envelope;
    out.put("$ai_trace_id", trace_id)?;
    out.put_some("$ai_session_id", envelope.session_id.as_deref())?;
    out.put_some("$ai_model", exception.model.as_deref())?;
    out.put_some("$ai_provider", exception.provider.as_deref())?;
    write_plain_envelope(&mut out, envelope)?;
    if let Some(prompt) = &envelope.prompt {
        out.put("$ai_prompt_name", &prompt.name)?;
        out.put_some("$ai_prompt_version", prompt.version)?;
    }
    if envelope.distinct_id.is_none() {
        out.map.serialize_entry(PERSON_PROFILE, &false)?;
    }
    write_custom(&mut out, envelope)?;
    out.map
        .serialize_entry("$exception_list", &ExceptionList(exception))?;
    out.map.serialize_entry("$exception_level", "error")?;
    out.map.serialize_entry(
        "$exception_fingerprint",
        &DisplayStr(format_args!("traced-llm:{}", exception.error.kind)),
    )?;
    out.map
        .serialize_entry("$ai_error_type", exception.error.kind.as_str())?;
    out.map.end()
}

fn write_generation<M: SerializeMap>(
    out: &mut PropertyWriter<'_, M>,
    generation: &Generation,
) -> Result<(), M::Error> {
    let usage = &generation.usage;
    out.put("$ai_model", &generation.model)?;
    out.put("$ai_provider", &generation.provider)?;
    out.put("$ai_base_url", &generation.base_url)?;
    out.put(INPUT, &generation.input.as_deref().map(InputMessages))?;
    out.put(
        "$ai_output_choices",
        &generation.output.as_deref().map(OutputChoices),
    )?;
    // Counts the provider did not report are left out: "unknown", not 0.
    out.put_some("$ai_input_tokens", usage.input_tokens)?;
    out.put_some("$ai_output_tokens", output_tokens(generation))?;
    out.put_some("$ai_cache_read_input_tokens", usage.cache_read_input_tokens)?;
    out.put_some(
        "$ai_cache_creation_input_tokens",
        usage.cache_creation_input_tokens,
    )?;
    if let Some((five_minutes, one_hour)) = cache_creation_by_ttl(usage) {
        // PostHog bills the split only when both keys are there.
        out.put("$ai_cache_creation_5m_input_tokens", &five_minutes)?;
        out.put("$ai_cache_creation_1h_input_tokens", &one_hour)?;
    }
    out.put_some("$ai_reasoning_tokens", usage.reasoning_tokens)?;
    out.put_some(
        "$ai_web_search_count",
        usage.web_search_count.filter(|count| *count > 0),
    )?;
    out.put(
        "$ai_cache_reporting_exclusive",
        &generation.cache_reporting_exclusive(),
    )?;
    out.put("$ai_latency", &seconds(generation.latency))?;
    out.put_some(
        "$ai_time_to_first_token",
        generation.time_to_first_token.map(seconds),
    )?;
    out.map
        .serialize_entry(HTTP_STATUS, &generation.http_status)?;
    out.put("$ai_model_parameters", &Parameters(&generation.parameters))?;
    if !generation.tools.is_empty() {
        out.put("$ai_tools", &Tools(&generation.tools))?;
    }
    out.put_some("$ai_stop_reason", generation.stop_reason.as_deref())?;
    out.put_some("$ai_completion_id", generation.completion_id.as_deref())?;
    if !generation.provider_metadata.is_empty() {
        out.put("$ai_provider_metadata", &generation.provider_metadata)?;
    }
    out.put_some(
        EXCEPTION_LINK,
        generation.exception_id.map(uuid::Uuid::hyphenated),
    )?;
    match (generation.cost, usage.cost_usd) {
        // The provider's charge alone: PostHog keeps a total it is given and splits it itself.
        (None, Some(total)) => out.put("$ai_total_cost_usd", &total),
        (cost, _) => write_cost(out, cost),
    }
}

/// `$ai_output_tokens`. The crate's count includes reasoning; PostHog adds `$ai_reasoning_tokens`
/// back for the Gemini models whose thoughts Google reports apart (2.5 and 3), so for those the
/// reasoning is taken out here and the bill PostHog computes is the one Google sends.
fn output_tokens(generation: &Generation) -> Option<u64> {
    let output = generation.usage.output_tokens?;
    match generation.usage.reasoning_tokens {
        Some(reasoning) if posthog_adds_reasoning(&generation.model) => {
            Some(output.saturating_sub(reasoning))
        }
        _ => Some(output),
    }
}

/// Whether PostHog's cost step adds the reasoning tokens to the output tokens for `model`:
/// names starting `gemini-2.5-`, `gemini-3-` or `gemini-3.<n>-`, in any case.
fn posthog_adds_reasoning(model: &str) -> bool {
    fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
        let head = text.get(..prefix.len())?;
        head.eq_ignore_ascii_case(prefix)
            .then(|| &text[prefix.len()..])
    }
    if strip_prefix_ci(model, "gemini-2.5-").is_some() {
        return true;
    }
    let Some(rest) = strip_prefix_ci(model, "gemini-3") else {
        return false;
    };
    let rest = match rest.strip_prefix('.') {
        Some(minor) => {
            let digits = minor.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return false;
            }
            &minor[digits..]
        }
        None => rest,
    };
    rest.starts_with('-')
}

/// The 5-minute and 1-hour parts of the cache writes, when the provider split them; a part it
/// left out is what the total leaves for it.
fn cache_creation_by_ttl(usage: &crate::types::Usage) -> Option<(u64, u64)> {
    let total = usage.cache_creation_input_tokens;
    match (
        usage.cache_creation_5m_input_tokens,
        usage.cache_creation_1h_input_tokens,
    ) {
        (None, None) => None,
        (Some(five), Some(one)) => Some((five, one)),
        (Some(five), None) => Some((five, total.unwrap_or(five).saturating_sub(five))),
        (None, Some(one)) => Some((total.unwrap_or(one).saturating_sub(one), one)),
    }
}

/// Only cost from the user's own prices is on an event: PostHog keeps cost it is given, so an
/// estimate must never override the server's table.
fn write_cost<M: SerializeMap>(
    out: &mut PropertyWriter<'_, M>,
    cost: Option<Cost>,
) -> Result<(), M::Error> {
    if let Some(cost) = cost {
        out.put("$ai_input_cost_usd", &cost.input_usd)?;
        out.put("$ai_output_cost_usd", &cost.output_usd)?;
        out.put("$ai_total_cost_usd", &cost.total_usd)?;
    }
    Ok(())
}

fn write_embedding<M: SerializeMap>(
    out: &mut PropertyWriter<'_, M>,
    embedding: &Embedding,
) -> Result<(), M::Error> {
    out.put("$ai_model", &embedding.model)?;
    out.put("$ai_provider", &embedding.provider)?;
    out.put("$ai_base_url", &embedding.base_url)?;
    out.put(INPUT, &embedding.input)?;
    out.put_some("$ai_input_tokens", embedding.usage.input_tokens)?;
    out.put("$ai_latency", &seconds(embedding.latency))?;
    out.map
        .serialize_entry(HTTP_STATUS, &embedding.http_status)?;
    out.put_some(
        EXCEPTION_LINK,
        embedding.exception_id.map(uuid::Uuid::hyphenated),
    )?;
    write_cost(out, embedding.cost)
}

fn write_span<M: SerializeMap>(
    out: &mut PropertyWriter<'_, M>,
    span: &SpanRecord,
) -> Result<(), M::Error> {
    out.put("$ai_input_state", &span.input_state)?;
    out.put("$ai_output_state", &span.output_state)?;
    out.put("$ai_latency", &seconds(span.latency))
}

fn write_feedback<M: SerializeMap>(
    out: &mut PropertyWriter<'_, M>,
    feedback: &Feedback,
) -> Result<(), M::Error> {
    out.put_some("$ai_feedback_text", feedback.text.as_deref())?;
    out.put_some("$ai_feedback_score", feedback.score)
}

fn write_metric<M: SerializeMap>(
    out: &mut PropertyWriter<'_, M>,
    metric: &Metric,
) -> Result<(), M::Error> {
    out.put("$ai_metric_name", &metric.name)?;
    match &metric.value {
        Value::String(text) => out.put("$ai_metric_value", text),
        other => out.put("$ai_metric_value", &DisplayStr(other)),
    }
}

/// An alert is no trace: the library, groups and flags of a plain event, its own `alert_*`
/// properties, then the custom ones. Like exposures and exceptions it is a plain PostHog
/// event, for `/batch/`.
fn write_alert<M: SerializeMap>(
    mut out: PropertyWriter<'_, M>,
    alert: &Alert,
) -> Result<M::Ok, M::Error> {
    let envelope = &alert.envelope;
    write_plain_envelope(&mut out, envelope)?;
    if envelope.distinct_id.is_none() {
        out.map.serialize_entry(PERSON_PROFILE, &false)?;
    }
    out.put("alert_id", &alert.alert_id.hyphenated())?;
    out.put("alert_state", alert.state.as_str())?;
    out.put("alert_rule", &alert.rule)?;
    out.put("alert_metric", &alert.metric)?;
    out.put("alert_condition", &alert.condition)?;
    out.put("alert_scope", &alert.scope)?;
    out.put("alert_key", &alert.key)?;
    out.put("alert_window_seconds", &seconds(alert.window))?;
    out.put("alert_observed", &alert.observed)?;
    out.put_some(
        "alert_threshold",
        alert.threshold.is_finite().then_some(alert.threshold),
    )?;
    out.put_some("alert_baseline", alert.baseline)?;
    out.put_some("alert_factor", alert.factor)?;
    out.put("alert_sample_trace_ids", &alert.sample_trace_ids)?;
    if alert.state == AlertState::Cleared {
        out.put(
            "alert_raised_at",
            &DisplayStr(humantime::format_rfc3339_micros(alert.raised_at)),
        )?;
        out.put_some("alert_firing_seconds", alert.firing_for.map(seconds))?;
    }
    match alert.scope.as_str() {
        "model" => out.put("$ai_model", &alert.key)?,
        "provider" => out.put("$ai_provider", &alert.key)?,
        _ => {}
    }
    write_custom(&mut out, envelope)?;
    out.map.end()
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Serializes a `Display` value as a JSON string without allocating.
struct DisplayStr<T>(T);

impl<T: std::fmt::Display> Serialize for DisplayStr<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

struct Parameters<'a>(&'a ModelParameters);

impl Serialize for Parameters<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut map = serializer.serialize_map(None)?;
        if let Some(value) = p.temperature {
            map.serialize_entry("temperature", &value)?;
        }
        if let Some(value) = p.max_tokens {
            map.serialize_entry("max_tokens", &value)?;
        }
        if let Some(value) = p.top_p {
            map.serialize_entry("top_p", &value)?;
        }
        if let Some(value) = p.frequency_penalty {
            map.serialize_entry("frequency_penalty", &value)?;
        }
        if let Some(value) = p.presence_penalty {
            map.serialize_entry("presence_penalty", &value)?;
        }
        if !p.stop.is_empty() {
            map.serialize_entry("stop", &p.stop)?;
        }
        if let Some(value) = p.seed {
            map.serialize_entry("seed", &value)?;
        }
        map.serialize_entry("stream", &p.stream)?;
        map.end()
    }
}

/// `$ai_tools` in OpenAI's function-tool shape, which PostHog renders.
struct Tools<'a>(&'a [Tool]);

impl Serialize for Tools<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Function<'a>(&'a Tool);
        impl Serialize for Function<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("name", &self.0.name)?;
                if let Some(description) = &self.0.description {
                    map.serialize_entry("description", description)?;
                }
                map.serialize_entry("parameters", &self.0.parameters)?;
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for tool in self.0 {
            seq.serialize_element(&TypedEntry("function", "function", Function(tool)))?;
        }
        seq.end()
    }
}

/// `{"type": kind, key: value}`.
struct TypedEntry<'a, T>(&'a str, &'a str, T);

impl<T: Serialize> Serialize for TypedEntry<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry("type", self.0)?;
        map.serialize_entry(self.1, &self.2)?;
        map.end()
    }
}

/// `$ai_input`: one `{role, content}` object per message. A message of one text part has a
/// string as content; any other has a list of blocks.
struct InputMessages<'a>(&'a [Message]);

impl Serialize for InputMessages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for message in self.0 {
            seq.serialize_element(&InputMessage(message))?;
        }
        seq.end()
    }
}

struct InputMessage<'a>(&'a Message);

impl Serialize for InputMessage<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let message = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("role", message.role.as_str())?;
        match message.content.as_slice() {
            [ContentPart::Text { text }] => map.serialize_entry("content", text)?,
            [ContentPart::ToolResult {
                tool_call_id,
                content,
                ..
            }] if message.role == Role::Tool => {
                map.serialize_entry("tool_call_id", tool_call_id)?;
                map.serialize_entry("content", content)?;
            }
            parts => map.serialize_entry("content", &Blocks(parts))?,
        }
        if let Some(name) = &message.name {
            map.serialize_entry("name", name)?;
        }
        map.end()
    }
}

/// `$ai_output_choices`: one assistant message whose content is a list of blocks.
struct OutputChoices<'a>(&'a [ContentPart]);

impl Serialize for OutputChoices<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Choice<'a>(&'a [ContentPart]);
        impl Serialize for Choice<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("role", "assistant")?;
                map.serialize_entry("content", &Blocks(self.0))?;
                map.end()
            }
        }
        let mut seq = serializer.serialize_seq(Some(1))?;
        seq.serialize_element(&Choice(self.0))?;
        seq.end()
    }
}

struct Blocks<'a>(&'a [ContentPart]);

impl Serialize for Blocks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for part in self.0 {
            seq.serialize_element(&Block(part))?;
        }
        seq.end()
    }
}

/// One content block: `{type: "text"}`, `{type: "image_url"}`, `{type: "function"}` or
/// `{type: "tool_result"}`. Inline base64 media never leaves the process: it becomes a
/// placeholder naming its media type.
struct Block<'a>(&'a ContentPart);

impl Serialize for Block<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ContentPart::Text { text } => {
                TypedEntry("text", "text", text.as_str()).serialize(serializer)
            }
            ContentPart::Image { source } => {
                TypedEntry("image_url", "image_url", ImageUrl(source)).serialize(serializer)
            }
            ContentPart::ToolCall(call) => FunctionBlock(call).serialize(serializer),
            ContentPart::ToolResult {
                tool_call_id,
                content,
                is_error,
            } => {
                let mut map = serializer.serialize_map(None)?;
                map.serialize_entry("type", "tool_result")?;
                map.serialize_entry("tool_call_id", tool_call_id)?;
                map.serialize_entry("content", content)?;
                if *is_error {
                    map.serialize_entry("is_error", &true)?;
                }
                map.end()
            }
        }
    }
}

/// `{"type": "function", "id", "function": {"name", "arguments"}}`, the block PostHog's server
/// recognises as a tool call. `arguments` is the JSON text the model wrote.
struct FunctionBlock<'a>(&'a ToolCall);

impl Serialize for FunctionBlock<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Function<'a>(&'a ToolCall);
        impl Serialize for Function<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = serializer.serialize_map(Some(2))?;
                map.serialize_entry("name", &self.0.name)?;
                map.serialize_entry("arguments", &self.0.arguments)?;
                map.end()
            }
        }
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("type", "function")?;
        map.serialize_entry("id", &self.0.id)?;
        map.serialize_entry("function", &Function(self.0))?;
        map.end()
    }
}

struct ImageUrl<'a>(&'a ImageSource);

impl Serialize for ImageUrl<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        match self.0 {
            ImageSource::Url { url } => match data_url_media_type(url) {
                Some(media_type) => {
                    map.serialize_entry("url", &DisplayStr(Base64Placeholder(media_type)))?
                }
                None => map.serialize_entry("url", url)?,
            },
            ImageSource::Base64 { media_type, .. } => {
                map.serialize_entry("url", &DisplayStr(Base64Placeholder(media_type)))?
            }
        }
        map.end()
    }
}

/// The media type of a `data:<type>;base64,` URL.
fn data_url_media_type(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("data:")?;
    let (header, _) = rest.split_once(',')?;
    header.strip_suffix(";base64")
}

/// The text that stands in for inline base64 media: `[base64 image/png redacted]`.
struct Base64Placeholder<'a>(&'a str);

impl std::fmt::Display for Base64Placeholder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[base64 {} redacted]", self.0)
    }
}
