//! The OpenTelemetry sink against the SDK's in-memory exporters: span names, kinds, ids,
//! times, exact attributes and status, and the GenAI metrics, for every way a call can end.

mod support;

use std::time::Duration;

use opentelemetry::trace::{
    Span as _, SpanId, SpanKind, Status, TraceContextExt, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::Context;
use serde_json::{json, Value as Json};
use support::otel::{span_attributes, Otel, Point};
use traced_llm::event::{Event, Generation};
use traced_llm::otel::{span_id_for, trace_id_for, MetricNames};
use traced_llm::sink::{Fanout, InMemorySink, Sink};
use traced_llm::testing::ScriptedModel;
use traced_llm::types::{ContentPart, EmbeddingRequest, EmbeddingResponse, Role, Tool, Usage};
use traced_llm::{
    CallContext, ChatRequest, ChatResponse, Error, LlmModel, Message, StreamEvent, TracedModel,
};

fn openai() -> ScriptedModel {
    ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("https://api.openai.com/v1")
}

fn request() -> ChatRequest {
    ChatRequest::new("gpt-4o-mini")
        .message(Message::system("Answer in one line."))
        .message(Message::user("Capital of Portugal?"))
        .temperature(0.3)
        .top_p(0.9)
        .max_tokens(100)
        .frequency_penalty(0.1)
        .presence_penalty(0.2)
        .stop("END")
        .seed(7)
        .context(
            CallContext::new()
                .distinct_id("user_42")
                .session_id("chat_9")
                .property("topic", "travel"),
        )
}

fn answer() -> ChatResponse {
    ChatResponse::text_response("Lisbon.")
        .with_id("chatcmpl-1")
        .with_model("gpt-4o-mini-2024-07-18")
        .with_finish_reason("stop")
        .with_usage(Usage::new(24, 7).with_cache_read(4).with_reasoning(2))
}

/// What every chat span of `request()` to `openai()` carries.
fn request_attributes() -> Json {
    json!({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "server.address": "api.openai.com",
        "server.port": 443,
        "gen_ai.request.temperature": 0.3,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.frequency_penalty": 0.1,
        "gen_ai.request.presence_penalty": 0.2,
        "gen_ai.request.stop_sequences": ["END"],
        "gen_ai.request.seed": 7,
        "gen_ai.conversation.id": "chat_9",
        "posthog.distinct_id": "user_42",
        "topic": "travel",
    })
}

fn with(mut base: Json, extra: Json) -> Json {
    let base_map = base.as_object_mut().unwrap();
    for (key, value) in extra.as_object().unwrap() {
        if value.is_null() {
            base_map.remove(key);
        } else {
            base_map.insert(key.clone(), value.clone());
        }
    }
    base
}

/// A model whose events go both to the OTel sink and to memory, to compare the two.
fn traced(model: ScriptedModel, otel: &Otel) -> (TracedModel<ScriptedModel>, InMemorySink) {
    let events = InMemorySink::new();
    let sink = Fanout::new().with(events.clone()).with(otel.sink());
    (TracedModel::new(model, sink), events)
}

fn only_generation(events: &InMemorySink) -> Generation {
    let mut generations = events.generations();
    assert_eq!(generations.len(), 1);
    generations.remove(0)
}

#[tokio::test]
async fn a_chat_call_is_a_client_span_with_the_conventions_attributes() {
    let otel = Otel::new();
    let (model, events) = traced(openai().respond(answer()), &otel);
    model.chat(&request()).await.unwrap();

    let span = otel.span();
    let generation = only_generation(&events);
    assert_eq!(span.name, "chat gpt-4o-mini");
    assert_eq!(span.span_kind, SpanKind::Client);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(
        span_attributes(&span),
        with(
            request_attributes(),
            json!({
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.response.id": "chatcmpl-1",
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.usage.input_tokens": 24,
                "gen_ai.usage.output_tokens": 7,
                "gen_ai.usage.cache_read.input_tokens": 4,
                "gen_ai.usage.reasoning.output_tokens": 2,
            })
        )
    );
    // The call's own times, and the ids PostHog sees: a call that is its own trace is named by
    // its event UUID.
    let envelope = &generation.envelope;
    assert_eq!(span.start_time, envelope.timestamp);
    assert_eq!(span.end_time, envelope.timestamp + generation.latency);
    let uuid = envelope.uuid.hyphenated().to_string();
    assert_eq!(span.span_context.trace_id(), trace_id_for(&uuid));
    assert_eq!(span.span_context.span_id(), span_id_for(&uuid));
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    assert_eq!(span.instrumentation_scope.name(), "traced-llm");
}

#[tokio::test]
async fn a_streamed_call_has_its_time_to_first_chunk_and_usage() {
    let otel = Otel::new();
    let model = openai().stream_with_delay(
        vec![
            StreamEvent::ResponseMetadata {
                id: Some("chatcmpl-2".into()),
                model: Some("gpt-4o-mini-2024-07-18".into()),
            },
            StreamEvent::text("Lis"),
            StreamEvent::text("bon."),
            StreamEvent::Usage(Usage::new(24, 3)),
            StreamEvent::finish("stop"),
        ],
        Duration::from_millis(2),
    );
    let (model, events) = traced(model, &otel);
    let mut stream = model.chat_stream(&request()).await.unwrap();
    while let Some(event) = stream.next().await {
        event.unwrap();
    }
    drop(stream);

    let span = otel.span();
    let generation = only_generation(&events);
    let ttft = generation
        .time_to_first_token
        .expect("a first token")
        .as_secs_f64();
    assert_eq!(
        span_attributes(&span),
        with(
            request_attributes(),
            json!({
                "gen_ai.request.stream": true,
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.response.id": "chatcmpl-2",
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.response.time_to_first_chunk": ttft,
                "gen_ai.usage.input_tokens": 24,
                "gen_ai.usage.output_tokens": 3,
            })
        )
    );
    assert_eq!(
        span.end_time,
        generation.envelope.timestamp + generation.latency
    );
    assert!(span.end_time > span.start_time);
}

#[tokio::test]
async fn an_error_mid_stream_sets_error_type_status_and_an_error_finish_reason() {
    let otel = Otel::new();
    let model = openai().stream_then_fail(
        vec![
            StreamEvent::text("Lis"),
            StreamEvent::Usage(Usage::new(24, 1)),
        ],
        Error::stream("connection reset").with_provider("openai"),
    );
    let (model, events) = traced(model, &otel);
    let mut stream = model.chat_stream(&request()).await.unwrap();
    let mut failed = false;
    while let Some(event) = stream.next().await {
        failed |= event.is_err();
    }
    assert!(failed);
    drop(stream);

    let span = otel.span();
    let generation = only_generation(&events);
    let ttft = generation.time_to_first_token.unwrap().as_secs_f64();
    assert_eq!(
        span_attributes(&span),
        with(
            request_attributes(),
            json!({
                "gen_ai.request.stream": true,
                "gen_ai.response.finish_reasons": ["error"],
                "gen_ai.response.time_to_first_chunk": ttft,
                "gen_ai.usage.input_tokens": 24,
                "gen_ai.usage.output_tokens": 1,
                "error.type": "stream",
            })
        )
    );
    assert_eq!(
        span.status,
        Status::error(generation.error.as_ref().unwrap().to_string())
    );
}

#[tokio::test]
async fn a_call_that_fails_before_answering_is_an_error_span() {
    let otel = Otel::new();
    let model = openai().fail(
        Error::from_status(429, "Rate limit reached")
            .with_provider("openai")
            .with_api_error_type("requests"),
    );
    let (model, _events) = traced(model, &otel);
    model.chat(&request()).await.unwrap_err();

    let span = otel.span();
    assert_eq!(
        span_attributes(&span),
        with(
            request_attributes(),
            json!({
                "gen_ai.response.finish_reasons": ["error"],
                "error.type": "rate_limit",
            })
        )
    );
    assert_eq!(
        span.status,
        Status::error("openai: http status 429 (requests): Rate limit reached")
    );
}

#[tokio::test]
async fn a_stream_dropped_by_its_caller_is_cancelled() {
    let otel = Otel::new();
    let model = openai().stream(vec![
        StreamEvent::text("Lis"),
        StreamEvent::text("bon."),
        StreamEvent::finish("stop"),
    ]);
    let (model, events) = traced(model, &otel);
    let mut stream = model.chat_stream(&request()).await.unwrap();
    stream.next().await.unwrap().unwrap();
    drop(stream);

    let span = otel.span();
    let generation = only_generation(&events);
    assert_eq!(generation.stop_reason.as_deref(), Some("cancelled"));
    let ttft = generation.time_to_first_token.unwrap().as_secs_f64();
    assert_eq!(
        span_attributes(&span),
        with(
            request_attributes(),
            json!({
                "gen_ai.request.stream": true,
                "gen_ai.response.finish_reasons": ["error"],
                "gen_ai.response.time_to_first_chunk": ttft,
                "error.type": "cancelled",
            })
        )
    );
    assert_eq!(span.status, Status::error("cancelled by the caller"));
}

fn with_tools(request: ChatRequest) -> ChatRequest {
    request.tool(Tool::new(
        "weather",
        "The weather in a city",
        json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    ))
}

#[tokio::test]
async fn content_is_off_by_default_and_on_with_one_switch() {
    let otel = Otel::new();
    let (model, _) = traced(openai().respond(answer()), &otel);
    model.chat(&with_tools(request())).await.unwrap();
    let attributes = span_attributes(&otel.span());
    assert!(attributes.get("gen_ai.input.messages").is_none());
    assert!(attributes.get("gen_ai.output.messages").is_none());
    assert!(attributes.get("gen_ai.tool.definitions").is_none());

    let otel = Otel::new();
    let model = TracedModel::new(
        openai().respond(answer()),
        otel.builder().capture_content(true).build(),
    );
    model.chat(&with_tools(request())).await.unwrap();
    let attributes = span_attributes(&otel.span());
    let json_of =
        |key: &str| -> Json { serde_json::from_str(attributes[key].as_str().unwrap()).unwrap() };
    assert_eq!(
        json_of("gen_ai.input.messages"),
        json!([
            {"role": "system", "parts": [{"type": "text", "content": "Answer in one line."}]},
            {"role": "user", "parts": [{"type": "text", "content": "Capital of Portugal?"}]},
        ])
    );
    assert_eq!(
        json_of("gen_ai.output.messages"),
        json!([{"role": "assistant", "parts": [{"type": "text", "content": "Lisbon."}], "finish_reason": "stop"}])
    );
    assert_eq!(
        json_of("gen_ai.tool.definitions"),
        json!([{
            "type": "function",
            "name": "weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }])
    );
    // OpenAI takes the system message inside the conversation.
    assert!(attributes.get("gen_ai.system_instructions").is_none());
}

#[tokio::test]
async fn anthropic_system_instructions_go_apart_and_its_cache_counts_join_the_input() {
    let otel = Otel::new();
    let model = ScriptedModel::new()
        .with_provider("anthropic")
        .with_base_url("https://api.anthropic.com/v1")
        .with_cache_tokens_in_input(false)
        .respond(
            ChatResponse::text_response("Lisbon.")
                .with_model("claude-sonnet-4-5-20250929")
                .with_finish_reason("end_turn")
                .with_usage(
                    Usage::new(10, 5)
                        .with_cache_read(100)
                        .with_cache_creation(20),
                ),
        );
    let model = TracedModel::new(model, otel.builder().capture_content(true).build());
    model
        .chat(
            &ChatRequest::new("claude-sonnet-4-5")
                .message(Message::system("Answer in one line."))
                .message(Message::user("Capital of Portugal?")),
        )
        .await
        .unwrap();

    let span = otel.span();
    let attributes = span_attributes(&span);
    assert_eq!(span.name, "chat claude-sonnet-4-5");
    assert_eq!(attributes["gen_ai.provider.name"], "anthropic");
    assert_eq!(attributes["gen_ai.usage.input_tokens"], 130);
    assert_eq!(attributes["gen_ai.usage.cache_read.input_tokens"], 100);
    assert_eq!(attributes["gen_ai.usage.cache_write.input_tokens"], 20);
    assert_eq!(attributes["gen_ai.usage.output_tokens"], 5);
    assert_eq!(
        attributes["gen_ai.system_instructions"],
        r#"[{"content":"Answer in one line.","type":"text"}]"#
    );
    assert_eq!(
        attributes["gen_ai.input.messages"],
        r#"[{"parts":[{"content":"Capital of Portugal?","type":"text"}],"role":"user"}]"#
    );
}

#[tokio::test]
async fn privacy_mode_sends_no_content_even_with_content_on() {
    let otel = Otel::new();
    let model = TracedModel::builder(openai().respond(answer()).respond(answer()))
        .sink(otel.builder().capture_content(true).build())
        .privacy_mode(true)
        .build();
    model.chat(&with_tools(request())).await.unwrap();
    let private = span_attributes(&otel.span());
    assert_eq!(
        private,
        with(
            request_attributes(),
            json!({
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.response.id": "chatcmpl-1",
                "gen_ai.response.finish_reasons": ["stop"],
                "gen_ai.usage.input_tokens": 24,
                "gen_ai.usage.output_tokens": 7,
                "gen_ai.usage.cache_read.input_tokens": 4,
                "gen_ai.usage.reasoning.output_tokens": 2,
            })
        )
    );

    // A private error keeps its kind and status, not the provider's message.
    let otel = Otel::new();
    let model = TracedModel::builder(openai().fail(
        Error::from_status(400, "your prompt 'my secret' is too long").with_provider("openai"),
    ))
    .sink(otel.builder().capture_content(true).build())
    .privacy_mode(true)
    .build();
    model.chat(&request()).await.unwrap_err();
    let span = otel.span();
    assert_eq!(span_attributes(&span)["error.type"], "bad_request");
    let Status::Error { description } = &span.status else {
        panic!("an error status: {:?}", span.status);
    };
    assert!(!description.contains("secret"), "{description}");
}

#[tokio::test]
async fn redaction_applies_to_content() {
    let otel = Otel::new();
    let model =
        TracedModel::builder(openai().respond(ChatResponse::text_response("call 555-0100")))
            .sink(otel.builder().capture_content(true).build())
            .redactor(|text: &mut String| *text = text.replace("555-0100", "[phone]"))
            .build();
    model
        .chat(&ChatRequest::new("gpt-4o-mini").message(Message::user("my number is 555-0100")))
        .await
        .unwrap();
    let attributes = span_attributes(&otel.span());
    let content = format!(
        "{}{}",
        attributes["gen_ai.input.messages"], attributes["gen_ai.output.messages"]
    );
    assert!(!content.contains("555-0100"), "{content}");
    assert_eq!(content.matches("[phone]").count(), 2, "{content}");
}

#[tokio::test]
async fn base64_images_never_leave_the_process() {
    let otel = Otel::new();
    let model = TracedModel::new(
        openai().respond(answer()),
        otel.builder().capture_content(true).build(),
    );
    let request = ChatRequest::new("gpt-4o-mini").message(Message::new(
        Role::User,
        vec![ContentPart::image_base64(
            "image/png",
            "iVBORw0KGgoAAAANSUhEUg==",
        )],
    ));
    model.chat(&request).await.unwrap();
    let messages = span_attributes(&otel.span())["gen_ai.input.messages"].clone();
    let messages = messages.as_str().unwrap();
    assert!(!messages.contains("iVBORw0KGgo"), "{messages}");
    assert!(
        messages.contains("[base64 image/png redacted]"),
        "{messages}"
    );
}

#[tokio::test]
async fn an_agent_trace_nests_its_spans_and_calls_with_posthogs_ids() {
    let otel = Otel::new();
    let (model, events) = traced(openai().respond(answer()).respond(answer()), &otel);
    let trace = model
        .tracer()
        .trace("travel_agent")
        .with_distinct_id("user_42");
    let plan = trace.child("plan");
    plan.in_scope(model.chat(&ChatRequest::new("gpt-4o-mini").message(Message::user("Plan"))))
        .await
        .unwrap();
    plan.end();
    let answer_step = trace.child("answer");
    answer_step
        .in_scope(model.chat(&ChatRequest::new("gpt-4o-mini").message(Message::user("Go"))))
        .await
        .unwrap();
    answer_step.end();
    trace.end();

    let spans = otel.spans();
    let names: Vec<&str> = spans.iter().map(|span| span.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "chat gpt-4o-mini",
            "invoke_agent plan",
            "chat gpt-4o-mini",
            "invoke_agent answer",
            "invoke_agent travel_agent"
        ]
    );
    let (chats, steps): (Vec<_>, Vec<_>) =
        spans.iter().partition(|span| span.name.starts_with("chat"));
    let [plan, answer_step, root] = steps[..] else {
        panic!("three agent spans: {steps:#?}");
    };

    // One trace; the root has no parent, the steps hang under it, each call under its step.
    let trace_id: TraceId = root.span_context.trace_id();
    assert!(spans
        .iter()
        .all(|span| span.span_context.trace_id() == trace_id));
    assert_eq!(root.parent_span_id, SpanId::INVALID);
    assert_eq!(root.span_kind, SpanKind::Internal);
    assert_eq!(plan.parent_span_id, root.span_context.span_id());
    assert_eq!(answer_step.parent_span_id, root.span_context.span_id());
    assert_eq!(chats[0].parent_span_id, plan.span_context.span_id());
    assert_eq!(chats[1].parent_span_id, answer_step.span_context.span_id());
    assert_eq!(
        span_attributes(root),
        json!({
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "travel_agent",
            "posthog.distinct_id": "user_42",
        })
    );

    // The same ids as the PostHog events, through the documented mapping.
    let recorded = events.events();
    let posthog_trace_id = recorded[0].envelope().trace_id.clone().unwrap();
    assert_eq!(trace_id, trace_id_for(&posthog_trace_id));
    assert_eq!(trace_id.to_string(), posthog_trace_id.replace('-', ""));
    assert_eq!(root.span_context.span_id(), span_id_for(&posthog_trace_id));
    for (span, event) in spans.iter().zip(&recorded) {
        let envelope = event.envelope();
        assert_eq!(span.start_time, envelope.timestamp);
        if let Some(span_id) = &envelope.span_id {
            assert_eq!(span.span_context.span_id(), span_id_for(span_id));
        }
        if let Some(parent_id) = &envelope.parent_id {
            assert_eq!(span.parent_span_id, span_id_for(parent_id));
        }
    }
}

#[tokio::test]
async fn a_span_dropped_unended_is_a_cancelled_error() {
    let otel = Otel::new();
    let model = TracedModel::new(openai(), otel.sink());
    let trace = model.tracer().trace_with_id("agent", "conversation_7f3a");
    drop(trace.child("lost"));
    trace.end();
    let spans = otel.spans();
    assert_eq!(spans[0].name, "invoke_agent lost");
    assert_eq!(span_attributes(&spans[0])["error.type"], "cancelled");
    assert!(matches!(spans[0].status, Status::Error { .. }));
    assert_eq!(
        spans[1].span_context.trace_id(),
        trace_id_for("conversation_7f3a")
    );
    assert_eq!(
        spans[1].span_context.span_id(),
        span_id_for("conversation_7f3a")
    );
    assert_eq!(spans[0].parent_span_id, span_id_for("conversation_7f3a"));
}

#[tokio::test]
async fn an_embedding_call_is_an_embeddings_span() {
    let otel = Otel::new();
    let model = TracedModel::new(
        openai().embedding(EmbeddingResponse::new(
            vec![vec![0.1, 0.2]],
            Usage::default().with_input(8),
        )),
        otel.sink(),
    );
    model
        .embed(&EmbeddingRequest::new(
            "text-embedding-3-small",
            vec!["Lisbon".to_owned()],
        ))
        .await
        .unwrap();
    let span = otel.span();
    assert_eq!(span.name, "embeddings text-embedding-3-small");
    assert_eq!(span.span_kind, SpanKind::Client);
    assert_eq!(
        span_attributes(&span),
        json!({
            "gen_ai.operation.name": "embeddings",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "text-embedding-3-small",
            "gen_ai.response.model": "text-embedding-3-small",
            "server.address": "api.openai.com",
            "server.port": 443,
            "gen_ai.usage.input_tokens": 8,
        })
    );
}

fn metric_attributes(extra: Json) -> Json {
    with(
        json!({
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        }),
        extra,
    )
}

fn point(points: &[Point], name: &str) -> Point {
    let found: Vec<_> = points.iter().filter(|p| p.name == name).collect();
    assert_eq!(found.len(), 1, "one point of {name}: {points:#?}");
    found[0].clone()
}

#[tokio::test]
async fn metrics_follow_the_latest_conventions() {
    let otel = Otel::new();
    let model = openai().respond(answer()).stream(vec![
        StreamEvent::ResponseMetadata {
            id: None,
            model: Some("gpt-4o-mini-2024-07-18".into()),
        },
        StreamEvent::text("Hi"),
        StreamEvent::Usage(Usage::new(20, 2)),
    ]);
    let (model, events) = traced(model, &otel);
    model.chat(&request()).await.unwrap();
    let mut stream = model.chat_stream(&request()).await.unwrap();
    while stream.next().await.is_some() {}
    drop(stream);

    let generations = events.generations();
    let points = otel.points();
    let names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "gen_ai.client.inference.duration",
            "gen_ai.client.inference.time_to_first_chunk",
            "gen_ai.client.inference.usage.cache_read.input_tokens",
            "gen_ai.client.inference.usage.input_tokens",
            "gen_ai.client.inference.usage.output_tokens",
            "gen_ai.client.inference.usage.reasoning.output_tokens",
        ]
    );
    let duration = point(&points, "gen_ai.client.inference.duration");
    assert_eq!(duration.unit, "s");
    assert_eq!(duration.attributes, metric_attributes(json!({})));
    assert_eq!(duration.count, 2);
    let total: f64 = generations.iter().map(|g| g.latency.as_secs_f64()).sum();
    assert!((duration.value - total).abs() < 1e-9);
    assert_eq!(
        duration.bounds,
        [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
    );
    let ttfc = point(&points, "gen_ai.client.inference.time_to_first_chunk");
    assert_eq!(ttfc.count, 1);
    assert_eq!(
        ttfc.value,
        generations[1].time_to_first_token.unwrap().as_secs_f64()
    );
    let tokens = |name: &str| {
        let point = point(&points, name);
        assert_eq!(point.unit, "{token}");
        assert_eq!(
            point.attributes,
            metric_attributes(json!({"gen_ai.token.modality": "unknown"}))
        );
        point.value
    };
    assert_eq!(tokens("gen_ai.client.inference.usage.input_tokens"), 44.0);
    assert_eq!(tokens("gen_ai.client.inference.usage.output_tokens"), 9.0);
    assert_eq!(
        tokens("gen_ai.client.inference.usage.cache_read.input_tokens"),
        4.0
    );
    assert_eq!(
        tokens("gen_ai.client.inference.usage.reasoning.output_tokens"),
        2.0
    );
}

#[tokio::test]
async fn failed_calls_are_measured_by_error_type() {
    let otel = Otel::new();
    let model = openai().fail(Error::timeout("no answer in 600 s").with_provider("openai"));
    let (model, _) = traced(model, &otel);
    model.chat(&request()).await.unwrap_err();
    let points = otel.points();
    let error = json!({"gen_ai.response.model": null, "error.type": "timeout"});
    let duration = point(&points, "gen_ai.client.inference.duration");
    assert_eq!(duration.attributes, metric_attributes(error.clone()));
    let input = point(&points, "gen_ai.client.inference.usage.input_tokens");
    assert_eq!(input.value, 0.0);
    assert_eq!(
        input.attributes,
        metric_attributes(with(error, json!({"gen_ai.token.modality": "unknown"})))
    );
}

#[tokio::test]
async fn legacy_metric_names_on_request() {
    let otel = Otel::new();
    let model = TracedModel::new(
        openai().respond(answer()),
        otel.builder().metric_names(MetricNames::Legacy).build(),
    );
    model.chat(&request()).await.unwrap();
    let points = otel.points();
    let names: Vec<&str> = points.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "gen_ai.client.operation.duration",
            "gen_ai.client.token.usage",
            "gen_ai.client.token.usage"
        ]
    );
    let usage: Vec<_> = points
        .iter()
        .filter(|p| p.name == "gen_ai.client.token.usage")
        .collect();
    assert_eq!(
        usage[0].attributes,
        metric_attributes(json!({"gen_ai.token.type": "input"}))
    );
    assert_eq!((usage[0].value, usage[0].count), (24.0, 1));
    assert_eq!(
        usage[1].attributes,
        metric_attributes(json!({"gen_ai.token.type": "output"}))
    );
    assert_eq!((usage[1].value, usage[1].count), (7.0, 1));

    let otel = Otel::new();
    let model = TracedModel::new(
        openai().respond(answer()),
        otel.builder().metric_names(MetricNames::Both).build(),
    );
    model.chat(&request()).await.unwrap();
    let names: Vec<String> = otel.points().into_iter().map(|p| p.name).collect();
    assert!(names.contains(&"gen_ai.client.operation.duration".to_owned()));
    assert!(names.contains(&"gen_ai.client.inference.duration".to_owned()));
}

