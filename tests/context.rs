//! Per-call context: persons, traces, privacy, custom properties, groups.

mod support;

use serde_json::json;
use support::events::{capture_json, properties};
use traced_llm::event::Event;
use traced_llm::sink::{InMemorySink, Sink};
use traced_llm::testing::ScriptedModel;
use traced_llm::types::ContentPart;
use traced_llm::{CallContext, ChatRequest, ChatResponse, Error, LlmModel, Message, TracedModel};

fn answering(text: &str) -> ScriptedModel {
    ScriptedModel::new().respond(ChatResponse::text_response(text))
}

#[tokio::test]
async fn without_a_distinct_id_the_event_is_personless_and_keyed_by_its_trace() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(answering("ok"), sink.clone());
    model
        .chat(&ChatRequest::new("m").message(Message::user("Hi")))
        .await
        .unwrap();

    let event = &sink.events()[0];
    let json = capture_json(event);
    let trace_id = json["properties"]["$ai_trace_id"].as_str().unwrap();
    assert_eq!(json["distinct_id"], trace_id);
    assert_eq!(trace_id, json["uuid"].as_str().unwrap(), "a fresh UUID");
    assert_eq!(json["properties"]["$process_person_profile"], false);
}

#[tokio::test]
async fn with_a_distinct_id_person_profiles_are_processed() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(answering("ok"), sink.clone());
    let request = ChatRequest::new("m")
        .message(Message::user("Hi"))
        .context(CallContext::new().distinct_id("user_1"));
    model.chat(&request).await.unwrap();
    let json = capture_json(&sink.events()[0]);
    assert_eq!(json["distinct_id"], "user_1");
    assert!(json["properties"].get("$process_person_profile").is_none());
}

#[tokio::test]
async fn the_chat_route_seed_case_reads_naturally() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(answering("Lisbon in May is lovely."), sink.clone());
    let request = ChatRequest::new("gpt-4o-mini")
        .message(Message::user("When should I visit Lisbon?"))
        .context(
            CallContext::new()
                .distinct_id("user_42")
                .trace_id("conversation_7f3a")
                .session_id("session_9")
                .span_id("span_1")
                .parent_id("conversation_7f3a")
                .span_name("chat_reply")
                .property("user_name", "Ada")
                .property("message_count", 3)
                .property("topic", "travel")
                .group("company", "acme"),
        );
    model.chat(&request).await.unwrap();

    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_trace_id"], "conversation_7f3a");
    assert_eq!(props["$ai_session_id"], "session_9");
    assert_eq!(props["$ai_span_id"], "span_1");
    assert_eq!(props["$ai_parent_id"], "conversation_7f3a");
    assert_eq!(props["$ai_span_name"], "chat_reply");
    assert_eq!(props["user_name"], "Ada");
    assert_eq!(props["message_count"], 3);
    assert_eq!(props["topic"], "travel");
    assert_eq!(props["$groups"], json!({"company": "acme"}));
}

#[tokio::test]
async fn custom_properties_override_the_crates_but_never_the_error_fields() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().fail(Error::from_status(500, "upstream failed")),
        sink.clone(),
    );
    let request = ChatRequest::new("gpt-4o-mini")
        .message(Message::user("Hi"))
        .context(
            CallContext::new()
                .property("$ai_model", "my-fine-tune")
                .property("$ai_is_error", false)
                .property("$ai_error", "nothing to see"),
        );
    let _ = model.chat(&request).await;

    let json =
        serde_json::to_string(&traced_llm::posthog::capture_event(&sink.events()[0])).unwrap();
    assert_eq!(
        json.matches("\"$ai_model\"").count(),
        1,
        "no duplicate keys"
    );
    assert_eq!(
        json.matches("\"$ai_is_error\"").count(),
        1,
        "no duplicate keys"
    );
    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_model"], "my-fine-tune");
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_error"], "http status 500: upstream failed");
}

