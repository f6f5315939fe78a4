//! The PostHog sink against a fake capture server on loopback.

mod support;

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use traced_llm::event::{Event, Generation};
use traced_llm::posthog::{
    capture_event, DeliveryError, DeliveryErrorKind, PosthogSink, PosthogSinkBuilder,
    QueueFullPolicy, RetryPolicy,
};
use traced_llm::sink::{Sink, SinkError};
use traced_llm::types::Usage;
use traced_llm::Message;

use support::capture_server::{Answer, CaptureServer};

const KEY: &str = "phc_secret_sink_test_key_0123456789";
const LONG: Duration = Duration::from_secs(3600);
const WAIT: Duration = Duration::from_secs(10);

/// A builder pointed at `server` that only sends batches when full or flushed, with fast
/// retries.
fn builder(server: &CaptureServer) -> PosthogSinkBuilder {
    PosthogSink::builder()
        .api_key(KEY)
        .host(server.url())
        .flush_interval(LONG)
        .retry_policy(fast_retries())
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy::new()
        .initial_backoff(Duration::from_millis(10))
        .max_backoff(Duration::from_millis(50))
}

fn generation(n: usize) -> Event {
    let mut generation = Generation::new("gpt-4o-mini", "openai");
    generation.input = Some(vec![
        Message::system("You are terse."),
        Message::user(format!("question {n}")),
    ]);
    generation.output = Some(vec![traced_llm::types::ContentPart::text(format!(
        "answer {n}"
    ))]);
    generation.usage = Usage::new(10 + n as u64, 3);
    generation.latency = Duration::from_millis(250);
    Event::from(generation)
}

fn uuids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|event| event["uuid"].as_str().unwrap().to_owned())
        .collect()
}

/// Up to four requests are in flight at once, so batches may arrive in any order.
fn sorted<T: Ord + Clone>(items: &[T]) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort();
    items
}

fn uuid_of(event: &Event) -> String {
    event.envelope().uuid.hyphenated().to_string()
}

/// Captures `n` events and returns their uuids in order.
fn capture_n(sink: &PosthogSink, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let event = generation(i);
            let uuid = uuid_of(&event);
            sink.capture(event);
            uuid
        })
        .collect()
}

#[tokio::test]
async fn a_batch_is_gzipped_json_with_key_events_and_sent_at() {
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server).build().unwrap();
    let events: Vec<Event> = (0..3).map(generation).collect();
    for event in &events {
        sink.capture(event.clone());
    }
    sink.flush(WAIT).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    // `$ai_*` events take PostHog's AI route by default.
    assert_eq!(request.path, "/i/v0/ai/batch/");
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(&request.raw_body[..2], &[0x1f, 0x8b]);

    let body = request.json();
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(keys, ["api_key", "batch", "sent_at"]);
    assert_eq!(body["api_key"], KEY);
    let sent_at = humantime::parse_rfc3339(body["sent_at"].as_str().unwrap()).unwrap();
    assert!(sent_at <= SystemTime::now());

    let batch = body["batch"].as_array().unwrap();
    assert_eq!(batch.len(), 3);
    for (sent, event) in batch.iter().zip(&events) {
        // Exactly the crate's capture JSON: the uuid (v7) and timestamp of the event itself.
        assert_eq!(sent, &capture_event(event).to_json());
        let uuid = uuid::Uuid::parse_str(sent["uuid"].as_str().unwrap()).unwrap();
        assert_eq!(uuid, event.envelope().uuid);
        assert_eq!(uuid.get_version_num(), 7);
        let timestamp = humantime::parse_rfc3339(sent["timestamp"].as_str().unwrap()).unwrap();
        let drift = event
            .envelope()
            .timestamp
            .duration_since(timestamp)
            .unwrap();
        assert!(drift < Duration::from_micros(1));
    }
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.queued, stats.dropped()), (3, 0, 0));
    assert_eq!(stats.requests, 1);
    assert_eq!(stats.bytes_sent, request.raw_body.len() as u64);
}

#[tokio::test]
async fn plain_json_when_gzip_is_off_and_the_ai_endpoint_when_asked() {
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server)
        .gzip(false)
        .endpoint(traced_llm::posthog::Endpoint::AiBatch)
        .build()
        .unwrap();
    let uuids_sent = capture_n(&sink, 2);
    sink.flush(WAIT).await.unwrap();
    let request = &server.requests()[0];
    assert_eq!(request.path, "/i/v0/ai/batch/");
    assert_eq!(request.header("content-encoding"), None);
    assert_eq!(request.raw_body, request.body);
    assert_eq!(uuids(&request.events()), uuids_sent);
}

