//! PostHog delivery through outages and faults, against the fake capture server on loopback:
//! every fault of issue 15 with the counts that must hold.

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use traced_llm::event::{Event, Generation};
use traced_llm::posthog::{
    DeliveryError, DeliveryErrorKind, Endpoint, PosthogSink, PosthogSinkBuilder, RetryPolicy,
};
use traced_llm::sink::Sink;
use traced_llm::types::{ContentPart, Usage};
use traced_llm::Message;

use support::capture_server::{Answer, CaptureServer, Rule};

const KEY: &str = "phc_delivery_test_key";
const LONG: Duration = Duration::from_secs(3600);
const WAIT: Duration = Duration::from_secs(30);
const AI_ROUTE: &str = "/i/v0/ai/batch/";

/// Fast probes, so outages in tests last milliseconds. A request counts as hanging only after
/// 10 s: on a loaded machine a slow answer must not be taken for a hang (and its batch sent
/// twice) except in the test about hanging.
fn fast() -> RetryPolicy {
    RetryPolicy::new()
        .initial_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(100))
        .hang_after(Duration::from_secs(10))
}

fn builder_for(url: &str) -> PosthogSinkBuilder {
    PosthogSink::builder()
        .api_key(KEY)
        .host(url)
        .flush_interval(LONG)
        .retry_policy(fast())
}

fn builder(server: &CaptureServer) -> PosthogSinkBuilder {
    builder_for(&server.url())
}

fn generation(n: usize) -> Event {
    let mut generation = Generation::new("gpt-4o-mini", "openai");
    generation.input = Some(vec![
        Message::system("You are terse."),
        Message::user(format!("question {n}")),
    ]);
    generation.output = Some(vec![ContentPart::text(format!("answer {n}"))]);
    generation.usage = Usage::new(10 + n as u64, 3);
    Event::from(generation)
}

/// About `bytes` of text that gzip cannot shrink.
fn incompressible(bytes: usize, seed: u64) -> String {
    let mut x = seed | 1;
    (0..bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

fn with_input(text: String) -> Event {
    let mut event = generation(0);
    if let Event::Generation(generation) = &mut event {
        generation.input = Some(vec![Message::user(text)]);
    }
    event
}

fn uuid_of(event: &Event) -> String {
    event.envelope().uuid.hyphenated().to_string()
}

fn capture_all(sink: &PosthogSink, events: Vec<Event>) -> Vec<String> {
    events
        .into_iter()
        .map(|event| {
            let uuid = uuid_of(&event);
            sink.capture(event);
            uuid
        })
        .collect()
}

fn capture_n(sink: &PosthogSink, n: usize) -> Vec<String> {
    capture_all(sink, (0..n).map(generation).collect())
}

fn uuids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["uuid"].as_str().unwrap().to_owned())
        .collect()
}

fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items
}

/// Every uuid delivered exactly once, and exactly these.
fn assert_delivered_once(server: &CaptureServer, expected: &[String]) {
    let delivered = uuids(&server.delivered_events());
    let unique: HashSet<&String> = delivered.iter().collect();
    assert_eq!(
        unique.len(),
        delivered.len(),
        "an event was delivered twice"
    );
    assert_eq!(sorted(delivered), sorted(expected.to_vec()));
}

/// Every expected uuid delivered, and nothing else; a batch whose request was cancelled while
/// the server was answering it may arrive twice (its events carry their uuids for that).
fn assert_delivered_at_least_once(server: &CaptureServer, expected: &[String]) {
    let delivered: HashSet<String> = uuids(&server.delivered_events()).into_iter().collect();
    let expected: HashSet<String> = expected.iter().cloned().collect();
    assert_eq!(delivered, expected);
}

fn reports() -> (
    Arc<Mutex<Vec<DeliveryError>>>,
    impl Fn(&DeliveryError) + Send + Sync + 'static,
) {
    let reported = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&reported);
    (reported, move |error: &DeliveryError| {
        seen.lock().unwrap().push(error.clone())
    })
}

