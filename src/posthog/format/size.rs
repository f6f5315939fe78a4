//! The per-event size guard: measures an event as PostHog's capture server will, and shrinks
//! one that is over budget instead of letting the server drop it.
//!
//! The server stores each event as an escaped JSON string inside a Kafka record capped at
//! 1,000,000 bytes, so every quote and backslash of our JSON costs twice. Shrinking works on
//! the event's capture JSON, so it serves every kind of event alike, and goes from cheapest
//! loss to dearest: inline base64 media first, then the oldest `$ai_input` messages (the system
//! prompt and the last user message stay), then the largest strings, each cut with a visible
//! marker. The top-level fields (event, distinct id, uuid, timestamp), ids, numbers and flags
//! (token counts, latency, `$ai_is_error`) are never touched.

use serde_json::{Map, Value};

use super::{is_kept, INPUT, TRUNCATION_NOTE};
use crate::event::Event;

/// Appended to every string cut by the guard.
pub(crate) const TRUNCATED_MARKER: &str = "… [truncated]";
/// Runs of base64 characters at least this long, outside a data URL, count as media.
const MIN_BASE64_RUN: usize = 1024;
/// How often the guard re-serializes before it falls back to dropping content wholesale.
const MAX_ROUNDS: usize = 24;

/// The longest id the guard lets through, in characters: PostHog's capture keeps 200
/// characters of a distinct id.
pub(crate) const MAX_ID_CHARS: usize = 200;
/// The deepest nesting kept in a property value. PostHog's capture (like `serde_json`) stops
/// parsing at 128 levels, and the event itself sits two levels down; deeper structure is
/// replaced by [`NESTING_MARKER`].
pub(crate) const MAX_NESTING: usize = 64;
/// What stands in for structure nested deeper than [`MAX_NESTING`].
pub(crate) const NESTING_MARKER: &str = "[traced-llm: nested too deep, cut]";

/// Makes the event safe to serialize and to parse on the server, whatever its size: ids over
/// [`MAX_ID_CHARS`] are cut with a marker that keeps them distinct, and values nested deeper
/// than [`MAX_NESTING`] are cut. Says whether anything changed.
pub(crate) fn prepare(event: &mut Event) -> bool {
    let mut changed = false;
    let envelope = event.envelope_mut();
    for id in [
        &mut envelope.distinct_id,
        &mut envelope.trace_id,
        &mut envelope.session_id,
        &mut envelope.span_id,
        &mut envelope.parent_id,
        &mut envelope.span_name,
    ]
    .into_iter()
    .flatten()
    {
        changed |= cut_id(id);
    }
    for value in envelope.properties.values_mut() {
        changed |= cut_nesting(value, 1);
    }
    for value in envelope.groups.values_mut() {
        changed |= cut_nesting(value, 1);
    }
    match event {
        Event::Generation(generation) => {
            for value in generation.provider_metadata.values_mut() {
                changed |= cut_nesting(value, 1);
            }
            for tool in &mut generation.tools {
                changed |= cut_nesting(&mut tool.parameters, 2);
            }
        }
        Event::Span(span) => {
            for value in [&mut span.input_state, &mut span.output_state]
                .into_iter()
                .flatten()
            {
                changed |= cut_nesting(value, 1);
            }
        }
        Event::Metric(metric) => changed |= cut_nesting(&mut metric.value, 1),
        Event::Embedding(_)
        | Event::Feedback(_)
        | Event::FlagExposure(_)
        | Event::Exception(_)
        | Event::Alert(_) => {}
    }
    changed
}

/// Cuts `id` to [`MAX_ID_CHARS`]: its start, then `…[cut xxxxxxxx]` with the FNV-1a hash of
/// the whole id, so two long ids with one start stay apart and one id is always cut alike.
pub(crate) fn cut_id(id: &mut String) -> bool {
    if id.len() <= MAX_ID_CHARS || id.chars().count() <= MAX_ID_CHARS {
        return false;
    }
    let marker = format!(
        "…[cut {:08x}]",
        crate::posthog::sample::fnv1a_32(id.as_bytes())
    );
    let keep = MAX_ID_CHARS - marker.chars().count();
    let end = id.char_indices().nth(keep).map_or(id.len(), |(at, _)| at);
    id.truncate(end);
    id.push_str(&marker);
    true
}

