//! A/B tests of model parameters: flags stamped on every event kind, exposures deduplicated,
//! a variant's payload applied to the request, and failed calls linked to `$exception`s.

mod support;

use serde_json::{json, Value};
use support::events::{capture_json, properties};
use traced_llm::event::{Event, PromptRef};
use traced_llm::flags::{Exposures, Flag, FlagOrigin, FlagSnapshot, FlagValue};
use traced_llm::record::Recorder;
use traced_llm::sink::InMemorySink;
use traced_llm::testing::ScriptedModel;
use traced_llm::trace::Tracer;
use traced_llm::types::{EmbeddingRequest, ParamsError};
use traced_llm::{CallContext, ChatRequest, ChatResponse, Error, LlmModel, Message, TracedModel};

/// `user_42` got the variant "small" of `llm-params` (with a parameter payload) and `beta` on;
/// `old-ui` is off.
fn snapshot(exposures: Option<Exposures>) -> FlagSnapshot {
    let mut builder = FlagSnapshot::builder("user_42")
        .flag(
            "llm-params",
            Flag::new("small")
                .with_origin(FlagOrigin::Local)
                .with_payload(json!({"model": "gpt-5-mini", "temperature": 0.3, "max_tokens": 400, "service_tier": "flex"})),
        )
        .flag("beta", Flag::new(true))
        .flag("old-ui", Flag::new(false));
    if let Some(exposures) = exposures {
        builder = builder.exposures(exposures);
    }
    builder.build()
}

fn flag_properties(properties: &serde_json::Map<String, Value>) -> Value {
    let mut flags = serde_json::Map::new();
    for (key, value) in properties {
        if key.starts_with("$feature") || key == "$active_feature_flags" {
            flags.insert(key.clone(), value.clone());
        }
    }
    Value::Object(flags)
}

#[tokio::test]
async fn a_calls_flags_are_stamped_on_its_generation() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().respond(ChatResponse::text_response("hi")),
        sink.clone(),
    );
    let request = ChatRequest::new("gpt-5")
        .message(Message::user("Hello"))
        .context(
            CallContext::new()
                .distinct_id("user_42")
                .flags(snapshot(None)),
        );
    model.chat(&request).await.unwrap();
    let properties = properties(&sink.events()[0]);
    assert_eq!(
        flag_properties(&properties),
        json!({
            "$feature/llm-params": "small",
            "$feature/beta": true,
            "$feature/old-ui": false,
            "$active_feature_flags": ["beta", "llm-params"],
        })
    );
}

#[tokio::test]
async fn a_traces_flags_reach_its_spans_and_nested_calls_and_embeddings() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new()
            .respond(ChatResponse::text_response("a"))
            .embedding(traced_llm::types::EmbeddingResponse::default())
            .respond(ChatResponse::text_response("b")),
        sink.clone(),
    );
    let tracer = Tracer::new(sink.clone());
    let trace = tracer
        .trace("chat")
        .with_distinct_id("user_42")
        .with_flags(snapshot(None).only(["llm-params", "beta"]));
    let span = trace.child("retrieve");
    // The call's own flags win for the keys they name.
    let own = FlagSnapshot::builder("user_42")
        .flag("beta", Flag::new(false))
        .build();
    span.in_scope(async {
        model
            .chat(
                &ChatRequest::new("m")
                    .message(Message::user("q"))
                    .context(CallContext::new().flags(own)),
            )
            .await
            .unwrap();
        model
            .embed(&EmbeddingRequest::new("e", ["text"]))
            .await
            .unwrap();
    })
    .await;
    span.end();
    trace
        .in_scope(async {
            model
                .chat(&ChatRequest::new("m").message(Message::user("q")))
                .await
                .unwrap();
        })
        .await;
    trace.end();

    let events = sink.events();
    let shown: Vec<(String, Value)> = events
        .iter()
        .map(|event| {
            let json = capture_json(event);
            (
                json["event"].as_str().unwrap().to_owned(),
                flag_properties(json["properties"].as_object().unwrap()),
            )
        })
        .collect();
    let both = json!({
        "$feature/llm-params": "small",
        "$feature/beta": true,
        "$active_feature_flags": ["beta", "llm-params"],
    });
    assert_eq!(
        shown,
        [
            (
                "$ai_generation".to_owned(),
                json!({
                    "$feature/llm-params": "small",
                    "$feature/beta": false,
                    "$active_feature_flags": ["llm-params"],
                })
            ),
            ("$ai_embedding".to_owned(), both.clone()),
            ("$ai_span".to_owned(), both.clone()),
            ("$ai_generation".to_owned(), both.clone()),
            ("$ai_trace".to_owned(), both),
        ]
    );
}