#[tokio::test]
async fn an_outage_of_refused_connections_loses_nothing_and_sends_in_order() {
    let addr = CaptureServer::reserve_port();
    let sink = builder_for(&format!("http://{addr}"))
        .batch_size(10)
        .build()
        .unwrap();
    let sent = capture_n(&sink, 100);
    // The server comes up once the sink has failed a few times.
    let deadline = std::time::Instant::now() + WAIT;
    while sink.stats().retried < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = CaptureServer::start_on(addr, vec![], true);
    let report = sink.flush(WAIT).await.unwrap();
    assert_eq!(
        (report.delivered, report.dropped, report.rejected),
        (100, 0, 0)
    );
    assert_delivered_once(&server, &sent);
    // The probe that found the server back carried the oldest batch.
    let first = &server.requests()[0];
    assert_eq!(uuids(&first.events()), sent[..10]);
    let stats = sink.stats();
    assert!(stats.retried >= 5);
    assert_eq!((stats.sent, stats.dropped(), stats.queued), (100, 0, 0));
}

#[tokio::test]
async fn a_long_503_outage_with_retry_after_loses_nothing() {
    let mut script = vec![Answer::Status(503); 6];
    script.push(Answer::retry_after(429, "0"));
    script.push(Answer::Status(408));
    let server = CaptureServer::start(script);
    let sink = builder(&server).build().unwrap();
    let sent = capture_n(&sink, 20);
    let report = sink.flush(WAIT).await.unwrap();
    assert_eq!((report.delivered, report.dropped), (20, 0));
    assert_delivered_once(&server, &sent);
    let stats = sink.stats();
    assert_eq!((stats.retried, stats.requests, stats.dropped()), (8, 9, 0));
}

#[tokio::test]
async fn a_hanging_server_is_probed_and_hung_requests_are_cancelled_on_recovery() {
    let server = CaptureServer::start(vec![]);
    server.set_hanging(true);
    // A request timeout far longer than the test: recovery must not wait for it.
    let sink = builder(&server)
        .batch_size(5)
        .retry_policy(fast().hang_after(Duration::from_millis(200)))
        .request_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let sent = capture_n(&sink, 40);
    let flush = {
        let sink = sink.clone();
        tokio::spawn(async move { sink.flush(WAIT).await })
    };
    // Wait until every slot hangs and probes have been sent beside them.
    let hung = server.wait_for_requests(6, WAIT);
    assert!(hung.len() >= 6, "only {} requests", hung.len());
    assert!(hung.iter().all(|request| request.status.is_none()));
    server.set_hanging(false);
    let report = flush.await.unwrap().unwrap();
    assert_eq!((report.delivered, report.dropped), (40, 0));
    assert_delivered_at_least_once(&server, &sent);
    assert_eq!(sink.stats().queued, 0);
}

#[tokio::test]
async fn a_400_is_narrowed_to_the_rejected_event_alone() {
    let events: Vec<Event> = (0..10).map(generation).collect();
    let poisoned = uuid_of(&events[6]);
    let server =
        CaptureServer::start_with_rules(vec![], vec![Rule::RejectContaining(poisoned.clone())]);
    let (reported, on_error) = reports();
    let sink = builder(&server).on_error(on_error).build().unwrap();
    let sent = capture_all(&sink, events);
    let report = sink.flush(WAIT).await.unwrap();
    assert_eq!(
        (report.delivered, report.rejected, report.dropped),
        (9, 1, 0)
    );
    let innocent: Vec<String> = sent
        .iter()
        .filter(|uuid| **uuid != poisoned)
        .cloned()
        .collect();
    assert_delivered_once(&server, &innocent);
    // Each 400 halves its batch: 10 → 5 + [5] → [2] + 3 → 1 + [1], the poisoned one alone.
    let rejected: Vec<usize> = server
        .requests()
        .iter()
        .filter(|request| request.status == Some(400))
        .map(|request| request.events().len())
        .collect();
    assert_eq!(rejected, [10, 5, 2, 1]);
    let stats = sink.stats();
    assert_eq!((stats.dropped_rejected, stats.failed_batches), (1, 1));
    let reported = reported.lock().unwrap();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].kind, DeliveryErrorKind::Rejected);
    assert_eq!((reported[0].status, reported[0].events), (Some(400), 1));
}