#[tokio::test]
async fn full_batches_leave_without_a_flush_and_the_rest_on_flush() {
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server).batch_size(10).build().unwrap();
    let sent = capture_n(&sink, 25);
    let requests = server.wait_for_requests(2, WAIT);
    assert_eq!(requests.len(), 2, "two full batches leave on their own");
    assert_eq!(requests[0].events().len(), 10);
    assert_eq!(requests[1].events().len(), 10);
    sink.flush(WAIT).await.unwrap();
    let sizes: Vec<usize> = server.requests().iter().map(|r| r.events().len()).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(sorted(&uuids(&server.delivered_events())), sorted(&sent));
}

#[tokio::test]
async fn a_partial_batch_leaves_on_the_interval() {
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server)
        .flush_interval(Duration::from_millis(100))
        .build()
        .unwrap();
    let sent = capture_n(&sink, 3);
    let requests = server.wait_for_requests(1, WAIT);
    assert_eq!(requests.len(), 1);
    assert_eq!(uuids(&requests[0].events()), sent);
}

#[tokio::test]
async fn without_gzip_batches_are_cut_by_their_json_bytes() {
    let server = CaptureServer::start(vec![]);
    let max = 20_000;
    let sink = builder(&server)
        .gzip(false)
        .max_batch_bytes(max)
        .build()
        .unwrap();
    let mut sent = Vec::new();
    for i in 0..10 {
        let mut event = generation(i);
        let Event::Generation(g) = &mut event else {
            unreachable!()
        };
        g.input = Some(vec![Message::user(format!("{i} {}", "word ".repeat(1200)))]);
        sent.push(uuid_of(&event));
        sink.capture(event);
    }
    sink.flush(WAIT).await.unwrap();
    let requests = server.requests();
    // About 6.7 KB of JSON per event: two fit under 20,000 bytes with the envelope, three
    // do not.
    let sizes: Vec<usize> = requests.iter().map(|r| r.events().len()).collect();
    assert_eq!(sizes, [2, 2, 2, 2, 2]);
    for request in &requests {
        assert!(
            request.raw_body.len() <= max,
            "{} bytes",
            request.raw_body.len()
        );
    }
    assert_eq!(sorted(&uuids(&server.delivered_events())), sorted(&sent));
}

#[tokio::test]
async fn a_503_then_200_delivers_each_event_exactly_once() {
    let server = CaptureServer::start(vec![Answer::Status(503)]);
    let sink = builder(&server).build().unwrap();
    let sent = capture_n(&sink, 5);
    sink.flush(WAIT).await.unwrap();
    let requests = server.requests();
    let statuses: Vec<Option<u16>> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(503), Some(200)]);
    assert_eq!(uuids(&requests[0].events()), uuids(&requests[1].events()));
    assert_eq!(uuids(&server.delivered_events()), sent);
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.retried, stats.dropped()), (5, 1, 0));
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let server = CaptureServer::start(vec![Answer::retry_after(429, "1")]);
    let sink = builder(&server).build().unwrap();
    let sent = capture_n(&sink, 1);
    sink.flush(WAIT).await.unwrap();
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    // Backoff alone is at most 50 ms here; the server asked for a second.
    assert!(waited >= Duration::from_millis(950), "{waited:?}");
    assert_eq!(uuids(&server.delivered_events()), sent);
}

#[tokio::test]
async fn a_413_splits_the_batch_in_halves_until_it_fits() {
    let server = CaptureServer::start(vec![Answer::Status(413), Answer::Status(413)]);
    let sink = builder(&server).build().unwrap();
    let sent = capture_n(&sink, 4);
    sink.flush(WAIT).await.unwrap();
    let sizes: Vec<(usize, Option<u16>)> = server
        .requests()
        .iter()
        .map(|r| (r.events().len(), r.status))
        .collect();
    // The halves go out together, so which one meets the second 413 may vary.
    assert_eq!(
        sorted(&sizes),
        [
            (1, Some(200)),
            (1, Some(200)),
            (2, Some(200)),
            (2, Some(413)),
            (4, Some(413)),
        ]
    );
    assert_eq!(sorted(&uuids(&server.delivered_events())), sorted(&sent));
    assert_eq!(sink.stats().dropped(), 0);
}

