//! Trace-consistent sampling in the PostHog sink. The only file whose tests read
//! `POSTHOG_AI_TRACE_SAMPLE_RATE`; every other test here sets its rate in code, which wins.

mod support;

use std::time::Duration;

use serde_json::Value;
use traced_llm::event::{Event, Generation};
use traced_llm::posthog::{PosthogSink, PosthogSinkBuilder, ENV_SAMPLE_RATE};
use traced_llm::sink::Sink;

use support::capture_server::CaptureServer;

const WAIT: Duration = Duration::from_secs(30);

fn builder(server: &CaptureServer) -> PosthogSinkBuilder {
    PosthogSink::builder()
        .api_key("phc_sampling_test")
        .host(server.url())
        .flush_interval(Duration::from_secs(3600))
}

fn in_trace(trace_id: Option<&str>) -> Event {
    let mut generation = Generation::new("gpt-4o-mini", "openai");
    generation.envelope.trace_id = trace_id.map(str::to_owned);
    Event::from(generation)
}

/// 32-bit FNV-1a of the trace id, divided by 2^32: `trace-8` 0.4423, `trace-9` 0.4384,
/// `trace-0` 0.4736, `trace-7` 0.4931, `foobar` 0.7485, `a` 0.8908.
const TRACES: [(&str, f64); 6] = [
    ("trace-8", 0.4423),
    ("trace-9", 0.4384),
    ("trace-0", 0.4736),
    ("trace-7", 0.4931),
    ("foobar", 0.7485),
    ("a", 0.8908),
];

fn trace_ids(events: &[Value]) -> Vec<Option<String>> {
    events
        .iter()
        .map(|event| {
            event["properties"].get("$ai_trace_sample_rate").map(|_| {
                event["properties"]["$ai_trace_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        })
        .collect()
}

#[tokio::test]
async fn whole_traces_are_kept_below_the_rate_and_marked() {
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server).sample_rate(0.45).build().unwrap();
    // Three events per trace, interleaved, and two events outside any trace.
    for _ in 0..3 {
        for (trace_id, _) in TRACES {
            sink.capture(in_trace(Some(trace_id)));
        }
    }
    sink.capture(in_trace(None));
    sink.capture(in_trace(None));
    let report = sink.flush(WAIT).await.unwrap();
    assert_eq!(
        (report.delivered, report.sampled_out, report.dropped),
        (8, 12, 0)
    );
    let delivered = server.delivered_events();
    let mut kept: Vec<String> = trace_ids(&delivered).into_iter().flatten().collect();
    kept.sort();
    assert_eq!(
        kept,
        ["trace-8", "trace-8", "trace-8", "trace-9", "trace-9", "trace-9"]
    );
    for event in &delivered {
        let properties = &event["properties"];
        match properties.get("$ai_trace_sample_rate") {
            Some(rate) => assert_eq!(rate, 0.45),
            // Events without a trace id are kept, and were not sampled.
            None => assert_eq!(properties["$ai_trace_id"], event["uuid"]),
        }
    }
    let stats = sink.stats();
    assert_eq!((stats.sampled_out, stats.dropped(), stats.sent), (12, 0, 8));
}

#[tokio::test]
async fn the_hash_decides_at_its_exact_value() {
    for (trace_id, fraction) in TRACES {
        for (rate, kept) in [(fraction + 0.0001, true), (fraction - 0.0001, false)] {
            let server = CaptureServer::start(vec![]);
            let sink = builder(&server).sample_rate(rate).build().unwrap();
            sink.capture(in_trace(Some(trace_id)));
            let report = sink.flush(WAIT).await.unwrap();
            assert_eq!(report.delivered == 1, kept, "{trace_id} at {rate}");
            assert_eq!(report.sampled_out == 1, !kept, "{trace_id} at {rate}");
        }
    }
}

#[tokio::test]
async fn the_environment_sets_the_rate_and_code_wins() {
    let server = CaptureServer::start(vec![]);
    std::env::set_var(ENV_SAMPLE_RATE, "0.45");
    let from_env = builder(&server).build().unwrap();
    let from_code = builder(&server).sample_rate(1.0).build().unwrap();
    std::env::set_var(ENV_SAMPLE_RATE, "not a rate");
    // An invalid value is ignored (with a warning), as PostHog's SDKs do.
    let invalid = builder(&server).build().unwrap();
    std::env::remove_var(ENV_SAMPLE_RATE);
    for sink in [&from_env, &from_code, &invalid] {
        sink.capture(in_trace(Some("a")));
        sink.capture(in_trace(Some("trace-8")));
    }
    let env = from_env.flush(WAIT).await.unwrap();
    assert_eq!((env.delivered, env.sampled_out), (1, 1));
    let code = from_code.flush(WAIT).await.unwrap();
    assert_eq!((code.delivered, code.sampled_out), (2, 0));
    let invalid = invalid.flush(WAIT).await.unwrap();
    assert_eq!((invalid.delivered, invalid.sampled_out), (2, 0));
    // A rate of 1 samples nothing and marks nothing.
    assert!(server
        .delivered_events()
        .iter()
        .filter(|event| event["properties"].get("$ai_trace_sample_rate").is_some())
        .all(|event| event["properties"]["$ai_trace_id"] == "trace-8"));
    let _ = Sink::shutdown(&from_env, WAIT).await;
}
