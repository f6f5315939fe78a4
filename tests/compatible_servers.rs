//! What real OpenAI-compatible servers (and Anthropic) send on streams, end to end through a
//! traced model, from each server's documented wire shape: Groq's `x_groq.usage`, Mistral's
//! content parts, proxies' cache writes, the fingerprint and stop sequence of a stream,
//! Ollama's reused tool-call index, and web searches, each pinned by its exact properties.

mod support;

use serde_json::{json, Value};
use traced_llm::posthog::capture_event;
use traced_llm::provider::{Anthropic, OpenAi};
use traced_llm::sink::InMemorySink;
use traced_llm::{ChatRequest, LlmModel, Message, TracedModel};

use support::sse_server::{Reply, SseServer};

fn properties(sink: &InMemorySink) -> Value {
    let events = sink.events();
    assert_eq!(events.len(), 1, "exactly one event per call");
    capture_event(&events[0]).to_json()["properties"].clone()
}

/// Streams `datas` as `data:` events from a compatible server named `label`, traced, to the
/// end; returns the event's properties.
async fn stream_from(label: &str, datas: &[&str]) -> Value {
    let server = SseServer::start(vec![Reply::sse().data_events(datas.iter().copied())]).await;
    let model = OpenAi::compatible(label, server.url()).build().unwrap();
    let sink = InMemorySink::new();
    let model = TracedModel::new(model, sink.clone());
    model
        .chat_stream(&ChatRequest::new("m").message(Message::user("hi")))
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    properties(&sink)
}

#[tokio::test]
async fn groq_usage_only_in_x_groq_is_the_calls_usage() {
    let props = stream_from("groq", &[
        r#"{"id":"chatcmpl-g","object":"chat.completion.chunk","model":"llama-3.3-70b-versatile","system_fingerprint":"fp_g1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}],"x_groq":{"id":"req_01"}}"#,
        r#"{"id":"chatcmpl-g","object":"chat.completion.chunk","model":"llama-3.3-70b-versatile","system_fingerprint":"fp_g1","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_01","usage":{"queue_time":0.02,"prompt_tokens":18,"prompt_time":0.002,"completion_tokens":2,"completion_time":0.004,"total_tokens":20,"total_time":0.006}}}"#,
        "[DONE]",
    ])
    .await;
    assert_eq!(props["$ai_provider"], "groq");
    assert_eq!(props["$ai_input_tokens"], 18);
    assert_eq!(props["$ai_output_tokens"], 2);
    assert_eq!(props["$ai_stop_reason"], "stop");
    // The fingerprint of a stream is recorded too.
    assert_eq!(
        props["$ai_provider_metadata"],
        json!({"system_fingerprint": "fp_g1"})
    );
}

#[tokio::test]
async fn mistral_thinking_parts_are_reasoning_and_text_parts_the_answer() {
    let props = stream_from("mistral", &[
        r#"{"id":"m1","object":"chat.completion.chunk","model":"magistral-medium-2507","choices":[{"index":0,"delta":{"role":"assistant","content":[{"type":"thinking","thinking":[{"type":"text","text":"Six times seven is 42."}]}]},"finish_reason":null}]}"#,
        r#"{"id":"m1","object":"chat.completion.chunk","model":"magistral-medium-2507","choices":[{"index":0,"delta":{"content":[{"type":"text","text":"42"}]},"finish_reason":null}]}"#,
        r#"{"id":"m1","object":"chat.completion.chunk","model":"magistral-medium-2507","choices":[{"index":0,"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"total_tokens":60,"completion_tokens":50}}"#,
        "[DONE]",
    ])
    .await;
    assert_eq!(props["$ai_is_error"], false);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "42"}]}])
    );
    assert!(props["$ai_time_to_first_token"].as_f64().is_some());
    assert_eq!(props["$ai_input_tokens"], 10);
    assert_eq!(props["$ai_output_tokens"], 50);
}