#[tokio::test]
async fn a_lone_event_still_413_is_dropped_counted_and_reported() {
    let server = CaptureServer::start(vec![Answer::Status(413)]);
    let reported = Arc::new(Mutex::new(Vec::<DeliveryError>::new()));
    let seen = Arc::clone(&reported);
    let sink = builder(&server)
        .on_error(move |error| seen.lock().unwrap().push(error.clone()))
        .build()
        .unwrap();
    capture_n(&sink, 1);
    sink.flush(WAIT).await.unwrap();
    assert_eq!(server.requests().len(), 1);
    let stats = sink.stats();
    assert_eq!((stats.dropped_rejected, stats.failed_batches), (1, 1));
    let reported = reported.lock().unwrap();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].kind, DeliveryErrorKind::TooLarge);
    assert_eq!((reported[0].status, reported[0].events), (Some(413), 1));
}

#[tokio::test]
async fn a_400_for_a_lone_event_is_not_retried_but_dropped_counted_and_reported() {
    let server = CaptureServer::start(vec![Answer::Full {
        status: 400,
        body: r#"{"status":400,"code":"invalid_payload","error":"bad"}"#.into(),
        headers: vec![],
    }]);
    let reported = Arc::new(Mutex::new(Vec::<DeliveryError>::new()));
    let seen = Arc::clone(&reported);
    let sink = builder(&server)
        .on_error(move |error| seen.lock().unwrap().push(error.clone()))
        .build()
        .unwrap();
    capture_n(&sink, 1);
    sink.flush(WAIT).await.unwrap();
    assert_eq!(server.requests().len(), 1);
    let stats = sink.stats();
    assert_eq!(
        (stats.dropped_rejected, stats.failed_batches, stats.retried),
        (1, 1, 0)
    );
    let reported = reported.lock().unwrap().clone();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].kind, DeliveryErrorKind::Rejected);
    assert_eq!((reported[0].status, reported[0].events), (Some(400), 1));
    assert_eq!(reported[0].reason, "invalid_payload");
    assert_eq!(
        reported[0].to_string(),
        "posthog: 1 events rejected (http status 400): invalid_payload"
    );

    // The sink carries on with later events.
    let later = capture_n(&sink, 1);
    sink.flush(WAIT).await.unwrap();
    assert_eq!(uuids(&server.delivered_events()), later);
}

#[tokio::test]
async fn a_long_run_of_500s_gives_nothing_up() {
    // More failures than any fixed retry count: the batch waits for the endpoint.
    let server = CaptureServer::start(vec![Answer::Status(500); 12]);
    let sink = builder(&server).build().unwrap();
    let sent = capture_n(&sink, 3);
    sink.flush(WAIT).await.unwrap();
    assert_eq!(server.requests().len(), 13);
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.retried, stats.dropped()), (3, 12, 0));
    assert_eq!(uuids(&server.delivered_events()), sent);
}

#[tokio::test]
async fn refused_connections_are_retried_until_the_server_comes_up() {
    let addr = CaptureServer::reserve_port();
    let sink = PosthogSink::builder()
        .api_key(KEY)
        .host(format!("http://{addr}"))
        .flush_interval(LONG)
        .retry_policy(fast_retries())
        .build()
        .unwrap();
    let sent = capture_n(&sink, 3);
    let (started_tx, started_rx) = mpsc::channel();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        started_tx
            .send(CaptureServer::start_on(addr, vec![], true))
            .unwrap();
    });
    sink.flush(WAIT).await.unwrap();
    let server = started_rx.recv().unwrap();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(uuids(&server.delivered_events()), sent);
    let stats = sink.stats();
    assert!(stats.retried >= 1);
    assert_eq!((stats.sent, stats.dropped()), (3, 0));
}

#[tokio::test]
async fn a_hanging_server_does_not_hold_flush_or_shutdown_past_their_timeouts() {
    let server = CaptureServer::start(vec![Answer::Hang]);
    let sink = builder(&server)
        .request_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    capture_n(&sink, 2);

    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    assert_eq!(
        Sink::flush(&sink, timeout).await,
        Err(SinkError::Timeout(timeout))
    );
    let took = started.elapsed();
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(1),
        "{took:?}"
    );

    let started = Instant::now();
    let error = sink.shutdown(timeout).await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    let took = started.elapsed();
    assert!(took < timeout + Duration::from_secs(1), "{took:?}");
    assert_eq!(server.requests().len(), 1);

    // What never got through is counted as dropped at shutdown.
    let deadline = Instant::now() + WAIT;
    while sink.stats().dropped_shutdown < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stats = sink.stats();
    assert_eq!(
        (stats.dropped_shutdown, stats.sent, stats.queued),
        (2, 0, 0)
    );
}

