//! LLM calls as OpenTelemetry GenAI spans and metrics, nested in the service's own request span.
//!
//! ```text
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 cargo run --example otel --features otel
//! OTEL_EXPORTER_OTLP_PROTOCOL=http/json OTEL_EXPORTER_OTLP_ENDPOINT=... cargo run --example otel --features otel
//! ```
//!
//! It runs offline on a scripted model. Inside one `tracing` request span (`POST /chat`), as an
//! axum handler would, it makes a chat call, a streamed call, a call that fails, and a
//! two-span agent trace; every call becomes a `chat gpt-4o-mini` span under the request span
//! (the agent's under its steps), with the GenAI duration, time-to-first-chunk and token
//! metrics.
//!
//! The exporters honour the standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or the
//! per-signal `..._TRACES_ENDPOINT` / `..._METRICS_ENDPOINT`), `OTEL_EXPORTER_OTLP_PROTOCOL`
//! (`http/protobuf`, the default, or `http/json`), `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_EXPORTER_OTLP_TIMEOUT`, and the SDK's `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES`. Without an endpoint the spans are kept in memory and printed.
//! To send to PostHog's OTLP intake instead of a collector:
//!
//! ```text
//! OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=https://us.i.posthog.com/i/v0/ai/otel \
//! OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer phc_..." cargo run --example otel --features otel
//! ```
//!
//! With `POSTHOG_API_KEY` set, every event also goes to PostHog's capture API (`POSTHOG_HOST`
//! honoured). The providers are shut down before exit, which flushes the last spans and
//! metrics.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{MetricExporter, Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, InMemorySpanExporter, SdkTracerProvider, SpanData,
};
use opentelemetry_sdk::Resource;
use traced_llm::otel::{MetricNames, OtelSink, TracedIdGenerator};
use traced_llm::posthog::PosthogSink;
use traced_llm::sink::Fanout;
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{
    CallContext, ChatRequest, ChatResponse, Error, LlmModel, Message, StreamEvent, TracedModel,
};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

const MODEL: &str = "gpt-4o-mini";

fn offline_model() -> ScriptedModel {
    let answer = |text: &str, id: &str, usage: Usage| {
        ChatResponse::text_response(text)
            .with_id(id)
            .with_model("gpt-4o-mini-2024-07-18")
            .with_finish_reason("stop")
            .with_usage(usage)
    };
    ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("https://api.openai.com/v1")
        .with_latency(Duration::from_millis(15))
        .respond(answer("Lisbon.", "chatcmpl-otel-1", Usage::new(24, 3)))
        .stream_with_delay(
            vec![
                StreamEvent::ResponseMetadata {
                    id: Some("chatcmpl-otel-2".into()),
                    model: Some("gpt-4o-mini-2024-07-18".into()),
                },
                StreamEvent::text("Trams, "),
                StreamEvent::text("miradouros "),
                StreamEvent::text("and pastéis de nata."),
                StreamEvent::Usage(Usage::new(31, 9).with_cache_read(16)),
                StreamEvent::finish("stop"),
            ],
            Duration::from_millis(5),
        )
        .fail(
            Error::from_status(429, "Rate limit reached for gpt-4o-mini")
                .with_provider("openai")
                .with_api_error_type("requests"),
        )
        .respond(answer(
            "1. Alfama 2. Belém",
            "chatcmpl-otel-3",
            Usage::new(58, 12),
        ))
        .respond(answer(
            "Start in Alfama at 9.",
            "chatcmpl-otel-4",
            Usage::new(77, 8).with_cache_read(48),
        ))
}

/// Where spans go: OTLP when an endpoint is configured, else memory (printed at the end).
enum Spans {
    Otlp,
    Memory(InMemorySpanExporter),
}