/// Replaces whatever sits deeper than [`MAX_NESTING`] below `value` (itself at `depth`).
fn cut_nesting(value: &mut Value, depth: usize) -> bool {
    match value {
        Value::Array(_) | Value::Object(_) if depth >= MAX_NESTING => {
            let deep = std::mem::replace(value, Value::String(NESTING_MARKER.into()));
            drop_deep(deep);
            true
        }
        Value::Array(items) => {
            let mut changed = false;
            for item in items {
                changed |= cut_nesting(item, depth + 1);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            for item in map.values_mut() {
                changed |= cut_nesting(item, depth + 1);
            }
            changed
        }
        _ => false,
    }
}

/// Frees a deeply nested value without recursing once per level (which could overflow the
/// stack of an encoder thread).
fn drop_deep(value: Value) {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => stack.extend(map.into_iter().map(|(_, item)| item)),
            _ => {}
        }
    }
}

/// What `json` costs against the server's limit: its length, plus one per quote and backslash.
pub(crate) fn encoded_cost(json: &[u8]) -> usize {
    json.len() + json.iter().filter(|&&b| b == b'"' || b == b'\\').count()
}

/// Whether `json` is within `budget`, skipping the count when it cannot be over.
pub(crate) fn fits(json: &[u8], budget: usize) -> bool {
    json.len() <= budget / 2 || encoded_cost(json) <= budget
}

/// The cost of one character of a JSON string value, after both rounds of escaping.
fn char_cost(c: char) -> usize {
    match c {
        '"' | '\\' => 4,
        '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 3,
        c if (c as u32) < 0x20 => 7,
        c => c.len_utf8(),
    }
}

fn str_cost(s: &str) -> usize {
    s.chars().map(char_cost).sum::<usize>() + 4
}

fn cost_of(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(0, |json| encoded_cost(&json))
}

fn to_json(value: &Value) -> Vec<u8> {
    // A `Value` always serializes.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Shrinks the capture JSON `json` (one event) until it costs at most `budget`.
pub(crate) fn shrink(json: &[u8], budget: usize) -> Vec<u8> {
    let Ok(mut event) = serde_json::from_slice::<Value>(json) else {
        return json.to_vec();
    };
    let Some(properties) = event.get_mut("properties").and_then(Value::as_object_mut) else {
        return json.to_vec();
    };
    for_each_content_string(properties, &mut |s| {
        if let Some(redacted) = redact_base64_in(s) {
            *s = redacted;
        }
    });
    let mut out = to_json(&event);
    if fits(&out, budget) {
        return out;
    }
    if let Some(properties) = event.get_mut("properties").and_then(Value::as_object_mut) {
        drop_old_messages(properties, encoded_cost(&out) - budget);
    }
    out = to_json(&event);
    for _ in 0..MAX_ROUNDS {
        let cost = encoded_cost(&out);
        if cost <= budget {
            return out;
        }
        let Some(properties) = event.get_mut("properties").and_then(Value::as_object_mut) else {
            break;
        };
        if !cut_largest(properties, cost - budget) {
            break;
        }
        out = to_json(&event);
    }
    if fits(&out, budget) {
        return out;
    }
    // Nothing left to cut by the rules above (e.g. thousands of small properties): drop the
    // text and structures, keep ids, numbers and flags, and say how much went.
    if let Some(properties) = event.get_mut("properties").and_then(Value::as_object_mut) {
        let before = properties.len();
        properties.retain(|key, value| {
            is_kept(key) || matches!(value, Value::Number(_) | Value::Bool(_) | Value::Null)
        });
        let removed = before - properties.len();
        properties.insert(
            TRUNCATION_NOTE.into(),
            Value::String(format!(
                "[traced-llm: {removed} properties removed to fit PostHog's event size limit]"
            )),
        );
    }
    to_json(&event)
}

/// Calls `f` on every string of the properties the guard may change.
fn for_each_content_string(properties: &mut Map<String, Value>, f: &mut dyn FnMut(&mut String)) {
    for (key, value) in properties.iter_mut() {
        if !is_kept(key) {
            for_each_value_string(value, f);
        }
    }
}

fn for_each_value_string(value: &mut Value, f: &mut dyn FnMut(&mut String)) {
    match value {
        Value::String(s) => f(s),
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| for_each_value_string(item, f)),
        Value::Object(map) => map
            .values_mut()
            .for_each(|item| for_each_value_string(item, f)),
        _ => {}
    }
}

