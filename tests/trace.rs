//! Traces, spans, sessions, feedback, metrics, embeddings, cost and redaction.

mod support;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use support::events::{capture_json, properties};
use traced_llm::event::{Event, Feedback, Metric};
use traced_llm::pricing::{ModelPrice, PriceTable};
use traced_llm::sink::{Fanout, InMemorySink};
use traced_llm::testing::ScriptedModel;

use traced_llm::types::Usage;
use traced_llm::types::{EmbeddingRequest, EmbeddingResponse};
use traced_llm::{CallContext, ChatRequest, ChatResponse, Error, LlmModel, Message, TracedModel};

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new("gpt-4o-mini").message(Message::user(text))
}

fn answers(n: usize) -> ScriptedModel {
    (0..n).fold(ScriptedModel::new(), |model, i| {
        model.respond(ChatResponse::text_response(format!("answer {i}")))
    })
}

/// The events as PostHog JSON, in capture order.
fn captured(sink: &InMemorySink) -> Vec<serde_json::Value> {
    sink.events().iter().map(capture_json).collect()
}

fn prop<'a>(event: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    &event["properties"][key]
}

#[tokio::test]
async fn nested_spans_across_awaits_and_a_spawned_task_form_the_right_tree() {
    let sink = InMemorySink::new();
    let model = Arc::new(TracedModel::new(answers(3), sink.clone()));
    let tracer = model.tracer();

    let trace = tracer
        .trace("support_agent")
        .with_distinct_id("user_42")
        .with_session_id("session_9")
        .with_input(json!({"question": "Where is my parcel?"}));
    let plan = trace.child("plan");
    plan.in_scope(async {
        model.chat(&ask("first")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        model.chat(&ask("second")).await.unwrap();
    })
    .await;

    let tool = plan.child("lookup_parcel");
    let tool_model = Arc::clone(&model);
    tokio::spawn(async move {
        tool.in_scope(async { tool_model.chat(&ask("third")).await.unwrap() })
            .await;
        tool.end_with_output(json!({"status": "in transit"}));
    })
    .await
    .unwrap();
    let (trace_id, plan_id) = (trace.trace_id().to_owned(), plan.span_id().to_owned());
    plan.end();
    trace.end_with_output(json!({"answer": "It is in transit."}));

    let events = captured(&sink);
    let names: Vec<_> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "$ai_generation",
            "$ai_generation",
            "$ai_generation",
            "$ai_span",
            "$ai_span",
            "$ai_trace"
        ]
    );
    let [first, second, third, tool_span, plan_span, root] = &events[..] else {
        unreachable!()
    };

    for event in &events {
        assert_eq!(prop(event, "$ai_trace_id"), trace_id.as_str());
        assert_eq!(event["distinct_id"], "user_42");
        assert_eq!(prop(event, "$ai_session_id"), "session_9");
    }
    // The trace is the root: no parent, no span id of its own.
    assert_eq!(prop(root, "$ai_span_name"), "support_agent");
    assert!(root["properties"].get("$ai_parent_id").is_none());
    assert!(root["properties"].get("$ai_span_id").is_none());
    assert_eq!(
        prop(root, "$ai_input_state"),
        &json!({"question": "Where is my parcel?"})
    );
    assert_eq!(
        prop(root, "$ai_output_state"),
        &json!({"answer": "It is in transit."})
    );
    assert_eq!(prop(root, "$ai_is_error"), false);

    assert_eq!(prop(plan_span, "$ai_span_id"), plan_id.as_str());
    assert_eq!(prop(plan_span, "$ai_parent_id"), trace_id.as_str());
    assert_eq!(prop(plan_span, "$ai_span_name"), "plan");

    for generation in [first, second] {
        assert_eq!(prop(generation, "$ai_parent_id"), plan_id.as_str());
        assert!(prop(generation, "$ai_span_id").is_string());
    }
    assert_ne!(prop(first, "$ai_span_id"), prop(second, "$ai_span_id"));

    assert_eq!(prop(tool_span, "$ai_parent_id"), plan_id.as_str());
    assert_eq!(prop(tool_span, "$ai_span_name"), "lookup_parcel");
    assert_eq!(
        prop(tool_span, "$ai_output_state"),
        &json!({"status": "in transit"})
    );
    assert_eq!(prop(third, "$ai_parent_id"), prop(tool_span, "$ai_span_id"));
    assert!(prop(plan_span, "$ai_latency").as_f64().unwrap() >= 0.005);
}

