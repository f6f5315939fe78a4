//! The Anthropic provider against fakes on loopback: request bodies and headers, whole answers,
//! streams written piece by piece, errors, and the `$ai_generation` events they produce.

mod support;

use futures_util::StreamExt;
use serde_json::{json, Value};
use traced_llm::posthog::capture_event;
use traced_llm::provider::{Anthropic, DEFAULT_ANTHROPIC_VERSION, DEFAULT_MAX_TOKENS};
use traced_llm::sink::InMemorySink;
use traced_llm::types::{ContentPart, Tool, ToolCall, Usage};
use traced_llm::{ChatRequest, ChatResponse, LlmModel, Message, Result, StreamEvent, TracedModel};
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use support::sse_server::{Reply, SseServer};

fn anthropic(base: &str) -> Anthropic {
    Anthropic::builder()
        .api_key("sk-ant-test")
        .base_url(base)
        .build()
        .unwrap()
}

fn weather_request() -> ChatRequest {
    ChatRequest::new("claude-sonnet-4-5")
        .message(Message::system("You are terse."))
        .message(Message::user("Weather in Paris?"))
        .tool(Tool::new(
            "get_weather",
            "Current weather",
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        ))
}

/// A stream as Anthropic documents it: thinking, text and a tool call whose input arrives in
/// `partial_json` fragments; input and cache tokens in `message_start`, output tokens in
/// `message_delta`.
const TOOL_STREAM: &[(&str, &str)] = &[
    (
        "message_start",
        r#"{"type":"message_start","message":{"id":"msg_01XYZ","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5-20250929","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":1}}}"#,
    ),
    ("ping", r#"{"type": "ping"}"#),
    (
        "content_block_start",
        r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
    ),
    (
        "content_block_delta",
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Needs the weather tool."}}"#,
    ),
    (
        "content_block_delta",
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCgIYAhIM"}}"#,
    ),
    (
        "content_block_stop",
        r#"{"type":"content_block_stop","index":0}"#,
    ),
    (
        "content_block_start",
        r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
    ),
    (
        "content_block_delta",
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Let me check"}}"#,
    ),
    (
        "content_block_delta",
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":" the weather."}}"#,
    ),
    (
        "content_block_stop",
        r#"{"type":"content_block_stop","index":1}"#,
    ),
    (
        "content_block_start",
        r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01A","name":"get_weather","input":{}}}"#,
    ),
    (
        "content_block_delta",
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
    ),
    (
        "content_block_delta",
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Pa"}}"#,
    ),
    (
        "content_block_delta",
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ris\"}"}}"#,
    ),
    (
        "content_block_stop",
        r#"{"type":"content_block_stop","index":2}"#,
    ),
    (
        "message_delta",
        r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
    ),
    ("message_stop", r#"{"type":"message_stop"}"#),
];

fn body_of(events: &[(&str, &str)], line_end: &str) -> String {
    events
        .iter()
        .map(|(kind, data)| format!("event: {kind}{line_end}data: {data}{line_end}{line_end}"))
        .collect()
}

fn expected_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::ResponseMetadata {
            id: Some("msg_01XYZ".into()),
            model: Some("claude-sonnet-4-5-20250929".into()),
        },
        StreamEvent::Usage({
            let mut usage = Usage::default()
                .with_cache_creation(100)
                .with_cache_read(2000);
            usage.input_tokens = Some(25);
            usage
        }),
        StreamEvent::ReasoningDelta {
            text: "Needs the weather tool.".into(),
        },
        StreamEvent::text("Let me check"),
        StreamEvent::text(" the weather."),
        StreamEvent::ToolCallDelta {
            index: 2,
            id: Some("toolu_01A".into()),
            name: Some("get_weather".into()),
            arguments: String::new(),
        },
        StreamEvent::ToolCallDelta {
            index: 2,
            id: None,
            name: None,
            arguments: "{\"city\": \"Pa".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 2,
            id: None,
            name: None,
            arguments: "ris\"}".into(),
        },
        StreamEvent::finish("tool_use"),
        StreamEvent::Usage({
            let mut usage = Usage::default();
            usage.output_tokens = Some(89);
            usage
        }),
    ]
}