#[tokio::test]
async fn a_reset_after_a_large_upload_splits_like_a_413() {
    // Each event about 100 KB that gzip cannot shrink; the server takes at most 300 KB.
    let server = CaptureServer::start_with_rules(vec![], vec![Rule::ResetAbove(300_000)]);
    let sink = builder(&server).endpoint(Endpoint::Batch).build().unwrap();
    let events: Vec<Event> = (0..8)
        .map(|i| with_input(incompressible(100_000, i + 1)))
        .collect();
    let sent = capture_all(&sink, events);
    let report = sink.flush(WAIT).await.unwrap();
    assert_eq!(
        (report.delivered, report.dropped, report.rejected),
        (8, 0, 0)
    );
    assert_delivered_once(&server, &sent);
    assert!(server.resets() >= 1);
    for request in server.requests() {
        assert!(request.raw_body.len() <= 300_000);
    }
    let stats = sink.stats();
    assert!(stats.split_batches >= 1);
    assert_eq!(stats.dropped(), 0);
}

#[tokio::test]
async fn batches_are_capped_by_their_compressed_size() {
    let server = CaptureServer::start(vec![]);
    let cap = 64 * 1024;
    let sink = builder(&server).max_batch_bytes(cap).build().unwrap();
    let events: Vec<Event> = (0..30)
        .map(|i| with_input(incompressible(20_000, i + 7)))
        .collect();
    let sent = capture_all(&sink, events);
    sink.flush(WAIT).await.unwrap();
    assert_delivered_once(&server, &sent);
    let requests = server.requests();
    // 20 KB of random letters gzip to about 12 KB: a body takes what fits under the cap, and
    // never more.
    assert!(requests.len() >= 6, "{} requests", requests.len());
    for request in &requests {
        assert!(request.raw_body.len() <= cap, "{}", request.raw_body.len());
        assert_eq!(request.header("content-encoding"), Some("gzip"));
    }
    for request in &requests[..requests.len() - 1] {
        assert!(
            request.raw_body.len() > cap / 2,
            "{}",
            request.raw_body.len()
        );
    }
    // Similar events compress: far more of them share one capped body.
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server)
        .max_batch_bytes(cap)
        .batch_size(1000)
        .build()
        .unwrap();
    let sent = capture_n(&sink, 1000);
    sink.flush(WAIT).await.unwrap();
    assert_delivered_once(&server, &sent);
    let requests = server.requests();
    assert!(requests.len() < 10, "{} requests", requests.len());
    assert!(requests.iter().all(|request| request.raw_body.len() <= cap));
    assert!(requests.iter().any(|request| request.body.len() > cap));
}

#[tokio::test]
async fn a_server_without_the_ai_route_falls_back_to_batch_for_good() {
    let server = CaptureServer::start_with_rules(vec![], vec![Rule::NotFound(AI_ROUTE.into())]);
    let sink = builder(&server).build().unwrap();
    let first = capture_n(&sink, 5);
    let report = sink.flush(WAIT).await.unwrap();
    assert_eq!((report.delivered, report.dropped), (5, 0));
    let later = capture_n(&sink, 3);
    sink.flush(WAIT).await.unwrap();
    let paths: Vec<(String, Option<u16>, usize)> = server
        .requests()
        .iter()
        .map(|r| (r.path.clone(), r.status, r.events().len()))
        .collect();
    assert_eq!(
        paths,
        [
            (AI_ROUTE.to_owned(), Some(404), 5),
            ("/batch/".to_owned(), Some(200), 5),
            ("/batch/".to_owned(), Some(200), 3),
        ]
    );
    assert_delivered_once(&server, &[first, later].concat());
    assert_eq!(sink.stats().dropped(), 0);
}

