//! The OpenAI provider against fakes on loopback: request bodies and headers, whole answers,
//! streams written piece by piece, errors, and the `$ai_generation` events they produce.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use traced_llm::posthog::capture_event;
use traced_llm::provider::OpenAi;
use traced_llm::sink::InMemorySink;
use traced_llm::types::EmbeddingRequest;
use traced_llm::types::{ContentPart, Tool, ToolCall, Usage};
use traced_llm::{ChatRequest, ChatResponse, LlmModel, Message, Result, StreamEvent, TracedModel};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use support::sse_server::{Reply, SseServer};

const KEY: &str = "sk-test-123";

fn openai(base: &str) -> OpenAi {
    OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{base}/v1"))
        .build()
        .unwrap()
}

fn weather_request() -> ChatRequest {
    ChatRequest::new("gpt-4o")
        .message(Message::system("You are terse."))
        .message(Message::user("Weather and time in Paris?"))
        .tool(Tool::new(
            "get_weather",
            "Current weather",
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        ))
}

/// A stream as OpenAI documents it: a role chunk, text, two tool calls whose arguments arrive
/// in fragments, the finish reason, then the usage-only chunk with empty `choices`.
const TOOL_STREAM: &[&str] = &[
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Checking"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":" now."},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":"{\"tz\":"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\"CET\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":120,"completion_tokens":40,"total_tokens":160,"prompt_tokens_details":{"cached_tokens":64,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":12,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#,
    "[DONE]",
];

/// The body with CRLF line ends, keep-alive comments and a `retry` field mixed in.
fn awkward_body() -> String {
    let mut body = String::from(": connected\r\n\r\n");
    for (n, data) in TOOL_STREAM.iter().enumerate() {
        body.push_str(&format!("data: {data}\r\n\r\n"));
        if n % 3 == 0 {
            body.push_str(": keep-alive\r\n\r\n");
        }
    }
    body
}

fn expected_events() -> Vec<StreamEvent> {
    vec![
        StreamEvent::ResponseMetadata {
            id: Some("chatcmpl-123".into()),
            model: Some("gpt-4o-2024-08-06".into()),
        },
        // Streams carry the fingerprint too, as non-streamed answers do.
        StreamEvent::Metadata {
            key: "system_fingerprint".into(),
            value: "fp_44709d6fcb".into(),
        },
        StreamEvent::text("Checking"),
        StreamEvent::text(" now."),
        StreamEvent::ToolCallDelta {
            index: 0,
            id: Some("call_a".into()),
            name: Some("get_weather".into()),
            arguments: String::new(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            id: None,
            name: None,
            arguments: "{\"city\":".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 0,
            id: None,
            name: None,
            arguments: "\"Paris\"}".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 1,
            id: Some("call_b".into()),
            name: Some("get_time".into()),
            arguments: "{\"tz\":".into(),
        },
        StreamEvent::ToolCallDelta {
            index: 1,
            id: None,
            name: None,
            arguments: "\"CET\"}".into(),
        },
        StreamEvent::finish("tool_calls"),
        StreamEvent::Usage(Usage::new(120, 40).with_cache_read(64).with_reasoning(12)),
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
async fn stream_split_across_reads_with_crlf_and_comments_parses_exactly() {
    let server = SseServer::start(vec![Reply::sse().split_every(7, &awkward_body())]).await;
    let model = openai(server.url());
    let events: Vec<StreamEvent> = collect(&model, &weather_request())
        .await
        .into_iter()
        .map(|event| event.unwrap())
        .collect();
    assert_eq!(events, expected_events());

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(request.header("authorization"), Some("Bearer sk-test-123"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("accept"), Some("text/event-stream"));
    assert_eq!(
        request.header("user-agent"),
        Some(concat!("traced-llm/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        request.json(),
        json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Weather and time in Paris?"},
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            }}],
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
}

#[tokio::test]
async fn traced_stream_reports_tokens_tool_calls_and_stop_reason() {
    let server =
        SseServer::start(vec![Reply::sse().data_events(TOOL_STREAM.iter().copied())]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(openai(server.url()), sink.clone());
    let events = collect(&model, &weather_request()).await;
    assert!(events.iter().all(|event| event.is_ok()));

    let props = properties(&sink);
    assert_eq!(props["$ai_provider"], "openai");
    assert_eq!(props["$ai_base_url"], format!("{}/v1", server.url()));
    assert_eq!(props["$ai_model"], "gpt-4o-2024-08-06");
    assert_eq!(props["$ai_input_tokens"], 120);
    assert_eq!(props["$ai_output_tokens"], 40);
    assert_eq!(props["$ai_cache_read_input_tokens"], 64);
    assert_eq!(props["$ai_reasoning_tokens"], 12);
    assert_eq!(props.get("$ai_cache_creation_input_tokens"), None);
    assert_eq!(props["$ai_cache_reporting_exclusive"], false);
    assert_eq!(props["$ai_stop_reason"], "tool_calls");
    assert_eq!(props["$ai_completion_id"], "chatcmpl-123");
    assert_eq!(props["$ai_http_status"], 200);
    assert_eq!(props["$ai_is_error"], false);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [
            {"type": "text", "text": "Checking now."},
            {"type": "function", "id": "call_a",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"type": "function", "id": "call_b",
             "function": {"name": "get_time", "arguments": "{\"tz\":\"CET\"}"}},
        ]}])
    );
}

#[tokio::test]
async fn time_to_first_token_is_measured_at_the_first_content() {
    let chunk = |text: &str| {
        format!(
            "data: {{\"id\":\"c\",\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n"
        )
    };
    let reply = Reply::sse()
        // Metadata only, before any content: must not count as the first token.
        .now("data: {\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n")
        .piece(Duration::from_millis(50), chunk("one"))
        .piece(Duration::from_millis(100), chunk(" two"))
        .piece(Duration::from_millis(100), chunk(" three"))
        .piece(
            Duration::from_millis(100),
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
        );
    let server = SseServer::start(vec![reply]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(openai(server.url()), sink.clone());
    let events = collect(
        &model,
        &ChatRequest::new("m").message(Message::user("count")),
    )
    .await;
    assert_eq!(events.len(), 5);

    let generation = &sink.generations()[0];
    let ttft = generation.time_to_first_token.expect("a first token");
    assert!(ttft >= Duration::from_millis(50), "ttft {ttft:?}");
    assert!(
        ttft < generation.latency,
        "ttft {ttft:?} latency {:?}",
        generation.latency
    );
    assert!(generation.latency - ttft >= Duration::from_millis(250));
    let props = properties(&sink);
    assert!(
        props["$ai_time_to_first_token"].as_f64().unwrap() < props["$ai_latency"].as_f64().unwrap()
    );
}

fn completion_body() -> Value {
    json!({
        "id": "chatcmpl-456",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_44709d6fcb",
        "service_tier": "default",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Let me look.",
                "refusal": null,
                "annotations": [],
                "tool_calls": [{
                    "id": "call_x",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}
                }]
            },
            "logprobs": null,
            "finish_reason": "tool_calls"
        }],
        "usage": {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 128, "audio_tokens": 0}
        }
    })
}

