//! What the OpenTelemetry sink adds to a call: `TracedModel` into the `OtelSink` (a GenAI span
//! through the SDK's batch span processor, and the duration and token metrics through a
//! periodic reader), both over no-op exporters, against the same `TracedModel` into a
//! `NoopSink`. A zero-latency in-process `ScriptedModel` answers, so only the recording and
//! export cost shows. After criterion's report the overhead is printed as the difference of the
//! medians, per non-streaming and per streamed call (target ≤ 3 µs per call).
//!
//! Run: `cargo bench --bench otel --features otel`

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use traced_llm::otel::{OtelSink, TracedIdGenerator};
use traced_llm::sink::NoopSink;
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{
    CallContext, ChatRequest, ChatResponse, LlmModel, Message, StreamEvent, TracedModel,
};

const CHUNKS: usize = 50;

/// Takes every batch and drops it.
#[derive(Debug)]
struct NoopSpanExporter;

impl SpanExporter for NoopSpanExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

/// Takes every collection and drops it.
#[derive(Debug)]
struct NoopMetricExporter;

impl PushMetricExporter for NoopMetricExporter {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        std::hint::black_box(metrics);
        Ok(())
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
    fn temporality(&self) -> Temporality {
        Temporality::Cumulative
    }
}

fn request() -> ChatRequest {
    ChatRequest::new("gpt-4o-mini")
        .message(Message::system("You are a concise assistant."))
        .message(Message::user("Name three primary colours."))
        .temperature(0.3)
        .context(
            CallContext::new()
                .distinct_id("user_42")
                .property("topic", "colours"),
        )
}

fn chat_model() -> ScriptedModel {
    ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("https://api.openai.com/v1")
        .respond(
            ChatResponse::text_response("Red, yellow and blue.")
                .with_id("chatcmpl-bench")
                .with_model("gpt-4o-mini-2024-07-18")
                .with_finish_reason("stop")
                .with_usage(Usage::new(24, 7)),
        )
        .repeat_last()
}

fn stream_model() -> ScriptedModel {
    let mut events = vec![StreamEvent::ResponseMetadata {
        id: Some("chatcmpl-bench".into()),
        model: Some("gpt-4o-mini-2024-07-18".into()),
    }];
    events.extend((0..CHUNKS).map(|i| StreamEvent::text(format!("word{i} "))));
    events.push(StreamEvent::Usage(Usage::new(24, CHUNKS as u64)));
    events.push(StreamEvent::finish("stop"));
    ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("https://api.openai.com/v1")
        .stream(events)
        .repeat_last()
}

async fn one_chat(model: &impl LlmModel, request: &ChatRequest) {
    let response = model.chat(request).await.expect("scripted answer");
    std::hint::black_box(response);
}

async fn one_stream(model: &impl LlmModel, request: &ChatRequest) {
    let mut stream = model.chat_stream(request).await.expect("scripted stream");
    while let Some(event) = stream.next().await {
        std::hint::black_box(event.expect("scripted event"));
    }
}

fn benches(c: &mut Criterion, sinks: &Sinks) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = request();

    let mut group = c.benchmark_group("otel_chat");
    let bare = TracedModel::new(chat_model(), NoopSink);
    let exported = TracedModel::new(chat_model(), sinks.both.clone());
    let spans = TracedModel::new(chat_model(), sinks.spans.clone());
    let metrics = TracedModel::new(chat_model(), sinks.metrics.clone());
    group.bench_function("noop_sink", |b| {
        b.to_async(&runtime).iter(|| one_chat(&bare, &request))
    });
    group.bench_function("otel_sink", |b| {
        b.to_async(&runtime).iter(|| one_chat(&exported, &request))
    });
    group.bench_function("spans_only", |b| {
        b.to_async(&runtime).iter(|| one_chat(&spans, &request))
    });
    group.bench_function("metrics_only", |b| {
        b.to_async(&runtime).iter(|| one_chat(&metrics, &request))
    });
    group.finish();

    let mut group = c.benchmark_group("otel_stream50");
    let bare = TracedModel::new(stream_model(), NoopSink);
    let exported = TracedModel::new(stream_model(), sinks.both.clone());
    group.bench_function("noop_sink", |b| {
        b.to_async(&runtime).iter(|| one_stream(&bare, &request))
    });
    group.bench_function("otel_sink", |b| {
        b.to_async(&runtime)
            .iter(|| one_stream(&exported, &request))
    });
    group.finish();
}

