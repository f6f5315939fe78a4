//! W3, W4 and W5 of PERFORMANCE.md for the PostHog sink, against a capture server on loopback,
//! and the sink's idle memory after `build()`.
//!
//! Each workload runs in a fresh child process (this same binary, re-run with `--child`), so
//! peak RSS (`VmHWM`) belongs to that workload alone and the parent can see the child exit.
//!
//! `cargo bench --bench posthog_sink` runs the full sizes; without `--bench` (e.g. under
//! `cargo test --benches`) it runs a small smoke version. Words after `--` pick workloads by
//! name: `cargo bench --bench posthog_sink -- w3 w5`.

#[path = "../tests/support/http.rs"]
#[allow(dead_code, unreachable_pub)]
mod http;

#[path = "../tests/support/capture_server.rs"]
#[allow(dead_code, unreachable_pub)]
mod capture_server;

use std::process::Command;
use std::time::{Duration, Instant};

use capture_server::{Answer, CaptureServer};
use traced_llm::event::{Envelope, Event, Generation};
use traced_llm::posthog::capture_event;
use traced_llm::posthog::PosthogSink;
use traced_llm::posthog::DEFAULT_MAX_QUEUE_LEN;
use traced_llm::sink::Sink;
use traced_llm::types::{ContentPart, Usage};
use traced_llm::Message;

const W4_SHUTDOWN: Duration = Duration::from_secs(2);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|arg| arg == "--child") {
        let workload = args[at + 1].as_str();
        let events: usize = args[at + 2].parse().unwrap();
        match workload {
            "w3-default" => w3(events, None),
            "w3" => w3(events, Some(events)),
            "w3-paced" => w3_paced(events),
            "w4-refused" | "w4-503" | "w4-hang" => w4(&workload[3..], events),
            "w5" => w5(events as u64),
            "idle" => idle(),
            other => panic!("unknown workload {other}"),
        }
        return;
    }
    let full = args.iter().any(|arg| arg == "--bench");
    let filters: Vec<&String> = args[1..]
        .iter()
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let (w3_events, w4_events, w5_seconds) = if full {
        (100_000, 10_000, 60)
    } else {
        (2_000, 500, 4)
    };
    println!(
        "posthog_sink benchmark ({} cores){}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        if full {
            ""
        } else {
            " [smoke sizes; run with cargo bench]"
        }
    );
    for (workload, events) in [
        ("idle", 0),
        ("w3", w3_events),
        ("w3-default", w3_events),
        ("w3-paced", w3_events / 5),
        ("w4-refused", w4_events),
        ("w4-503", w4_events),
        ("w4-hang", w4_events),
        ("w5", w5_seconds),
    ] {
        if filters.is_empty()
            || filters
                .iter()
                .any(|filter| workload.starts_with(filter.as_str()))
        {
            run_child(workload, events);
        }
    }
}

/// Runs one workload in a fresh process and reports when it exited.
fn run_child(workload: &str, events: usize) {
    let started = Instant::now();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--child", workload, &events.to_string()])
        .output()
        .expect("run benchmark child");
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        panic!("{workload} failed: {}", output.status);
    }
    // The child prints how long after its start shutdown returned; the rest is exit time.
    if let Some(returned) = stdout
        .lines()
        .find_map(|line| line.strip_prefix("  shutdown_returned_at_ms="))
        .and_then(|ms| ms.trim().parse::<f64>().ok())
    {
        println!(
            "  process exited: yes, {:.0} ms after shutdown returned (child wall {:.0} ms)",
            (wall.as_secs_f64() * 1e3 - returned).max(0.0),
            wall.as_secs_f64() * 1e3
        );
    }
}