#[tokio::test]
async fn non_stream_chat_maps_every_field_both_ways() {
    let server = MockServer::start().await;
    let request = weather_request()
        .message(Message::assistant_tool_calls([ToolCall::new(
            "call_0",
            "get_weather",
            r#"{"city":"Rome"}"#,
        )]))
        .message(Message::tool_result("call_0", "sunny"))
        .message(
            Message::user("And this picture?")
                .with_part(ContentPart::image_base64("image/png", "iVBORw0KGgo=")),
        )
        .temperature(0.2)
        .max_tokens(256)
        .extra("user", "u-42");
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-test-123"))
        .and(body_json(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Weather and time in Paris?"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_0", "type": "function",
                    "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
                {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
                {"role": "user", "content": [
                    {"type": "text", "text": "And this picture?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ]},
            ],
            "tools": [{"type": "function", "function": {
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            }}],
            "temperature": 0.2,
            "max_tokens": 256,
            "user": "u-42",
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion_body()))
        .expect(2)
        .mount(&server)
        .await;

    let model = openai(&server.uri());
    let response = model.chat(&request).await.unwrap();
    let mut expected = ChatResponse::text_response("Let me look.")
        .with_id("chatcmpl-456")
        .with_model("gpt-4o-2024-08-06")
        .with_finish_reason("tool_calls")
        .with_usage(
            Usage::new(2006, 300)
                .with_cache_read(1920)
                .with_reasoning(128),
        )
        .with_part(ContentPart::ToolCall(ToolCall::new(
            "call_x",
            "get_weather",
            r#"{"city":"Paris"}"#,
        )));
    expected
        .metadata
        .insert("system_fingerprint".into(), "fp_44709d6fcb".into());
    assert_eq!(response, expected);

    let sink = InMemorySink::new();
    let traced = TracedModel::new(model, sink.clone());
    traced.chat(&request).await.unwrap();
    let props = properties(&sink);
    assert_eq!(props["$ai_input_tokens"], 2006);
    assert_eq!(props["$ai_output_tokens"], 300);
    assert_eq!(props["$ai_cache_read_input_tokens"], 1920);
    assert_eq!(props["$ai_reasoning_tokens"], 128);
    assert_eq!(props["$ai_cache_reporting_exclusive"], false);
    assert_eq!(props["$ai_stop_reason"], "tool_calls");
    assert_eq!(props["$ai_provider"], "openai");
    assert_eq!(props["$ai_base_url"], format!("{}/v1", server.uri()));
    assert_eq!(props["$ai_http_status"], 200);
    assert_eq!(
        props["$ai_output_choices"][0]["content"][1],
        json!({"type": "function", "id": "call_x",
               "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}})
    );
}

#[tokio::test]
async fn error_statuses_carry_status_type_code_and_message() {
    let cases = [
        (
            401,
            json!({"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
            Some("invalid_request_error"),
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        ),
        (
            429,
            json!({"error": {"message": "Rate limit reached for gpt-4o.", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
            Some("requests"),
            Some("rate_limit_exceeded"),
            "Rate limit reached for gpt-4o.",
        ),
        (
            500,
            json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}),
            Some("server_error"),
            None,
            "The server had an error while processing your request.",
        ),
    ];
    for (status, body, error_type, code, message) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let sink = InMemorySink::new();
        let model = TracedModel::new(openai(&server.uri()), sink.clone());
        let request = ChatRequest::new("gpt-4o").message(Message::user("hi"));

        let err = model.chat(&request).await.unwrap_err();
        assert!(err.is_status());
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.provider(), Some("openai"));
        assert_eq!(err.api_error_type(), error_type);
        assert_eq!(err.api_error_code(), code);
        assert_eq!(err.message(), message);

        let props = properties(&sink);
        assert_eq!(props["$ai_is_error"], true);
        assert_eq!(props["$ai_http_status"], status);
        assert_eq!(props["$ai_error"], err.to_string());

        // The stream path fails the same way, before any stream exists.
        let err = match model.chat_stream(&request).await {
            Err(err) => err,
            Ok(_) => panic!("expected an error"),
        };
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.api_error_code(), code);
    }
}

#[tokio::test]
async fn malformed_json_answers_are_decode_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("{\"id\": \"x\", \"choices\": [", "application/json"),
        )
        .mount(&server)
        .await;
    let err = openai(&server.uri())
        .chat(&ChatRequest::new("m").message(Message::user("hi")))
        .await
        .unwrap_err();
    assert!(err.is_decode());
    assert_eq!(err.status(), Some(200));
    assert!(
        err.message().starts_with("invalid chat completion json: "),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_malformed_chunk_fails_the_stream_and_the_event_keeps_what_arrived() {
    let reply = Reply::sse().data_events([
        r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"partial"}}]}"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"#,
        r#"{"id":"c1","choices":[{"index":0,"delta":{"content":"never read"}}]}"#,
    ]);
    let server = SseServer::start(vec![reply]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(openai(server.url()), sink.clone());
    let events = collect(&model, &ChatRequest::new("m").message(Message::user("hi"))).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].as_ref().unwrap(), &StreamEvent::text("partial"));
    let err = events[2].as_ref().unwrap_err();
    assert!(err.is_decode());
    assert!(
        err.message().starts_with("invalid stream chunk 2 json: "),
        "{}",
        err.message()
    );

    let props = properties(&sink);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "partial"}]}])
    );
}