async fn collect(model: &impl LlmModel, request: &ChatRequest) -> Vec<Result<StreamEvent>> {
    model.chat_stream(request).await.unwrap().collect().await
}

fn properties(sink: &InMemorySink) -> Value {
    let events = sink.events();
    assert_eq!(events.len(), 1, "exactly one event per call");
    capture_event(&events[0]).to_json()["properties"].clone()
}

#[tokio::test]
async fn stream_split_across_reads_with_crlf_parses_exactly() {
    let server = SseServer::start(vec![
        Reply::sse().split_every(5, &body_of(TOOL_STREAM, "\r\n"))
    ])
    .await;
    let model = anthropic(server.url());
    let events: Vec<StreamEvent> = collect(&model, &weather_request())
        .await
        .into_iter()
        .map(|event| event.unwrap())
        .collect();
    assert_eq!(events, expected_events());

    let request = &server.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.header("accept"), Some("text/event-stream"));
    assert_eq!(
        request.json(),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": DEFAULT_MAX_TOKENS,
            "system": "You are terse.",
            "messages": [{"role": "user", "content": "Weather in Paris?"}],
            "tools": [{
                "name": "get_weather",
                "description": "Current weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }],
            "stream": true,
        })
    );
}

#[tokio::test]
async fn traced_stream_merges_usage_and_reports_cache_exclusively() {
    let server = SseServer::start(vec![Reply::sse().now(body_of(TOOL_STREAM, "\n"))]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(anthropic(server.url()), sink.clone());
    let events = collect(&model, &weather_request()).await;
    assert!(events.iter().all(|event| event.is_ok()));

    let props = properties(&sink);
    assert_eq!(props["$ai_provider"], "anthropic");
    assert_eq!(props["$ai_base_url"], server.url());
    assert_eq!(props["$ai_model"], "claude-sonnet-4-5-20250929");
    // Input and cache tokens from message_start survive message_delta, which only states output.
    assert_eq!(props["$ai_input_tokens"], 25);
    assert_eq!(props["$ai_output_tokens"], 89);
    assert_eq!(props["$ai_cache_read_input_tokens"], 2000);
    assert_eq!(props["$ai_cache_creation_input_tokens"], 100);
    assert_eq!(props["$ai_cache_reporting_exclusive"], true);
    assert_eq!(props["$ai_stop_reason"], "tool_use");
    assert_eq!(props["$ai_completion_id"], "msg_01XYZ");
    assert_eq!(props["$ai_http_status"], 200);
    assert_eq!(props["$ai_is_error"], false);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [
            {"type": "text", "text": "Let me check the weather."},
            {"type": "function", "id": "toolu_01A",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
        ]}])
    );
}

#[tokio::test]
async fn a_gateway_restating_usage_in_message_delta_wins_field_by_field() {
    let events: &[(&str, &str)] = &[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_2","model":"claude-haiku-4-5","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":"Hi"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":12,"cache_creation_input_tokens":7,"output_tokens":3}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];
    let server = SseServer::start(vec![Reply::sse().now(body_of(events, "\n"))]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(anthropic(server.url()), sink.clone());
    collect(&model, &ChatRequest::new("claude-haiku-4-5")).await;
    let generation = &sink.generations()[0];
    assert_eq!(
        generation.usage,
        Usage::new(12, 3).with_cache_read(5).with_cache_creation(7)
    );
    assert_eq!(generation.stop_reason.as_deref(), Some("end_turn"));
}

#[tokio::test]
async fn an_error_event_fails_the_stream_and_keeps_the_partial_answer() {
    let events: &[(&str, &str)] = &[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_3","model":"claude-sonnet-4-5","usage":{"input_tokens":8,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Part"}}"#,
        ),
        (
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
    ];
    let server = SseServer::start(vec![Reply::sse().now(body_of(events, "\n"))]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(anthropic(server.url()), sink.clone());
    let events = collect(&model, &ChatRequest::new("claude-sonnet-4-5")).await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert!(err.is_stream());
    assert_eq!(err.api_error_type(), Some("overloaded_error"));
    assert_eq!(err.provider(), Some("anthropic"));
    assert_eq!(
        err.to_string(),
        "anthropic: stream failed (overloaded_error): Overloaded"
    );

    let props = properties(&sink);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_error"], err.to_string());
    assert_eq!(props["$ai_input_tokens"], 8);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "Part"}]}])
    );
}