#[tokio::test]
async fn proxies_cache_writes_and_charges_on_streams_are_sent() {
    // OpenRouter: writes in `prompt_tokens_details.cache_write_tokens`, its charge in `cost`.
    let props = stream_from("openrouter", &[
        r#"{"id":"gen-1","model":"anthropic/claude-sonnet-4","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
        r#"{"id":"gen-1","model":"anthropic/claude-sonnet-4","choices":[],"usage":{"prompt_tokens":2000,"completion_tokens":10,"total_tokens":2010,"prompt_tokens_details":{"cached_tokens":1200,"cache_write_tokens":500},"cost":0.00123,"is_byok":false}}"#,
        "[DONE]",
    ])
    .await;
    assert_eq!(props["$ai_input_tokens"], 2000);
    assert_eq!(props["$ai_cache_read_input_tokens"], 1200);
    assert_eq!(props["$ai_cache_creation_input_tokens"], 500);
    assert_eq!(props["$ai_cache_reporting_exclusive"], false);
    assert_eq!(props["$ai_total_cost_usd"], 0.00123);

    // LiteLLM: writes as `cache_creation_tokens` in the details.
    let props = stream_from("litellm", &[
        r#"{"id":"c-l","model":"claude-sonnet-4","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
        r#"{"id":"c-l","model":"claude-sonnet-4","choices":[],"usage":{"prompt_tokens":900,"completion_tokens":10,"prompt_tokens_details":{"cached_tokens":100,"cache_creation_tokens":300}}}"#,
        "[DONE]",
    ])
    .await;
    assert_eq!(props["$ai_cache_read_input_tokens"], 100);
    assert_eq!(props["$ai_cache_creation_input_tokens"], 300);

    // A proxy forwarding Anthropic's exclusive counts: fewer input tokens than the cache.
    let props = stream_from("litellm", &[
        r#"{"id":"c-x","model":"claude-sonnet-4","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
        r#"{"id":"c-x","model":"claude-sonnet-4","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":10,"cache_read_input_tokens":2000,"cache_creation_input_tokens":100}}"#,
        "[DONE]",
    ])
    .await;
    assert_eq!(props["$ai_input_tokens"], 12);
    assert_eq!(props["$ai_cache_read_input_tokens"], 2000);
    assert_eq!(props["$ai_cache_creation_input_tokens"], 100);
    assert_eq!(props["$ai_cache_reporting_exclusive"], true);
}

#[tokio::test]
async fn ollama_calls_that_share_index_zero_stay_two_valid_calls() {
    let props = stream_from("ollama", &[
        r#"{"id":"chatcmpl-o","object":"chat.completion.chunk","model":"qwen3","choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_a1","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-o","object":"chat.completion.chunk","model":"qwen3","choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_b2","index":0,"type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-o","object":"chat.completion.chunk","model":"qwen3","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"tool_calls"}]}"#,
        "[DONE]",
    ])
    .await;
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [
            {"type": "function", "id": "call_a1",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"type": "function", "id": "call_b2",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}},
        ]}])
    );
    assert_eq!(props["$ai_stop_reason"], "tool_calls");
}

#[tokio::test]
async fn openai_search_annotations_count_one_web_search() {
    let props = stream_from("openai", &[
        r#"{"id":"c-s","model":"gpt-4o-search-preview","choices":[{"index":0,"delta":{"role":"assistant","content":"Sunny.","annotations":[{"type":"url_citation","url_citation":{"start_index":0,"end_index":6,"title":"Weather","url":"https://example.com/weather"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c-s","model":"gpt-4o-search-preview","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"id":"c-s","model":"gpt-4o-search-preview","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":3}}"#,
        "[DONE]",
    ])
    .await;
    assert_eq!(props["$ai_web_search_count"], 1);
    assert_eq!(props["$ai_input_tokens"], 8);
}

#[tokio::test]
async fn anthropic_streams_carry_their_stop_sequence_and_web_searches() {
    let events = [
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_s","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":40,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Done"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"stop_sequence","stop_sequence":"END"},"usage":{"output_tokens":6,"server_tool_use":{"web_search_requests":2}}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ];
    let body: String = events
        .iter()
        .map(|(kind, data)| format!("event: {kind}\ndata: {data}\n\n"))
        .collect();
    let server = SseServer::start(vec![Reply::sse().split_every(13, &body)]).await;
    let model = Anthropic::builder()
        .api_key("sk-ant-test")
        .base_url(server.url())
        .build()
        .unwrap();
    let sink = InMemorySink::new();
    let model = TracedModel::new(model, sink.clone());
    let response = model
        .chat_stream(
            &ChatRequest::new("claude-sonnet-4-5")
                .message(Message::user("Say done"))
                .stop("END"),
        )
        .await
        .unwrap()
        .collect_response()
        .await
        .unwrap();
    assert_eq!(response.text(), "Done");
    let props = properties(&sink);
    assert_eq!(props["$ai_stop_reason"], "stop_sequence");
    assert_eq!(
        props["$ai_provider_metadata"],
        json!({"stop_sequence": "END"})
    );
    assert_eq!(props["$ai_web_search_count"], 2);
    assert_eq!(props["$ai_input_tokens"], 40);
    assert_eq!(props["$ai_output_tokens"], 6);
}