/// The median criterion measured for `group/function`, in nanoseconds.
fn median_ns(group: &str, function: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target
        .join("criterion")
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

/// Nanoseconds this thread has spent on a CPU (Linux), which a busy machine inflates far less
/// than wall time.
fn on_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The caller's CPU time per call, bare and exported, in blocks of `CALLS` in ABBA order; the
/// median block of each. `None` where the OS does not say.
fn cpu_per_call(sinks: &Sinks) -> Option<(f64, f64)> {
    const CALLS: u32 = 20_000;
    const ROUNDS: usize = 4;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = request();
    let bare = TracedModel::new(chat_model(), NoopSink);
    let exported = TracedModel::new(chat_model(), sinks.both.clone());
    let block = |model: &TracedModel<ScriptedModel>| -> Option<f64> {
        let before = on_cpu_ns()?;
        runtime.block_on(async {
            for _ in 0..CALLS {
                one_chat(model, &request).await;
            }
        });
        Some((on_cpu_ns()? - before) as f64 / f64::from(CALLS))
    };
    block(&bare)?;
    block(&exported)?;
    let (mut bare_ns, mut exported_ns) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            bare_ns.push(block(&bare)?);
            exported_ns.push(block(&exported)?);
        } else {
            exported_ns.push(block(&exported)?);
            bare_ns.push(block(&bare)?);
        }
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        (values[values.len() / 2 - 1] + values[values.len() / 2]) / 2.0
    };
    Some((median(bare_ns), median(exported_ns)))
}

fn report() {
    println!("\n== OpenTelemetry sink overhead (otel_sink − noop_sink, criterion medians) ==");
    for (group, what) in [
        ("otel_chat", "non-streaming call"),
        ("otel_stream50", "streamed call of 50 chunks"),
    ] {
        match (median_ns(group, "noop_sink"), median_ns(group, "otel_sink")) {
            (Some(bare), Some(exported)) => println!(
                "{what}: TracedModel + NoopSink {:.2} µs, + OtelSink {:.2} µs, overhead {:.2} µs per call (target ≤ 3 µs)",
                bare / 1e3,
                exported / 1e3,
                (exported - bare) / 1e3
            ),
            _ => println!("{what}: no criterion estimates found (filtered out?)"),
        }
    }
    let bare = median_ns("otel_chat", "noop_sink");
    for (function, what) in [
        ("spans_only", "the span alone"),
        ("metrics_only", "the metrics alone"),
    ] {
        if let (Some(bare), Some(part)) = (bare, median_ns("otel_chat", function)) {
            println!("  of which {what}: {:.2} µs per call", (part - bare) / 1e3);
        }
    }
}

/// The sink under test, and the same with only spans or only metrics, to tell their costs apart.
struct Sinks {
    both: OtelSink,
    spans: OtelSink,
    metrics: OtelSink,
}

fn main() {
    let tracer_provider = SdkTracerProvider::builder()
        .with_batch_exporter(NoopSpanExporter)
        .with_id_generator(TracedIdGenerator::new())
        .build();
    let meter_provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(NoopMetricExporter).build())
        .build();
    let sink = || {
        OtelSink::builder()
            .tracer_provider(&tracer_provider)
            .meter_provider(&meter_provider)
    };
    let sinks = Sinks {
        both: sink().build(),
        spans: sink().metrics(false).build(),
        metrics: sink().spans(false).build(),
    };

    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    benches(&mut criterion, &sinks);
    criterion.final_summary();
    let cpu = cpu_per_call(&sinks);
    let _ = tracer_provider.shutdown();
    let _ = meter_provider.shutdown();
    report();
    match cpu {
        Some((bare, exported)) => println!(
            "caller CPU time per non-streaming call (4 ABBA blocks of 20,000, medians): NoopSink {:.2} µs, OtelSink {:.2} µs, overhead {:.2} µs",
            bare / 1e3,
            exported / 1e3,
            (exported - bare) / 1e3
        ),
        None => println!("caller CPU time: not available on this OS"),
    }
}
