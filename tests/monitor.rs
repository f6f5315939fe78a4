//! The in-process monitor: rules fire once and clear, cooldowns hold alerts back, ids are
//! evicted at the bound, budgets refuse calls and the refusals are recorded, bad rules files
//! name their line. Time is a `ManualClock`: no test sleeps to cross a window.

#![cfg(all(feature = "monitor", feature = "testing"))]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use support::events::capture_json;
use traced_llm::event::{ErrorInfo, ErrorKind, Event, Generation};
use traced_llm::monitor::{
    AlertState, Budget, BudgetExceeded, Budgeted, ManualClock, Metric, Monitor, MonitorBuilder,
    MonitorConfig, MonitorError, Rule, Scope, Spent,
};
use traced_llm::posthog::LIB_VERSION;
use traced_llm::sink::{Fanout, InMemorySink, Sink};
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{CallContext, ChatRequest, ChatResponse, LlmModel, Message, TracedModel};

const MINUTE: Duration = Duration::from_secs(60);
const FLUSH: Duration = Duration::from_secs(5);

/// A monitor on a manual clock whose alerts land in `alerts`; the background evaluation is off,
/// so only calls and `evaluate()` move alerts.
struct Harness {
    monitor: Monitor,
    clock: ManualClock,
    alerts: InMemorySink,
}

impl Harness {
    fn new(configure: impl FnOnce(MonitorBuilder) -> MonitorBuilder) -> Self {
        let clock = ManualClock::new();
        let alerts = InMemorySink::new();
        let builder = Monitor::builder()
            .clock(clock.clone())
            .alert_sink(alerts.clone())
            .evaluate_every(Duration::ZERO);
        let monitor = configure(builder).build().expect("a valid monitor");
        Self {
            monitor,
            clock,
            alerts,
        }
    }

    fn with_rule(rule: Rule) -> Self {
        Self::new(|builder| builder.rule(rule))
    }

    fn capture(&self, event: Event) {
        self.monitor.capture(event);
    }

    fn at(&self, time: Duration) {
        self.clock.set(time);
    }

    /// The alert events delivered so far, in PostHog's capture format.
    async fn alert_json(&self) -> Vec<Value> {
        self.monitor.flush(FLUSH).await.expect("alerts delivered");
        self.alerts.events().iter().map(capture_json).collect()
    }
}

/// One successful call of `model` at OpenAI.
fn call(model: &str, distinct_id: Option<&str>, trace: &str, input: u64, output: u64) -> Event {
    let mut generation = Generation::new(model, "openai");
    generation.envelope.distinct_id = distinct_id.map(str::to_owned);
    generation.envelope.trace_id = Some(trace.to_owned());
    generation.usage = Usage::new(input, output);
    generation.latency = Duration::from_millis(800);
    generation.into()
}

fn with_latency(event: Event, latency: Duration) -> Event {
    match event {
        Event::Generation(mut generation) => {
            generation.latency = latency;
            generation.into()
        }
        other => other,
    }
}

fn failed(model: &str, trace: &str, kind: ErrorKind, status: u16) -> Event {
    let mut generation = Generation::new(model, "openai");
    generation.envelope.trace_id = Some(trace.to_owned());
    generation.http_status = status;
    generation.error = Some(ErrorInfo::new(kind, "the provider failed"));
    generation.into()
}

