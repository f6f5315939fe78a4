//! Non-streaming calls through `TracedModel`: one event per call, whatever the outcome.

mod support;

use std::time::Duration;

use serde_json::json;
use support::events::{capture_json, properties, take_timings};
use traced_llm::posthog::{LIB_NAME, LIB_VERSION};
use traced_llm::sink::InMemorySink;
use traced_llm::testing::ScriptedModel;
use traced_llm::types::{ContentPart, Tool, ToolCall, Usage};
use traced_llm::{CallContext, ChatRequest, ChatResponse, Error, LlmModel, Message, TracedModel};

fn weather_tool() -> Tool {
    Tool::new(
        "get_weather",
        "Current weather for a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
    )
}

fn openai_like(model: ScriptedModel) -> ScriptedModel {
    model
        .with_provider("openai")
        .with_base_url("https://api.openai.com/v1")
}

#[tokio::test]
async fn success_sends_one_generation_with_exact_properties() {
    let sink = InMemorySink::new();
    let response = ChatResponse::text_response("Paris.")
        .with_id("chatcmpl-123")
        .with_model("gpt-4o-mini-2024-07-18")
        .with_finish_reason("stop")
        .with_usage(Usage::new(20, 3).with_cache_read(8).with_reasoning(0));
    let model = TracedModel::new(
        openai_like(ScriptedModel::new().respond(response)),
        sink.clone(),
    );
    let request = ChatRequest::new("gpt-4o-mini")
        .message(Message::system("Be brief."))
        .message(Message::user("Capital of France?"))
        .temperature(0.2)
        .max_tokens(50)
        .tool(weather_tool())
        .context(CallContext::new().distinct_id("user_42").trace_id("conv-1"));

    let answer = model.chat(&request).await.unwrap();
    assert_eq!(answer.text(), "Paris.");

    let events = sink.events();
    assert_eq!(events.len(), 1);
    let envelope = capture_json(&events[0]);
    assert_eq!(envelope["event"], "$ai_generation");
    assert_eq!(envelope["distinct_id"], "user_42");
    let uuid = uuid::Uuid::parse_str(envelope["uuid"].as_str().unwrap()).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
    let timestamp = envelope["timestamp"].as_str().unwrap();
    humantime::parse_rfc3339(timestamp).expect("timestamp is RFC 3339");

    let mut props = properties(&events[0]);
    let (latency, ttft) = take_timings(&mut props);
    assert!(latency >= 0.0);
    assert_eq!(ttft, None, "time to first token is for streams only");
    assert_eq!(
        serde_json::Value::Object(props),
        json!({
            "$ai_trace_id": "conv-1",
            "$ai_lib": LIB_NAME,
            "$ai_lib_version": LIB_VERSION,
            "$lib": LIB_NAME,
            "$lib_version": LIB_VERSION,
            "$ai_model": "gpt-4o-mini-2024-07-18",
            "$ai_provider": "openai",
            "$ai_base_url": "https://api.openai.com/v1",
            "$ai_input": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital of France?"}
            ],
            "$ai_output_choices": [
                {"role": "assistant", "content": [{"type": "text", "text": "Paris."}]}
            ],
            "$ai_input_tokens": 20,
            "$ai_output_tokens": 3,
            "$ai_cache_read_input_tokens": 8,
            "$ai_reasoning_tokens": 0,
            "$ai_cache_reporting_exclusive": false,
            "$ai_http_status": 200,
            "$ai_model_parameters": {"temperature": 0.2, "max_tokens": 50, "stream": false},
            "$ai_tools": [{
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Current weather for a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
                }
            }],
            "$ai_stop_reason": "stop",
            "$ai_completion_id": "chatcmpl-123",
            "$ai_is_error": false
        })
    );
}

#[tokio::test]
async fn model_falls_back_to_the_request_and_tool_calls_become_function_blocks() {
    let sink = InMemorySink::new();
    let response = ChatResponse::default()
        .with_part(ContentPart::ToolCall(ToolCall::new(
            "call_1",
            "get_weather",
            r#"{"city":"Paris"}"#,
        )))
        .with_finish_reason("tool_calls");
    let model = TracedModel::new(ScriptedModel::new().respond(response), sink.clone());
    let request = ChatRequest::new("gpt-4o").message(Message::user("Weather in Paris?"));
    model.chat(&request).await.unwrap();

    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_model"], "gpt-4o");
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{
            "type": "function",
            "id": "call_1",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
        }]}])
    );
    assert_eq!(props["$ai_stop_reason"], "tool_calls");
}

