//! The Responses API against fakes on loopback, from the documented wire format: the route
//! (OpenAI and Azure), a whole response, a stream with a function call split across events,
//! reasoning summaries, `previous_response_id`, terminal `failed`/`incomplete`/`error` events,
//! 4xx/5xx error bodies, malformed JSON and SSE, and the exact `$ai_generation` properties.

mod support;

use serde_json::{json, Value};
use traced_llm::posthog::capture_event;
use traced_llm::provider::OpenAi;
use traced_llm::sink::InMemorySink;
use traced_llm::{ChatRequest, LlmModel, Message, StreamEvent, TracedModel};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use support::sse_server::{Reply, SseServer};

const KEY: &str = "sk-responses-test-SECRET-0123";

fn responses(base: &str) -> traced_llm::provider::OpenAiResponses {
    OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{base}/v1"))
        .build_responses()
        .unwrap()
}

/// A Responses stream body: each `(type, data)` as a named SSE event.
fn sse_body(events: &[(&str, &str)]) -> String {
    events
        .iter()
        .map(|(kind, data)| format!("event: {kind}\ndata: {data}\n\n"))
        .collect()
}

/// Every item of a stream, errors included, until it ends.
async fn drain(mut stream: traced_llm::ChatStream) -> Vec<traced_llm::Result<StreamEvent>> {
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item);
    }
    items
}

fn hi() -> ChatRequest {
    ChatRequest::new("gpt-5").message(Message::user("hi"))
}

fn properties(sink: &InMemorySink) -> Value {
    let events = sink.events();
    assert_eq!(events.len(), 1, "exactly one event per call");
    capture_event(&events[0]).to_json()["properties"].clone()
}

#[tokio::test]
async fn a_response_is_a_generation_with_its_id_and_usage() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/responses"))
        .and(header("authorization", "Bearer sk-r"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_123", "object": "response", "status": "completed", "model": "gpt-5-mini-2025-08-07",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "id": "msg_1", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Forty-two.", "annotations": []}]}
            ],
            "usage": {"input_tokens": 50, "input_tokens_details": {"cached_tokens": 20},
                      "output_tokens": 80, "output_tokens_details": {"reasoning_tokens": 64}, "total_tokens": 130}
        })))
        .expect(1)
        .mount(&server)
        .await;
    let sink = InMemorySink::new();
    let model = OpenAi::builder()
        .api_key("sk-r")
        .base_url(format!("{}/v1", server.uri()))
        .build_responses()
        .unwrap();
    let model = TracedModel::new(model, sink.clone());
    let request = ChatRequest::new("gpt-5-mini")
        .message(Message::user("Answer?"))
        .extra("previous_response_id", "resp_100");
    assert_eq!(model.chat(&request).await.unwrap().text(), "Forty-two.");
    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["previous_response_id"], "resp_100");
    assert_eq!(
        sent["input"],
        json!([{"role": "user", "content": "Answer?"}])
    );

    let props = properties(&sink);
    assert_eq!(props["$ai_completion_id"], "resp_123");
    assert_eq!(props["$ai_model"], "gpt-5-mini-2025-08-07");
    assert_eq!(props["$ai_input_tokens"], 50);
    assert_eq!(props["$ai_cache_read_input_tokens"], 20);
    assert_eq!(props["$ai_output_tokens"], 80);
    assert_eq!(props["$ai_reasoning_tokens"], 64);
    assert_eq!(props["$ai_stop_reason"], "completed");
    assert_eq!(props["$ai_cache_reporting_exclusive"], false);
}

#[tokio::test]
async fn azure_responses_go_to_the_resource_route() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/openai/responses"))
        .and(query_param("api-version", "2025-04-01-preview"))
        .and(header("api-key", "az-key"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "resp_az", "status": "completed", "model": "gpt-5-mini", "output": []
        })))
        .expect(1)
        .mount(&server)
        .await;
    let model = OpenAi::azure(
        format!("{}/openai/deployments/gpt-5-mini", server.uri()),
        "2025-04-01-preview",
        "az-key",
    )
    .build_responses()
    .unwrap();
    assert_eq!(model.provider(), "azure");
    let response = model
        .chat(&ChatRequest::new("gpt-5-mini").message(Message::user("hi")))
        .await
        .unwrap();
    assert_eq!(response.id.as_deref(), Some("resp_az"));
}

