//! With the `otel` feature, the chat route's request span contains its LLM call's span, while
//! PostHog keeps the conversation id as the call's trace id.

mod support;

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use support::{answering, body_text, TestService};
use traced_llm::otel::{OtelSink, TracedIdGenerator};
use traced_llm::sink::Fanout;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|span| span.name == name)
        .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
}

#[tokio::test]
async fn the_request_span_contains_the_llm_call() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_id_generator(TracedIdGenerator::new())
        .build();
    let _subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("chat-service")))
        .set_default();
    let otel = OtelSink::builder().tracer_provider(&provider).build();

    let service = TestService::with(|config| {
        let events = config.event_sink();
        config
            .model(answering(&["Hi ", "there."], Duration::ZERO))
            .sink(Fanout::new().with_shared(events).with(otel))
    });
    let cookie = service.sign_in("alice", "wonderland").await;
    let response = service.chat(&cookie, json!({"message": "Hello"})).await;
    let conversation = response.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    body_text(response).await;

    let spans = exporter.get_finished_spans().unwrap();
    let request = named(&spans, "POST /api/chat");
    let chat = named(&spans, "chat gpt-4o-mini");
    assert_eq!(
        chat.span_context.trace_id(),
        request.span_context.trace_id()
    );
    assert_eq!(chat.parent_span_id, request.span_context.span_id());
    let conversation_attribute = chat
        .attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == "gen_ai.conversation.id")
        .map(|attribute| attribute.value.to_string());
    // The library names the session as the conversation when there is one: here the sign-in.
    let generation = &service.generations()[0];
    let session = generation["$ai_session_id"].as_str().unwrap();
    assert_eq!(conversation_attribute.as_deref(), Some(session));
    assert_eq!(
        service.generations()[0]["$ai_trace_id"],
        conversation.as_str()
    );
}