#[tokio::test]
async fn privacy_mode_hides_content_and_keeps_the_numbers() {
    let sink = InMemorySink::new();
    let model = TracedModel::builder(
        ScriptedModel::new()
            .respond(
                ChatResponse::text_response("secret answer")
                    .with_usage(traced_llm::types::Usage::new(7, 2)),
            )
            .respond(ChatResponse::text_response("public answer"))
            .respond(ChatResponse::text_response("secret again")),
    )
    .sink(sink.clone())
    .privacy_mode(true)
    .build();
    let ask = |context| {
        ChatRequest::new("m")
            .message(Message::user("my secret question"))
            .context(context)
    };

    model.chat(&ask(CallContext::new())).await.unwrap();
    model
        .chat(&ask(CallContext::new().privacy_mode(false)))
        .await
        .unwrap();
    let open_model = TracedModel::new(
        answering("x").respond(ChatResponse::text_response("y")),
        sink.clone(),
    );
    open_model
        .chat(&ask(CallContext::new().privacy_mode(true)))
        .await
        .unwrap();

    let events = sink.events();
    let private = properties(&events[0]);
    assert_eq!(private["$ai_input"], serde_json::Value::Null);
    assert_eq!(private["$ai_output_choices"], serde_json::Value::Null);
    assert_eq!(private["$ai_input_tokens"], 7);
    assert_eq!(private["$ai_output_tokens"], 2);
    assert!(!serde_json::to_string(&private).unwrap().contains("secret"));

    let opted_out = properties(&events[1]);
    assert_eq!(
        opted_out["$ai_input"],
        json!([{"role": "user", "content": "my secret question"}])
    );

    let per_call = properties(&events[2]);
    assert_eq!(per_call["$ai_input"], serde_json::Value::Null);
    assert_eq!(per_call["$ai_output_choices"], serde_json::Value::Null);
}

#[tokio::test]
async fn base64_images_never_leave_the_process() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(answering("a cat"), sink.clone());
    let request = ChatRequest::new("gpt-4o").message(
        Message::user("What is this?")
            .with_part(ContentPart::image_base64(
                "image/png",
                "iVBORw0KGgoAAAANSUhEUgAA".repeat(100),
            ))
            .with_part(ContentPart::image_url(
                "data:image/jpeg;base64,/9j/4AAQSkZJRg==",
            ))
            .with_part(ContentPart::image_url("https://example.com/cat.png")),
    );
    model.chat(&request).await.unwrap();
    let props = properties(&sink.events()[0]);
    assert_eq!(
        props["$ai_input"],
        json!([{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "[base64 image/png redacted]"}},
            {"type": "image_url", "image_url": {"url": "[base64 image/jpeg redacted]"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}])
    );
}

#[tokio::test]
async fn tool_messages_keep_their_call_ids() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(answering("It is sunny."), sink.clone());
    let request = ChatRequest::new("gpt-4o").messages([
        Message::user("Weather in Paris?"),
        Message::assistant_tool_calls([traced_llm::types::ToolCall::new(
            "call_1",
            "get_weather",
            "{\"city\":\"Paris\"}",
        )]),
        Message::tool_result("call_1", "sunny, 24°C"),
    ]);
    model.chat(&request).await.unwrap();
    let props = properties(&sink.events()[0]);
    assert_eq!(
        props["$ai_input"],
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [{"type": "function", "id": "call_1", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 24°C"}
        ])
    );
}

#[derive(Debug)]
struct PanickingSink;

impl Sink for PanickingSink {
    fn capture(&self, _event: Event) {
        panic!("this sink is broken");
    }
}

#[tokio::test]
async fn a_panicking_sink_is_invisible_to_the_caller() {
    let model = TracedModel::new(answering("still fine"), PanickingSink);
    let response = model
        .chat(&ChatRequest::new("m").message(Message::user("Hi")))
        .await
        .unwrap();
    assert_eq!(response.text(), "still fine");
}

#[test]
fn traced_boxed_models_and_their_streams_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let model: TracedModel<Box<dyn LlmModel>> =
        TracedModel::new(Box::new(ScriptedModel::new()), InMemorySink::new());
    let request = ChatRequest::new("m");
    let chat = model.chat(&request);
    assert_send(&chat);
    let stream = model.chat_stream(&request);
    assert_send(&stream);
    fn assert_stream_send<S: futures_core::Stream + Send>() {}
    assert_stream_send::<traced_llm::ChatStream>();
    assert_stream_send::<traced_llm::record::TracedStream>();
}
