//! The per-event size guard: measures an event as PostHog's capture server will, and shrinks
//! one that is over budget instead of letting the server drop it.
//!
//! The server stores each event as an escaped JSON string inside a Kafka record capped at
//! 1,000,000 bytes, so every quote and backslash of our JSON costs twice. Shrinking goes from
//! cheapest loss to dearest: inline base64 media first, then the oldest input messages (the
//! system prompt and the last user message stay), then the largest strings, each cut with a
//! visible marker. Ids, timestamps, token counts, latency and the error flag are never touched.

use serde_json::Value;

use crate::event::posthog::capture_event;
use crate::event::{Event, Generation};
use crate::types::{ContentPart, ImageSource, Message, Role};

/// Appended to every string cut by the guard.
pub(crate) const TRUNCATED_MARKER: &str = "… [truncated]";
/// Runs of base64 characters at least this long, outside a data URL, count as media.
const MIN_BASE64_RUN: usize = 1024;
/// How often the guard re-serializes before it falls back to dropping content wholesale.
const MAX_ROUNDS: usize = 24;

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

fn serialize(event: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    // A capture event holds only strings, numbers and JSON values: it always serializes.
    let _ = serde_json::to_writer(&mut out, &capture_event(event));
    out
}

/// Shrinks `event` until its capture JSON costs at most `budget`, and returns that JSON.
pub(crate) fn shrink(event: &mut Event, budget: usize) -> Vec<u8> {
    let Event::Generation(generation) = event;
    redact_base64(generation);
    let json = serialize(event);
    if fits(&json, budget) {
        return json;
    }
    let Event::Generation(generation) = event;
    drop_old_messages(generation, encoded_cost(&json) - budget);
    let mut json = serialize(event);
    for _ in 0..MAX_ROUNDS {
        let cost = encoded_cost(&json);
        if cost <= budget {
            return json;
        }
        let Event::Generation(generation) = event;
        if !cut_largest(generation, cost - budget) {
            break;
        }
        json = serialize(event);
    }
    if fits(&json, budget) {
        return json;
    }
    // Nothing left to cut by the rules above (e.g. thousands of small custom properties):
    // keep the identity, counts and error flag, and say what was removed.
    let Event::Generation(generation) = event;
    let note = "[traced-llm: content removed to fit PostHog's event size limit]";
    generation.input = generation
        .input
        .as_ref()
        .map(|_| vec![Message::system(note)]);
    generation.output = generation
        .output
        .as_ref()
        .map(|_| vec![ContentPart::text(note)]);
    generation.tools.clear();
    generation.provider_metadata.clear();
    generation.envelope.properties.clear();
    generation
        .envelope
        .properties
        .insert("$ai_traced_llm_truncated".into(), Value::Bool(true));
    if let Some(error) = &mut generation.error {
        truncate_to(error, budget / 4);
    }
    let mut json = serialize(event);
    if !fits(&json, budget) {
        // Only the envelope's own ids can be this large now; they are the caller's to fix.
        let Event::Generation(generation) = event;
        generation.envelope.groups.clear();
        json = serialize(event);
    }
    json
}

