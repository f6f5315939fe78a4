//! Streaming calls through `TracedModel`: exact on streams, one event whatever the ending.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use support::events::{properties, take_timings};
use traced_llm::sink::InMemorySink;
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{ChatRequest, Error, LlmModel, Message, StreamEvent, TracedModel};

fn request() -> ChatRequest {
    ChatRequest::new("claude-sonnet-4-5").message(Message::user("Say hello"))
}

fn tool_delta(index: usize, id: Option<&str>, name: Option<&str>, arguments: &str) -> StreamEvent {
    StreamEvent::ToolCallDelta {
        index,
        id: id.map(str::to_owned),
        name: name.map(str::to_owned),
        arguments: arguments.to_owned(),
    }
}

#[tokio::test]
async fn completed_stream_sends_accumulated_output_usage_and_time_to_first_token() {
    let sink = InMemorySink::new();
    let events = vec![
        StreamEvent::ResponseMetadata {
            id: Some("msg_01".into()),
            model: Some("claude-sonnet-4-5-20250929".into()),
        },
        StreamEvent::Usage(
            Usage::default()
                .with_input(25)
                .with_cache_read(100)
                .with_cache_creation(40),
        ),
        StreamEvent::text("Hel"),
        StreamEvent::text("lo!"),
        StreamEvent::Usage(Usage::default().with_output(6)),
        StreamEvent::finish("end_turn"),
    ];
    let model = ScriptedModel::new()
        .with_provider("anthropic")
        .with_base_url("https://api.anthropic.com")
        .with_cache_tokens_in_input(false)
        .stream_with_delay(events.clone(), Duration::from_millis(15));
    let model = TracedModel::new(model, sink.clone());

    let stream = model.chat_stream(&request()).await.unwrap();
    let received: Vec<_> = stream.map(Result::unwrap).collect().await;
    assert_eq!(received, events, "the caller sees every event unchanged");

    let generations = sink.generations();
    assert_eq!(generations.len(), 1);
    let mut props = properties(&sink.events()[0]);
    let (latency, ttft) = take_timings(&mut props);
    let ttft = ttft.expect("streams carry time to first token");
    // The first text delta is the third event: at least three delays in.
    assert!(ttft >= 0.045, "ttft {ttft}");
    assert!(latency > ttft, "latency {latency} ttft {ttft}");
    assert_eq!(props["$ai_model"], "claude-sonnet-4-5-20250929");
    assert_eq!(props["$ai_provider"], "anthropic");
    assert_eq!(props["$ai_completion_id"], "msg_01");
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]}])
    );
    assert_eq!(props["$ai_input_tokens"], 25);
    assert_eq!(props["$ai_output_tokens"], 6);
    assert_eq!(props["$ai_cache_read_input_tokens"], 100);
    assert_eq!(props["$ai_cache_creation_input_tokens"], 40);
    assert_eq!(props["$ai_cache_reporting_exclusive"], true);
    assert_eq!(props["$ai_stop_reason"], "end_turn");
    assert_eq!(props["$ai_model_parameters"], json!({"stream": true}));
    assert_eq!(props["$ai_http_status"], 200);
    assert_eq!(props["$ai_is_error"], false);
}

/// The first piece of each call carries its id and name; one server repeats the id later, which
/// must not double it.
#[tokio::test]
async fn tool_calls_are_assembled_from_fragments_by_index() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().stream(vec![
            StreamEvent::text("Checking both."),
            tool_delta(0, Some("call_a"), Some("get_weather"), ""),
            tool_delta(1, Some("call_b"), Some("get_time"), "{\"tz\""),
            tool_delta(0, Some("call_a"), None, "{\"city\":"),
            tool_delta(1, None, None, ":\"CET\"}"),
            tool_delta(0, None, None, "\"Paris\"}"),
            StreamEvent::finish("tool_calls"),
        ]),
        sink.clone(),
    );
    let stream = model.chat_stream(&request()).await.unwrap();
    stream.for_each(|_| async {}).await;

    let props = properties(&sink.events()[0]);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "function", "id": "call_a", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"type": "function", "id": "call_b", "function": {"name": "get_time", "arguments": "{\"tz\":\"CET\"}"}}
        ]}])
    );
    assert_eq!(props["$ai_stop_reason"], "tool_calls");
}