#[tokio::test]
async fn malformed_events_and_cut_streams_are_errors() {
    let malformed = Reply::sse()
        .now("event: message_start\ndata: {\"type\":\"message_start\",\"message\":\n\n");
    let cut = Reply::sse().now(body_of(&TOOL_STREAM[..8], "\n")).cut();
    let server = SseServer::start(vec![malformed, cut]).await;
    let model = anthropic(server.url());

    let events = collect(&model, &ChatRequest::new("m")).await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert!(err.is_decode());
    assert!(
        err.message().starts_with("invalid stream event 1 json: "),
        "{}",
        err.message()
    );

    let events = collect(&model, &ChatRequest::new("m")).await;
    assert_eq!(
        events[3].as_ref().unwrap(),
        &StreamEvent::text("Let me check")
    );
    assert!(events.last().unwrap().as_ref().unwrap_err().is_stream());
}

fn message_body() -> Value {
    json!({
        "id": "msg_01ABC",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "hidden", "signature": "sig"},
            {"type": "text", "text": "I'll look it up."},
            {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Paris"}}
        ],
        "stop_reason": "tool_use",
        "stop_sequence": null,
        "usage": {
            "input_tokens": 50,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 1800,
            "output_tokens": 40,
            "service_tier": "standard"
        }
    })
}

#[tokio::test]
async fn non_stream_chat_maps_every_field_both_ways() {
    let server = MockServer::start().await;
    let request = weather_request()
        .message(Message::assistant_tool_calls([ToolCall::new(
            "toolu_00",
            "get_weather",
            r#"{"city":"Rome"}"#,
        )]))
        .message(Message::tool_result("toolu_00", "sunny"))
        .message(
            Message::user("And this?")
                .with_part(ContentPart::image_base64("image/png", "iVBORw0K")),
        )
        .max_tokens(512)
        .temperature(0.1);
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", "sk-ant-test"))
        .and(header("anthropic-version", DEFAULT_ANTHROPIC_VERSION))
        .and(body_json(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 512,
            "system": "You are terse.",
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_00", "name": "get_weather", "input": {"city": "Rome"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_00", "content": "sunny"}
                ]},
                {"role": "user", "content": [
                    {"type": "text", "text": "And this?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"}}
                ]},
            ],
            "tools": [{
                "name": "get_weather",
                "description": "Current weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            }],
            "temperature": 0.1,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(message_body()))
        .expect(2)
        .mount(&server)
        .await;

    let model = anthropic(&server.uri());
    let response = model.chat(&request).await.unwrap();
    let expected = ChatResponse::text_response("I'll look it up.")
        .with_id("msg_01ABC")
        .with_model("claude-sonnet-4-5-20250929")
        .with_finish_reason("tool_use")
        .with_usage(
            Usage::new(50, 40)
                .with_cache_read(1800)
                .with_cache_creation(0),
        )
        .with_part(ContentPart::ToolCall(ToolCall::new(
            "toolu_02",
            "get_weather",
            r#"{"city":"Paris"}"#,
        )));
    assert_eq!(response, expected);

    let sink = InMemorySink::new();
    let traced = TracedModel::new(model, sink.clone());
    traced.chat(&request).await.unwrap();
    let props = properties(&sink);
    assert_eq!(props["$ai_input_tokens"], 50);
    assert_eq!(props["$ai_output_tokens"], 40);
    assert_eq!(props["$ai_cache_read_input_tokens"], 1800);
    assert_eq!(props["$ai_cache_creation_input_tokens"], 0);
    assert_eq!(props["$ai_cache_reporting_exclusive"], true);
    assert_eq!(props["$ai_stop_reason"], "tool_use");
    assert_eq!(props["$ai_provider"], "anthropic");
    assert_eq!(props["$ai_base_url"], server.uri());
    assert_eq!(
        props["$ai_output_choices"][0]["content"][1],
        json!({"type": "function", "id": "toolu_02",
               "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}})
    );
}

#[tokio::test]
async fn error_bodies_carry_status_type_and_message() {
    let cases = [
        (401, "authentication_error", "invalid x-api-key"),
        (
            429,
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
        (500, "api_error", "Internal server error"),
        (529, "overloaded_error", "Overloaded"),
    ];
    for (status, error_type, message) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "type": "error",
                "error": {"type": error_type, "message": message},
                "request_id": "req_011"
            })))
            .mount(&server)
            .await;
        let sink = InMemorySink::new();
        let model = TracedModel::new(anthropic(&server.uri()), sink.clone());
        let err = model
            .chat(&ChatRequest::new("claude-sonnet-4-5").message(Message::user("hi")))
            .await
            .unwrap_err();
        assert!(err.is_status());
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.api_error_type(), Some(error_type));
        assert_eq!(err.api_error_code(), None);
        assert_eq!(err.message(), message);
        assert_eq!(
            err.to_string(),
            format!("anthropic: http status {status} ({error_type}): {message}")
        );
        let props = properties(&sink);
        assert_eq!(props["$ai_is_error"], true);
        assert_eq!(props["$ai_http_status"], status);
        assert_eq!(props["$ai_error"], err.to_string());
        assert_eq!(props["$ai_cache_reporting_exclusive"], true);
    }
}