#[tokio::test]
async fn a_streamed_response_with_a_split_function_call() {
    let events = [
        (
            "response.created",
            r#"{"type":"response.created","response":{"id":"resp_s","model":"gpt-5","status":"in_progress","output":[]}}"#,
        ),
        (
            "response.output_item.added",
            r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_w","name":"get_weather","arguments":""}}"#,
        ),
        (
            "response.function_call_arguments.delta",
            r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"{\"ci"}"#,
        ),
        (
            "response.function_call_arguments.delta",
            r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"ty\":\"Paris\"}"}"#,
        ),
        (
            "response.function_call_arguments.done",
            r#"{"type":"response.function_call_arguments.done","item_id":"fc_1","output_index":0,"arguments":"{\"city\":\"Paris\"}"}"#,
        ),
        (
            "response.completed",
            r#"{"type":"response.completed","response":{"id":"resp_s","model":"gpt-5","status":"completed","output":[],"usage":{"input_tokens":30,"output_tokens":12,"output_tokens_details":{"reasoning_tokens":0}}}}"#,
        ),
    ];
    let body: String = events
        .iter()
        .map(|(kind, data)| format!("event: {kind}\ndata: {data}\n\n"))
        .collect();
    let server = SseServer::start(vec![Reply::sse().split_every(11, &body)]).await;
    let sink = InMemorySink::new();
    let model = OpenAi::builder()
        .api_key("sk-r")
        .base_url(format!("{}/v1", server.url()))
        .build_responses()
        .unwrap();
    let model = TracedModel::new(model, sink.clone());
    let response = model
        .chat_stream(&ChatRequest::new("gpt-5").message(Message::user("Weather?")))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(
        response.tool_calls().next().unwrap().arguments,
        r#"{"city":"Paris"}"#
    );
    assert_eq!(server.requests()[0].json()["stream"], true);
    let props = properties(&sink);
    assert_eq!(props["$ai_completion_id"], "resp_s");
    assert_eq!(props["$ai_input_tokens"], 30);
    assert_eq!(props["$ai_output_tokens"], 12);
    assert_eq!(props["$ai_stop_reason"], "completed");
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "function", "id": "call_w",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}])
    );
}

#[tokio::test]
async fn error_bodies_are_typed_errors_with_their_status_and_type_and_no_key() {
    let cases = [
        (
            401,
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}."), "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}),
            "invalid_request_error",
            Some("invalid_api_key"),
            "auth",
        ),
        (
            400,
            json!({"error": {"message": "Previous response with id 'resp_x' not found.", "type": "invalid_request_error", "param": "previous_response_id", "code": "previous_response_not_found"}}),
            "invalid_request_error",
            Some("previous_response_not_found"),
            "bad_request",
        ),
        (
            429,
            json!({"error": {"message": "Rate limit reached for gpt-5.", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
            "requests",
            Some("rate_limit_exceeded"),
            "rate_limit",
        ),
        (
            500,
            json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}}),
            "server_error",
            None,
            "server",
        ),
    ];
    for (status, body, error_type, code, kind) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/responses"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let sink = InMemorySink::new();
        let model = TracedModel::new(responses(&server.uri()), sink.clone());

        let err = model.chat(&hi()).await.unwrap_err();
        assert!(err.is_status(), "{status}");
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.provider(), Some("openai"));
        assert_eq!(err.api_error_type(), Some(error_type));
        assert_eq!(err.api_error_code(), code);
        let props = properties(&sink);
        assert_eq!(props["$ai_is_error"], true);
        assert_eq!(props["$ai_http_status"], status);
        assert_eq!(props["$ai_error_type"], kind);
        assert_eq!(props["$ai_error"], err.to_string());
        for shown in [err.to_string(), format!("{err:?}"), props.to_string()] {
            assert!(!shown.contains(KEY), "the key leaked in {shown}");
        }

        // The stream path fails the same way, before any stream exists.
        let sink = InMemorySink::new();
        let model = TracedModel::new(responses(&server.uri()), sink.clone());
        let err = match model.chat_stream(&hi()).await {
            Err(err) => err,
            Ok(_) => panic!("expected an error for {status}"),
        };
        assert_eq!(err.status(), Some(status));
        assert_eq!(err.api_error_code(), code);
        let props = properties(&sink);
        assert_eq!(props["$ai_http_status"], status);
        assert_eq!(props["$ai_error_type"], kind);
        assert!(!props.to_string().contains(KEY));
    }
}