#[tokio::test]
async fn an_error_mid_stream_keeps_partial_output_and_reaches_the_caller_unchanged() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().stream_then_fail(
            vec![
                StreamEvent::Usage(Usage::default().with_input(12)),
                StreamEvent::text("The answer is"),
            ],
            Error::stream("connection reset by peer").with_provider("openai"),
        ),
        sink.clone(),
    );
    let mut stream = model.chat_stream(&request()).await.unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    assert!(stream.next().await.unwrap().is_ok());
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(err.is_stream());
    assert_eq!(
        err.to_string(),
        "openai: stream failed: connection reset by peer"
    );
    assert!(stream.next().await.is_none());
    drop(stream);

    let events = sink.events();
    assert_eq!(
        events.len(),
        1,
        "the drop after the error sends nothing more"
    );
    let mut props = properties(&events[0]);
    let (latency, ttft) = take_timings(&mut props);
    assert!(ttft.is_some() && latency >= ttft.unwrap());
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(
        props["$ai_error"],
        "openai: stream failed: connection reset by peer"
    );
    assert_eq!(props["$ai_http_status"], 200);
    assert_eq!(props["$ai_input_tokens"], 12);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "The answer is"}]}])
    );
}

#[tokio::test]
async fn a_stream_dropped_early_is_sent_as_cancelled_with_what_arrived() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().stream(vec![
            StreamEvent::Usage(Usage::default().with_input(30)),
            StreamEvent::text("Once upon"),
            StreamEvent::text(" a time"),
            StreamEvent::text(" there was"),
            StreamEvent::Usage(Usage::new(30, 9)),
            StreamEvent::finish("stop"),
        ]),
        sink.clone(),
    );
    let mut stream = model.chat_stream(&request()).await.unwrap();
    stream.next().await.unwrap().unwrap();
    stream.next().await.unwrap().unwrap();
    stream.next().await.unwrap().unwrap();
    assert!(sink.is_empty(), "nothing is sent while the stream is alive");
    drop(stream);

    let events = sink.events();
    assert_eq!(events.len(), 1);
    let mut props = properties(&events[0]);
    let (_, ttft) = take_timings(&mut props);
    assert!(ttft.is_some());
    assert_eq!(props["$ai_stop_reason"], "cancelled");
    assert_eq!(props["$ai_is_error"], false);
    assert_eq!(props["$ai_input_tokens"], 30);
    // No output count had arrived: unknown, so not sent (not 0).
    assert_eq!(props.get("$ai_output_tokens"), None);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "Once upon a time"}]}])
    );
}

#[tokio::test]
async fn a_stream_that_fails_to_start_sends_one_error_event() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new()
            .fail(Error::from_status(401, "invalid x-api-key").with_provider("anthropic")),
        sink.clone(),
    );
    let Err(err) = model.chat_stream(&request()).await else {
        panic!("the stream must fail to start");
    };
    assert_eq!(err.status(), Some(401));
    let events = sink.events();
    assert_eq!(events.len(), 1);
    let props = properties(&events[0]);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_http_status"], 401);
    assert_eq!(
        props["$ai_error"],
        "anthropic: http status 401: invalid x-api-key"
    );
    assert_eq!(props["$ai_model_parameters"], json!({"stream": true}));
    assert!(!props.contains_key("$ai_time_to_first_token"));
}

#[tokio::test]
async fn a_stream_without_content_has_no_time_to_first_token() {
    let sink = InMemorySink::new();
    let model = TracedModel::new(
        ScriptedModel::new().stream(vec![
            StreamEvent::Usage(Usage::new(5, 0)),
            StreamEvent::finish("length"),
        ]),
        sink.clone(),
    );
    model
        .chat_stream(&request())
        .await
        .unwrap()
        .for_each(|_| async {})
        .await;
    let props = properties(&sink.events()[0]);
    assert!(!props.contains_key("$ai_time_to_first_token"));
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": []}])
    );
}