#[tokio::test]
async fn a_base_url_ending_in_v1_is_not_doubled() {
    let server = SseServer::start(vec![Reply::sse().now(body_of(TOOL_STREAM, "\n"))]).await;
    let model = anthropic(&format!("{}/v1/", server.url()));
    collect(&model, &ChatRequest::new("m")).await;
    assert_eq!(server.requests()[0].path, "/v1/messages");
}

#[test]
fn builder_and_environment() {
    // The only test in this binary that touches these variables.
    std::env::remove_var("ANTHROPIC_API_KEY");
    std::env::remove_var("ANTHROPIC_BASE_URL");
    assert!(Anthropic::from_env().unwrap_err().is_builder());
    let model = Anthropic::builder().api_key("k").build().unwrap();
    assert_eq!(model.base_url(), "https://api.anthropic.com");
    assert_eq!(model.provider(), "anthropic");
    assert!(!model.cache_tokens_in_input());

    std::env::set_var("ANTHROPIC_API_KEY", "sk-ant-env-secret");
    std::env::set_var("ANTHROPIC_BASE_URL", "http://127.0.0.1:9");
    let model = Anthropic::from_env().unwrap();
    assert_eq!(model.base_url(), "http://127.0.0.1:9");
    assert!(!format!("{model:?}").contains("sk-ant-env-secret"));
    std::env::remove_var("ANTHROPIC_API_KEY");
    std::env::remove_var("ANTHROPIC_BASE_URL");

    assert!(Anthropic::builder()
        .api_key("k")
        .base_url("nope")
        .build()
        .unwrap_err()
        .is_builder());
    assert!(Anthropic::builder()
        .api_key("k")
        .default_max_tokens(0)
        .build()
        .unwrap_err()
        .is_builder());
    assert!(Anthropic::builder()
        .api_key("k")
        .version("bad\nversion")
        .build()
        .unwrap_err()
        .is_builder());
}

#[tokio::test]
async fn time_to_first_token_waits_for_the_first_delta_not_message_start_or_ping() {
    use std::time::Duration;
    let event = |kind: &str, data: &str| format!("event: {kind}\ndata: {data}\n\n");
    let reply = Reply::sse()
        .now(event("message_start", r#"{"type":"message_start","message":{"id":"msg_t","model":"m","usage":{"input_tokens":3,"output_tokens":1}}}"#))
        .now(event("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#))
        .piece(Duration::from_millis(30), event("ping", r#"{"type":"ping"}"#))
        .piece(Duration::from_millis(50), event("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#))
        .piece(Duration::from_millis(100), event("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}"#))
        .piece(Duration::from_millis(100), event("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}"#) + &event("message_stop", r#"{"type":"message_stop"}"#));
    let server = SseServer::start(vec![reply]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(anthropic(server.url()), sink.clone());
    collect(&model, &ChatRequest::new("m")).await;
    let generation = &sink.generations()[0];
    let ttft = generation.time_to_first_token.expect("a first token");
    assert!(ttft >= Duration::from_millis(80), "ttft {ttft:?}");
    assert!(
        ttft < generation.latency,
        "ttft {ttft:?} latency {:?}",
        generation.latency
    );
    assert_eq!(generation.usage, Usage::new(3, 2));
}
