//! The public recording seam: calls recorded without an `LlmModel`, structured errors, the
//! facts custom properties cannot override, privacy of error text, one configuration path.

mod support;

use futures_util::stream;
use serde_json::json;
use support::events::{capture_json, properties, take_timings};
use traced_llm::event::{ErrorInfo, ErrorKind, EventKind};
use traced_llm::posthog::event_name;
use traced_llm::pricing::{ModelPrice, PriceTable};
use traced_llm::record::{CallInfo, Recorder, TracedStream};
use traced_llm::sink::InMemorySink;
use traced_llm::testing::ScriptedModel;
use traced_llm::trace::Tracer;
use traced_llm::types::Usage;
use traced_llm::{
    CallContext, ChatRequest, ChatResponse, ChatStream, Error, LlmModel, Message, StreamEvent,
    TracedModel,
};

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new("gpt-4o-mini").message(Message::user(text))
}

#[tokio::test]
async fn a_plain_function_is_recorded_with_the_context_and_the_answer() {
    let sink = InMemorySink::new();
    let recorder = Recorder::new(sink.clone());
    let messages = [Message::user("Capital of Portugal?")];
    let context = CallContext::new()
        .distinct_id("user_42")
        .trace_id("conversation_7f3a");
    let call = recorder.start(
        CallInfo::new("my-model", "my-provider")
            .base_url("http://127.0.0.1:9/v1")
            .messages(&messages)
            .context(&context),
    );
    call.succeed(&ChatResponse::text_response("Lisbon").with_usage(Usage::new(6, 1)));

    let events = sink.events();
    assert_eq!(events.len(), 1);
    let json = capture_json(&events[0]);
    assert_eq!(json["event"], "$ai_generation");
    assert_eq!(json["distinct_id"], "user_42");
    let mut props = properties(&events[0]);
    take_timings(&mut props);
    for key in ["$ai_lib", "$ai_lib_version", "$lib", "$lib_version"] {
        props.remove(key);
    }
    assert_eq!(
        serde_json::Value::Object(props),
        json!({
            "$ai_trace_id": "conversation_7f3a",
            "$ai_model": "my-model",
            "$ai_provider": "my-provider",
            "$ai_base_url": "http://127.0.0.1:9/v1",
            "$ai_input": [{"role": "user", "content": "Capital of Portugal?"}],
            "$ai_output_choices": [{"role": "assistant", "content": [{"type": "text", "text": "Lisbon"}]}],
            "$ai_input_tokens": 6,
            "$ai_output_tokens": 1,
            "$ai_cache_reporting_exclusive": false,
            "$ai_http_status": 200,
            "$ai_model_parameters": {"stream": false},
            "$ai_is_error": false,
        })
    );
}

#[tokio::test]
async fn a_hand_made_stream_is_recorded_once_with_its_text_usage_and_ttft() {
    let sink = InMemorySink::new();
    let recorder = Recorder::new(sink.clone());
    let call = recorder.start(CallInfo::new("my-model", "my-provider").stream(true));
    let pieces = stream::iter([
        Ok(StreamEvent::text("Hel")),
        Ok(StreamEvent::text("lo")),
        Ok(StreamEvent::Usage(Usage::new(4, 2))),
        Ok(StreamEvent::finish("stop")),
    ]);
    let answer = ChatStream::new(TracedStream::new(pieces, call));
    let response = answer.collect_response().await.unwrap();
    assert_eq!(response.text(), "Hello");

    let generations = sink.generations();
    assert_eq!(generations.len(), 1);
    let generation = &generations[0];
    assert_eq!(generation.output_text(), "Hello");
    assert_eq!(generation.usage, Usage::new(4, 2));
    assert_eq!(generation.stop_reason.as_deref(), Some("stop"));
    assert_eq!(generation.http_status, 200);
    assert!(generation.time_to_first_token.is_some());
    assert!(generation.parameters.stream);
}