#[tokio::test]
async fn reading_a_variant_sends_one_exposure_per_person_flag_and_value() {
    let sink = InMemorySink::new();
    let exposures = Exposures::new(sink.clone());
    let snapshot = snapshot(Some(exposures.clone()));
    for _ in 0..3 {
        assert_eq!(snapshot.variant("llm-params"), Some("small"));
        assert!(snapshot.is_enabled("beta"));
    }
    // Reading without exposure, and reading a flag the snapshot lacks, send nothing.
    assert!(snapshot.get("old-ui").is_some());
    assert_eq!(
        snapshot.payload("llm-params").unwrap()["model"],
        "gpt-5-mini"
    );
    assert!(!snapshot.is_enabled("missing"));
    // Another person, or another value, is another exposure.
    let bob = FlagSnapshot::builder("bob")
        .flag("llm-params", Flag::new("small"))
        .exposures(exposures.clone())
        .build();
    bob.value("llm-params");
    let changed = FlagSnapshot::builder("user_42")
        .flag("llm-params", Flag::new("large"))
        .exposures(exposures.clone())
        .build();
    changed.variant("llm-params");
    changed.variant("llm-params");

    let events = sink.events();
    assert!(events.iter().all(|e| matches!(e, Event::FlagExposure(_))));
    let seen: Vec<(String, String, Value)> = events
        .iter()
        .map(|event| {
            let json = capture_json(event);
            (
                json["distinct_id"].as_str().unwrap().to_owned(),
                json["properties"]["$feature_flag"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                json["properties"]["$feature_flag_response"].clone(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("user_42".into(), "llm-params".into(), json!("small")),
            ("user_42".into(), "beta".into(), json!(true)),
            ("bob".into(), "llm-params".into(), json!("small")),
            ("user_42".into(), "llm-params".into(), json!("large")),
        ]
    );
    assert_eq!(exposures.remembered(), 4);
    let json = capture_json(&events[0]);
    assert_eq!(json["event"], "$feature_flag_called");
    let mut properties = json["properties"].as_object().unwrap().clone();
    assert_eq!(properties.remove("$lib").unwrap(), "traced-llm");
    assert!(properties.remove("$lib_version").is_some());
    assert_eq!(
        Value::Object(properties),
        json!({
            "$feature_flag": "llm-params",
            "$feature_flag_response": "small",
            "$feature/llm-params": "small",
            "locally_evaluated": true,
        })
    );
}

#[tokio::test]
async fn exposure_memory_is_bounded() {
    let sink = InMemorySink::new();
    let exposures = Exposures::with_capacity(sink.clone(), 2);
    for id in ["a", "b", "c", "a"] {
        FlagSnapshot::builder(id)
            .flag("f", Flag::new(true))
            .exposures(exposures.clone())
            .build()
            .is_enabled("f");
    }
    assert_eq!(exposures.remembered(), 2);
    // "a" was forgotten when "c" came, so it is reported again.
    assert_eq!(sink.len(), 4);
}

#[tokio::test]
async fn a_variants_payload_sets_the_parameters_and_stamps_the_flag() {
    let sink = InMemorySink::new();
    let exposures = Exposures::new(sink.clone());
    let snapshot = snapshot(Some(exposures));
    let model = TracedModel::new(
        ScriptedModel::new().respond(ChatResponse::text_response("hi")),
        sink.clone(),
    );
    let mut request = ChatRequest::new("gpt-5")
        .temperature(1.0)
        .message(Message::user("Hello"))
        .context(CallContext::new().distinct_id("user_42"));
    let value = snapshot.apply_payload("llm-params", &mut request).unwrap();
    assert_eq!(value, FlagValue::variant("small"));
    assert_eq!(request.model, "gpt-5-mini");
    assert_eq!(request.temperature, Some(0.3));
    assert_eq!(request.max_tokens, Some(400));
    assert_eq!(request.extra["service_tier"], "flex");
    model.chat(&request).await.unwrap();

    let events = sink.events();
    assert_eq!(events.len(), 2, "the exposure, then the generation");
    assert!(matches!(events[0], Event::FlagExposure(_)));
    let properties = properties(&events[1]);
    assert_eq!(properties["$ai_model"], "gpt-5-mini");
    assert_eq!(
        properties["$ai_model_parameters"],
        json!({"temperature": 0.3, "max_tokens": 400, "stream": false})
    );
    assert_eq!(
        flag_properties(&properties),
        json!({"$feature/llm-params": "small", "$active_feature_flags": ["llm-params"]})
    );
}

#[tokio::test]
async fn a_bad_payload_is_a_typed_error_and_leaves_the_request_alone() {
    let snapshot = FlagSnapshot::builder("u")
        .flag(
            "llm-params",
            Flag::new("broken").with_payload(json!({"model": "gpt-5-mini", "max_tokens": -5})),
        )
        .flag("text", Flag::new("x").with_payload(json!("not parameters")))
        .flag(
            "off",
            Flag::new(false).with_payload(json!({"model": "never"})),
        )
        .build();
    let mut request = ChatRequest::new("gpt-5").temperature(1.0);
    let before = request.clone();
    let err = snapshot
        .apply_payload("llm-params", &mut request)
        .unwrap_err();
    assert_eq!(err.key(), Some("max_tokens"));
    assert!(matches!(err, ParamsError::InvalidField { .. }));
    assert_eq!(request, before);
    let err = snapshot.apply_payload("text", &mut request).unwrap_err();
    assert_eq!(err, ParamsError::NotAnObject { found: "a string" });
    assert_eq!(request, before);
    // A flag that is off, or missing, changes no parameter.
    assert_eq!(
        snapshot.apply_payload("off", &mut request).unwrap(),
        FlagValue::Bool(false)
    );
    assert_eq!(request.model, "gpt-5");
    assert_eq!(
        snapshot.apply_payload("missing", &mut request).unwrap(),
        FlagValue::Bool(false)
    );
    assert_eq!(request.model, "gpt-5");
}

#[tokio::test]
async fn the_prompt_used_is_named_on_the_event() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().respond(ChatResponse::text_response("hi")),
        sink.clone(),
    );
    let request = ChatRequest::new("m")
        .message(Message::user("q"))
        .context(CallContext::new().prompt(PromptRef::new("support-system").version(4)));
    model.chat(&request).await.unwrap();
    let properties = properties(&sink.events()[0]);
    assert_eq!(properties["$ai_prompt_name"], "support-system");
    assert_eq!(properties["$ai_prompt_version"], 4);
}

fn failing_model(sink: &InMemorySink, private: bool) -> TracedModel<ScriptedModel> {
    TracedModel::builder(
        ScriptedModel::new().fail(
            Error::from_status(429, "Rate limit reached for gpt-5 on tokens per min")
                .with_provider("openai")
                .with_api_error_type("requests"),
        ),
    )
    .sink(sink.clone())
    .privacy_mode(private)
    .error_tracking(true)
    .build()
}

#[tokio::test]
async fn a_failed_call_sends_an_exception_linked_from_its_generation() {
    let sink = InMemorySink::new();
    let model = failing_model(&sink, false);
    let request = ChatRequest::new("gpt-5")
        .message(Message::user("Hi"))
        .context(
            CallContext::new()
                .distinct_id("user_42")
                .trace_id("conversation_7f3a")
                .session_id("session_9")
                .flags(snapshot(None).only(["llm-params"])),
        );
    assert!(model.chat(&request).await.is_err());

    let events = sink.events();
    assert_eq!(events.len(), 2, "the exception, then the generation");
    let exception = capture_json(&events[0]);
    let generation = capture_json(&events[1]);
    assert_eq!(exception["event"], "$exception");
    assert_eq!(exception["distinct_id"], "user_42");
    assert_eq!(
        generation["properties"]["$exception_event_id"],
        exception["uuid"]
    );
    assert_eq!(generation["properties"]["$ai_error_type"], "rate_limit");
    let mut props = exception["properties"].as_object().unwrap().clone();
    assert_eq!(props.remove("$lib").unwrap(), "traced-llm");
    assert!(props.remove("$lib_version").is_some());
    assert_eq!(
        Value::Object(props),
        json!({
            "$ai_trace_id": "conversation_7f3a",
            "$ai_session_id": "session_9",
            "$ai_model": "gpt-5",
            "$ai_provider": "scripted",
            "$feature/llm-params": "small",
            "$active_feature_flags": ["llm-params"],
            "$exception_list": [{
                "type": "rate_limit",
                "value": "openai: http status 429 (requests): Rate limit reached for gpt-5 on tokens per min",
                "mechanism": {"type": "generic", "handled": true, "synthetic": false}
            }],
            "$exception_level": "error",
            "$exception_fingerprint": "traced-llm:rate_limit",
            "$ai_error_type": "rate_limit",
        })
    );
}

#[tokio::test]
async fn privacy_mode_withholds_the_exceptions_message_and_personless_calls_stay_personless() {
    let sink = InMemorySink::new();
    let model = failing_model(&sink, true);
    assert!(model
        .chat(&ChatRequest::new("gpt-5").message(Message::user("my secret prompt")))
        .await
        .is_err());
    let events = sink.events();
    let exception = capture_json(&events[0]);
    let generation = capture_json(&events[1]);
    assert_eq!(
        exception["properties"]["$exception_list"][0]["value"],
        "openai: http status 429 (requests)"
    );
    // No trace given: the generation is its own trace, and the exception joins it.
    assert_eq!(
        exception["properties"]["$ai_trace_id"],
        generation["properties"]["$ai_trace_id"]
    );
    assert_eq!(exception["distinct_id"], generation["distinct_id"]);
    assert_eq!(exception["properties"]["$process_person_profile"], false);
    assert!(!exception.to_string().contains("Rate limit reached"));
}

#[tokio::test]
async fn without_error_tracking_no_exception_is_sent() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().fail(Error::timeout("no answer")),
        sink.clone(),
    );
    assert!(model.chat(&ChatRequest::new("m")).await.is_err());
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert!(properties(&events[0]).get("$exception_event_id").is_none());
    // A recorder says whether it tracks errors.
    assert!(!Recorder::new(InMemorySink::new()).error_tracking());
}