#[tokio::test]
async fn each_route_keeps_its_size_budget() {
    // 1.5 MB of quotes-free text: over `/batch/`'s 900 KB, under the AI route's 4 MiB.
    let big = || with_input(incompressible(1_500_000, 3));
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server).build().unwrap();
    capture_all(&sink, vec![big()]);
    sink.flush(WAIT).await.unwrap();
    let request = &server.requests()[0];
    assert_eq!(request.path, AI_ROUTE);
    assert!(request.body.len() > 1_500_000);
    assert_eq!(sink.stats().shrunk, 0);

    // Without the AI route the same event is shrunk to `/batch/`'s budget and delivered.
    let server = CaptureServer::start_with_rules(vec![], vec![Rule::NotFound(AI_ROUTE.into())]);
    let sink = builder(&server).build().unwrap();
    let sent = capture_all(&sink, vec![big()]);
    sink.flush(WAIT).await.unwrap();
    assert_delivered_once(&server, &sent);
    let delivered = server.delivered_events();
    let json = serde_json::to_vec(&delivered[0]).unwrap();
    let cost = json.len() + json.iter().filter(|&&b| b == b'"' || b == b'\\').count();
    assert!(cost <= 900_000, "{cost}");
    let stats = sink.stats();
    assert_eq!((stats.shrunk, stats.dropped()), (1, 0));
}

#[tokio::test]
async fn a_refused_key_drops_counts_reports_once_and_fails_the_flush() {
    let server = CaptureServer::start(vec![
        Answer::Full {
            status: 401,
            body: r#"{"status":401,"code":"ingest_key_unknown","error":"bad key"}"#.into(),
            headers: vec![],
        },
        Answer::Status(403),
    ]);
    let (reported, on_error) = reports();
    let sink = builder(&server)
        .batch_size(5)
        .on_error(on_error)
        .build()
        .unwrap();
    capture_n(&sink, 10);
    let error = sink.flush(WAIT).await.unwrap_err();
    assert!(error.is_unauthorized());
    assert_eq!(error.report().unwrap().unauthorized, 10);
    assert_eq!(
        error.to_string(),
        "posthog refused the project API key: 10 events dropped (http status 403): status 403"
    );
    // The next flush has nothing new to complain about.
    let later = capture_n(&sink, 2);
    assert_eq!(sink.flush(WAIT).await.unwrap().delivered, 2);
    assert_delivered_once(&server, &later);
    let stats = sink.stats();
    assert_eq!((stats.dropped_unauthorized, stats.failed_batches), (10, 2));
    let kinds: Vec<DeliveryErrorKind> = reported.lock().unwrap().iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [DeliveryErrorKind::Unauthorized; 2]);
    // `Sink::flush` names the cause too.
    let server = CaptureServer::start(vec![Answer::Status(401)]);
    let sink = builder(&server).build().unwrap();
    capture_n(&sink, 1);
    let error = Sink::flush(&sink, WAIT).await.unwrap_err();
    assert!(
        error.to_string().contains("refused the project API key"),
        "{error}"
    );
}

#[tokio::test]
async fn the_size_guard_always_wins() {
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server)
        .endpoint(Endpoint::Batch)
        .max_event_bytes(100_000)
        .build()
        .unwrap();
    // Nested 200 levels deep.
    let mut deep = Value::from("bottom");
    for _ in 0..200 {
        deep = serde_json::json!({ "down": deep });
    }
    let mut nested = generation(1);
    nested.envelope_mut().properties.insert("deep".into(), deep);
    // A 1.2 MB trace id and a 300-character distinct id.
    let mut long_ids = generation(2);
    long_ids.envelope_mut().trace_id = Some("t".repeat(1_200_000));
    long_ids.envelope_mut().distinct_id = Some("u".repeat(300));
    // Nothing the guard may cut: 20,000 numeric properties.
    let mut numbers = generation(3);
    for i in 0..20_000 {
        numbers
            .envelope_mut()
            .properties
            .insert(format!("metric_{i}"), Value::from(i));
    }
    let plain = generation(4);
    let sent = capture_all(&sink, vec![nested, long_ids, numbers, plain]);
    let report = sink.flush(WAIT).await.unwrap();
    assert_eq!(
        (report.delivered, report.dropped, report.rejected),
        (3, 1, 0)
    );
    assert_delivered_once(
        &server,
        &[sent[0].clone(), sent[1].clone(), sent[3].clone()],
    );
    let delivered = server.delivered_events();
    let by_uuid = |uuid: &str| {
        delivered
            .iter()
            .find(|e| e["uuid"] == uuid)
            .unwrap()
            .clone()
    };
    let mut level = &by_uuid(&sent[0])["properties"]["deep"];
    let mut depth = 1;
    while let Some(next) = level.get("down") {
        level = next;
        depth += 1;
    }
    assert!(depth < 100 && level.as_str().unwrap().contains("nested too deep"));
    let ids = by_uuid(&sent[1]);
    assert_eq!(
        ids["properties"]["$ai_trace_id"]
            .as_str()
            .unwrap()
            .chars()
            .count(),
        200
    );
    assert_eq!(ids["distinct_id"].as_str().unwrap().chars().count(), 200);
    assert!(ids["distinct_id"].as_str().unwrap().contains("…[cut "));
    let stats = sink.stats();
    assert_eq!((stats.shrunk, stats.dropped_oversize), (2, 1));
}