#[tokio::test]
async fn malformed_json_and_sse_are_decode_and_stream_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("{\"id\": \"resp_1\", \"output\": [", "application/json"),
        )
        .mount(&server)
        .await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(responses(&server.uri()), sink.clone());
    let err = model.chat(&hi()).await.unwrap_err();
    assert!(err.is_decode());
    assert_eq!(err.status(), Some(200));
    assert!(
        err.message().starts_with("invalid response json: "),
        "{}",
        err.message()
    );
    assert_eq!(properties(&sink)["$ai_error_type"], "decode");

    // A broken event after some text: the stream fails, the event keeps the text.
    let body = sse_body(&[
        (
            "response.created",
            r#"{"type":"response.created","response":{"id":"resp_m","model":"gpt-5","status":"in_progress","output":[]}}"#,
        ),
        (
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"partial"}"#,
        ),
        (
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","delta":"#,
        ),
    ]);
    let server = SseServer::start(vec![Reply::sse().now(body)]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(responses(server.url()), sink.clone());
    let items = drain(model.chat_stream(&hi()).await.unwrap()).await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert!(err.is_decode(), "{err}");
    assert!(
        err.message().starts_with("invalid stream event 3 json: "),
        "{}",
        err.message()
    );
    let props = properties(&sink);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_error_type"], "decode");
    assert_eq!(props["$ai_completion_id"], "resp_m");
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "partial"}]}])
    );

    // A body that ends before the terminal event is a broken stream, not an empty answer.
    let body = sse_body(&[(
        "response.output_text.delta",
        r#"{"type":"response.output_text.delta","output_index":0,"delta":"a"}"#,
    )]);
    let server = SseServer::start(vec![Reply::sse().now(body)]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(responses(server.url()), sink.clone());
    let items = drain(model.chat_stream(&hi()).await.unwrap()).await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert!(err.is_stream(), "{err}");
    assert_eq!(properties(&sink)["$ai_error_type"], "stream");
}

#[tokio::test]
async fn a_stream_that_fails_or_is_incomplete_or_errors_is_recorded_so() {
    // `response.failed`: an error, with the usage the response still reports.
    let body = sse_body(&[
        (
            "response.created",
            r#"{"type":"response.created","response":{"id":"resp_f","model":"gpt-5","status":"in_progress","output":[]}}"#,
        ),
        (
            "response.failed",
            r#"{"type":"response.failed","response":{"id":"resp_f","model":"gpt-5","status":"failed","error":{"code":"server_error","message":"The model failed to generate a response."},"output":[],"usage":{"input_tokens":11,"output_tokens":0}}}"#,
        ),
    ]);
    let server = SseServer::start(vec![Reply::sse().now(body)]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(responses(server.url()), sink.clone());
    let items = drain(model.chat_stream(&hi()).await.unwrap()).await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert!(err.is_stream());
    assert_eq!(err.message(), "The model failed to generate a response.");
    assert_eq!(err.api_error_code(), Some("server_error"));
    let props = properties(&sink);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_error_type"], "stream");
    assert_eq!(props["$ai_http_status"], 200);
    assert_eq!(props["$ai_completion_id"], "resp_f");
    assert_eq!(props["$ai_input_tokens"], 11);
    assert_eq!(props["$ai_output_tokens"], 0);

    // `response.incomplete`: a normal end whose finish reason says so, with the details.
    let body = sse_body(&[
        (
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","output_index":0,"delta":"Once upon"}"#,
        ),
        (
            "response.incomplete",
            r#"{"type":"response.incomplete","response":{"id":"resp_i","model":"gpt-5","status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"output":[],"usage":{"input_tokens":9,"output_tokens":16,"output_tokens_details":{"reasoning_tokens":12}}}}"#,
        ),
    ]);
    let server = SseServer::start(vec![Reply::sse().now(body)]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(responses(server.url()), sink.clone());
    let response = model
        .chat_stream(&hi())
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(response.text(), "Once upon");
    assert_eq!(response.finish_reason.as_deref(), Some("incomplete"));
    let props = properties(&sink);
    assert_eq!(props["$ai_is_error"], false);
    assert_eq!(props["$ai_stop_reason"], "incomplete");
    assert_eq!(props["$ai_completion_id"], "resp_i");
    assert_eq!(props["$ai_input_tokens"], 9);
    assert_eq!(props["$ai_output_tokens"], 16);
    assert_eq!(props["$ai_reasoning_tokens"], 12);
    assert_eq!(
        props["$ai_provider_metadata"]["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );

    // An `error` event: the stream fails with its code, the text so far is kept.
    let body = sse_body(&[
        (
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","output_index":0,"delta":"Hel"}"#,
        ),
        (
            "error",
            r#"{"type":"error","code":"rate_limit_exceeded","message":"Rate limit reached.","param":null,"sequence_number":2}"#,
        ),
    ]);
    let server = SseServer::start(vec![Reply::sse().now(body)]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(responses(server.url()), sink.clone());
    let items = drain(model.chat_stream(&hi()).await.unwrap()).await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(err.message(), "Rate limit reached.");
    assert_eq!(err.api_error_code(), Some("rate_limit_exceeded"));
    let props = properties(&sink);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_error_type"], "stream");
    assert_eq!(props["$ai_error"], err.to_string());
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "Hel"}]}])
    );
}