#[tokio::test]
async fn shutdown_delivers_then_refuses_later_captures_and_a_second_shutdown() {
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server).build().unwrap();
    let sent = capture_n(&sink, 7);
    sink.shutdown(WAIT).await.unwrap();
    assert_eq!(uuids(&server.delivered_events()), sent);

    capture_n(&sink, 2);
    assert_eq!(
        Sink::shutdown(&sink, WAIT).await,
        Err(SinkError::AlreadyShutdown)
    );
    assert_eq!(
        Sink::flush(&sink, WAIT).await,
        Err(SinkError::AlreadyShutdown)
    );
    let stats = sink.stats();
    assert_eq!((stats.sent, stats.dropped_shutdown), (7, 2));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn dropping_the_last_handle_sends_what_is_queued() {
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server).build().unwrap();
    let clone = sink.clone();
    let sent = capture_n(&sink, 4);
    drop(sink);
    drop(clone);
    let requests = server.wait_for_requests(1, WAIT);
    assert_eq!(requests.len(), 1);
    assert_eq!(uuids(&requests[0].events()), sent);
}

#[test]
fn capture_works_from_plain_threads_without_a_runtime() {
    let server = CaptureServer::start(vec![]);
    let sink = builder(&server).batch_size(7).build().unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let sink = sink.clone();
            std::thread::spawn(move || capture_n(&sink, 50))
        })
        .collect();
    let mut sent: Vec<String> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(sink.shutdown(WAIT)).unwrap();
    let mut delivered = uuids(&server.delivered_events());
    assert_eq!(delivered.len(), 200);
    delivered.sort();
    sent.sort();
    assert_eq!(delivered, sent);
    let unique: HashSet<&String> = delivered.iter().collect();
    assert_eq!(unique.len(), 200);
}

/// Stalls the worker inside the error callback, so the queue cannot drain while the test
/// fills it.
fn stalled_sink(
    server: &CaptureServer,
    policy: QueueFullPolicy,
) -> (PosthogSink, mpsc::Receiver<()>, mpsc::Sender<()>) {
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let sink = builder(server)
        .batch_size(1)
        .max_queue_len(10)
        .queue_full_policy(policy)
        .on_error(move |_| {
            entered_tx.send(()).unwrap();
            let _ = release_rx.lock().unwrap().recv();
        })
        .build()
        .unwrap();
    (sink, entered_rx, release_tx)
}

#[tokio::test]
async fn a_full_queue_drops_the_newest_and_counts_without_blocking() {
    let server = CaptureServer::start(vec![Answer::Status(400)]);
    let (sink, entered, release) = stalled_sink(&server, QueueFullPolicy::DropNewest);
    capture_n(&sink, 1);
    entered.recv_timeout(WAIT).unwrap();

    let sent = capture_n(&sink, 25);
    let stats = sink.stats();
    assert_eq!((stats.dropped_queue_full, stats.queued), (15, 10));

    release.send(()).unwrap();
    sink.flush(WAIT).await.unwrap();
    assert_eq!(
        sorted(&uuids(&server.delivered_events())),
        sorted(&sent[..10])
    );
    let stats = sink.stats();
    assert_eq!(
        (stats.sent, stats.dropped_rejected, stats.queued),
        (10, 1, 0)
    );
}

#[tokio::test]
async fn drop_oldest_keeps_the_latest_events() {
    let server = CaptureServer::start(vec![Answer::Status(400)]);
    let (sink, entered, release) = stalled_sink(&server, QueueFullPolicy::DropOldest);
    capture_n(&sink, 1);
    entered.recv_timeout(WAIT).unwrap();

    let sent = capture_n(&sink, 25);
    assert_eq!(sink.stats().dropped_queue_full, 15);
    release.send(()).unwrap();
    sink.flush(WAIT).await.unwrap();
    assert_eq!(
        sorted(&uuids(&server.delivered_events())),
        sorted(&sent[15..])
    );
}