/// Replaces data URLs and long base64 runs in every content string with a placeholder.
fn redact_base64(generation: &mut Generation) {
    for_each_string(generation, &mut |s| {
        if let Some(redacted) = redact_base64_in(s) {
            *s = redacted;
        }
    });
    for part in generation
        .input
        .iter_mut()
        .flatten()
        .flat_map(|message| message.content.iter_mut())
        .chain(generation.output.iter_mut().flatten())
    {
        // Already a placeholder on the wire, but the data still costs memory here.
        if let ContentPart::Image {
            source: ImageSource::Base64 { data, .. },
        } = part
        {
            data.clear();
        }
    }
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

/// Removes the oldest input messages until about `excess` is saved, keeping system messages
/// and the last user message, and puts a marker where they were.
fn drop_old_messages(generation: &mut Generation, excess: usize) {
    let Some(messages) = generation.input.as_mut() else {
        return;
    };
    let last_user = messages.iter().rposition(|m| m.role == Role::User);
    let mut saved = 0;
    let mut remove = vec![false; messages.len()];
    for (index, message) in messages.iter().enumerate() {
        if saved >= excess {
            break;
        }
        if message.role == Role::System || Some(index) == last_user {
            continue;
        }
        remove[index] = true;
        saved += message_cost(message);
    }
    let removed = remove.iter().filter(|&&r| r).count();
    if removed == 0 {
        return;
    }
    let first = remove.iter().position(|&r| r).unwrap_or(0);
    let mut kept = Vec::with_capacity(messages.len() - removed + 1);
    for (index, message) in std::mem::take(messages).into_iter().enumerate() {
        if index == first {
            kept.push(Message::system(format!(
                "[traced-llm: {removed} earlier messages removed to fit PostHog's event size limit]"
            )));
        }
        if !remove[index] {
            kept.push(message);
        }
    }
    *messages = kept;
}

fn message_cost(message: &Message) -> usize {
    let mut cost = 40;
    for part in &message.content {
        cost += 30 + part_cost(part);
    }
    cost
}

fn part_cost(part: &ContentPart) -> usize {
    match part {
        ContentPart::Text { text } => str_cost(text),
        ContentPart::Image { source } => match source {
            ImageSource::Url { url } => str_cost(url),
            ImageSource::Base64 { media_type, .. } => str_cost(media_type) + 30,
        },
        ContentPart::ToolCall(call) => {
            str_cost(&call.id) + str_cost(&call.name) + str_cost(&call.arguments) + 40
        }
        ContentPart::ToolResult {
            tool_call_id,
            content,
            ..
        } => str_cost(tool_call_id) + str_cost(content),
    }
}

/// Calls `f` on every string the guard may cut: message and output text, tool calls and
/// results, the error message, tool definitions, provider metadata and custom properties.
fn for_each_string(generation: &mut Generation, f: &mut dyn FnMut(&mut String)) {
    let parts = generation
        .input
        .iter_mut()
        .flatten()
        .flat_map(|message| message.content.iter_mut())
        .chain(generation.output.iter_mut().flatten());
    for part in parts {
        match part {
            ContentPart::Text { text } => f(text),
            ContentPart::Image {
                source: ImageSource::Url { url },
            } => f(url),
            ContentPart::Image { .. } => {}
            ContentPart::ToolCall(call) => f(&mut call.arguments),
            ContentPart::ToolResult { content, .. } => f(content),
        }
    }
    if let Some(error) = &mut generation.error {
        f(error);
    }
    for tool in &mut generation.tools {
        if let Some(description) = &mut tool.description {
            f(description);
        }
        for_each_value_string(&mut tool.parameters, f);
    }
    for value in generation.provider_metadata.values_mut() {
        for_each_value_string(value, f);
    }
    for value in generation.envelope.properties.values_mut() {
        for_each_value_string(value, f);
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

/// Cuts the largest strings, largest first, until about `excess` is saved. Returns `false`
/// when no string is left worth cutting.
fn cut_largest(generation: &mut Generation, excess: usize) -> bool {
    let marker = str_cost(TRUNCATED_MARKER);
    // Slack covers the estimate's error; a second round mops up the rest.
    let mut left = excess + excess / 64 + 64;
    let mut progressed = false;
    while left > 0 {
        let mut costs = Vec::new();
        for_each_string(generation, &mut |s| costs.push(str_cost(s)));
        let Some((target, &cost)) = costs.iter().enumerate().max_by_key(|(_, &cost)| cost) else {
            break;
        };
        if cost <= marker + 8 {
            break;
        }
        let keep = cost.saturating_sub(left + marker).max(4);
        let saved = cost.saturating_sub(keep + marker);
        let mut index = 0;
        for_each_string(generation, &mut |s| {
            if index == target {
                truncate_to(s, keep - 4);
                s.push_str(TRUNCATED_MARKER);
            }
            index += 1;
        });
        progressed = true;
        left = left.saturating_sub(saved.max(1));
    }
    progressed
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
    use crate::types::Usage;
    use std::time::Duration;

    fn generation_with(input: Vec<Message>, output: &str) -> Event {
        let mut generation = Generation::new("gpt-4o-mini", "openai");
        generation.input = Some(input);
        generation.output = Some(vec![ContentPart::text(output)]);
        generation.usage = Usage::new(123_456, 7_890);
        generation.latency = Duration::from_millis(1234);
        generation.error = Some("boom".into());
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
        let mut event = generation_with(input, &"y".repeat(1000));
        let json = shrink(&mut event, 500_000);
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
    fn one_huge_string_of_quotes_is_cut_on_a_char_boundary() {
        let text = "\"é".repeat(400_000);
        let mut event = generation_with(vec![Message::user(text)], "ok");
        let json = shrink(&mut event, 200_000);
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