/// Removes the oldest `$ai_input` messages until about `excess` is saved, keeping system
/// messages and the last user message, and puts a marker where they were.
fn drop_old_messages(properties: &mut Map<String, Value>, excess: usize) {
    let Some(Value::Array(messages)) = properties.get_mut(INPUT) else {
        return;
    };
    let role = |message: &Value| {
        message
            .get("role")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let last_user = messages
        .iter()
        .rposition(|m| role(m).as_deref() == Some("user"));
    let mut saved = 0;
    let mut remove = vec![false; messages.len()];
    for (index, message) in messages.iter().enumerate() {
        if saved >= excess {
            break;
        }
        if role(message).as_deref() == Some("system") || Some(index) == last_user {
            continue;
        }
        remove[index] = true;
        saved += cost_of(message);
    }
    let removed = remove.iter().filter(|&&r| r).count();
    if removed == 0 {
        return;
    }
    let first = remove.iter().position(|&r| r).unwrap_or(0);
    let mut kept = Vec::with_capacity(messages.len() - removed + 1);
    for (index, message) in std::mem::take(messages).into_iter().enumerate() {
        if index == first {
            kept.push(serde_json::json!({
                "role": "system",
                "content": format!(
                    "[traced-llm: {removed} earlier messages removed to fit PostHog's event size limit]"
                ),
            }));
        }
        if !remove[index] {
            kept.push(message);
        }
    }
    *messages = kept;
}

/// Cuts the largest strings, largest first, until about `excess` is saved. Returns `false`
/// when no string is left worth cutting.
fn cut_largest(properties: &mut Map<String, Value>, excess: usize) -> bool {
    let marker = str_cost(TRUNCATED_MARKER);
    // Slack covers the estimate's error; another round mops up the rest.
    let mut left = excess + excess / 64 + 64;
    let mut costs = Vec::new();
    for_each_content_string(properties, &mut |s| costs.push(str_cost(s)));
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_unstable_by_key(|&index| std::cmp::Reverse(costs[index]));
    let mut keep = vec![None; costs.len()];
    for index in order {
        let cost = costs[index];
        if left == 0 || cost <= marker + 8 {
            break;
        }
        let kept = cost.saturating_sub(left + marker).max(4);
        keep[index] = Some(kept);
        left = left.saturating_sub(cost.saturating_sub(kept + marker).max(1));
    }
    if keep.iter().all(Option::is_none) {
        return false;
    }
    let mut index = 0;
    for_each_content_string(properties, &mut |s| {
        if let Some(kept) = keep[index] {
            truncate_to(s, kept - 4);
            s.push_str(TRUNCATED_MARKER);
        }
        index += 1;
    });
    true
}

fn is_base64_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_')
}

/// Real base64 mixes upper case, lower case and digits; a long run of one letter does not.
fn looks_like_base64(run: &str) -> bool {
    let bytes = run.as_bytes();
    bytes.iter().any(u8::is_ascii_uppercase)
        && bytes.iter().any(u8::is_ascii_lowercase)
        && bytes.iter().any(u8::is_ascii_digit)
}

