//! Helpers to read the PostHog JSON of captured events.

use serde_json::{Map, Value};
use traced_llm::event::Event;
use traced_llm::posthog;

/// The event in PostHog's capture format.
pub fn capture_json(event: &Event) -> Value {
    posthog::capture_event(event).to_json()
}

/// The event's `properties`.
pub fn properties(event: &Event) -> Map<String, Value> {
    match capture_json(event) {
        Value::Object(mut object) => match object.remove("properties") {
            Some(Value::Object(properties)) => properties,
            other => panic!("properties is not an object: {other:?}"),
        },
        other => panic!("capture event is not an object: {other:?}"),
    }
}

/// Removes the properties that differ on every run (timings), returning them as seconds.
pub fn take_timings(properties: &mut Map<String, Value>) -> (f64, Option<f64>) {
    let latency = properties
        .remove("$ai_latency")
        .and_then(|v| v.as_f64())
        .expect("$ai_latency is a number");
    let ttft = properties
        .remove("$ai_time_to_first_token")
        .map(|v| v.as_f64().expect("$ai_time_to_first_token is a number"));
    (latency, ttft)
}