#[tokio::test]
async fn an_oversized_event_arrives_shrunk_under_budget_with_counts_intact() {
    let server = CaptureServer::start(vec![]);
    // `/batch/`'s budget: 900,000 bytes.
    let sink = builder(&server)
        .endpoint(traced_llm::posthog::Endpoint::Batch)
        .build()
        .unwrap();
    let mut generation = Generation::new("gpt-4o", "openai");
    let quoted = "she said \"hi\" and \\ left. ".repeat(20_000); // ~560 KB, escapes 4×
    generation.input = Some(vec![
        Message::system("You summarise."),
        Message::user(quoted.clone()),
        Message::assistant(quoted.clone()),
        Message::user(format!(
            "see data:image/png;base64,{} please",
            "iVBORw0KGgo1".repeat(20_000)
        )),
    ]);
    generation.output = Some(vec![traced_llm::types::ContentPart::text(quoted)]);
    generation.usage = Usage::new(150_000, 2_000).with_cache_read(1_000);
    generation.latency = Duration::from_millis(4321);
    generation.error = Some(traced_llm::event::ErrorInfo::new(
        traced_llm::event::ErrorKind::Stream,
        "stream cut",
    ));
    let event = Event::from(generation);
    let uuid = uuid_of(&event);
    sink.capture(event);
    sink.flush(WAIT).await.unwrap();

    let delivered = server.delivered_events();
    assert_eq!(delivered.len(), 1);
    let event = &delivered[0];
    let json = serde_json::to_vec(event).unwrap();
    let cost = json.len() + json.iter().filter(|&&b| b == b'"' || b == b'\\').count();
    assert!(cost <= 900_000, "cost {cost}");
    assert_eq!(event["uuid"], uuid);
    let props = &event["properties"];
    assert_eq!(props["$ai_input_tokens"], 150_000);
    assert_eq!(props["$ai_output_tokens"], 2_000);
    assert_eq!(props["$ai_cache_read_input_tokens"], 1_000);
    assert_eq!(props["$ai_latency"], 4.321);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_trace_id"], uuid);
    let input = props["$ai_input"].as_array().unwrap();
    assert_eq!(input[0]["content"], "You summarise.");
    assert_eq!(
        input.last().unwrap()["content"],
        "see [base64 image/png redacted] please"
    );
    let text = serde_json::to_string(props).unwrap();
    assert!(
        text.contains("earlier messages removed") || text.contains("[truncated]"),
        "no marker"
    );
    assert_eq!(sink.stats().shrunk, 1);
}

/// Records every log event's fields as text.
#[derive(Clone, Default)]
struct LogRecorder(Arc<Mutex<String>>);

struct FieldWriter<'a>(&'a mut String);

impl tracing::field::Visit for FieldWriter<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

impl tracing::Subscriber for LogRecorder {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        span.record(&mut FieldWriter(&mut self.0.lock().unwrap()));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut FieldWriter(&mut self.0.lock().unwrap()));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut log = self.0.lock().unwrap();
        let _ = write!(
            log,
            "{} {} ",
            event.metadata().level(),
            event.metadata().target()
        );
        event.record(&mut FieldWriter(&mut log));
        log.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn the_key_never_appears_in_debug_output_or_logs() {
    let recorder = LogRecorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let server = CaptureServer::start(vec![
        Answer::Status(503),
        Answer::Full {
            status: 401,
            body: format!("API key is not valid: {KEY}"),
            headers: vec![],
        },
    ]);
    let reported = Arc::new(Mutex::new(Vec::<DeliveryError>::new()));
    let seen = Arc::clone(&reported);
    let builder = builder(&server)
        .max_queue_len(1)
        .on_error(move |error| seen.lock().unwrap().push(error.clone()));
    let sink = builder.clone().build().unwrap();
    capture_n(&sink, 3);
    // The refused key makes the flush fail, naming the cause.
    let refused = sink.flush(WAIT).await.unwrap_err();
    assert!(refused.is_unauthorized(), "{refused}");
    assert!(refused.to_string().contains("refused the project API key"));
    sink.shutdown(WAIT).await.unwrap();
    capture_n(&sink, 1);

    let log = recorder.0.lock().unwrap().clone();
    assert!(log.contains("posthog sink dropped a batch"), "{log}");
    assert!(log.contains("dropped LLM events"), "{log}");
    // One warning at the first drop, however many follow.
    assert_eq!(log.matches("dropped an LLM event").count(), 1, "{log}");
    let reported = reported.lock().unwrap();
    assert_eq!(reported[0].status, Some(401));
    let shown = [
        log,
        format!("{sink:?}"),
        format!("{builder:?}"),
        format!("{:?} {}", reported[0], reported[0]),
        format!("{refused:?} {refused}"),
        PosthogSink::builder()
            .api_key(KEY)
            .host("ftp://nope")
            .build()
            .unwrap_err()
            .to_string(),
    ];
    for text in shown {
        assert!(!text.contains(KEY), "key leaked: {text}");
        assert!(!text.contains("secret_sink_test"), "key leaked: {text}");
    }
    assert!(format!("{sink:?}").contains(&server.url()));
}