#[tokio::test]
async fn a_full_outage_buffer_drops_the_oldest_and_counts_them() {
    let addr = CaptureServer::reserve_port();
    let (reported, on_error) = reports();
    let sink = builder_for(&format!("http://{addr}"))
        .batch_size(10)
        .max_buffer_bytes(8 * 1024)
        .on_error(on_error)
        .build()
        .unwrap();
    let sent = capture_n(&sink, 200);
    let deadline = std::time::Instant::now() + WAIT;
    while sink.stats().dropped_buffer_full == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = CaptureServer::start_on(addr, vec![], true);
    sink.flush(WAIT).await.unwrap();
    let stats = sink.stats();
    assert!(stats.dropped_buffer_full > 0);
    assert_eq!(stats.sent + stats.dropped_buffer_full, 200);
    assert_eq!(stats.dropped(), stats.dropped_buffer_full);
    assert_eq!(server.delivered_events().len() as u64, stats.sent);
    // The newest survived.
    assert!(uuids(&server.delivered_events()).contains(sent.last().unwrap()));
    let reported = reported.lock().unwrap();
    assert!(reported
        .iter()
        .all(|e| e.kind == DeliveryErrorKind::BufferFull));
    assert_eq!(
        reported.iter().map(|e| e.events as u64).sum::<u64>(),
        stats.dropped_buffer_full
    );
}

#[tokio::test]
async fn batches_older_than_the_maximum_age_are_dropped_and_counted() {
    let addr = CaptureServer::reserve_port();
    let sink = builder_for(&format!("http://{addr}"))
        .max_buffer_age(Duration::from_millis(300))
        .build()
        .unwrap();
    capture_n(&sink, 5);
    // Seal the batch: the flush cannot finish while PostHog is down.
    assert!(sink
        .flush(Duration::from_millis(100))
        .await
        .unwrap_err()
        .is_timeout());
    let deadline = std::time::Instant::now() + WAIT;
    while sink.stats().dropped_expired < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server = CaptureServer::start_on(addr, vec![], true);
    let report = sink.flush(WAIT).await.unwrap();
    assert_eq!((report.delivered, report.dropped), (0, 5));
    let stats = sink.stats();
    assert_eq!((stats.dropped_expired, stats.sent, stats.queued), (5, 0, 0));
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn a_burst_of_20000_events_is_delivered_with_default_settings() {
    let server = CaptureServer::start_counting(vec![]);
    let sink = PosthogSink::builder()
        .api_key(KEY)
        .host(server.url())
        .build()
        .unwrap();
    let filler = "lorem ipsum dolor sit amet ".repeat(30);
    for i in 0..20_000 {
        sink.capture(with_input(format!("{i} {filler}")));
    }
    let report = sink.flush(WAIT).await.unwrap();
    assert_eq!((report.delivered, report.dropped), (20_000, 0));
    assert_eq!(server.delivered_count(), 20_000);
}

fn spool_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "traced-llm-test-{name}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn spool_files(dir: &PathBuf) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|entry| {
            let path = entry.as_ref().unwrap().path();
            path.extension().and_then(|ext| ext.to_str()) == Some("batch")
        })
        .count()
}

