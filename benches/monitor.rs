//! The in-process monitor: `Monitor::capture` per event, the overhead it adds to a traced call
//! beside the PostHog sink, and the memory of 100,000 tracked ids.
//!
//! - `capture/*`: one event into a monitor: one model and provider, and 1,000 ids cycled (each
//!   event's id data cold in cache, as in a busy service) or a single id (all of it hot);
//!   without rules and with four rules (a token threshold and "unusual tokens" per id, an error
//!   rate and a p95 latency per model). Target: ≤ 0.5 µs per event. Besides criterion's wall
//!   clock medians, the CPU time per event is read from the kernel (`schedstat`), which a
//!   loaded machine's preemptions do not inflate.
//! - `traced/*`: a non-streaming call of a zero-latency `ScriptedModel` through `TracedModel`,
//!   into a `PosthogSink` (to a capture server on loopback) alone, and fanned out with the
//!   monitor in front. The difference is what the monitor adds per call. The sink's own threads
//!   share the two cores with the caller, so the wall-clock medians move a lot; the caller's CPU
//!   time per call, measured in alternating blocks of both variants, is the steadier figure.
//! - memory: a fresh child process tracks 100,000 distinct ids and reports the resident memory
//!   they added (`VmRSS`), per id.
//!
//! Run: `cargo bench --bench monitor` (under `cargo test --benches` it runs once, small).

#[path = "../tests/support/http.rs"]
#[allow(dead_code, unreachable_pub)]
mod http;

#[path = "../tests/support/capture_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod capture_server;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use capture_server::CaptureServer;
use criterion::Criterion;
use traced_llm::event::{ErrorInfo, ErrorKind, Event, Generation};
use traced_llm::monitor::{Metric, Monitor, Rule, Scope};
use traced_llm::posthog::PosthogSink;
use traced_llm::sink::{Fanout, Sink};
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{CallContext, ChatRequest, ChatResponse, LlmModel, Message, TracedModel};

const HOT_IDS: usize = 1_000;
const MEMORY_IDS: usize = 100_000;

fn rules() -> Vec<Rule> {
    vec![
        Rule::above(
            "tokens-per-user",
            Metric::Tokens,
            Scope::DistinctId,
            200_000.0,
        ),
        Rule::unusual("unusual-tokens", Metric::Tokens, Scope::DistinctId, 5.0).at_least(20_000.0),
        Rule::above("error-rate", Metric::ErrorRate, Scope::Model, 0.2).min_calls(50),
        Rule::above("slow", Metric::Latency(95), Scope::Model, 20.0),
    ]
}

/// Events as a service sends them: one model, many users, one call in fifty failed.
fn events(ids: usize) -> Vec<Event> {
    (0..ids)
        .map(|index| {
            let mut generation = Generation::new("gpt-5-mini", "openai");
            generation.envelope.distinct_id = Some(format!("user_{index:06}"));
            generation.envelope.trace_id = Some(format!("conversation_{index:06}"));
            generation.usage = Usage::new(1_200 + index as u64 % 300, 250).with_cache_read(512);
            generation.latency = Duration::from_millis(400 + index as u64 % 900);
            if index % 50 == 0 {
                generation.error = Some(ErrorInfo::new(ErrorKind::RateLimit, "slow down"));
                generation.http_status = 429;
            }
            generation.into()
        })
        .collect()
}

fn monitor(with_rules: bool) -> Monitor {
    let mut builder = Monitor::builder();
    if with_rules {
        builder = builder.rules(rules());
    }
    builder.build().expect("monitor")
}

fn request() -> ChatRequest {
    ChatRequest::new("gpt-5-mini")
        .message(Message::system("You are a concise assistant."))
        .message(Message::user("Name three primary colours."))
        .context(CallContext::new().distinct_id("user_42"))
}

fn chat_model() -> ScriptedModel {
    ScriptedModel::new()
        .with_provider("openai")
        .respond(
            ChatResponse::text_response("Red, yellow and blue.")
                .with_model("gpt-5-mini-2025-08-07")
                .with_finish_reason("stop")
                .with_usage(Usage::new(24, 7)),
        )
        .repeat_last()
}