/// The properties of an alert event, without the alert id (random), which is returned apart.
fn alert_properties(event: &Value) -> (String, Map<String, Value>) {
    let mut properties = event["properties"].as_object().unwrap().clone();
    let id = properties
        .remove("alert_id")
        .and_then(|id| id.as_str().map(str::to_owned))
        .expect("alert_id");
    uuid::Uuid::parse_str(&id).expect("alert_id is a uuid");
    (id, properties)
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[tokio::test]
async fn a_token_threshold_per_distinct_id_fires_once_and_clears() {
    let harness = Harness::with_rule(Rule::above(
        "tokens-per-user",
        Metric::Tokens,
        Scope::DistinctId,
        10_000.0,
    ));
    harness.capture(call("gpt-5-mini", Some("user_1"), "t-1", 6_000, 1_000));
    harness.at(Duration::from_secs(30));
    harness.capture(call("gpt-5-mini", Some("user_1"), "t-2", 3_000, 500));
    // Still above: no second alert.
    harness.at(Duration::from_secs(40));
    harness.capture(call("gpt-5-mini", Some("user_1"), "t-3", 100, 100));
    // Another user stays under the threshold.
    harness.capture(call("gpt-5-mini", Some("user_2"), "t-4", 9_000, 0));

    let alerts = harness.alert_json().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let raised = &alerts[0];
    assert_eq!(raised["event"], "llm_alert");
    assert_eq!(raised["distinct_id"], "user_1");
    assert_eq!(raised["timestamp"], "2026-01-01T00:00:30.000000Z");
    let (raised_id, properties) = alert_properties(raised);
    assert_eq!(
        properties,
        object(json!({
            "$lib": "traced-llm",
            "$lib_version": LIB_VERSION,
            "alert_state": "raised",
            "alert_rule": "tokens-per-user",
            "alert_metric": "tokens",
            "alert_condition": "above",
            "alert_scope": "distinct_id",
            "alert_key": "user_1",
            "alert_window_seconds": 600.0,
            "alert_observed": 10_500.0,
            "alert_threshold": 10_000.0,
            "alert_sample_trace_ids": ["t-2", "t-1"],
        }))
    );

    // Ten minutes on, both calls have left the window: the alert clears.
    harness.at(10 * MINUTE);
    harness.monitor.evaluate();
    let alerts = harness.alert_json().await;
    assert_eq!(alerts.len(), 2);
    let cleared = &alerts[1];
    assert_eq!(cleared["event"], "llm_alert_cleared");
    assert_eq!(cleared["distinct_id"], "user_1");
    assert_eq!(cleared["timestamp"], "2026-01-01T00:10:00.000000Z");
    let (cleared_id, properties) = alert_properties(cleared);
    assert_eq!(cleared_id, raised_id, "the clear names the alert it ends");
    assert_eq!(
        properties,
        object(json!({
            "$lib": "traced-llm",
            "$lib_version": LIB_VERSION,
            "alert_state": "cleared",
            "alert_rule": "tokens-per-user",
            "alert_metric": "tokens",
            "alert_condition": "above",
            "alert_scope": "distinct_id",
            "alert_key": "user_1",
            "alert_window_seconds": 600.0,
            "alert_observed": 0.0,
            "alert_threshold": 10_000.0,
            "alert_sample_trace_ids": ["t-3", "t-2", "t-1"],
            "alert_raised_at": "2026-01-01T00:00:30.000000Z",
            "alert_firing_seconds": 570.0,
        }))
    );
    let stats = harness.monitor.stats();
    assert_eq!((stats.alerts_raised, stats.alerts_cleared), (1, 1));
}

#[tokio::test]
async fn a_burst_of_errors_raises_an_error_rate_alert_that_clears_when_calls_succeed() {
    let harness = Harness::with_rule(
        Rule::above("error-rate", Metric::ErrorRate, Scope::Model, 0.2).min_calls(10),
    );
    for index in 0..8 {
        harness.capture(call("gpt-5.5", None, &format!("ok-{index}"), 10, 10));
    }
    // 1 of 9, then 2 of 10 (not above 0.2), then 3 of 11: the alert.
    for index in 0..3 {
        harness.capture(failed(
            "gpt-5.5",
            &format!("err-{index}"),
            ErrorKind::Server,
            503,
        ));
    }
    assert_eq!(harness.alert_json().await.len(), 1);
    // The burst goes on: 7 errors in 15 calls, still one alert.
    for index in 3..7 {
        harness.capture(failed(
            "gpt-5.5",
            &format!("err-{index}"),
            ErrorKind::Server,
            503,
        ));
    }
    // Successes bring it to 7 of 35 = 0.2: cleared.
    for index in 0..20 {
        harness.capture(call("gpt-5.5", None, &format!("back-{index}"), 10, 10));
    }
    let alerts = harness.alert_json().await;
    assert_eq!(alerts.len(), 2, "{alerts:#?}");

    let (_, raised) = alert_properties(&alerts[0]);
    assert_eq!(alerts[0]["event"], "llm_alert");
    assert_eq!(raised["alert_rule"], "error-rate");
    assert_eq!(raised["alert_scope"], "model");
    assert_eq!(raised["alert_key"], "gpt-5.5");
    assert_eq!(raised["$ai_model"], "gpt-5.5");
    assert_eq!(raised["alert_observed"], json!(3.0 / 11.0));
    assert_eq!(raised["alert_threshold"], json!(0.2));
    assert_eq!(
        raised["alert_sample_trace_ids"],
        json!(["err-2", "err-1", "err-0"])
    );
    // A model alert is nobody's event.
    assert_eq!(raised["$process_person_profile"], false);

    let (_, cleared) = alert_properties(&alerts[1]);
    assert_eq!(alerts[1]["event"], "llm_alert_cleared");
    assert_eq!(cleared["alert_observed"], json!(0.2));
    assert_eq!(cleared["alert_firing_seconds"], json!(0.0));

    let figures = harness.monitor.figures(Scope::Model, "gpt-5.5").unwrap();
    assert_eq!((figures.calls, figures.errors), (35, 7));
    assert_eq!(figures.errors_by_kind.get("server"), Some(&7));
}

#[tokio::test]
async fn a_p95_latency_above_20_seconds_raises_and_clears() {
    let harness = Harness::with_rule(Rule::above(
        "slow-p95",
        Metric::Latency(95),
        Scope::Model,
        20.0,
    ));
    // Nine slow calls are too few to read (10 by default)...
    for index in 0..9 {
        let slow = call("claude-opus-5-5", None, &format!("slow-{index}"), 1, 1);
        harness.capture(with_latency(slow, Duration::from_secs(25)));
    }
    assert!(harness.alert_json().await.is_empty());
    // ...the tenth is the alert.
    let slow = call("claude-opus-5-5", None, "slow-9", 1, 1);
    harness.capture(with_latency(slow, Duration::from_secs(25)));
    let alerts = harness.alert_json().await;
    assert_eq!(alerts.len(), 1);
    let (_, raised) = alert_properties(&alerts[0]);
    assert_eq!(raised["alert_metric"], "latency_p95");
    assert_eq!(raised["alert_observed"], json!(25.0));
    assert_eq!(raised["alert_threshold"], json!(20.0));

    // 190 fast calls put the p95 back at one second.
    for index in 0..190 {
        let fast = call("claude-opus-5-5", None, &format!("fast-{index}"), 1, 1);
        harness.capture(with_latency(fast, Duration::from_secs(1)));
    }
    let alerts = harness.alert_json().await;
    assert_eq!(alerts.len(), 2);
    let (_, cleared) = alert_properties(&alerts[1]);
    assert_eq!(cleared["alert_state"], "cleared");
    // Percentiles come from log-spaced bins: within the bin of one second (0.81 s to 1.29 s).
    let p95 = cleared["alert_observed"].as_f64().unwrap();
    assert!((0.81..=1.3).contains(&p95), "{p95}");
}

#[tokio::test]
async fn unusual_tokens_compare_the_window_with_the_ids_own_past() {
    let harness = Harness::with_rule(
        Rule::unusual("unusual-tokens", Metric::Tokens, Scope::DistinctId, 3.0).at_least(5_000.0),
    );
    // Twenty quiet minutes: 1,000 tokens a minute, 10,000 per window.
    for minute in 0..20 {
        harness.at(minute * MINUTE);
        harness.capture(call(
            "gpt-5-mini",
            Some("agent_7"),
            &format!("q-{minute}"),
            800,
            200,
        ));
    }
    // Minute 20: a loop. The window (minutes 11 to 20) holds 9,000 + 8,000 per call; the
    // baseline is the whole window of minutes 0 to 9: 10,000. Three times that is 30,000.
    harness.at(20 * MINUTE);
    for index in 0..3 {
        harness.capture(call(
            "gpt-5-mini",
            Some("agent_7"),
            &format!("loop-{index}"),
            7_000,
            1_000,
        ));
    }
    let alerts = harness.alert_json().await;
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(alerts[0]["distinct_id"], "agent_7");
    let (_, raised) = alert_properties(&alerts[0]);
    assert_eq!(
        raised,
        object(json!({
            "$lib": "traced-llm",
            "$lib_version": LIB_VERSION,
            "alert_state": "raised",
            "alert_rule": "unusual-tokens",
            "alert_metric": "tokens",
            "alert_condition": "unusual",
            "alert_scope": "distinct_id",
            "alert_key": "agent_7",
            "alert_window_seconds": 600.0,
            "alert_observed": 33_000.0,
            "alert_threshold": 30_000.0,
            "alert_baseline": 10_000.0,
            "alert_factor": 3.0,
            "alert_sample_trace_ids": ["loop-2", "loop-1", "loop-0"],
        }))
    );
    let figures = harness
        .monitor
        .figures(Scope::DistinctId, "agent_7")
        .unwrap();
    assert_eq!(figures.tokens, 33_000);
    assert_eq!(
        figures.baseline.map(|baseline| baseline.tokens),
        Some(10_000.0)
    );

    // The loop stopped: ten minutes later the window is empty and the alert clears.
    harness.at(30 * MINUTE);
    harness.monitor.evaluate();
    let alerts = harness.alert_json().await;
    assert_eq!(alerts.len(), 2);
    let (_, cleared) = alert_properties(&alerts[1]);
    assert_eq!(cleared["alert_observed"], json!(0.0));
    assert_eq!(cleared["alert_baseline"], json!(10_000.0));
    assert_eq!(cleared["alert_threshold"], json!(30_000.0));
    assert_eq!(cleared["alert_firing_seconds"], json!(600.0));
}

#[tokio::test]
async fn a_key_without_enough_history_is_never_unusual() {
    let harness = Harness::with_rule(Rule::unusual(
        "unusual-tokens",
        Metric::Tokens,
        Scope::DistinctId,
        3.0,
    ));
    // A first-ever burst has nothing to be unusual against.
    for index in 0..20 {
        harness.capture(call(
            "gpt-5-mini",
            Some("new_user"),
            &format!("t-{index}"),
            50_000,
            0,
        ));
    }
    assert!(harness.alert_json().await.is_empty());
}

#[tokio::test]
async fn errors_of_one_kind_have_their_own_rule() {
    let harness = Harness::with_rule(Rule::above(
        "rate-limited",
        Metric::ErrorsOf(ErrorKind::RateLimit),
        Scope::Provider,
        2.0,
    ));
    for index in 0..5 {
        harness.capture(failed(
            "gpt-5.5",
            &format!("s-{index}"),
            ErrorKind::Server,
            500,
        ));
    }
    for index in 0..3 {
        harness.capture(failed(
            "gpt-5.5",
            &format!("r-{index}"),
            ErrorKind::RateLimit,
            429,
        ));
    }
    let alerts = harness.alert_json().await;
    assert_eq!(alerts.len(), 1);
    let (_, raised) = alert_properties(&alerts[0]);
    assert_eq!(raised["alert_metric"], "errors:rate_limit");
    assert_eq!(raised["alert_key"], "openai");
    assert_eq!(raised["$ai_provider"], "openai");
    assert_eq!(raised["alert_observed"], json!(3.0));
}

#[tokio::test]
async fn a_cooldown_holds_a_new_alert_back_until_it_ends() {
    let harness = Harness::with_rule(
        Rule::above(
            "tokens-per-user",
            Metric::Tokens,
            Scope::DistinctId,
            1_000.0,
        )
        .cooldown(30 * MINUTE),
    );
    let burst = |trace: &str| call("gpt-5-mini", Some("user_1"), trace, 1_500, 500);
    harness.capture(burst("a"));
    harness.at(10 * MINUTE);
    harness.monitor.evaluate(); // the window is empty: cleared
    harness.at(12 * MINUTE);
    harness.capture(burst("b")); // breaches again, 12 minutes after the alert: held back
    harness.at(20 * MINUTE);
    harness.monitor.evaluate(); // still breaching, still cooling down
    harness.at(25 * MINUTE);
    harness.capture(burst("c"));
    assert_eq!(
        harness
            .alert_json()
            .await
            .iter()
            .map(|alert| alert["event"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>(),
        ["llm_alert", "llm_alert_cleared"]
    );
    // Thirty minutes after the first alert the cooldown ends, the condition still holds (the
    // call at minute 25 is in the window): raised again.
    harness.at(30 * MINUTE);
    harness.monitor.evaluate();
    let alerts = harness.alert_json().await;
    assert_eq!(alerts.len(), 3);
    assert_eq!(alerts[2]["event"], "llm_alert");
    assert_eq!(alerts[2]["timestamp"], "2026-01-01T00:30:00.000000Z");
    let (_, raised) = alert_properties(&alerts[2]);
    assert_eq!(raised["alert_observed"], json!(2_000.0));
    assert_eq!(raised["alert_sample_trace_ids"], json!(["c", "b", "a"]));
}

#[tokio::test]
async fn the_least_recently_seen_id_is_evicted_at_the_bound_and_its_alert_cleared() {
    let harness = Harness::new(|builder| {
        builder.max_distinct_ids(3).rule(Rule::above(
            "tokens-per-user",
            Metric::Tokens,
            Scope::DistinctId,
            100.0,
        ))
    });
    harness.capture(call("m", Some("a"), "ta", 150, 0)); // raises for "a"
    harness.capture(call("m", Some("b"), "tb", 10, 0));
    harness.capture(call("m", Some("c"), "tc", 10, 0));
    harness.capture(call("m", Some("b"), "tb2", 10, 0));
    // "a" is the least recently seen: "d" takes its place.
    harness.capture(call("m", Some("d"), "td", 10, 0));

    let stats = harness.monitor.stats();
    assert_eq!((stats.distinct_ids, stats.evicted), (3, 1));
    let snapshot = harness.monitor.snapshot();
    let mut ids: Vec<&str> = snapshot
        .distinct_ids
        .iter()
        .map(|figures| figures.key.as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["b", "c", "d"]);
    assert!(harness.monitor.figures(Scope::DistinctId, "a").is_none());

    let alerts = harness.alert_json().await;
    let states: Vec<(&str, &str)> = alerts
        .iter()
        .map(|alert| {
            (
                alert["event"].as_str().unwrap(),
                alert["distinct_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("llm_alert", "a"), ("llm_alert_cleared", "a")]);

    // Evicted and seen again, "a" starts from nothing.
    harness.capture(call("m", Some("a"), "ta2", 10, 0));
    let figures = harness.monitor.figures(Scope::DistinctId, "a").unwrap();
    assert_eq!(figures.tokens, 10);
    assert_eq!(harness.monitor.stats().evicted, 2);
}

#[tokio::test]
async fn memory_stays_bounded_however_many_ids_pass() {
    let harness = Harness::new(|builder| builder.max_distinct_ids(1_000));
    for index in 0..20_000 {
        harness.capture(call("m", Some(&format!("user_{index}")), "t", 1, 1));
    }
    let stats = harness.monitor.stats();
    // Each shard evicts its own least recently seen id, so a shard that hashing favours is full
    // while another has room: the bound is exact, the fill close to it.
    assert!(stats.distinct_ids <= 1_000, "{stats:?}");
    assert!(stats.distinct_ids >= 950, "{stats:?}");
    assert_eq!(stats.evicted as usize, 20_000 - stats.distinct_ids);
    assert_eq!(stats.events, 20_000);
}

/// A traced model whose calls are checked against the monitor's budget, and the events it
/// records.
fn budgeted(
    monitor: &Monitor,
    usage: Usage,
) -> (TracedModel<Budgeted<ScriptedModel>>, InMemorySink) {
    let events = InMemorySink::new();
    let answer = ChatResponse::text_response("Working on it.").with_usage(usage);
    let provider = ScriptedModel::new()
        .with_provider("openai")
        .respond(answer)
        .repeat_last();
    let model = TracedModel::new(
        Budgeted::new(provider, monitor.clone()),
        Fanout::new().with(monitor.clone()).with(events.clone()),
    );
    (model, events)
}

fn request_for(distinct_id: Option<&str>) -> ChatRequest {
    let mut context = CallContext::new().trace_id("agent-run-1");
    if let Some(distinct_id) = distinct_id {
        context = context.distinct_id(distinct_id);
    }
    ChatRequest::new("gpt-5-mini")
        .message(Message::user("Next step?"))
        .context(context)
}

#[tokio::test]
async fn a_spent_token_budget_refuses_the_call_and_the_refusal_is_recorded() {
    let harness = Harness::new(|builder| builder.budget(Budget::tokens(10_000)));
    let (model, events) = budgeted(&harness.monitor, Usage::new(3_000, 1_000));
    let request = request_for(Some("user_1"));

    for _ in 0..3 {
        model.chat(&request).await.expect("within budget");
        harness.clock.advance(Duration::from_secs(90));
    }
    // 12,000 tokens spent: the fourth call is refused before it reaches the model.
    let refused = model.chat(&request).await.expect_err("over budget");
    assert!(refused.is_budget());
    assert_eq!(refused.kind(), ErrorKind::Budget);
    assert_eq!(model.get_ref().get_ref().calls(), 3);
    let details = BudgetExceeded::of(&refused).expect("the refusal's details");
    assert_eq!(details.distinct_id, "user_1");
    assert_eq!(
        details.spent,
        Spent::Tokens {
            spent: 12_000,
            limit: 10_000
        }
    );
    assert_eq!(details.window, 10 * MINUTE);
    // At 4:30 the window holds calls from 0:00, 1:30 and 3:00; once the first leaves (at 10:00)
    // 8,000 remain, under the limit.
    assert_eq!(details.retry_after, Some(Duration::from_secs(330)));
    assert_eq!(
        refused.to_string(),
        "budget spent: user_1 spent 12000 of 10000 tokens in the last 10m; retry in 5m 30s"
    );

    // The refused call is an event like any failed call: `$ai_error_type: "budget"`.
    let recorded = events.events();
    assert_eq!(recorded.len(), 4);
    let json = capture_json(&recorded[3]);
    assert_eq!(json["event"], "$ai_generation");
    assert_eq!(json["distinct_id"], "user_1");
    let properties = &json["properties"];
    assert_eq!(properties["$ai_is_error"], true);
    assert_eq!(properties["$ai_error_type"], "budget");
    assert_eq!(properties["$ai_http_status"], 0);
    assert_eq!(properties["$ai_trace_id"], "agent-run-1");
    // A refused call reported no usage: its counts are absent ("unknown"), not 0.
    assert!(properties.get("$ai_input_tokens").is_none());
    assert!(properties.get("$ai_output_tokens").is_none());
    assert!(properties["$ai_error"]
        .as_str()
        .unwrap()
        .starts_with("budget spent: user_1 spent 12000 of 10000 tokens"));

    // The monitor saw the refusal: counted apart from the calls made.
    let figures = harness
        .monitor
        .figures(Scope::DistinctId, "user_1")
        .unwrap();
    assert_eq!((figures.calls, figures.errors, figures.refused), (3, 0, 1));
    assert_eq!(figures.errors_by_kind.get("budget"), Some(&1));
    assert_eq!(figures.tokens, 12_000);

    // Streams are refused the same way.
    let error = match model.chat_stream(&request).await {
        Ok(_) => panic!("a stream over budget must be refused"),
        Err(error) => error,
    };
    assert!(error.is_budget());
    assert_eq!(events.len(), 5);

    // Once the oldest call has left the window, calls pass again.
    harness.at(10 * MINUTE);
    model.chat(&request).await.expect("the window moved on");
}

#[tokio::test]
async fn a_cost_budget_reads_the_monitors_prices() {
    let harness = Harness::new(|builder| builder.budget(Budget::cost_usd(0.01)));
    // gpt-5-mini: 10,000 × $0.25 + 2,000 × $2 per million = $0.0065 a call.
    let (model, _events) = budgeted(&harness.monitor, Usage::new(10_000, 2_000));
    let request = request_for(Some("user_1"));
    model.chat(&request).await.expect("$0.0065 of $0.01");
    model
        .chat(&request)
        .await
        .expect("still under before this call");
    let refused = model.chat(&request).await.expect_err("$0.013 spent");
    let details = BudgetExceeded::of(&refused).unwrap();
    match details.spent {
        Spent::CostUsd { spent, limit } => {
            assert!((spent - 0.013).abs() < 1e-6, "{spent}");
            assert_eq!(limit, 0.01);
        }
        other => panic!("expected a cost refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn budgets_apply_per_id_and_never_to_personless_calls() {
    let harness = Harness::new(|builder| {
        builder
            .budget(Budget::tokens(1_000))
            .budget_for("batch-job", Budget::unlimited())
            .budget_for("vip", Budget::tokens(5_000))
    });
    let (model, _events) = budgeted(&harness.monitor, Usage::new(900, 300));
    for id in ["batch-job", "vip"] {
        for _ in 0..2 {
            model.chat(&request_for(Some(id))).await.unwrap();
        }
    }
    for _ in 0..3 {
        model
            .chat(&request_for(None))
            .await
            .expect("no distinct id, no budget");
    }
    model.chat(&request_for(Some("user"))).await.unwrap();
    assert!(model
        .chat(&request_for(Some("user")))
        .await
        .unwrap_err()
        .is_budget());
    assert!(harness.monitor.check("batch-job").is_ok());
    assert!(harness.monitor.check("vip").is_ok());
    assert!(harness.monitor.check("someone-new").is_ok());
}

#[tokio::test]
async fn alerts_reach_the_callback_on_the_monitors_thread() {
    type Seen = Vec<(AlertState, String, Option<String>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let record = Arc::clone(&seen);
    let harness = Harness::new(move |builder| {
        builder
            .rule(Rule::above("calls", Metric::Calls, Scope::Model, 1.0))
            .on_alert(move |alert| {
                let thread = std::thread::current().name().map(str::to_owned);
                record
                    .lock()
                    .unwrap()
                    .push((alert.state, alert.rule.clone(), thread));
            })
    });
    harness.capture(call("m", None, "t1", 1, 1));
    harness.capture(call("m", None, "t2", 1, 1));
    harness.monitor.flush(FLUSH).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(
            AlertState::Raised,
            "calls".to_owned(),
            Some("traced-llm-monitor".to_owned())
        )]
    );
}

#[tokio::test]
async fn alert_events_fed_back_to_the_monitor_are_not_counted() {
    let harness = Harness::with_rule(Rule::above("calls", Metric::Calls, Scope::Model, 0.0));
    harness.capture(call("m", None, "t1", 1, 1));
    harness.monitor.flush(FLUSH).await.unwrap();
    for event in harness.alerts.events() {
        harness.capture(event);
    }
    assert_eq!(harness.monitor.stats().events, 1);
}

#[tokio::test]
async fn a_snapshot_shows_every_keys_window() {
    let harness = Harness::new(|builder| builder);
    let mut streamed = Generation::new("claude-sonnet-4-5", "anthropic");
    streamed.envelope.distinct_id = Some("user_1".into());
    // Anthropic reports cache tokens apart: 1,000 + 3,000 read + 500 written = 4,500 prompt.
    streamed.cache_tokens_in_input = false;
    streamed.usage = Usage::new(1_000, 200)
        .with_cache_read(3_000)
        .with_cache_creation(500);
    streamed.latency = Duration::from_secs(3);
    streamed.time_to_first_token = Some(Duration::from_millis(400));
    harness.capture(streamed.into());
    harness.capture(failed("claude-sonnet-4-5", "t", ErrorKind::RateLimit, 429));

    let snapshot = harness.monitor.snapshot();
    assert_eq!(snapshot.window_seconds, 600.0);
    let model = snapshot.get(Scope::Model, "claude-sonnet-4-5").unwrap();
    assert_eq!(
        (model.calls, model.errors, model.error_rate),
        (2, 1, Some(0.5))
    );
    assert_eq!(
        (
            model.input_tokens,
            model.cached_tokens,
            model.output_tokens,
            model.tokens
        ),
        (4_500, 3_000, 200, 4_700)
    );
    // The built-in price: 1,000 × $3 + 3,000 × $0.30 + 500 × $3.75 + 200 × $15, per million.
    assert!(
        (model.cost_usd - 0.008_775).abs() < 1e-9,
        "{}",
        model.cost_usd
    );
    assert_eq!(model.ttft_p50_s, Some(0.4));
    assert_eq!(model.latency_p99_s, Some(3.0));
    assert_eq!(model.errors_by_kind.get("rate_limit"), Some(&1));
    assert_eq!(snapshot.get(Scope::Provider, "openai").unwrap().errors, 1);
    assert_eq!(snapshot.get(Scope::Provider, "anthropic").unwrap().calls, 1);
    assert_eq!(snapshot.distinct_ids.len(), 1);

    // It serializes for a health page.
    let json = serde_json::to_value(&snapshot).unwrap();
    assert_eq!(json["models"][0]["key"], "claude-sonnet-4-5");
    assert_eq!(json["models"][0]["errors_by_kind"]["rate_limit"], 1);
    assert_eq!(json["stats"]["events"], 2);
}

const RULES_TOML: &str = r#"
window = "5m"
buckets = 5

[budget]
tokens = 50000

[[rules]]
name = "tokens-per-user"
metric = "tokens"
per = "distinct_id"
above = 2000
cooldown = "1h"

[[rules]]
name = "slow"
metric = "latency_p95"
per = "model"
key = "gpt-5.5"
above = 20
"#;

#[tokio::test]
async fn rules_come_from_a_toml_or_json_file() {
    let config = MonitorConfig::from_toml_str(RULES_TOML).unwrap();
    assert_eq!(config.window, Some(5 * MINUTE));
    assert_eq!(config.rules[1].key(), Some("gpt-5.5"));
    let harness = Harness::new(|builder| builder.config(config));
    assert_eq!(harness.monitor.window(), 5 * MINUTE);
    assert_eq!(harness.monitor.rules().len(), 2);
    assert_eq!(harness.monitor.rules()[0].cooldown_duration(), 60 * MINUTE);
    harness.capture(call("gpt-5-mini", Some("u"), "t", 2_000, 1));
    let alerts = harness.alert_json().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0]["properties"]["alert_window_seconds"],
        json!(300.0)
    );

    let json = r#"{
        "window": 600,
        "rules": [
            {"name": "errors", "metric": "error_rate", "per": "provider", "above": 0.5, "min_calls": 4}
        ]
    }"#;
    let config = MonitorConfig::from_json_str(json).unwrap();
    assert_eq!(config.window, Some(10 * MINUTE));
    assert_eq!(config.rules[0].min_calls_needed(), 4);

    // From a path, at build; code settings win over the file's.
    let dir = std::env::temp_dir().join(format!("traced-llm-monitor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.toml");
    std::fs::write(&path, RULES_TOML).unwrap();
    let monitor = Monitor::builder()
        .rules_file(&path)
        .window(2 * MINUTE)
        .evaluate_every(Duration::ZERO)
        .build()
        .unwrap();
    assert_eq!(monitor.window(), 2 * MINUTE);
    assert_eq!(monitor.rules().len(), 2);
    std::fs::remove_dir_all(&dir).ok();
}

fn toml_error(text: &str) -> (usize, String) {
    let err = MonitorConfig::from_toml_str(text).expect_err("a bad file");
    (err.line.expect("the error names a line"), err.to_string())
}

#[test]
fn a_bad_rules_file_is_an_error_that_names_the_line() {
    let (line, message) = toml_error(
        r#"window = "10m"

[[rules]]
name = "tokens"
metric = "tokenz"
per = "model"
above = 5
"#,
    );
    assert_eq!(line, 5);
    assert!(message.contains("at line 5"), "{message}");
    assert!(message.contains("unknown metric `tokenz`"), "{message}");

    let (line, message) =
        toml_error("[[rules]]\nname = \"a\"\nmetric = \"tokens\"\nper = \"model\"\nabve = 5\n");
    assert_eq!(line, 5);
    assert!(message.contains("unknown field `abve`"), "{message}");

    let (line, message) = toml_error("window = \"ten minutes\"\n");
    assert_eq!(line, 1);
    assert!(message.contains("is not a duration"), "{message}");

    let (line, message) =
        toml_error("[[rules]]\nname = \"x\"\nmetric = \"tokens\"\nper = \"team\"\nabove = 1\n");
    assert_eq!(line, 4);
    assert!(message.contains("unknown variant `team`"), "{message}");

    // A rule that parses but cannot work is named by its table.
    let (line, message) = toml_error(
        "buckets = 10\n\n[[rules]]\nname = \"rate\"\nmetric = \"error_rate\"\nper = \"model\"\nabove = 20\n",
    );
    assert_eq!(line, 3, "{message}");
    assert!(
        message.contains("rule `rate`: an error rate is between 0 and 1"),
        "{message}"
    );

    let (_, message) =
        toml_error("[[rules]]\nname = \"x\"\nmetric = \"tokens\"\nper = \"model\"\n");
    assert!(
        message.contains("needs `above = <threshold>` or `unusual = <factor>`"),
        "{message}"
    );

    let (line, message) = toml_error("window = \"10m\"\nbuckets = [\n");
    assert!(line >= 2, "{message}");

    let err = MonitorConfig::from_json_str(
        "{\n  \"window\": 600,\n  \"rules\": [\n    {\"name\": 1}\n  ]\n}",
    )
    .unwrap_err();
    assert_eq!(err.line, Some(4));
    assert!(err.message.contains("invalid type"), "{}", err.message);
}

#[test]
fn a_bad_rules_file_fails_the_build_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("traced-llm-bad-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.toml");
    std::fs::write(
        &path,
        "[[rules]]\nname = \"x\"\nmetric = \"tokens\"\nper = \"model\"\nunusual = 0\n",
    )
    .unwrap();
    let err = Monitor::builder().rules_file(&path).build().unwrap_err();
    match &err {
        MonitorError::Config(config) => {
            assert_eq!(
                config.origin.as_deref(),
                Some(path.display().to_string().as_str())
            );
            assert!(config.line.is_some());
        }
        other => panic!("expected a config error, got {other:?}"),
    }
    assert!(err.to_string().contains("rules.toml at line"), "{err}");
    let missing = Monitor::builder()
        .rules_file(dir.join("missing.toml"))
        .build()
        .unwrap_err();
    assert!(
        missing.to_string().contains("cannot read the file"),
        "{missing}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn invalid_rules_and_settings_fail_the_build() {
    let duplicate = Monitor::builder()
        .rule(Rule::above("r", Metric::Calls, Scope::Model, 1.0))
        .rule(Rule::above("r", Metric::Tokens, Scope::Model, 1.0))
        .build()
        .unwrap_err();
    assert!(
        duplicate.to_string().contains("two rules have this name"),
        "{duplicate}"
    );
    let unusual = Monitor::builder()
        .rule(Rule::unusual("u", Metric::Latency(95), Scope::Model, 2.0))
        .build()
        .unwrap_err();
    assert!(
        unusual.to_string().contains("keeps no baseline"),
        "{unusual}"
    );
    assert!(Monitor::builder().buckets(0).build().is_err());
    assert!(Monitor::builder().max_distinct_ids(0).build().is_err());
    assert!(Monitor::builder()
        .budget(Budget::cost_usd(f64::NAN))
        .build()
        .is_err());
}