#[tokio::test]
async fn a_connection_cut_mid_stream_is_a_stream_error() {
    let reply = Reply::sse()
        .data_events([
            r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
        ])
        .cut();
    let server = SseServer::start(vec![reply]).await;
    let events = collect(&openai(server.url()), &ChatRequest::new("m")).await;
    assert_eq!(events.len(), 3);
    assert_eq!(events[1].as_ref().unwrap(), &StreamEvent::text("Hel"));
    let err = events[2].as_ref().unwrap_err();
    assert!(err.is_stream(), "{err:?}");
    assert_eq!(err.provider(), Some("openai"));
}

#[tokio::test]
async fn a_stream_without_done_is_complete_once_a_finish_reason_arrived() {
    let finished = Reply::sse().data_events([
        r#"{"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
    ]);
    let unfinished =
        Reply::sse().data_events([r#"{"choices":[{"index":0,"delta":{"content":"o"}}]}"#]);
    let server = SseServer::start(vec![finished, unfinished]).await;
    let model = openai(server.url());
    let events = collect(&model, &ChatRequest::new("m")).await;
    assert_eq!(
        events.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        vec![
            StreamEvent::text("ok"),
            StreamEvent::finish("stop"),
            StreamEvent::Usage(Usage::new(3, 1))
        ]
    );
    let events = collect(&model, &ChatRequest::new("m")).await;
    assert!(events.last().unwrap().as_ref().unwrap_err().is_stream());
}

#[tokio::test]
async fn a_json_error_on_a_stream_request_is_an_error_not_an_empty_stream() {
    let reply = Reply::with_status(200, "application/json")
        .now(r#"{"error":{"message":"model not loaded","type":"invalid_request_error","code":"model_not_found"}}"#);
    let server = SseServer::start(vec![reply]).await;
    let err = match openai(server.url())
        .chat_stream(&ChatRequest::new("m"))
        .await
    {
        Err(err) => err,
        Ok(_) => panic!("expected an error"),
    };
    assert!(err.is_decode());
    assert_eq!(err.message(), "model not loaded");
    assert_eq!(err.api_error_code(), Some("model_not_found"));
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let mut reply =
        Reply::sse().data_events([r#"{"choices":[{"index":0,"delta":{"content":"a"}}]}"#]);
    for _ in 0..50 {
        reply = reply.piece(
            Duration::from_millis(20),
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"}}]}\n\n",
        );
    }
    let server = SseServer::start(vec![reply]).await;
    let mut stream = openai(server.url())
        .chat_stream(&ChatRequest::new("m"))
        .await
        .unwrap();
    assert_eq!(
        stream.next().await.unwrap().unwrap(),
        StreamEvent::text("a")
    );
    drop(stream);
    for _ in 0..100 {
        if server.disconnects() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server kept writing to a dropped stream");
}

#[tokio::test]
async fn compatible_servers_report_their_label_and_url_and_send_no_key_unless_given() {
    let body = Reply::sse().data_events([
        r#"{"id":"c","model":"llama3","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}"#,
        r#"{"id":"c","model":"llama3","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#,
        "[DONE]",
    ]);
    let server = SseServer::start(vec![body]).await;
    let base = format!("{}/v1", server.url());
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        OpenAi::compatible("ollama", &base).build().unwrap(),
        sink.clone(),
    );
    collect(&model, &ChatRequest::new("llama3").max_tokens(50)).await;
    let request = &server.requests()[0];
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.json()["max_tokens"], 50);
    let props = properties(&sink);
    assert_eq!(props["$ai_provider"], "ollama");
    assert_eq!(props["$ai_base_url"], base);
    assert_eq!(props["$ai_input_tokens"], 9);
    assert_eq!(props["$ai_output_tokens"], 2);
    assert_eq!(props["$ai_cache_reporting_exclusive"], false);

    let keyed = OpenAi::compatible("groq", &base)
        .api_key("gsk-1")
        .build()
        .unwrap();
    collect(&keyed, &ChatRequest::new("llama3")).await;
    assert_eq!(
        server.requests()[1].header("authorization"),
        Some("Bearer gsk-1")
    );
}

#[tokio::test]
async fn azure_uses_the_deployment_url_api_version_and_api_key_header() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/deployments/gpt-4o/chat/completions"))
        .and(query_param("api-version", "2024-10-21"))
        .and(header("api-key", "azure-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(completion_body()))
        .expect(1)
        .mount(&server)
        .await;
    let deployment = format!("{}/openai/deployments/gpt-4o", server.uri());
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        OpenAi::azure(&deployment, "2024-10-21", "azure-key")
            .build()
            .unwrap(),
        sink.clone(),
    );
    model
        .chat(&ChatRequest::new("gpt-4o").max_tokens(10))
        .await
        .unwrap();
    let received = &server.received_requests().await.unwrap()[0];
    assert_eq!(received.headers.get("authorization"), None);
    let body: Value = serde_json::from_slice(&received.body).unwrap();
    assert_eq!(body["max_completion_tokens"], 10);
    let props = properties(&sink);
    assert_eq!(props["$ai_provider"], "azure");
    assert_eq!(props["$ai_base_url"], deployment);
}

#[tokio::test]
async fn embeddings_come_back_in_input_order_with_their_tokens() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .and(body_json(json!({
            "model": "text-embedding-3-small",
            "input": ["first", "second"],
            "encoding_format": "float",
            "dimensions": 2,
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": [
                {"object": "embedding", "index": 1, "embedding": [0.5, -0.5]},
                {"object": "embedding", "index": 0, "embedding": [0.25, 0.75]},
            ],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 4, "total_tokens": 4}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let response = openai(&server.uri())
        .embed(&EmbeddingRequest::new("text-embedding-3-small", ["first", "second"]).dimensions(2))
        .await
        .unwrap();
    assert_eq!(response.embeddings, vec![vec![0.25, 0.75], vec![0.5, -0.5]]);
    assert_eq!(response.usage.input_tokens, Some(4));
    assert_eq!(response.usage.output_tokens, None);
    assert_eq!(response.model.as_deref(), Some("text-embedding-3-small"));
}

#[test]
fn builders_reject_bad_input_and_never_show_the_key() {
    let err = OpenAi::builder()
        .api_key("k")
        .base_url("not a url")
        .build()
        .unwrap_err();
    assert!(err.is_builder());
    let err = OpenAi::builder().api_key("  ").build().unwrap_err();
    assert!(err.is_builder());
    let err = OpenAi::azure("https://r.openai.azure.com/openai/deployments/d", "", "k")
        .build()
        .unwrap_err();
    assert!(err.is_builder());
    let err = OpenAi::builder()
        .api_key("k")
        .header("bad header", "v")
        .build()
        .unwrap_err();
    assert!(err.is_builder());

    let builder = OpenAi::builder()
        .api_key("sk-very-secret")
        .base_url("https://api.example.com/v1")
        .header("X-Proxy-Token", "proxy-secret");
    let debug = format!("{builder:?}");
    assert!(
        !debug.contains("sk-very-secret") && !debug.contains("proxy-secret"),
        "{debug}"
    );
    assert!(debug.contains("X-Proxy-Token"), "{debug}");
    let model = builder.build().unwrap();
    let debug = format!("{model:?}");
    assert!(!debug.contains("sk-very-secret"), "{debug}");
}

#[test]
fn from_env_reads_the_key_and_the_base_url() {
    // The only test in this binary that touches these variables.
    std::env::remove_var("OPENAI_API_KEY");
    std::env::remove_var("OPENAI_BASE_URL");
    assert!(OpenAi::from_env().unwrap_err().is_builder());
    let model = OpenAi::builder().api_key("k").build().unwrap();
    assert_eq!(
        model.base_url(),
        traced_llm::provider::DEFAULT_OPENAI_BASE_URL
    );
    std::env::set_var("OPENAI_API_KEY", "sk-env");
    std::env::set_var("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/");
    let model = OpenAi::from_env().unwrap();
    assert_eq!(model.provider(), "openai");
    assert_eq!(model.base_url(), "http://127.0.0.1:9/v1");
    assert!(model.cache_tokens_in_input());
    // Code wins over the environment.
    let model = OpenAi::builder()
        .base_url("http://127.0.0.1:10/v1")
        .build()
        .unwrap();
    assert_eq!(model.base_url(), "http://127.0.0.1:10/v1");
    std::env::remove_var("OPENAI_API_KEY");
    std::env::remove_var("OPENAI_BASE_URL");
}

#[tokio::test]
async fn dropping_the_call_future_closes_the_connection() {
    let mut reply = Reply::with_status(200, "application/json").now("{");
    for _ in 0..50 {
        reply = reply.piece(Duration::from_millis(20), " ");
    }
    let server = SseServer::start(vec![reply]).await;
    let model = openai(server.url());
    let request = ChatRequest::new("m");
    let call = model.chat(&request);
    assert!(tokio::time::timeout(Duration::from_millis(100), call)
        .await
        .is_err());
    for _ in 0..100 {
        if server.disconnects() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the server kept writing to a dropped call");
}

#[tokio::test]
async fn request_timeouts_and_refused_connections_are_typed() {
    let mut reply = Reply::sse();
    for _ in 0..20 {
        reply = reply.piece(Duration::from_millis(50), ": still thinking\n\n");
    }
    let server = SseServer::start(vec![reply]).await;
    let model = OpenAi::builder()
        .api_key(KEY)
        .base_url(server.url())
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let events = collect(&model, &ChatRequest::new("m")).await;
    let err = events.last().unwrap().as_ref().unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let model = openai(&format!("http://127.0.0.1:{port}"));
    let err = model.chat(&ChatRequest::new("m")).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(err.provider(), Some("openai"));
}

#[tokio::test]
async fn an_event_stream_labelled_json_is_still_parsed() {
    let reply = Reply::with_status(200, "application/json").now(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
    );
    let server = SseServer::start(vec![reply]).await;
    let events = collect(&openai(server.url()), &ChatRequest::new("m")).await;
    assert_eq!(
        events.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
        vec![StreamEvent::text("ok"), StreamEvent::finish("stop")]
    );
}