/// `s` with data URLs and base64 runs of at least [`MIN_BASE64_RUN`] bytes replaced, or `None`
/// when there is nothing to replace.
fn redact_base64_in(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    if bytes.len() < 64 {
        return None;
    }
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_base64_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_base64_byte(bytes[i]) {
            i += 1;
        }
        let run = &s[start..i];
        if run.len() < 16 {
            continue;
        }
        // A data URL's payload follows `data:<type>;base64,`; the media type is short.
        let data_url = if s[..start].ends_with(";base64,") {
            let window = start.saturating_sub(128).max(copied);
            let window = (window..start)
                .find(|&at| s.is_char_boundary(at))
                .unwrap_or(start);
            s[window..start]
                .rfind("data:")
                .map(|at| window + at)
                .filter(|&at| !s[at..start].contains(' '))
        } else {
            None
        };
        let (from, placeholder) = match data_url {
            Some(at) => {
                let media = &s[at + 5..start - ";base64,".len()];
                (at, format!("[base64 {media} redacted]"))
            }
            _ if run.len() >= MIN_BASE64_RUN && looks_like_base64(run) => {
                (start, "[base64 redacted]".to_owned())
            }
            _ => continue,
        };
        let out = out.get_or_insert_with(|| String::with_capacity(s.len() / 2));
        out.push_str(&s[copied..from]);
        out.push_str(&placeholder);
        copied = i;
    }
    let mut out = out?;
    out.push_str(&s[copied..]);
    Some(out)
}