#[tokio::test]
async fn spans_or_metrics_can_be_switched_off() {
    let otel = Otel::new();
    let sink = otel.builder().spans(false).build();
    sink.capture(Event::from(Generation::new("gpt-4o-mini", "openai")));
    assert!(otel.spans().is_empty());
    assert!(!otel.points().is_empty());

    let otel = Otel::new();
    let sink = otel.builder().metrics(false).build();
    sink.capture(Event::from(Generation::new("gpt-4o-mini", "openai")));
    assert_eq!(otel.spans().len(), 1);
    otel.meter_provider.force_flush().unwrap();
    let collected = otel.metric_exporter.get_finished_metrics().unwrap();
    assert!(collected
        .iter()
        .all(|metrics| metrics.scope_metrics().next().is_none()));
}

#[tokio::test]
async fn an_attached_opentelemetry_context_is_a_parent_too() {
    let otel = Otel::new();
    let model = TracedModel::new(openai().respond(answer()), otel.sink());
    let tracer = otel.tracer_provider.tracer("service");
    let parent = tracer.start("job");
    let parent_context = parent.span_context().clone();
    let _attached = Context::current_with_span(parent).attach();
    model.chat(&request()).await.unwrap();

    let chat = otel.span();
    assert_eq!(chat.parent_span_id, parent_context.span_id());
    assert_eq!(chat.span_context.trace_id(), parent_context.trace_id());
}