/// About 1.1 KB of capture JSON: a system prompt, a user question, an answer, usage.
fn event(i: u64, rng: &mut u64) -> Event {
    const WORDS: [&str; 32] = [
        "latency", "tokens", "model", "cache", "stream", "answer", "prompt", "user", "trace",
        "span", "error", "retry", "batch", "queue", "flush", "gzip", "server", "client", "rust",
        "async", "event", "budget", "cost", "input", "output", "choice", "tool", "call", "result",
        "context", "window", "limit",
    ];
    let mut words = |n: usize| {
        let mut text = String::with_capacity(n * 7);
        for _ in 0..n {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            text.push_str(WORDS[(*rng % 32) as usize]);
            text.push(' ');
        }
        text
    };
    let mut generation = Generation::new("gpt-4o-mini", "openai");
    generation.envelope = Envelope::new();
    generation.base_url = "https://api.openai.com/v1".into();
    generation.input = Some(vec![
        Message::system("You are a helpful assistant. Answer briefly and cite the docs."),
        Message::user(format!("Question {i}: {}", words(20))),
    ]);
    generation.output = Some(vec![ContentPart::text(words(14))]);
    generation.usage = Usage::new(50 + i % 200, 40 + i % 90);
    generation.latency = Duration::from_micros(350_000 + i % 10_000);
    generation.http_status = 200;
    generation.stop_reason = Some("stop".into());
    generation.completion_id = Some(format!("chatcmpl-{i:012}"));
    Event::from(generation)
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn vm_hwm_kib() -> u64 {
    status_kib("VmHWM:")
}

fn vm_rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// The sink's resident memory once built and idle: the process's RSS after `build()` and a
/// moment for its threads to start, less the RSS before.
fn idle() {
    let server = CaptureServer::start_counting(vec![]);
    std::thread::sleep(Duration::from_millis(200));
    // Everything the first sink brings is counted: its threads, its HTTP client, its queue.
    let before = vm_rss_kib();
    let sink = PosthogSink::builder()
        .api_key("phc_benchmark")
        .host(server.url())
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let after = vm_rss_kib();
    println!(
        "Idle sink: RSS {:.1} MB after build(), {:.1} MB before: {:.2} MB for the sink",
        after as f64 / 1024.0,
        before as f64 / 1024.0,
        after.saturating_sub(before) as f64 / 1024.0
    );
    drop(sink);
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// W3: `events` captured in a tight loop, then flush; `queue` sizes the queue so that it can
/// drop nothing (events and bytes), `None` keeps the defaults.
fn w3(events: usize, queue: Option<usize>) {
    let server = CaptureServer::start_counting(vec![]);
    let mut builder = PosthogSink::builder()
        .api_key("phc_benchmark")
        .host(server.url());
    if let Some(queue) = queue {
        builder = builder.max_queue_len(queue).max_queue_bytes(usize::MAX / 2);
    }
    let sink = builder.build().unwrap();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let sample = serde_json::to_vec(&capture_event(&event(0, &mut rng))).unwrap();
    let rss_before = vm_hwm_kib();

    let mut timings = Vec::with_capacity(events);
    let started = Instant::now();
    for i in 0..events {
        let event = event(i as u64, &mut rng);
        let t0 = Instant::now();
        sink.capture(event);
        timings.push(t0.elapsed().as_nanos() as u32);
    }
    let captured_in = started.elapsed();
    runtime()
        .block_on(sink.flush(Duration::from_secs(120)))
        .unwrap();
    let total = started.elapsed();
    let rss_peak = vm_hwm_kib();
    let stats = sink.stats();
    let delivered = server.delivered_count();
    timings.sort_unstable();
    let in_capture: f64 = timings.iter().map(|&ns| f64::from(ns)).sum::<f64>() / 1e6;

    match queue {
        Some(queue) => println!(
            "W3: {events} events of {} B (Event is {} B in memory before its heap), gzip on, queue {queue} with no byte bound",
            sample.len(),
            std::mem::size_of::<Event>()
        ),
        None => println!(
            "W3 with default settings (queue {DEFAULT_MAX_QUEUE_LEN} events, 64 MiB): {events} events of {} B",
            sample.len()
        ),
    }
    println!(
        "  delivered {delivered} of {events} ({} dropped: {} queue full, {} buffer full, {} rejected, {} oversize; {} retried) in {:.0} ms: {:.0} events/s delivered",
        stats.dropped(),
        stats.dropped_queue_full,
        stats.dropped_buffer_full,
        stats.dropped_rejected,
        stats.dropped_oversize,
        stats.retried,
        total.as_secs_f64() * 1e3,
        delivered as f64 / total.as_secs_f64()
    );
    println!(
        "  capture(): p50 {:.3} µs, p99 {:.3} µs, p99.9 {:.3} µs, max {:.1} µs; {in_capture:.1} ms in capture() in all; loop {:.0} ms",
        percentile(&timings, 0.50),
        percentile(&timings, 0.99),
        percentile(&timings, 0.999),
        percentile(&timings, 1.0),
        captured_in.as_secs_f64() * 1e3
    );
    println!(
        "  peak RSS {:.1} MB (VmHWM; {:.1} MB before the loop); on the wire {:.1} MB gzip for {:.1} MB of JSON, {} requests",
        rss_peak as f64 / 1024.0,
        rss_before as f64 / 1024.0,
        stats.bytes_sent as f64 / 1e6,
        (delivered as f64 * sample.len() as f64) / 1e6,
        stats.requests
    );
    assert_eq!(stats.sent, delivered);
    if queue.is_some() {
        assert_eq!(delivered, events as u64, "every event delivered");
    }
}

/// Not a PERFORMANCE.md workload: capture() on the caller when delivery keeps up (50,000
/// events/s, one every 20 µs), the usual case for a service, next to W3's burst.
fn w3_paced(events: usize) {
    let server = CaptureServer::start_counting(vec![]);
    let sink = PosthogSink::builder()
        .api_key("phc_benchmark")
        .host(server.url())
        .build()
        .unwrap();
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut timings = Vec::with_capacity(events);
    let started = Instant::now();
    for i in 0..events {
        let event = event(i as u64, &mut rng);
        let due = started + Duration::from_micros(20 * i as u64);
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        let t0 = Instant::now();
        sink.capture(event);
        timings.push(t0.elapsed().as_nanos() as u32);
    }
    runtime()
        .block_on(sink.flush(Duration::from_secs(60)))
        .unwrap();
    timings.sort_unstable();
    println!("W3 paced (not in PERFORMANCE.md): {events} events at 50,000/s, delivery keeping up");
    println!(
        "  capture(): p50 {:.3} µs, p99 {:.3} µs, p99.9 {:.3} µs; delivered {} of {events}, dropped {}",
        percentile(&timings, 0.50),
        percentile(&timings, 0.99),
        percentile(&timings, 0.999),
        server.delivered_count(),
        sink.stats().dropped()
    );
}

/// W4: `events` captured while the endpoint refuses, answers 503 or hangs; then shutdown(2 s).
fn w4(variant: &str, events: usize) {
    let process_start = Instant::now();
    let (server, url) = match variant {
        "refused" => (None, format!("http://{}", CaptureServer::reserve_port())),
        "503" => {
            let server = CaptureServer::start_counting(vec![Answer::Status(503); 10_000]);
            let url = server.url();
            (Some(server), url)
        }
        _ => {
            let server = CaptureServer::start_counting(vec![Answer::Hang; 10_000]);
            let url = server.url();
            (Some(server), url)
        }
    };
    let sink = PosthogSink::builder()
        .api_key("phc_benchmark")
        .host(url)
        .build()
        .unwrap();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut in_capture = Duration::ZERO;
    for i in 0..events {
        let event = event(i as u64, &mut rng);
        let t0 = Instant::now();
        sink.capture(event);
        in_capture += t0.elapsed();
    }
    let started = Instant::now();
    let result = runtime().block_on(sink.shutdown(W4_SHUTDOWN));
    let took = started.elapsed();
    let stats = sink.stats();
    println!("W4 endpoint {variant}: {events} events, then shutdown({W4_SHUTDOWN:?})");
    println!(
        "  {:.2} ms in capture() in all; shutdown returned {result:?} after {:.0} ms; sent {}, dropped {} (at shutdown {})",
        in_capture.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3,
        stats.sent,
        stats.dropped(),
        stats.dropped_shutdown
    );
    println!(
        "  shutdown_returned_at_ms={:.1}",
        process_start.elapsed().as_secs_f64() * 1e3
    );
    drop(server);
}

/// W5: `seconds` of outage while capturing 2,000 events/s of about 1 KB: connections refused for
/// the first half, then a server that takes requests and never answers for the second half,
/// then recovery; capture goes on for 10 s after it, then flush. Default settings.
fn w5(seconds: u64) {
    const RATE: u64 = 2_000;
    let addr = CaptureServer::reserve_port();
    let sink = PosthogSink::builder()
        .api_key("phc_benchmark")
        .host(format!("http://{addr}"))
        .build()
        .unwrap();
    let outage = Duration::from_secs(seconds);
    let after = Duration::from_secs(seconds.min(10));
    let mut rng = 0x5DEE_CE66_D1CE_4E5Bu64;
    let started = Instant::now();
    let mut server: Option<CaptureServer> = None;
    let mut recovered_at = None;
    let mut captured_at_recovery = 0u64;
    let mut drained_after = None;
    let mut peak_buffered = (0u64, 0u64);
    let mut i = 0u64;
    loop {
        let now = started.elapsed();
        if server.is_none() && now >= outage / 2 {
            let hanging = CaptureServer::start_full(addr, vec![], false, vec![]);
            hanging.set_hanging(true);
            server = Some(hanging);
        }
        if recovered_at.is_none() && now >= outage {
            if let Some(server) = &server {
                server.set_hanging(false);
            }
            recovered_at = Some(Instant::now());
            captured_at_recovery = i;
        }
        if let (Some(at), None, Some(server)) = (recovered_at, drained_after, &server) {
            if server.delivered_count() >= captured_at_recovery {
                drained_after = Some(at.elapsed());
            }
        }
        if now >= outage + after {
            break;
        }
        let stats = sink.stats();
        peak_buffered.0 = peak_buffered.0.max(stats.buffered_batches);
        peak_buffered.1 = peak_buffered.1.max(stats.buffered_bytes);
        // Two events every millisecond.
        let due = Duration::from_micros(i * 1_000_000 / RATE);
        if due > now {
            std::thread::sleep(due - now);
        }
        sink.capture(event(i, &mut rng));
        i += 1;
    }
    let result = runtime().block_on(sink.flush(Duration::from_secs(60)));
    let server = server.expect("the server started");
    let drained = drained_after.map_or("not within the run".to_owned(), |d| {
        format!("{:.2} s", d.as_secs_f64())
    });
    let stats = sink.stats();
    println!(
        "W5: {seconds} s outage (refused {} s, then hanging {} s) at {RATE} events/s of ~1.1 KB, then recovery; default settings",
        seconds / 2,
        seconds - seconds / 2
    );
    println!(
        "  captured {i}, delivered {} ({} duplicates), dropped {}; flush {}",
        server.delivered_count().min(i),
        server.delivered_count().saturating_sub(i),
        stats.dropped(),
        if result.is_ok() { "ok" } else { "timed out" }
    );
    println!(
        "  peak RSS {:.1} MB; outage buffer peaked at {} batches, {:.1} MB compressed; drained {drained} after recovery ({captured_at_recovery} events captured by then)",
        vm_hwm_kib() as f64 / 1024.0,
        peak_buffered.0,
        peak_buffered.1 as f64 / 1e6,
    );
    assert_eq!(stats.dropped(), 0, "nothing lost");
}
