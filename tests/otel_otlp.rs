//! End to end: the OpenTelemetry sink through the SDK's batch processor and periodic reader and
//! `opentelemetry-otlp` over HTTP, protobuf and JSON, to a loopback OTLP receiver that decodes
//! what arrives with the `opentelemetry-proto` types.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_otlp::{
    MetricExporter, Protocol, SpanExporter, WithExportConfig, WithHttpConfig,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::json;
use support::otlp_receiver::{attribute, OtlpReceiver};
use traced_llm::otel::{OtelSink, TracedIdGenerator};
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{ChatRequest, ChatResponse, LlmModel, Message, StreamEvent, TracedModel};

fn providers(receiver: &OtlpReceiver, protocol: Protocol) -> (SdkTracerProvider, SdkMeterProvider) {
    // PostHog's OTLP intake wants its project token as a bearer token; any collector takes
    // headers the same way.
    let headers = HashMap::from([("authorization".to_owned(), "Bearer phc_test".to_owned())]);
    let spans = SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{}/v1/traces", receiver.endpoint()))
        .with_headers(headers.clone())
        .build()
        .expect("span exporter");
    let metrics = MetricExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .with_endpoint(format!("{}/v1/metrics", receiver.endpoint()))
        .with_headers(headers)
        .build()
        .expect("metric exporter");
    let tracer_provider = SdkTracerProvider::builder()
        .with_batch_exporter(spans)
        .with_id_generator(TracedIdGenerator::new())
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metrics).build())
        .build();
    (tracer_provider, meter_provider)
}

async fn calls_through(protocol: Protocol) {
    let receiver = OtlpReceiver::start();
    let (tracer_provider, meter_provider) = providers(&receiver, protocol);
    let sink = OtelSink::builder()
        .tracer_provider(&tracer_provider)
        .meter_provider(&meter_provider)
        .build();
    let model = ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("http://127.0.0.1:9/v1")
        .respond(
            ChatResponse::text_response("Lisbon.")
                .with_model("gpt-4o-mini-2024-07-18")
                .with_finish_reason("stop")
                .with_usage(Usage::new(24, 7).with_cache_read(4)),
        )
        .stream(vec![
            StreamEvent::text("Lis"),
            StreamEvent::text("bon."),
            StreamEvent::Usage(Usage::new(20, 2)),
            StreamEvent::finish("stop"),
        ]);
    let model = TracedModel::new(model, sink);
    let request = ChatRequest::new("gpt-4o-mini").message(Message::user("Capital of Portugal?"));

    // The service's own request span, as an HTTP server instrumentation makes it.
    let service = tracer_provider.tracer("service");
    let request_span = service.start("POST /chat");
    let request_context = Context::current_with_span(request_span);
    {
        let _attached = request_context.clone().attach();
        model.chat(&request).await.unwrap();
        let mut stream = model.chat_stream(&request).await.unwrap();
        while stream.next().await.is_some() {}
    }
    request_context.span().end();

    // Shut the providers down, as a service does before it exits: that flushes both.
    tokio::task::spawn_blocking(move || {
        tracer_provider
            .shutdown()
            .expect("tracer provider shut down");
        meter_provider.shutdown().expect("meter provider shut down");
    })
    .await
    .unwrap();
    assert!(
        receiver.wait_until(Duration::from_secs(10), |r| r.spans().len() == 3
            && !r.metrics().is_empty())
    );
    assert_eq!(receiver.errors(), Vec::<String>::new());

    let content_type = match protocol {
        Protocol::HttpJson => "application/json",
        _ => "application/x-protobuf",
    };
    for export in receiver.exports() {
        assert_eq!(export.content_type, content_type);
        assert_eq!(export.authorization.as_deref(), Some("Bearer phc_test"));
    }

    let spans = receiver.spans();
    let request = spans.iter().find(|span| span.name == "POST /chat").unwrap();
    let chats: Vec<_> = spans
        .iter()
        .filter(|span| span.name == "chat gpt-4o-mini")
        .collect();
    assert_eq!(chats.len(), 2);
    for chat in &chats {
        assert_eq!(chat.kind, SpanKind::Client as i32);
        assert_eq!(chat.trace_id, request.trace_id);
        assert_eq!(chat.parent_span_id, request.span_id);
        assert!(chat.end_time_unix_nano >= chat.start_time_unix_nano);
        assert_eq!(
            attribute(&chat.attributes, "gen_ai.operation.name"),
            Some(json!("chat"))
        );
        assert_eq!(
            attribute(&chat.attributes, "gen_ai.provider.name"),
            Some(json!("openai"))
        );
        assert_eq!(
            attribute(&chat.attributes, "server.address"),
            Some(json!("127.0.0.1"))
        );
        assert_eq!(attribute(&chat.attributes, "server.port"), Some(json!(9)));
    }
    let usage = |index: usize, key: &str| attribute(&chats[index].attributes, key);
    assert_eq!(usage(0, "gen_ai.usage.input_tokens"), Some(json!(24)));
    assert_eq!(usage(0, "gen_ai.usage.output_tokens"), Some(json!(7)));
    assert_eq!(
        usage(0, "gen_ai.usage.cache_read.input_tokens"),
        Some(json!(4))
    );
    assert_eq!(
        usage(0, "gen_ai.response.model"),
        Some(json!("gpt-4o-mini-2024-07-18"))
    );
    assert_eq!(
        usage(0, "gen_ai.response.finish_reasons"),
        Some(json!(["stop"]))
    );
    assert_eq!(usage(1, "gen_ai.request.stream"), Some(json!(true)));
    assert_eq!(usage(1, "gen_ai.usage.input_tokens"), Some(json!(20)));
    assert!(usage(1, "gen_ai.response.time_to_first_chunk").is_some());

    let metrics = receiver.metrics();
    let metric = |name: &str| {
        metrics
            .iter()
            .find(|metric| metric.name == name)
            .unwrap_or_else(|| {
                panic!(
                    "{name} in {:?}",
                    metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
                )
            })
    };
    let duration = metric("gen_ai.client.inference.duration");
    assert_eq!(duration.unit, "s");
    let Some(Data::Histogram(histogram)) = &duration.data else {
        panic!("a histogram: {duration:?}");
    };
    assert_eq!(
        histogram.data_points.iter().map(|p| p.count).sum::<u64>(),
        2
    );
    assert_eq!(histogram.data_points[0].explicit_bounds[0], 0.01);
    assert_eq!(
        attribute(&histogram.data_points[0].attributes, "gen_ai.request.model"),
        Some(json!("gpt-4o-mini"))
    );
    let Some(Data::Sum(input)) = &metric("gen_ai.client.inference.usage.input_tokens").data else {
        panic!("a sum");
    };
    let total: i64 = input
        .data_points
        .iter()
        .map(|point| match point.value {
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(
                value,
            )) => value,
            ref other => panic!("an int sum: {other:?}"),
        })
        .sum();
    assert_eq!(total, 44);
    metric("gen_ai.client.inference.time_to_first_chunk");
    metric("gen_ai.client.inference.usage.output_tokens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_arrive_over_otlp_http_in_protobuf_and_json() {
    calls_through(Protocol::HttpBinary).await;
    calls_through(Protocol::HttpJson).await;
}
