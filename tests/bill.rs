//! What PostHog needs to compute the true bill, property by property: 1-hour and 5-minute cache
//! writes, cache writes through proxies, exclusive counts when the input is smaller than the
//! cache, unreported counts left out, a provider-reported cost, web searches.

mod support;

use serde_json::{json, Value};
use traced_llm::event::Generation;
use traced_llm::posthog::capture_event;
use traced_llm::pricing::{ModelPrice, PriceTable};
use traced_llm::provider::{Anthropic, OpenAi};
use traced_llm::record::{CallInfo, Recorder};
use traced_llm::sink::InMemorySink;
use traced_llm::types::Usage;
use traced_llm::{ChatRequest, LlmModel, Message, TracedModel};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn properties(event: &traced_llm::event::Event) -> Value {
    capture_event(event).to_json()["properties"].clone()
}

async fn answering(body: Value) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    server
}

fn request(model: &str) -> ChatRequest {
    ChatRequest::new(model).message(Message::user("Hi"))
}

#[tokio::test]
async fn anthropic_one_hour_and_five_minute_writes_are_both_sent() {
    let server = answering(json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 12, "output_tokens": 5, "cache_read_input_tokens": 100,
                  "cache_creation_input_tokens": 700,
                  "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 400},
                  "server_tool_use": {"web_search_requests": 3}}
    }))
    .await;
    let sink = InMemorySink::new();
    let anthropic = Anthropic::builder()
        .api_key("sk-ant")
        .base_url(server.uri())
        .build()
        .unwrap();
    let model = TracedModel::new(anthropic, sink.clone());
    model.chat(&request("claude-sonnet-4-5")).await.unwrap();
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_input_tokens"], 12);
    assert_eq!(props["$ai_cache_read_input_tokens"], 100);
    assert_eq!(props["$ai_cache_creation_input_tokens"], 700);
    assert_eq!(props["$ai_cache_creation_5m_input_tokens"], 300);
    assert_eq!(props["$ai_cache_creation_1h_input_tokens"], 400);
    assert_eq!(props["$ai_web_search_count"], 3);
    assert_eq!(props["$ai_cache_reporting_exclusive"], true);
}

#[test]
fn one_hour_writes_are_priced_at_twice_the_input_rate() {
    let price = ModelPrice::new(3.0, 15.0);
    let usage = Usage::new(0, 0).with_cache_creation_ttl(1_000_000, 1_000_000);
    let cost = price.cost(&usage, traced_llm::pricing::CacheAccounting::ANTHROPIC);
    // 1M at 1.25 × 3 + 1M at 2 × 3.
    assert!((cost.input_usd - (3.75 + 6.0)).abs() < 1e-9, "{cost:?}");
}