#[tokio::test]
async fn calls_outside_any_span_stay_traces_of_their_own_and_explicit_ids_win() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(answers(2), sink.clone());
    let trace = model.tracer().trace_with_id("chat", "conversation_1");
    trace
        .in_scope(async {
            let request = ask("hi").context(
                CallContext::new()
                    .trace_id("other_trace")
                    .parent_id("my_parent")
                    .span_id("my_span"),
            );
            model.chat(&request).await.unwrap();
        })
        .await;
    model.chat(&ask("outside")).await.unwrap();
    trace.end();

    let events = captured(&sink);
    assert_eq!(prop(&events[0], "$ai_trace_id"), "other_trace");
    assert_eq!(prop(&events[0], "$ai_parent_id"), "my_parent");
    assert_eq!(prop(&events[0], "$ai_span_id"), "my_span");
    assert_eq!(prop(&events[1], "$ai_trace_id"), &events[1]["uuid"]);
    assert!(events[1]["properties"].get("$ai_parent_id").is_none());
    assert_eq!(prop(&events[2], "$ai_trace_id"), "conversation_1");
}

#[tokio::test]
async fn a_generation_directly_in_a_trace_has_the_trace_as_parent() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(answers(1), sink.clone());
    let trace = model.tracer().trace("one_shot");
    trace.in_scope(model.chat(&ask("hi"))).await.unwrap();
    let trace_id = trace.trace_id().to_owned();
    trace.end();
    let generation = &captured(&sink)[0];
    assert_eq!(prop(generation, "$ai_parent_id"), trace_id.as_str());
}

