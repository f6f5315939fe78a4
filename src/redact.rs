//! Redaction of event content before any sink sees it.
//!
//! Privacy mode is all or nothing: no input, no output. A [`Redactor`] keeps the content but
//! masks what must not leave the process, such as e-mail addresses or card numbers. It runs on
//! every text of an event's content — message texts, tool-call arguments, tool results, span
//! states, embedding inputs, feedback text, error messages — before the event reaches any sink. Privacy mode
//! still wins: content it removed is never handed to the redactor.

use serde_json::Value;

use crate::event::Event;
use crate::types::{ContentPart, Message};

/// Masks sensitive text in event content; see the [module docs](self).
///
/// Any `Fn(&mut String) + Send + Sync` is a redactor:
///
/// ```
/// use traced_llm::redact::Redactor;
///
/// let mask_digits = |text: &mut String| {
///     if text.chars().any(|c| c.is_ascii_digit()) {
///         *text = text.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect();
///     }
/// };
/// let mut card = String::from("card 4242 4242");
/// mask_digits.redact(&mut card);
/// assert_eq!(card, "card #### ####");
/// ```
pub trait Redactor: Send + Sync {
    /// Rewrites `text` in place; leave it untouched when there is nothing to mask.
    fn redact(&self, text: &mut String);
}

impl<F: Fn(&mut String) + Send + Sync> Redactor for F {
    fn redact(&self, text: &mut String) {
        self(text)
    }
}

/// Runs `redactor` over every content text of `event`, and over the error message, since
/// provider error messages echo prompts.
pub(crate) fn redact_event(event: &mut Event, redactor: &dyn Redactor) {
    let error = match event {
        Event::Generation(generation) => generation.error.as_mut(),
        Event::Embedding(embedding) => embedding.error.as_mut(),
        Event::Span(span) => span.error.as_mut(),
        Event::Exception(exception) => Some(&mut exception.error),
        Event::Feedback(_) | Event::Metric(_) | Event::FlagExposure(_) | Event::Alert(_) => None,
    };
    if let Some(message) = error.and_then(|error| error.message.as_mut()) {
        redactor.redact(message);
    }
    match event {
        Event::Generation(generation) => {
            for message in generation.input.iter_mut().flatten() {
                redact_message(message, redactor);
            }
            for part in generation.output.iter_mut().flatten() {
                redact_part(part, redactor);
            }
        }
        Event::Embedding(embedding) => {
            for text in embedding.input.iter_mut().flatten() {
                redactor.redact(text);
            }
        }
        Event::Span(span) => {
            for state in [&mut span.input_state, &mut span.output_state]
                .into_iter()
                .flatten()
            {
                redact_value(state, redactor);
            }
        }
        Event::Feedback(feedback) => {
            if let Some(text) = &mut feedback.text {
                redactor.redact(text);
            }
        }
        Event::Metric(_) | Event::FlagExposure(_) | Event::Exception(_) | Event::Alert(_) => {}
    }
}

fn redact_message(message: &mut Message, redactor: &dyn Redactor) {
    for part in &mut message.content {
        redact_part(part, redactor);
    }
}

fn redact_part(part: &mut ContentPart, redactor: &dyn Redactor) {
    match part {
        ContentPart::Text { text } => redactor.redact(text),
        ContentPart::ToolCall(call) => redactor.redact(&mut call.arguments),
        ContentPart::ToolResult { content, .. } => redactor.redact(content),
        ContentPart::Image { .. } => {}
    }
}

fn redact_value(value: &mut Value, redactor: &dyn Redactor) {
    match value {
        Value::String(text) => redactor.redact(text),
        Value::Array(items) => {
            for item in items {
                redact_value(item, redactor);
            }
        }
        Value::Object(fields) => {
            for field in fields.values_mut() {
                redact_value(field, redactor);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}