#[tokio::test]
async fn provider_error_sends_an_error_event_and_returns_the_original_error() {
    let sink = InMemorySink::new();
    let failing = ScriptedModel::new()
        .with_provider("openai")
        .with_latency(Duration::from_millis(30))
        .fail(
            Error::from_status(429, "Rate limit reached")
                .with_provider("openai")
                .with_api_error_type("rate_limit_exceeded"),
        );
    let model = TracedModel::new(failing, sink.clone());
    let request = ChatRequest::new("gpt-4o-mini").message(Message::user("Hi"));

    let err = model.chat(&request).await.unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(err.api_error_type(), Some("rate_limit_exceeded"));

    let events = sink.events();
    assert_eq!(events.len(), 1);
    let mut props = properties(&events[0]);
    let (latency, _) = take_timings(&mut props);
    assert!(
        latency >= 0.030,
        "latency is measured on errors too: {latency}"
    );
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(
        props["$ai_error"],
        "openai: http status 429 (rate_limit_exceeded): Rate limit reached"
    );
    assert_eq!(props["$ai_http_status"], 429);
    assert_eq!(props["$ai_output_choices"], serde_json::Value::Null);
    assert_eq!(
        props["$ai_input"],
        json!([{"role": "user", "content": "Hi"}])
    );
}

#[tokio::test]
async fn unreachable_provider_reports_http_status_zero() {
    let sink = InMemorySink::new();
    let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
    let model = TracedModel::new(
        ScriptedModel::new().fail(Error::connect(refused)),
        sink.clone(),
    );
    let err = model
        .chat(&ChatRequest::new("gpt-4o-mini").message(Message::user("Hi")))
        .await
        .unwrap_err();
    assert!(err.is_connect());
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_http_status"], 0);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_error"], "connection failed: connection refused");
}

#[tokio::test]
async fn a_dropped_call_future_still_sends_one_cancelled_event() {
    let sink = InMemorySink::new();
    let slow = ScriptedModel::new()
        .with_latency(Duration::from_secs(30))
        .respond(ChatResponse::text_response("too late"));
    let model = TracedModel::new(slow, sink.clone());
    let request = ChatRequest::new("gpt-4o-mini").message(Message::user("Hi"));

    let outcome = tokio::time::timeout(Duration::from_millis(40), model.chat(&request)).await;
    assert!(outcome.is_err(), "the call was cut short");

    let events = sink.events();
    assert_eq!(events.len(), 1);
    let mut props = properties(&events[0]);
    let (latency, _) = take_timings(&mut props);
    // Measured up to the cancel: the 40 ms timer starts a moment before the call's own clock.
    assert!(latency >= 0.030, "latency {latency}");
    assert_eq!(props["$ai_stop_reason"], "cancelled");
    assert_eq!(props["$ai_is_error"], false);
    assert_eq!(props["$ai_http_status"], 0);
}

#[tokio::test]
async fn every_call_sends_exactly_one_event() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new()
            .respond(ChatResponse::text_response("one"))
            .fail(Error::from_status(500, "server error"))
            .respond(ChatResponse::text_response("three")),
        sink.clone(),
    );
    let request = ChatRequest::new("m").message(Message::user("Hi"));
    assert!(model.chat(&request).await.is_ok());
    assert!(model.chat(&request).await.is_err());
    assert!(model.chat(&request).await.is_ok());
    let generations = sink.generations();
    assert_eq!(generations.len(), 3);
    assert_eq!(
        generations.iter().map(|g| g.is_error()).collect::<Vec<_>>(),
        [false, true, false]
    );
    let ids: std::collections::HashSet<_> = generations.iter().map(|g| g.envelope.uuid).collect();
    assert_eq!(ids.len(), 3, "each event has its own uuid");
}