#[tokio::test]
async fn a_stream_dropped_midway_is_sent_on_drop_as_cancelled_with_what_arrived() {
    let sink = InMemorySink::new();
    let recorder = Recorder::new(sink.clone());
    let call = recorder.start(CallInfo::new("my-model", "my-provider").stream(true));
    let pieces = stream::iter([
        Ok(StreamEvent::text("one ")),
        Ok(StreamEvent::text("two ")),
        Ok(StreamEvent::text("three")),
    ]);
    let mut answer = ChatStream::new(TracedStream::new(pieces, call));
    answer.next().await.unwrap().unwrap();
    assert!(sink.is_empty(), "nothing is sent before the call ends");
    drop(answer);

    let events = sink.events();
    assert_eq!(events.len(), 1);
    let props = properties(&events[0]);
    assert_eq!(props["$ai_stop_reason"], "cancelled");
    assert_eq!(props["$ai_is_error"], false);
    assert_eq!(props["$ai_http_status"], 200);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "one "}]}])
    );
}

#[test]
fn a_call_dropped_before_any_answer_is_cancelled_with_status_zero() {
    let sink = InMemorySink::new();
    let recorder = Recorder::new(sink.clone());
    drop(recorder.start(CallInfo::new("my-model", "my-provider")));
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_stop_reason"], "cancelled");
    assert_eq!(props["$ai_http_status"], 0);
    assert_eq!(props["$ai_output_choices"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_failed_call_carries_its_error_kind() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new()
            .with_provider("openai")
            .fail(Error::from_status(429, "Rate limit reached").with_provider("openai"))
            .fail(Error::timeout("no complete answer in time").with_provider("openai"))
            .fail(Error::from_status(503, "overloaded").with_provider("openai")),
        sink.clone(),
    );
    for _ in 0..3 {
        model.chat(&ask("Hi")).await.unwrap_err();
    }
    let kinds: Vec<_> = sink
        .events()
        .iter()
        .map(|event| properties(event)["$ai_error_type"].clone())
        .collect();
    assert_eq!(kinds, ["rate_limit", "timeout", "server"]);
    let first = properties(&sink.events()[0]);
    assert_eq!(first["$ai_is_error"], true);
    assert_eq!(first["$ai_http_status"], 429);
    assert_eq!(
        first["$ai_error"],
        "openai: http status 429: Rate limit reached"
    );
    let error = sink.generations()[0].error.clone().unwrap();
    assert_eq!(error.kind, ErrorKind::RateLimit);
    assert_eq!(error.status, Some(429));
    assert_eq!(error.message.as_deref(), Some("Rate limit reached"));
}

#[tokio::test]
async fn a_mid_stream_error_carries_the_stream_kind_and_partial_output() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().stream_then_fail(
            vec![StreamEvent::text("The answer is")],
            Error::stream("connection reset by peer").with_provider("openai"),
        ),
        sink.clone(),
    );
    let mut stream = model.chat_stream(&ask("Hi")).await.unwrap();
    while stream.next().await.is_some() {}
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_error_type"], "stream");
    assert_eq!(props["$ai_http_status"], 200);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]}])
    );
}

#[test]
fn a_refusal_recorded_with_fail_with_keeps_its_kind() {
    let sink = InMemorySink::new();
    let recorder = Recorder::new(sink.clone());
    let call = recorder.start(CallInfo::new("my-model", "my-provider"));
    call.fail_with(ErrorInfo::new(
        ErrorKind::Budget,
        "daily token budget spent",
    ));
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_error_type"], "budget");
    assert_eq!(props["$ai_error"], "daily token budget spent");
    assert_eq!(props["$ai_http_status"], 0);
}

#[tokio::test]
async fn custom_properties_never_override_what_the_crate_knows() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().fail(Error::from_status(500, "upstream failed")),
        sink.clone(),
    );
    let request = ask("Hi").context(
        CallContext::new()
            .property("$ai_http_status", 200)
            .property("$ai_is_error", false)
            .property("$ai_error", "nothing to see")
            .property("$ai_error_type", "none")
            .property("$process_person_profile", true)
            .property("$ai_model", "custom-label"),
    );
    model.chat(&request).await.unwrap_err();
    let json = capture_json(&sink.events()[0]);
    let props = &json["properties"];
    assert_eq!(props["$ai_http_status"], 500);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_error"], "http status 500: upstream failed");
    assert_eq!(props["$ai_error_type"], "server");
    // A personless event stays personless: no person per trace id.
    assert_eq!(props["$process_person_profile"], false);
    assert_eq!(json["distinct_id"], props["$ai_trace_id"]);
    // Other properties are still the caller's to override.
    assert_eq!(props["$ai_model"], "custom-label");
}