/// The capture configurations: name, rules or not, how many ids the events cycle through.
const CAPTURES: [(&str, bool, usize); 3] = [
    ("no_rules", false, HOT_IDS),
    ("four_rules", true, HOT_IDS),
    ("four_rules_one_id", true, 1),
];

fn benches(c: &mut Criterion, server: &CaptureServer) {
    let mut group = c.benchmark_group("capture");
    for (name, with_rules, ids) in CAPTURES {
        let events = events(ids);
        let monitor = monitor(with_rules);
        // Every id tracked before measuring: the steady state.
        events.iter().for_each(|event| monitor.capture_ref(event));
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                monitor.capture_ref(&events[next]);
                next = (next + 1) % events.len();
            })
        });
    }
    group.finish();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let posthog: Arc<dyn Sink> = Arc::new(
        PosthogSink::builder()
            .api_key("phc_benchmark")
            .host(server.url())
            .build()
            .expect("posthog sink"),
    );
    let monitor = monitor(true);
    let request = request();
    let alone = TracedModel::new(
        chat_model(),
        Fanout::new().with_shared(Arc::clone(&posthog)),
    );
    let beside = TracedModel::new(
        chat_model(),
        Fanout::new()
            .with(monitor.clone())
            .with_shared(Arc::clone(&posthog)),
    );
    let bare = chat_model();
    let mut group = c.benchmark_group("traced");
    group.bench_function("bare", |b| {
        b.to_async(&runtime)
            .iter(|| async { std::hint::black_box(bare.chat(&request).await.unwrap()) })
    });
    group.bench_function("posthog", |b| {
        b.to_async(&runtime)
            .iter(|| async { std::hint::black_box(alone.chat(&request).await.unwrap()) })
    });
    group.bench_function("monitor_and_posthog", |b| {
        b.to_async(&runtime)
            .iter(|| async { std::hint::black_box(beside.chat(&request).await.unwrap()) })
    });
    group.finish();
    let traced_cpu = traced_cpu(&runtime, &alone, &beside, &request);
    runtime
        .block_on(posthog.shutdown(Duration::from_secs(10)))
        .ok();
    TRACED_CPU.with(|cell| cell.set(traced_cpu));
}

thread_local! {
    /// The caller's CPU nanoseconds per traced call: PostHog sink alone, and with the monitor.
    static TRACED_CPU: std::cell::Cell<Option<(f64, f64)>> = const { std::cell::Cell::new(None) };
}