fn endpoint_configured() -> bool {
    [
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

/// `http/protobuf` unless the environment names a protocol: the OTLP default.
fn protocol_unset(signal: &str) -> bool {
    std::env::var_os("OTEL_EXPORTER_OTLP_PROTOCOL").is_none()
        && std::env::var_os(format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL")).is_none()
}

fn providers() -> Result<(SdkTracerProvider, SdkMeterProvider, Spans), Box<dyn std::error::Error>> {
    let mut resource = Resource::builder();
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("traced-llm-otel-example");
    }
    let resource = resource.build();
    // The id generator gives each LLM span the ids PostHog sees for the call.
    let tracer_provider = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_id_generator(TracedIdGenerator::new());
    let meter_provider = SdkMeterProvider::builder().with_resource(resource);
    if !endpoint_configured() {
        eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT is not set: spans are printed, not exported");
        let spans = InMemorySpanExporter::default();
        return Ok((
            tracer_provider.with_simple_exporter(spans.clone()).build(),
            meter_provider.build(),
            Spans::Memory(spans),
        ));
    }
    let mut span_exporter = SpanExporter::builder().with_http();
    if protocol_unset("TRACES") {
        span_exporter = span_exporter.with_protocol(Protocol::HttpBinary);
    }
    let mut metric_exporter = MetricExporter::builder().with_http();
    if protocol_unset("METRICS") {
        metric_exporter = metric_exporter.with_protocol(Protocol::HttpBinary);
    }
    // PostHog's OTLP intake takes at most 100 AI spans per request.
    let batches = BatchSpanProcessor::builder(span_exporter.build()?)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_export_batch_size(100)
                .build(),
        )
        .build();
    Ok((
        tracer_provider.with_span_processor(batches).build(),
        meter_provider
            .with_reader(PeriodicReader::builder(metric_exporter.build()?).build())
            .build(),
        Spans::Otlp,
    ))
}

/// What a service's request handler does: one chat call, one streamed call, one that fails,
/// and a two-step agent.
async fn handle_request(model: &TracedModel<ScriptedModel>) {
    let context = CallContext::new()
        .distinct_id("user_42")
        .session_id("chat_7f3a");
    let ask = |text: &str| {
        ChatRequest::new(MODEL)
            .message(Message::user(text))
            .context(context.clone())
    };

    let answer = model.chat(&ask("Capital of Portugal?")).await;
    println!(
        "chat: {}",
        answer.map(|a| a.text()).unwrap_or_else(|e| e.to_string())
    );

    let mut stream = model
        .chat_stream(&ask("What is Lisbon known for?"))
        .await
        .expect("a stream");
    let mut streamed = String::new();
    while let Some(event) = stream.next().await {
        if let Ok(StreamEvent::TextDelta { text }) = event {
            streamed.push_str(&text);
        }
    }
    println!("stream: {streamed}");

    match model.chat(&ask("And Porto?")).await {
        Ok(answer) => println!("chat: {}", answer.text()),
        Err(error) => println!("error: {error}"),
    }

    let trace = model
        .tracer()
        .trace("trip_planner")
        .with_distinct_id("user_42")
        .with_session_id("chat_7f3a");
    let plan = trace.child("plan");
    let steps = plan
        .in_scope(model.chat(&ask("Two districts to visit?")))
        .await;
    plan.end();
    let answer = trace.child("answer");
    let first = answer.in_scope(model.chat(&ask("Where do I start?"))).await;
    answer.end();
    trace.end();
    println!(
        "agent: {} / {}",
        steps.map(|a| a.text()).unwrap_or_default(),
        first.map(|a| a.text()).unwrap_or_default()
    );
}

fn print_tree(spans: &[SpanData]) {
    fn children(spans: &[SpanData], parent: opentelemetry::trace::SpanId, depth: usize) {
        for span in spans.iter().filter(|span| span.parent_span_id == parent) {
            let tokens = span
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == "gen_ai.usage.input_tokens")
                .map(|kv| format!("  input_tokens={}", kv.value))
                .unwrap_or_default();
            let error = span
                .attributes
                .iter()
                .find(|kv| kv.key.as_str() == "error.type")
                .map(|kv| format!("  error.type={}", kv.value))
                .unwrap_or_default();
            eprintln!("{}{}{tokens}{error}", "  ".repeat(depth), span.name);
            children(spans, span.span_context.span_id(), depth + 1);
        }
    }
    if let Some(trace_id) = spans.first().map(|span| span.span_context.trace_id()) {
        eprintln!("trace {trace_id}:");
    }
    children(spans, opentelemetry::trace::SpanId::INVALID, 1);
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (tracer_provider, meter_provider, spans) = providers()?;

    // The service's own tracing, exported through the same provider: tracing-opentelemetry
    // activates each span's OpenTelemetry context on entry, which is where calls find their
    // parent.
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(tracer_provider.tracer("service")))
        .init();

    // Both generations of GenAI metric names, for dashboards built on the older ones.
    let otel = OtelSink::builder()
        .tracer_provider(&tracer_provider)
        .meter_provider(&meter_provider)
        .metric_names(MetricNames::Both)
        .build();
    let mut sink = Fanout::new().with(otel);
    if std::env::var_os("POSTHOG_API_KEY").is_some() {
        let posthog = PosthogSink::from_env()?;
        eprintln!("also sending events to {}", posthog.url());
        sink = sink.with(posthog);
    }
    let model = TracedModel::new(offline_model(), sink);

    let request = tracing::info_span!(
        "POST /chat",
        http.request.method = "POST",
        http.route = "/chat"
    );
    handle_request(&model).instrument(request).await;

    if let Spans::Memory(exporter) = &spans {
        print_tree(&exporter.get_finished_spans()?);
    }
    // PostHog's sink first (it flushes its queue), then the providers, which flush theirs.
    if let Err(error) = model.shutdown(Duration::from_secs(5)).await {
        eprintln!("sink shutdown: {error}");
    }
    tracer_provider.shutdown()?;
    meter_provider.shutdown()?;
    if let Spans::Otlp = spans {
        eprintln!("spans and metrics exported; providers shut down");
    }
    Ok(())
}