#[tokio::test]
async fn with_a_distinct_id_a_custom_person_profile_flag_is_kept() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().respond(ChatResponse::text_response("ok")),
        sink.clone(),
    );
    let request = ask("Hi").context(
        CallContext::new()
            .distinct_id("user_42")
            .property("$process_person_profile", false),
    );
    model.chat(&request).await.unwrap();
    assert_eq!(
        properties(&sink.events()[0])["$process_person_profile"],
        false
    );
}

#[tokio::test]
async fn privacy_mode_withholds_the_error_text_and_keeps_kind_status_and_type() {
    let sink = InMemorySink::new();
    let leaky = Error::from_status(400, "This model's maximum context length is 8192 tokens; your prompt 'my secret plan' is too long")
        .with_provider("openai")
        .with_api_error_type("invalid_request_error")
        .with_api_error_code("context_length_exceeded");
    let model = TracedModel::builder(ScriptedModel::new().fail(leaky))
        .sink(sink.clone())
        .privacy_mode(true)
        .build();
    model.chat(&ask("my secret plan")).await.unwrap_err();

    let json = capture_json(&sink.events()[0]);
    let text = json.to_string();
    assert!(!text.contains("secret"), "prompt text leaked: {text}");
    let props = &json["properties"];
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_error_type"], "bad_request");
    assert_eq!(props["$ai_http_status"], 400);
    assert_eq!(
        props["$ai_error"],
        "openai: http status 400 (invalid_request_error)"
    );
    let error = sink.generations()[0].error.clone().unwrap();
    assert_eq!(error.message, None);
    assert_eq!(error.api_code.as_deref(), Some("context_length_exceeded"));
}

#[tokio::test]
async fn privacy_mode_withholds_span_error_text_too() {
    let sink = InMemorySink::new();
    let tracer = Recorder::builder()
        .sink(sink.clone())
        .privacy_mode(true)
        .build()
        .tracer();
    tracer
        .trace("agent")
        .fail("tool failed on the user's secret address");
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_error"], "other");
    assert_eq!(props["$ai_error_type"], "other");
}

#[tokio::test]
async fn the_redactor_masks_error_messages() {
    let sink = InMemorySink::new();
    let model = TracedModel::builder(
        ScriptedModel::new().fail(Error::from_status(400, "bad address ada@example.com")),
    )
    .sink(sink.clone())
    .redactor(|text: &mut String| {
        if text.contains("ada@example.com") {
            *text = text.replace("ada@example.com", "[email]");
        }
    })
    .build();
    model.chat(&ask("Hi")).await.unwrap_err();
    assert_eq!(
        properties(&sink.events()[0])["$ai_error"],
        "http status 400: bad address [email]"
    );
}

#[tokio::test]
async fn credentials_in_a_base_url_never_reach_the_event() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new()
            .with_base_url("http://user:sk-live-secret@127.0.0.1:8080/v1?key=sk-live-secret")
            .respond(ChatResponse::text_response("ok")),
        sink.clone(),
    );
    model.chat(&ask("Hi")).await.unwrap();
    let json = capture_json(&sink.events()[0]);
    assert!(!json.to_string().contains("sk-live-secret"), "{json}");
    assert_eq!(
        json["properties"]["$ai_base_url"],
        "http://127.0.0.1:8080/v1?key=[redacted]"
    );
}

#[tokio::test]
async fn the_price_and_the_cost_live_inside_the_event() {
    let sink = InMemorySink::new();
    let price = ModelPrice::new(1.0, 2.0);
    let model = TracedModel::new(
        ScriptedModel::new()
            .respond(ChatResponse::text_response("ok").with_usage(Usage::new(1_000_000, 500_000))),
        sink.clone(),
    );
    model
        .chat(&ask("Hi").context(CallContext::new().price(price)))
        .await
        .unwrap();
    let generation = &sink.generations()[0];
    assert_eq!(generation.price, Some(price));
    let cost = generation.cost.unwrap();
    assert_eq!(
        (cost.input_usd, cost.output_usd, cost.total_usd),
        (1.0, 1.0, 2.0)
    );
}