/// The whole route against loopback fakes of `/flags` and `/batch/`: the variant's payload sets
/// the parameters, and the batch carries the exposure and the generation with its flag.
#[cfg(feature = "flags")]
#[tokio::test]
async fn exposures_and_flagged_generations_reach_the_batch_endpoint() {
    use traced_llm::flags::{FlagRequest, FlagSource};
    use traced_llm::posthog::flags::PosthogFlags;
    use traced_llm::posthog::PosthogSink;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/flags/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "flags": {"llm-params": {
                "key": "llm-params", "enabled": true, "variant": "small",
                "metadata": {"id": 5, "version": 2, "payload": "{\"model\":\"gpt-5-mini\",\"temperature\":0.3}"}
            }},
            "requestId": "req-9"
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/batch/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"status": "Ok"})))
        .mount(&server)
        .await;
    let sink = PosthogSink::builder()
        .api_key("phc_route")
        .host(server.uri())
        .gzip(false)
        .build()
        .unwrap();
    let model =
        TracedModel::builder(ScriptedModel::new().respond(ChatResponse::text_response("hi")))
            .sink(sink.clone())
            .build();
    let flags = PosthogFlags::builder()
        .api_key("phc_route")
        .host(server.uri())
        .exposures(Exposures::new(sink.clone()))
        .build()
        .unwrap();

    let snapshot = flags
        .evaluate(&FlagRequest::new("user_7").key("llm-params"))
        .await;
    let mut request = ChatRequest::new("gpt-5")
        .message(Message::user("Hi"))
        .context(CallContext::new().distinct_id("user_7"));
    snapshot.apply_payload("llm-params", &mut request).unwrap();
    model.chat(&request).await.unwrap();
    model
        .shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();

    let mut batched = Vec::new();
    for received in server.received_requests().await.unwrap() {
        if received.url.path() == "/batch/" {
            let body: Value = serde_json::from_slice(&received.body).unwrap();
            batched.extend(body["batch"].as_array().unwrap().iter().cloned());
        }
    }
    let names: Vec<&str> = batched
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["$feature_flag_called", "$ai_generation"]);
    let exposure = &batched[0]["properties"];
    assert_eq!(batched[0]["distinct_id"], "user_7");
    assert_eq!(exposure["$feature_flag"], "llm-params");
    assert_eq!(exposure["$feature_flag_response"], "small");
    assert_eq!(exposure["$feature_flag_request_id"], "req-9");
    assert_eq!(exposure["locally_evaluated"], false);
    let generation = &batched[1]["properties"];
    assert_eq!(generation["$feature/llm-params"], "small");
    assert_eq!(generation["$active_feature_flags"], json!(["llm-params"]));
    assert_eq!(generation["$ai_model"], "gpt-5-mini");
    assert_eq!(generation["$ai_model_parameters"]["temperature"], 0.3);
}