#[tokio::test]
async fn a_span_whose_task_is_cancelled_is_sent_as_an_error() {
    let sink = InMemorySink::new();
    let tracer = traced_llm::trace::Tracer::new(sink.clone());
    let trace = tracer.trace("long_job");
    let step = trace.child("waiting_forever");
    let task = tokio::spawn(async move {
        step.in_scope(std::future::pending::<()>()).await;
        step.end();
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    trace.end();

    let events = captured(&sink);
    assert_eq!(events[0]["event"], "$ai_span");
    assert_eq!(prop(&events[0], "$ai_span_name"), "waiting_forever");
    assert_eq!(prop(&events[0], "$ai_is_error"), true);
    assert_eq!(
        prop(&events[0], "$ai_error"),
        "span dropped before it was ended (task cancelled or panicked)"
    );
    assert_eq!(events[1]["event"], "$ai_trace");
    assert_eq!(prop(&events[1], "$ai_is_error"), false);
}

#[tokio::test]
async fn a_span_unwound_by_a_panic_is_sent_as_an_error() {
    let sink = InMemorySink::new();
    let tracer = traced_llm::trace::Tracer::new(sink.clone());
    let task = tokio::spawn({
        let tracer = tracer.clone();
        async move {
            let _span = tracer.trace("doomed");
            panic!("the agent crashed");
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    let events = captured(&sink);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "$ai_trace");
    assert_eq!(
        prop(&events[0], "$ai_error"),
        "span dropped before it was ended (task cancelled or panicked)"
    );
}

#[tokio::test]
async fn a_failed_span_carries_the_error() {
    let sink = InMemorySink::new();
    let tracer = traced_llm::trace::Tracer::new(sink.clone());
    let trace = tracer.trace("agent");
    trace.child("tool").fail("tool timed out after 30 s");
    trace.end();
    let events = captured(&sink);
    assert_eq!(prop(&events[0], "$ai_is_error"), true);
    assert_eq!(prop(&events[0], "$ai_error"), "tool timed out after 30 s");
}

#[tokio::test]
async fn feedback_and_metrics_carry_the_trace_and_the_user() {
    let sink = InMemorySink::new();
    let tracer = traced_llm::trace::Tracer::new(sink.clone());
    tracer.feedback(
        Feedback::thumbs_down("conversation_1")
            .with_text("It ignored my question")
            .with_distinct_id("user_42"),
    );
    tracer.feedback(Feedback::thumbs_up("conversation_2").with_distinct_id("user_42"));
    tracer.metric(Metric::new("conversation_1", "helpfulness", 0.25).with_distinct_id("user_42"));

    let events = captured(&sink);
    assert_eq!(events[0]["event"], "$ai_feedback");
    assert_eq!(events[0]["distinct_id"], "user_42");
    assert_eq!(prop(&events[0], "$ai_trace_id"), "conversation_1");
    assert_eq!(
        prop(&events[0], "$ai_feedback_text"),
        "It ignored my question"
    );
    assert_eq!(prop(&events[0], "$ai_feedback_score"), 0.0);
    assert!(events[0]["properties"].get("$ai_is_error").is_none());
    assert_eq!(prop(&events[1], "$ai_feedback_score"), 1.0);
    assert!(events[1]["properties"].get("$ai_feedback_text").is_none());
    assert_eq!(events[2]["event"], "$ai_metric");
    assert_eq!(prop(&events[2], "$ai_trace_id"), "conversation_1");
    assert_eq!(prop(&events[2], "$ai_metric_name"), "helpfulness");
    assert_eq!(prop(&events[2], "$ai_metric_value"), "0.25");
}

#[tokio::test]
async fn embeddings_send_ai_embedding_events() {
    let sink = InMemorySink::new();
    let model = ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("https://api.openai.com/v1")
        .embedding(EmbeddingResponse::new(
            vec![vec![0.1, 0.2], vec![0.3, 0.4]],
            Usage::default().with_input(9),
        ))
        .fail(Error::from_status(400, "input too long").with_provider("openai"));
    let model = TracedModel::builder(model)
        .sink(sink.clone())
        .pricing(PriceTable::empty())
        .build();
    let request = EmbeddingRequest::new("text-embedding-3-small", ["hello", "world"])
        .context(CallContext::new().distinct_id("user_42"));
    let response = model.embed(&request).await.unwrap();
    assert_eq!(response.embeddings.len(), 2);
    assert!(model.embed(&request).await.is_err());

    let events = captured(&sink);
    assert_eq!(events[0]["event"], "$ai_embedding");
    let mut props = events[0]["properties"].as_object().unwrap().clone();
    assert!(props.remove("$ai_latency").unwrap().as_f64().unwrap() >= 0.0);
    props.remove("$ai_trace_id");
    for key in ["$ai_lib", "$ai_lib_version", "$lib", "$lib_version"] {
        props.remove(key);
    }
    assert_eq!(
        serde_json::Value::Object(props),
        json!({
            "$ai_model": "text-embedding-3-small",
            "$ai_provider": "openai",
            "$ai_base_url": "https://api.openai.com/v1",
            "$ai_input": ["hello", "world"],
            "$ai_input_tokens": 9,
            "$ai_http_status": 200,
            "$ai_is_error": false
        })
    );
    assert_eq!(prop(&events[1], "$ai_is_error"), true);
    assert_eq!(prop(&events[1], "$ai_http_status"), 400);
    assert_eq!(
        prop(&events[1], "$ai_error"),
        "openai: http status 400: input too long"
    );
}

#[tokio::test]
async fn models_without_embeddings_answer_unsupported() {
    struct ChatOnly;
    #[async_trait::async_trait]
    impl LlmModel for ChatOnly {
        async fn chat(&self, _: &ChatRequest) -> traced_llm::Result<ChatResponse> {
            Ok(ChatResponse::default())
        }
        async fn chat_stream(&self, _: &ChatRequest) -> traced_llm::Result<traced_llm::ChatStream> {
            Err(Error::unsupported("streaming"))
        }
        fn provider(&self) -> &str {
            "chat-only"
        }
        fn base_url(&self) -> &str {
            ""
        }
    }
    let err = ChatOnly
        .embed(&EmbeddingRequest::new("m", ["x"]))
        .await
        .unwrap_err();
    assert!(err.is_unsupported());
    assert_eq!(err.provider(), Some("chat-only"));
}

fn cost_props(event: &Event) -> (f64, f64, f64) {
    let props = properties(event);
    let get = |key: &str| {
        props[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key} missing"))
    };
    (
        get("$ai_input_cost_usd"),
        get("$ai_output_cost_usd"),
        get("$ai_total_cost_usd"),
    )
}

fn assert_close(actual: (f64, f64, f64), expected: (f64, f64, f64)) {
    for (a, e) in [
        (actual.0, expected.0),
        (actual.1, expected.1),
        (actual.2, expected.2),
    ] {
        assert!((a - e).abs() < 1e-12, "{actual:?} != {expected:?}");
    }
}

#[tokio::test]
async fn configured_prices_put_cost_on_openai_events_with_cached_tokens() {
    let sink = InMemorySink::new();
    let response = ChatResponse::text_response("ok")
        .with_model("gpt-4o-mini-2024-07-18")
        .with_usage(Usage::new(1_000, 200).with_cache_read(400));
    let model = TracedModel::builder(
        ScriptedModel::new()
            .with_provider("openai")
            .respond(response),
    )
    .sink(sink.clone())
    .pricing(PriceTable::builtin())
    .build();
    model.chat(&ask("hi")).await.unwrap();

    // gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million tokens.
    // 600 uncached × 0.15 + 400 cached × 0.075 = 0.000090 + 0.000030; 200 × 0.60 = 0.000120.
    assert_close(
        cost_props(&sink.events()[0]),
        (0.000_12, 0.000_12, 0.000_24),
    );
}

#[tokio::test]
async fn configured_prices_put_cost_on_anthropic_events_with_cache_read_and_write() {
    let sink = InMemorySink::new();
    let response = ChatResponse::text_response("ok")
        .with_model("claude-sonnet-4-5-20250929")
        .with_usage(
            Usage::new(1_000, 200)
                .with_cache_read(3_000)
                .with_cache_creation(500),
        );
    let model = TracedModel::builder(
        ScriptedModel::new()
            .with_provider("anthropic")
            .with_cache_tokens_in_input(false)
            .respond(response),
    )
    .sink(sink.clone())
    .pricing(PriceTable::builtin())
    .build();
    model.chat(&ask("hi")).await.unwrap();

    // claude-sonnet-4-5: $3 input, $3.75 cache write, $0.30 cache read, $15 output per million.
    // 1000 × 3 + 3000 × 0.30 + 500 × 3.75 = 0.003 + 0.0009 + 0.001875; 200 × 15 = 0.003.
    assert_close(cost_props(&sink.events()[0]), (0.005_775, 0.003, 0.008_775));
}

#[tokio::test]
async fn without_configured_prices_cost_is_a_local_estimate_posthog_never_sees() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new()
            .with_provider("openai")
            .respond(ChatResponse::text_response("ok").with_usage(Usage::new(1_000_000, 0))),
        sink.clone(),
    );
    model
        .chat(&ChatRequest::new("gpt-4o").message(Message::user("hi")))
        .await
        .unwrap();
    let generation = &sink.generations()[0];
    assert_eq!(generation.cost, None);
    let estimate = generation
        .estimated_cost()
        .expect("the built-in table knows gpt-4o");
    assert!((estimate.total_usd - 2.5).abs() < 1e-12);
    assert!(!properties(&sink.events()[0]).contains_key("$ai_total_cost_usd"));
}

#[tokio::test]
async fn a_per_call_price_wins_and_unknown_models_cost_nothing() {
    let sink = InMemorySink::new();
    let model = TracedModel::builder(
        ScriptedModel::new()
            .respond(ChatResponse::text_response("a").with_usage(Usage::new(2_000, 1_000)))
            .respond(ChatResponse::text_response("b").with_usage(Usage::new(2_000, 1_000))),
    )
    .sink(sink.clone())
    .pricing(PriceTable::builtin())
    .build();
    let priced = ChatRequest::new("my-fine-tune")
        .message(Message::user("hi"))
        .context(CallContext::new().price(ModelPrice::new(1.0, 4.0)));
    model.chat(&priced).await.unwrap();
    model
        .chat(&ChatRequest::new("my-fine-tune").message(Message::user("hi")))
        .await
        .unwrap();

    let events = sink.events();
    assert_close(cost_props(&events[0]), (0.002, 0.004, 0.006));
    assert!(!properties(&events[1]).contains_key("$ai_total_cost_usd"));
    assert_eq!(sink.generations()[1].cost, None);
}

fn mask_emails(text: &mut String) {
    if text.contains('@') {
        *text = text
            .split(' ')
            .map(|word| if word.contains('@') { "[email]" } else { word })
            .collect::<Vec<_>>()
            .join(" ");
    }
}

#[tokio::test]
async fn the_redaction_hook_runs_before_every_sink() {
    let first = InMemorySink::new();
    let second = InMemorySink::new();
    let model = TracedModel::builder(
        ScriptedModel::new().respond(ChatResponse::text_response("I wrote to ada@example.com")),
    )
    .sink(Fanout::new().with(first.clone()).with(second.clone()))
    .redactor(mask_emails)
    .build();
    model
        .chat(&ask("Mail grace@example.com please"))
        .await
        .unwrap();
    let trace = model
        .tracer()
        .trace("mail")
        .with_input(json!({"to": "bob@example.com"}));
    trace.end();

    for sink in [&first, &second] {
        let events = captured(sink);
        assert_eq!(
            prop(&events[0], "$ai_input"),
            &json!([{"role": "user", "content": "Mail [email] please"}])
        );
        assert_eq!(
            prop(&events[0], "$ai_output_choices"),
            &json!([{"role": "assistant", "content": [{"type": "text", "text": "I wrote to [email]"}]}])
        );
        assert_eq!(
            prop(&events[1], "$ai_input_state"),
            &json!({"to": "[email]"})
        );
    }
}

#[tokio::test]
async fn privacy_mode_still_wins_over_the_redaction_hook() {
    let sink = InMemorySink::new();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let model = TracedModel::builder(answers(1))
        .sink(sink.clone())
        .privacy_mode(true)
        .redactor(move |text: &mut String| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            text.clear();
        })
        .build();
    model.chat(&ask("secret")).await.unwrap();
    let trace = model
        .tracer()
        .trace("private")
        .with_input(json!({"secret": "x"}));
    trace.end_with_output(json!("y"));

    let events = captured(&sink);
    assert_eq!(prop(&events[0], "$ai_input"), &serde_json::Value::Null);
    assert_eq!(
        prop(&events[0], "$ai_output_choices"),
        &serde_json::Value::Null
    );
    assert_eq!(
        prop(&events[1], "$ai_input_state"),
        &serde_json::Value::Null
    );
    assert_eq!(
        prop(&events[1], "$ai_output_state"),
        &serde_json::Value::Null
    );
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "nothing left to redact"
    );
}