#[tokio::test]
async fn a_tracer_always_sees_its_models_configuration() {
    let sink = InMemorySink::new();
    let model = TracedModel::builder(ScriptedModel::new())
        .sink(sink.clone())
        .privacy_mode(true)
        .pricing(PriceTable::builtin().clone())
        .build();
    let tracer = model.tracer();
    assert!(tracer.recorder().privacy_mode());
    tracer
        .trace("private")
        .with_input(json!({"secret": "x"}))
        .end();
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_input_state"], serde_json::Value::Null);
}

#[test]
fn properties_take_any_serializable_value() {
    let name = String::from("Ada");
    let topic: &String = &name;
    let context = CallContext::new()
        .property("user_name", &name)
        .property("topic", topic)
        .property("owned", name.clone())
        .property("count", 3_u8)
        .property("tags", ["a", "b"])
        .group("company", &name);
    assert_eq!(context.properties["user_name"], "Ada");
    assert_eq!(context.properties["topic"], "Ada");
    assert_eq!(context.properties["owned"], "Ada");
    assert_eq!(context.properties["count"], 3);
    assert_eq!(context.properties["tags"], json!(["a", "b"]));
    assert_eq!(context.groups["company"], "Ada");
}

#[tokio::test]
async fn a_text_stream_yields_only_the_text() {
    let model = ScriptedModel::new().stream(vec![
        StreamEvent::ResponseMetadata {
            id: Some("c1".into()),
            model: None,
        },
        StreamEvent::text("Hel"),
        StreamEvent::Usage(Usage::new(1, 2)),
        StreamEvent::text("lo"),
        StreamEvent::finish("stop"),
    ]);
    let mut text = model
        .chat_stream(&ask("Hi"))
        .await
        .unwrap()
        .into_text_stream();
    let mut pieces = Vec::new();
    while let Some(piece) = text.next().await {
        pieces.push(piece.unwrap());
    }
    assert_eq!(pieces, ["Hel", "lo"]);
    fn unpin_send_static<T: Unpin + Send + 'static>(_: &T) {}
    unpin_send_static(&text);
}

#[tokio::test]
async fn a_text_stream_ends_after_an_error() {
    let model = ScriptedModel::new().stream_then_fail(
        vec![StreamEvent::text("partial")],
        Error::stream("connection reset"),
    );
    let mut text = model
        .chat_stream(&ask("Hi"))
        .await
        .unwrap()
        .into_text_stream();
    assert_eq!(text.next().await.unwrap().unwrap(), "partial");
    assert!(text.next().await.unwrap().unwrap_err().is_stream());
    assert!(text.next().await.is_none());
}

#[test]
fn an_explicitly_disabled_model_records_nothing_and_try_build_refuses_a_missing_sink() {
    let model = TracedModel::builder(ScriptedModel::new())
        .disabled()
        .build();
    assert!(format!("{:?}", model.sink()).contains("NoopSink"));
    // This test binary never sets POSTHOG_API_KEY.
    let err = TracedModel::builder(ScriptedModel::new())
        .try_build()
        .unwrap_err();
    assert!(err.is_builder());
    assert!(err.to_string().contains("no sink"), "{err}");
}

#[test]
fn events_are_neutral_and_named_only_by_the_posthog_mapping() {
    let sink = InMemorySink::new();
    let tracer = Tracer::new(sink.clone());
    let trace = tracer.trace("agent");
    trace.child("step").end();
    trace.end();
    let events = sink.events();
    let kinds: Vec<_> = events.iter().map(|event| event.kind()).collect();
    assert_eq!(kinds, [EventKind::Span, EventKind::Trace]);
    let names: Vec<_> = events.iter().map(event_name).collect();
    assert_eq!(names, ["$ai_span", "$ai_trace"]);
}

#[tokio::test]
async fn an_error_display_never_repeats_its_source() {
    let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    let err = Error::connect(refused).with_provider("openai");
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    assert_eq!(chain, "openai: connection failed: refused");
    // The event still says why.
    let sink = InMemorySink::new();
    let model = TracedModel::new(ScriptedModel::new().fail(err), sink.clone());
    model.chat(&ask("Hi")).await.unwrap_err();
    assert_eq!(
        properties(&sink.events()[0])["$ai_error"],
        "openai: connection failed: refused"
    );
}