/// Cuts `s` to at most `cost` (as [`char_cost`] counts), on a character boundary.
fn truncate_to(s: &mut String, cost: usize) {
    let mut used = 0;
    let mut end = s.len();
    for (index, c) in s.char_indices() {
        used += char_cost(c);
        if used > cost {
            end = index;
            break;
        }
    }
    s.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, Generation};
    use crate::posthog::capture_event;
    use crate::types::{ContentPart, Message, Usage};
    use std::time::Duration;

    fn json_of(event: &Event) -> Vec<u8> {
        serde_json::to_vec(&capture_event(event)).unwrap()
    }

    fn generation_with(input: Vec<Message>, output: &str) -> Event {
        let mut generation = Generation::new("gpt-4o-mini", "openai");
        generation.input = Some(input);
        generation.output = Some(vec![ContentPart::text(output)]);
        generation.usage = Usage::new(123_456, 7_890);
        generation.latency = Duration::from_millis(1234);
        generation.error = Some(crate::event::ErrorInfo::new(
            crate::event::ErrorKind::Stream,
            "boom",
        ));
        Event::from(generation)
    }

    #[test]
    fn cost_counts_quotes_and_backslashes_twice() {
        assert_eq!(encoded_cost(br#"{"a":"x\"y"}"#), 12 + 6);
        let json = serde_json::to_vec(&"\"".repeat(10)).unwrap();
        assert_eq!(encoded_cost(&json), 2 * 2 + 10 * 4);
        assert_eq!(str_cost(&"\"".repeat(10)), 10 * 4 + 4);
    }

    #[test]
    fn data_urls_and_long_base64_become_placeholders() {
        let payload = "QUJDa2".repeat(300);
        let s = format!("see data:image/png;base64,{payload} and {payload} end");
        assert_eq!(
            redact_base64_in(&s).unwrap(),
            "see [base64 image/png redacted] and [base64 redacted] end"
        );
        assert_eq!(
            redact_base64_in("short text with no media at all, just words"),
            None
        );
    }

    #[test]
    fn oversized_event_keeps_system_last_user_counts_and_error() {
        let big = "x".repeat(300_000);
        let input = vec![
            Message::system("be brief"),
            Message::user(big.clone()),
            Message::assistant(big.clone()),
            Message::user(big.clone()),
            Message::assistant("ok"),
            Message::user("final question"),
        ];
        let event = generation_with(input, &"y".repeat(1000));
        let json = shrink(&json_of(&event), 500_000);
        assert!(encoded_cost(&json) <= 500_000);
        let value: Value = serde_json::from_slice(&json).unwrap();
        let props = &value["properties"];
        assert_eq!(props["$ai_input_tokens"], 123_456);
        assert_eq!(props["$ai_output_tokens"], 7_890);
        assert_eq!(props["$ai_latency"], 1.234);
        assert_eq!(props["$ai_is_error"], true);
        let input = props["$ai_input"].as_array().unwrap();
        assert_eq!(input[0]["content"], "be brief");
        assert!(input[1]["content"]
            .as_str()
            .unwrap()
            .starts_with("[traced-llm: "));
        assert_eq!(input.last().unwrap()["content"], "final question");
    }

    #[test]
    fn thousands_of_small_properties_fall_back_to_ids_and_numbers() {
        let mut generation = Generation::new("gpt-4o-mini", "openai");
        generation.usage = Usage::new(42, 7);
        for index in 0..40_000 {
            generation
                .envelope
                .properties
                .insert(format!("k{index}"), Value::String("v".repeat(20)));
        }
        let event = Event::from(generation);
        let json = shrink(&json_of(&event), 400_000);
        assert!(encoded_cost(&json) <= 400_000);
        let value: Value = serde_json::from_slice(&json).unwrap();
        let props = &value["properties"];
        assert_eq!(props["$ai_input_tokens"], 42);
        assert_eq!(props["$ai_model"], "gpt-4o-mini");
        assert_eq!(value["uuid"], event.envelope().uuid.to_string());
        assert!(props["$ai_traced_llm_truncated"]
            .as_str()
            .unwrap()
            .starts_with("[traced-llm: "));
    }

    #[test]
    fn deep_nesting_and_long_ids_are_cut_with_markers() {
        let mut generation = Generation::new("gpt-4o-mini", "openai");
        let mut deep = Value::from("bottom");
        for _ in 0..200 {
            deep = serde_json::json!({ "down": deep });
        }
        generation.envelope.properties.insert("deep".into(), deep);
        generation.envelope.trace_id = Some("t".repeat(1_200_000));
        generation.envelope.distinct_id = Some("ü".repeat(300));
        let mut event = Event::from(generation);
        assert!(prepare(&mut event));
        let json = json_of(&event);
        // The server's parser (and serde_json's) takes it again.
        let value: Value = serde_json::from_slice(&json).unwrap();
        let trace_id = value["properties"]["$ai_trace_id"].as_str().unwrap();
        assert_eq!(trace_id.chars().count(), MAX_ID_CHARS);
        assert!(trace_id.starts_with("tttt") && trace_id.contains("…[cut "));
        let distinct_id = value["distinct_id"].as_str().unwrap();
        assert_eq!(distinct_id.chars().count(), MAX_ID_CHARS);
        let mut level = &value["properties"]["deep"];
        let mut depth = 1;
        while let Some(next) = level.get("down") {
            level = next;
            depth += 1;
        }
        assert_eq!((level.as_str(), depth), (Some(NESTING_MARKER), MAX_NESTING));
        // Cut alike every time: a trace stays one trace.
        let mut again = "t".repeat(1_200_000);
        cut_id(&mut again);
        assert_eq!(again, trace_id);
        assert!(!prepare(&mut event));
    }

    #[test]
    fn one_huge_string_of_quotes_is_cut_on_a_char_boundary() {
        let text = "\"é".repeat(400_000);
        let event = generation_with(vec![Message::user(text)], "ok");
        let json = shrink(&json_of(&event), 200_000);
        let cost = encoded_cost(&json);
        assert!(cost <= 200_000, "{cost}");
        assert!(cost > 150_000, "cut far too much: {cost}");
        let value: Value = serde_json::from_slice(&json).unwrap();
        let content = value["properties"]["$ai_input"][0]["content"]
            .as_str()
            .unwrap();
        assert!(content.ends_with(TRUNCATED_MARKER));
    }
}
