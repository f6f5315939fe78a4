//! W1 and W2 of PERFORMANCE.md: what `TracedModel` adds to a call.
//!
//! A zero-latency in-process `ScriptedModel` answers, so only the tracing cost shows:
//! (a) a non-streaming call with 2 messages, (b) a streamed call of 50 text chunks, each bare and
//! traced into an in-memory sink. After criterion's own report, the overheads are printed as
//! traced − bare medians, per call and per chunk.
//!
//! Run: `cargo bench --bench overhead`

use std::path::PathBuf;
use std::time::Duration;

use criterion::Criterion;
use traced_llm::sink::InMemorySink;
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{
    CallContext, ChatRequest, ChatResponse, LlmModel, Message, StreamEvent, TracedModel,
};

const CHUNKS: usize = 50;

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
        .stream(events)
        .repeat_last()
}

fn traced<M>(model: M) -> TracedModel<M> {
    // Bounded, so millions of iterations do not grow memory; the drop of the oldest event is
    // counted against the traced side.
    TracedModel::new(model, InMemorySink::bounded(1024))
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

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let request = request();

    let mut group = c.benchmark_group("chat");
    let bare = chat_model();
    let wrapped = traced(chat_model());
    group.bench_function("bare", |b| {
        b.to_async(&runtime).iter(|| one_chat(&bare, &request))
    });
    group.bench_function("traced", |b| {
        b.to_async(&runtime).iter(|| one_chat(&wrapped, &request))
    });
    group.finish();

    let mut group = c.benchmark_group("stream50");
    let bare = stream_model();
    let wrapped = traced(stream_model());
    group.bench_function("bare", |b| {
        b.to_async(&runtime).iter(|| one_stream(&bare, &request))
    });
    group.bench_function("traced", |b| {
        b.to_async(&runtime).iter(|| one_stream(&wrapped, &request))
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

fn report() {
    let figures = |group: &str| Some((median_ns(group, "bare")?, median_ns(group, "traced")?));
    println!("\n== tracing overhead (traced − bare, criterion medians) ==");
    match figures("chat") {
        Some((bare, traced)) => println!(
            "W1 non-streaming call: bare {:.2} µs, traced {:.2} µs, overhead {:.2} µs per call (target ≤ 5 µs; PostHog Node ≈ 150 µs)",
            bare / 1e3,
            traced / 1e3,
            (traced - bare) / 1e3
        ),
        None => println!("W1: no criterion estimates found (filtered out?)"),
    }
    match figures("stream50") {
        Some((bare, traced)) => println!(
            "W2 streamed call of {CHUNKS} chunks: bare {:.2} µs, traced {:.2} µs, overhead {:.2} µs per call, {:.3} µs per chunk (target ≤ 0.2 µs; PostHog Node ≈ 3.5 µs)",
            bare / 1e3,
            traced / 1e3,
            (traced - bare) / 1e3,
            (traced - bare) / 1e3 / CHUNKS as f64
        ),
        None => println!("W2: no criterion estimates found (filtered out?)"),
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    benches(&mut criterion);
    criterion.final_summary();
    report();
}
