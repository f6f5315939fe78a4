//! Calls made inside the service's own `tracing` spans nest under them in OpenTelemetry, and
//! the crate's own trace and span scope still wins where both are present.

mod support;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SpanData;
use support::otel::{span_attributes, Otel};
use traced_llm::otel::{span_id_for, trace_id_for};
use traced_llm::sink::{Fanout, InMemorySink};
use traced_llm::testing::ScriptedModel;
use traced_llm::{CallContext, ChatRequest, ChatResponse, LlmModel, Message, TracedModel};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new("gpt-4o-mini").message(Message::user(text))
}

fn answers(n: usize) -> ScriptedModel {
    (0..n).fold(ScriptedModel::new().with_provider("openai"), |model, i| {
        model.respond(ChatResponse::text_response(format!("answer {i}")))
    })
}

/// A `tracing` subscriber that exports its spans through `otel`'s tracer provider, as a
/// service's own setup does; `activation` is tracing-opentelemetry's context activation.
fn subscriber(otel: &Otel, activation: bool) -> tracing::subscriber::DefaultGuard {
    let layer = tracing_opentelemetry::layer()
        .with_tracer(otel.tracer_provider.tracer("service"))
        .with_context_activation(activation);
    tracing_subscriber::registry().with(layer).set_default()
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|span| span.name == name).collect()
}

async fn request_with_calls_and_an_agent(activation: bool) {
    let otel = Otel::new();
    let _subscriber = subscriber(&otel, activation);
    let events = InMemorySink::new();
    let model = TracedModel::new(
        answers(3),
        Fanout::new().with(events.clone()).with(otel.sink()),
    );

    let request_span = tracing::info_span!("POST /chat");
    async {
        model.chat(&ask("Hi")).await.unwrap();
        let trace = model.tracer().trace("travel_agent");
        let plan = trace.child("plan");
        plan.in_scope(model.chat(&ask("Plan"))).await.unwrap();
        plan.end();
        let answer = trace.child("answer");
        answer.in_scope(model.chat(&ask("Go"))).await.unwrap();
        answer.end();
        trace.end();
    }
    .instrument(request_span.clone())
    .await;
    drop(request_span);

    let spans = otel.spans();
    let request = named(&spans, "POST /chat")[0];
    let trace_id = request.span_context.trace_id();
    assert_eq!(spans.len(), 7, "{spans:#?}");
    assert!(spans
        .iter()
        .all(|span| span.span_context.trace_id() == trace_id));

    // The lone call and the agent's root hang under the request span.
    let chats = named(&spans, "chat gpt-4o-mini");
    let root = named(&spans, "invoke_agent travel_agent")[0];
    let plan = named(&spans, "invoke_agent plan")[0];
    let answer = named(&spans, "invoke_agent answer")[0];
    assert_eq!(chats[0].parent_span_id, request.span_context.span_id());
    assert_eq!(root.parent_span_id, request.span_context.span_id());
    // Inside the agent, the crate's own spans are the parents.
    assert_eq!(plan.parent_span_id, root.span_context.span_id());
    assert_eq!(answer.parent_span_id, root.span_context.span_id());
    assert_eq!(chats[1].parent_span_id, plan.span_context.span_id());
    assert_eq!(chats[2].parent_span_id, answer.span_context.span_id());

    // PostHog sees the same trace: the service's trace id, as 32 hex digits. An adopted trace
    // id is not a conversation id.
    let trace_hex = trace_id.to_string();
    for event in events.events() {
        assert_eq!(
            event.envelope().trace_id.as_deref(),
            Some(trace_hex.as_str())
        );
    }
    assert_eq!(root.span_context.span_id(), span_id_for(&trace_hex));
    assert!(span_attributes(chats[0])
        .get("gen_ai.conversation.id")
        .is_none());
}

#[tokio::test]
async fn calls_nest_under_the_request_span_with_context_activation() {
    request_with_calls_and_an_agent(true).await;
}

#[tokio::test]
async fn calls_nest_under_the_request_span_without_context_activation() {
    request_with_calls_and_an_agent(false).await;
}