/// The calling thread's CPU time per call of each variant, in alternating blocks (ABAB), as
/// the median over the blocks.
fn traced_cpu<A: LlmModel, B: LlmModel>(
    runtime: &tokio::runtime::Runtime,
    alone: &A,
    beside: &B,
    request: &ChatRequest,
) -> Option<(f64, f64)> {
    const BLOCKS: usize = 20;
    const CALLS: usize = 5_000;
    let block = |model: &dyn LlmModel| -> Option<f64> {
        let before = thread_cpu_ns()?;
        runtime.block_on(async {
            for _ in 0..CALLS {
                std::hint::black_box(model.chat(request).await.unwrap());
            }
        });
        Some((thread_cpu_ns()? - before) as f64 / CALLS as f64)
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..BLOCKS {
        a.push(block(alone)?);
        b.push(block(beside)?);
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    Some((median(&mut a), median(&mut b)))
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

/// CPU time this thread has run, in nanoseconds (Linux `schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// CPU nanoseconds per `Monitor::capture`, over `total` events cycling through `ids` ids.
fn cpu_per_event(with_rules: bool, ids: usize, total: usize) -> Option<f64> {
    let events = events(ids);
    let monitor = monitor(with_rules);
    events.iter().for_each(|event| monitor.capture_ref(event));
    let before = thread_cpu_ns()?;
    for index in 0..total {
        monitor.capture_ref(&events[index % events.len()]);
    }
    let spent = thread_cpu_ns()? - before;
    Some(spent as f64 / total as f64)
}

fn report(total: usize) {
    println!("\n== monitor (criterion medians; CPU time per event from schedstat) ==");
    for (function, with_rules, ids) in CAPTURES {
        let cpu = cpu_per_event(with_rules, ids, total)
            .map_or("n/a".to_owned(), |ns| format!("{:.3} µs", ns / 1e3));
        match median_ns("capture", function) {
            Some(ns) => println!(
                "Monitor::capture, {function}: {:.3} µs per event wall, {cpu} CPU (target ≤ 0.5 µs)",
                ns / 1e3
            ),
            None => println!("capture/{function}: no criterion estimate (filtered out?); {cpu} CPU"),
        }
    }
    let traced = |function| median_ns("traced", function);
    match (
        traced("bare"),
        traced("posthog"),
        traced("monitor_and_posthog"),
    ) {
        (Some(bare), Some(alone), Some(beside)) => println!(
            "traced call: bare {:.2} µs, + PostHog sink {:.2} µs, + monitor and PostHog sink {:.2} µs: the monitor adds {:.3} µs per call",
            bare / 1e3,
            alone / 1e3,
            beside / 1e3,
            (beside - alone) / 1e3
        ),
        _ => println!("traced: no criterion estimates (filtered out?)"),
    }
    if let Some((alone, beside)) = TRACED_CPU.with(|cell| cell.get()) {
        println!(
            "traced call, caller CPU (ABAB blocks): + PostHog sink {:.2} µs, + monitor and PostHog sink {:.2} µs: the monitor adds {:.3} µs per call",
            alone / 1e3,
            beside / 1e3,
            (beside - alone) / 1e3
        );
    }
}

/// Resident memory of this process, in KiB.
fn vm_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// Child process: tracks `ids` distinct ids and prints the memory they added.
fn memory_child(ids: usize) {
    let events = events(ids);
    let before = vm_rss_kib();
    // Room to spare: ids hash unevenly over the shards, and each shard evicts on its own.
    let monitor = Monitor::builder()
        .max_distinct_ids(ids + ids / 4)
        .rules(rules())
        .build()
        .expect("monitor");
    for event in &events {
        monitor.capture_ref(event);
    }
    let after = vm_rss_kib();
    let stats = monitor.stats();
    assert_eq!(stats.distinct_ids, ids, "every id tracked");
    match (before, after) {
        (Some(before), Some(after)) => {
            let added = after.saturating_sub(before) * 1024;
            println!(
                "memory: {ids} tracked ids add {:.1} MiB resident, {:.0} bytes per id (window of {} buckets, {} baseline windows)",
                added as f64 / (1024.0 * 1024.0),
                added as f64 / ids as f64,
                traced_llm::monitor::DEFAULT_BUCKETS,
                traced_llm::monitor::DEFAULT_BASELINE_WINDOWS,
            );
        }
        _ => println!("memory: VmRSS not available on this system"),
    }
    std::hint::black_box(&monitor);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        memory_child(args[at + 1].parse().expect("ids"));
        return;
    }
    let full = args.iter().any(|arg| arg == "--bench");
    println!(
        "monitor benchmark ({} cores){}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if full {
            ""
        } else {
            " [smoke run; use cargo bench]"
        }
    );
    let server = CaptureServer::start_counting(vec![]);
    let mut criterion = if full {
        Criterion::default()
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3))
            .configure_from_args()
    } else {
        Criterion::default().configure_from_args()
    };
    benches(&mut criterion, &server);
    criterion.final_summary();
    report(if full { 4_000_000 } else { 2_000 });
    let ids = if full { MEMORY_IDS } else { 2_000 };
    let output = Command::new(std::env::current_exe().expect("this benchmark"))
        .args(["--child", &ids.to_string()])
        .output()
        .expect("memory child");
    print!("{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