#[tokio::test]
async fn the_spool_carries_batches_across_two_sink_lifetimes() {
    let dir = spool_dir("spool");
    let addr = CaptureServer::reserve_port();

    // First life: PostHog is down the whole time; shutdown spools what it could not send.
    let first = builder_for(&format!("http://{addr}"))
        .batch_size(10)
        .spool_dir(&dir)
        .build()
        .unwrap();
    let spooled = capture_n(&first, 35);
    // One process owns a spool at a time.
    let locked = builder_for(&format!("http://{addr}"))
        .spool_dir(&dir)
        .build()
        .unwrap_err();
    assert!(locked.is_builder());
    assert!(
        locked.to_string().contains("in use by another process"),
        "{locked}"
    );
    let error = first
        .shutdown(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(error.is_timeout());
    assert_eq!(error.report().unwrap().spooled, 35);
    let stats = first.stats();
    assert_eq!((stats.spooled, stats.dropped(), stats.sent), (35, 0, 0));
    assert_eq!(spool_files(&dir), 4);

    // Between lives: one corrupt file and one left half-written.
    std::fs::write(
        dir.join("0000000000001-corrupt.batch"),
        b"TLLMSPL1 not a batch",
    )
    .unwrap();
    std::fs::write(dir.join("0000000000002-partial.tmp"), b"TLLMSPL1").unwrap();

    // Second life: PostHog is up; the spooled batches go first, then the new events.
    let server = CaptureServer::start_on(addr, vec![], true);
    let deadline = std::time::Instant::now() + WAIT;
    let second = loop {
        // The first sink's thread lets the lock go just after shutdown answered.
        match builder(&server).batch_size(10).spool_dir(&dir).build() {
            Ok(sink) => break sink,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(err) => panic!("{err}"),
        }
    };
    let fresh = capture_n(&second, 5);
    let report = second.flush(WAIT).await.unwrap();
    assert_eq!((report.delivered, report.dropped), (40, 0));
    assert_delivered_once(&server, &[spooled.clone(), fresh.clone()].concat());
    let order = uuids(&server.delivered_events());
    let last_spooled = order
        .iter()
        .rposition(|uuid| spooled.contains(uuid))
        .unwrap();
    let first_fresh = order.iter().position(|uuid| fresh.contains(uuid)).unwrap();
    assert!(last_spooled < first_fresh, "spooled batches go first");
    let stats = second.stats();
    assert_eq!(
        (
            stats.spool_loaded,
            stats.spool_corrupt,
            stats.sent,
            stats.queued
        ),
        (35, 2, 40, 0)
    );
    assert_eq!(spool_files(&dir), 0);
    second.shutdown(WAIT).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_spool_takes_what_overflows_the_outage_buffer() {
    let dir = spool_dir("overflow");
    let addr = CaptureServer::reserve_port();
    let sink = builder_for(&format!("http://{addr}"))
        .batch_size(10)
        .max_buffer_bytes(4 * 1024)
        .spool_dir(&dir)
        .build()
        .unwrap();
    let sent = capture_n(&sink, 200);
    let deadline = std::time::Instant::now() + WAIT;
    while sink.stats().spooled == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let server = CaptureServer::start_on(addr, vec![], true);
    let deadline = std::time::Instant::now() + WAIT;
    while sink.stats().sent < 200 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = sink.stats();
    assert!(stats.spooled > 0);
    assert_eq!((stats.sent, stats.dropped(), stats.queued), (200, 0, 0));
    assert_delivered_once(&server, &sent);
    sink.shutdown(WAIT).await.unwrap();
    assert_eq!(spool_files(&dir), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_spool_lock_error_is_a_builder_error_even_without_a_runtime() {
    let dir = spool_dir("lock");
    let (tx, rx) = mpsc::channel();
    let first = PosthogSink::builder()
        .api_key(KEY)
        .host("http://127.0.0.1:9")
        .spool_dir(&dir)
        .build()
        .unwrap();
    tx.send(()).unwrap();
    rx.recv().unwrap();
    let second = PosthogSink::builder()
        .api_key(KEY)
        .host("http://127.0.0.1:9")
        .spool_dir(&dir)
        .build();
    assert!(second.unwrap_err().to_string().contains("in use"));
    drop(first);
}