#[tokio::test]
async fn proxy_cache_writes_and_reported_cost_are_sent() {
    // OpenRouter: writes in prompt_tokens_details, the charge in usage.cost.
    let server = answering(json!({
        "id": "gen-1", "model": "anthropic/claude-sonnet-4",
        "choices": [{"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2000, "completion_tokens": 10, "total_tokens": 2010,
                  "prompt_tokens_details": {"cached_tokens": 1200, "cache_write_tokens": 500},
                  "cost": 0.0042}
    }))
    .await;
    let sink = InMemorySink::new();
    let openrouter = OpenAi::compatible("openrouter", format!("{}/api/v1", server.uri()))
        .build()
        .unwrap();
    let model = TracedModel::new(openrouter, sink.clone());
    model
        .chat(&request("anthropic/claude-sonnet-4"))
        .await
        .unwrap();
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_input_tokens"], 2000);
    assert_eq!(props["$ai_cache_read_input_tokens"], 1200);
    assert_eq!(props["$ai_cache_creation_input_tokens"], 500);
    assert_eq!(props["$ai_cache_reporting_exclusive"], false);
    // The provider's charge is the call's cost; PostHog keeps a total it is given.
    assert_eq!(props["$ai_total_cost_usd"], 0.0042);
    assert_eq!(props.get("$ai_input_cost_usd"), None);

    // LiteLLM: the writes at the top level.
    let server = answering(json!({
        "id": "chatcmpl-l", "model": "claude-sonnet-4",
        "choices": [{"message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 900, "completion_tokens": 10, "cache_creation_input_tokens": 300,
                  "cache_read_input_tokens": 100, "prompt_tokens_details": {"cached_tokens": 100}}
    }))
    .await;
    let sink = InMemorySink::new();
    let litellm = OpenAi::compatible("litellm", server.uri()).build().unwrap();
    TracedModel::new(litellm, sink.clone())
        .chat(&request("claude-sonnet-4"))
        .await
        .unwrap();
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_cache_creation_input_tokens"], 300);
    assert_eq!(props["$ai_cache_read_input_tokens"], 100);
}

#[test]
fn a_reported_cost_wins_over_the_prices_and_keeps_their_split() {
    let sink = InMemorySink::new();
    let recorder = Recorder::builder()
        .sink(sink.clone())
        .pricing(PriceTable::empty().with_model("m", ModelPrice::new(1.0, 3.0)))
        .build();
    let call = recorder.start(CallInfo::new("m", "openrouter"));
    call.succeed(
        &traced_llm::ChatResponse::text_response("x")
            .with_usage(Usage::new(1_000_000, 1_000_000).with_cost_usd(2.0)),
    );
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_total_cost_usd"], 2.0);
    assert_eq!(props["$ai_input_cost_usd"], 0.5);
    assert_eq!(props["$ai_output_cost_usd"], 1.5);
}

#[test]
fn counts_smaller_than_the_cache_are_reported_exclusive_for_that_call() {
    // A proxy forwarding Anthropic's exclusive counts through an OpenAI-style API, where the
    // provider declares them inclusive: PostHog would price a negative pool.
    let sink = InMemorySink::new();
    let recorder = Recorder::new(sink.clone());
    for (input, exclusive) in [(20u64, true), (2_000, false)] {
        let call = recorder
            .start(CallInfo::new("claude-sonnet-4", "openrouter").cache_tokens_in_input(true));
        call.succeed(
            &traced_llm::ChatResponse::text_response("x").with_usage(
                Usage::new(input, 5)
                    .with_cache_read(1_000)
                    .with_cache_creation(500),
            ),
        );
        let props = properties(sink.events().last().unwrap());
        assert_eq!(
            props["$ai_cache_reporting_exclusive"], exclusive,
            "input {input}"
        );
    }
    let priced = sink.generations()[0].clone();
    assert!(priced.cache_reporting_exclusive());
}

#[test]
fn counts_the_provider_did_not_report_are_left_out() {
    let sink = InMemorySink::new();
    let recorder = Recorder::new(sink.clone());
    // A call dropped before any usage arrived: unknown, not zero.
    let mut call = recorder.start(CallInfo::new("gpt-4o", "openai").stream(true));
    call.observe(&traced_llm::StreamEvent::text("Hel"));
    drop(call);
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_stop_reason"], "cancelled");
    for key in [
        "$ai_input_tokens",
        "$ai_output_tokens",
        "$ai_cache_read_input_tokens",
        "$ai_reasoning_tokens",
        "$ai_web_search_count",
        "$ai_total_cost_usd",
    ] {
        assert_eq!(props.get(key), None, "{key}");
    }
}

#[test]
fn gemini_thoughts_are_sent_apart_only_where_posthog_adds_them_back() {
    for (model, sent) in [
        ("gemini-2.5-flash", 30),
        ("gemini-3-pro-preview", 30),
        ("gemini-3.1-flash-lite", 30),
        ("gemini-2.0-flash", 100),
        ("google/gemini-2.5-flash", 100),
        ("o4-mini", 100),
    ] {
        let mut generation = Generation::new(model, "gemini");
        generation.usage = Usage::new(10, 100).with_reasoning(70);
        let props = properties(&generation.into());
        assert_eq!(props["$ai_output_tokens"], sent, "{model}");
        assert_eq!(props["$ai_reasoning_tokens"], 70, "{model}");
    }
}