#[tokio::test]
async fn a_trace_the_caller_named_nests_under_the_request_span_and_names_the_conversation() {
    let otel = Otel::new();
    let _subscriber = subscriber(&otel, true);
    let events = InMemorySink::new();
    let model = TracedModel::new(
        answers(2),
        Fanout::new().with(events.clone()).with(otel.sink()),
    );
    let request_span = tracing::info_span!("POST /chat");
    async {
        // A chat route's call: the conversation id is PostHog's trace id.
        let context = CallContext::new().trace_id("conversation_7f3a");
        model.chat(&ask("Hi").context(context)).await.unwrap();
        // An agent run the caller named: its tree is kept, inside the request.
        let trace = model.tracer().trace_with_id("agent", "run_42");
        trace.in_scope(model.chat(&ask("Plan"))).await.unwrap();
        trace.end();
    }
    .instrument(request_span.clone())
    .await;
    drop(request_span);

    let spans = otel.spans();
    let request = named(&spans, "POST /chat")[0];
    let chats = named(&spans, "chat gpt-4o-mini");
    let agent = named(&spans, "invoke_agent agent")[0];
    assert_eq!(chats.len(), 2);
    // Every span is in the request's trace; no span roots a trace of its own or links out.
    for span in chats.iter().chain([&agent]) {
        assert_eq!(
            span.span_context.trace_id(),
            request.span_context.trace_id()
        );
        assert!(span.links.is_empty());
    }
    assert_eq!(chats[0].parent_span_id, request.span_context.span_id());
    assert_eq!(
        span_attributes(chats[0])["gen_ai.conversation.id"],
        "conversation_7f3a"
    );
    assert_eq!(agent.parent_span_id, request.span_context.span_id());
    assert_eq!(chats[1].parent_span_id, agent.span_context.span_id());

    // PostHog keeps the names the caller gave, and the same span ids.
    let recorded = events.events();
    assert_eq!(
        recorded[0].envelope().trace_id.as_deref(),
        Some("conversation_7f3a")
    );
    assert_eq!(recorded[1].envelope().trace_id.as_deref(), Some("run_42"));
    assert_eq!(
        chats[1].span_context.span_id(),
        span_id_for(recorded[1].envelope().span_id.as_deref().unwrap())
    );
}

#[tokio::test]
async fn the_crates_scope_wins_over_the_tracing_span() {
    let otel = Otel::new();
    let _subscriber = subscriber(&otel, true);
    let model = TracedModel::new(answers(1), otel.sink());
    let trace = model.tracer().trace_with_id("agent", "conversation_7f3a");
    let step = trace.child("step");
    // A `tracing` span opened inside the crate's scope does not take the call from its step.
    step.in_scope(
        model
            .chat(&ask("Hi"))
            .instrument(tracing::info_span!("inner")),
    )
    .await
    .unwrap();
    step.end();
    trace.end();

    let spans = otel.spans();
    let chat = named(&spans, "chat gpt-4o-mini")[0];
    let step = named(&spans, "invoke_agent step")[0];
    assert_eq!(chat.parent_span_id, step.span_context.span_id());
    assert_eq!(
        chat.span_context.trace_id(),
        trace_id_for("conversation_7f3a")
    );
}

#[tokio::test]
async fn a_stream_keeps_the_parent_it_started_under() {
    let otel = Otel::new();
    let _subscriber = subscriber(&otel, true);
    let model = TracedModel::new(
        ScriptedModel::new().stream_with_delay(
            vec![
                traced_llm::StreamEvent::text("Hi"),
                traced_llm::StreamEvent::finish("stop"),
            ],
            std::time::Duration::from_millis(20),
        ),
        otel.sink(),
    );
    let request_span = tracing::info_span!("POST /chat");
    // The handler returns the stream; it is read after the request span closed.
    let mut stream = model
        .chat_stream(&ask("Hi"))
        .instrument(request_span.clone())
        .await
        .unwrap();
    drop(request_span);
    while stream.next().await.is_some() {}
    drop(stream);

    let spans = otel.spans();
    let request = named(&spans, "POST /chat")[0];
    let chat = named(&spans, "chat gpt-4o-mini")[0];
    assert_eq!(chat.parent_span_id, request.span_context.span_id());
    // The stream's chunks came 20 ms apart, after the request span had closed.
    assert!(chat.end_time >= request.end_time);
}
