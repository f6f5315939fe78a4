//! The Responses API against fakes on loopback: the route (OpenAI and Azure), a whole
//! response, a stream with a function call split across events, `previous_response_id`, and
//! the exact `$ai_generation` properties.

mod support;

use serde_json::{json, Value};
use traced_llm::posthog::capture_event;
use traced_llm::provider::OpenAi;
use traced_llm::sink::InMemorySink;
use traced_llm::{ChatRequest, LlmModel, Message, TracedModel};
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use support::sse_server::{Reply, SseServer};

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