#[tokio::test]
async fn reasoning_summaries_count_for_the_first_token_but_stay_out_of_the_output() {
    // Nothing but a reasoning summary before the end: the first token is the summary's.
    let body = sse_body(&[
        (
            "response.created",
            r#"{"type":"response.created","response":{"id":"resp_r","model":"o4-mini","status":"in_progress","output":[]}}"#,
        ),
        (
            "response.reasoning_summary_part.added",
            r#"{"type":"response.reasoning_summary_part.added","item_id":"rs_1","output_index":0,"summary_index":0,"part":{"type":"summary_text","text":""}}"#,
        ),
        (
            "response.reasoning_summary_text.delta",
            r#"{"type":"response.reasoning_summary_text.delta","item_id":"rs_1","output_index":0,"summary_index":0,"delta":"**Weighing the options**"}"#,
        ),
        (
            "response.reasoning_summary_text.done",
            r#"{"type":"response.reasoning_summary_text.done","item_id":"rs_1","output_index":0,"summary_index":0,"text":"**Weighing the options**"}"#,
        ),
        (
            "response.output_text.delta",
            r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":1,"content_index":0,"delta":"Blue."}"#,
        ),
        (
            "response.completed",
            r#"{"type":"response.completed","response":{"id":"resp_r","model":"o4-mini","status":"completed","output":[{"type":"web_search_call","id":"ws_1","status":"completed"}],"usage":{"input_tokens":1500,"input_tokens_details":{"cached_tokens":1024},"output_tokens":300,"output_tokens_details":{"reasoning_tokens":256},"total_tokens":1800}}}"#,
        ),
    ]);
    let server = SseServer::start(vec![Reply::sse().split_every(7, &body)]).await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(responses(server.url()), sink.clone());
    let items = drain(model.chat_stream(&hi()).await.unwrap()).await;
    let first_content = items
        .iter()
        .map(|item| item.as_ref().unwrap())
        .find(|event| event.is_content());
    assert_eq!(
        first_content,
        Some(&StreamEvent::ReasoningDelta {
            text: "**Weighing the options**".into()
        })
    );
    let props = properties(&sink);
    assert!(props["$ai_time_to_first_token"].as_f64().is_some());
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "Blue."}]}])
    );
    assert!(!props.to_string().contains("Weighing"));
    assert_eq!(props["$ai_completion_id"], "resp_r");
    assert_eq!(props["$ai_model"], "o4-mini");
    assert_eq!(props["$ai_input_tokens"], 1500);
    assert_eq!(props["$ai_cache_read_input_tokens"], 1024);
    assert_eq!(props["$ai_output_tokens"], 300);
    assert_eq!(props["$ai_reasoning_tokens"], 256);
    assert_eq!(props["$ai_web_search_count"], 1);
    assert_eq!(props["$ai_cache_reporting_exclusive"], false);
    assert_eq!(props["$ai_stop_reason"], "completed");
    assert_eq!(props["$ai_http_status"], 200);
}