#[tokio::test]
async fn without_the_id_generator_spans_still_arrive_with_random_ids() {
    let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let sink = traced_llm::otel::OtelSink::builder()
        .tracer_provider(&provider)
        .metrics(false)
        .build();
    let (model, events) = {
        let events = InMemorySink::new();
        let model = TracedModel::new(
            openai().respond(answer()),
            Fanout::new().with(events.clone()).with(sink),
        );
        (model, events)
    };
    model.chat(&request()).await.unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 1);
    let uuid = only_generation(&events)
        .envelope
        .uuid
        .hyphenated()
        .to_string();
    assert_ne!(spans[0].span_context.span_id(), span_id_for(&uuid));
}

#[tokio::test]
async fn a_managed_prompt_is_named_on_the_span() {
    let otel = Otel::new();
    let model = TracedModel::new(openai().respond(answer()), otel.sink());
    let context =
        CallContext::new().prompt(traced_llm::event::PromptRef::new("support-system").version(3));
    model
        .chat(
            &ChatRequest::new("gpt-4o-mini")
                .message(Message::user("Hi"))
                .context(context),
        )
        .await
        .unwrap();
    let attributes = span_attributes(&otel.span());
    assert_eq!(attributes["gen_ai.prompt.name"], "support-system");
    assert_eq!(attributes["gen_ai.prompt.version"], "3");
}
