//! PostHog feature flags against loopback fakes of `/flags` and the local-evaluation
//! definitions: the published hashing vectors, fallback to the server, timeouts, caching.
#![cfg(feature = "flags")]

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use traced_llm::flags::{FlagOrigin, FlagRequest, FlagSource, FlagValue};
use traced_llm::posthog::flags::PosthogFlags;
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const PROJECT_KEY: &str = "phc_test_project";
const PERSONAL_KEY: &str = "phx_test_personal_secret";

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/flag_vectors.json")).unwrap()
}

/// A `/flags` v2 answer with one flag.
fn flags_answer(key: &str, enabled: bool, variant: Option<&str>, payload: Option<&str>) -> Value {
    json!({
        "flags": {key: {
            "key": key, "enabled": enabled, "variant": variant,
            "reason": {"code": "condition_match", "description": "Matched condition set 1"},
            "metadata": {"id": 9, "version": 2, "payload": payload}
        }},
        "errorsWhileComputingFlags": false,
        "requestId": "req-42"
    })
}

#[tokio::test]
async fn local_evaluation_matches_posthogs_published_vectors() {
    let vectors = vectors();
    let flags = builder()
        .definitions(vectors["definitions"].clone())
        .build()
        .unwrap();
    for key in ["simple-flag", "multivariate-flag"] {
        let expected = vectors[key].as_array().unwrap();
        assert_eq!(expected.len(), 1000);
        for (i, expected) in expected.iter().enumerate() {
            let request = FlagRequest::new(format!("distinct_id_{i}")).key(key);
            let snapshot = flags.evaluate(&request).await;
            assert!(snapshot.error().is_none(), "{:?}", snapshot.error());
            let flag = snapshot.get(key).unwrap();
            assert_eq!(flag.origin, FlagOrigin::Local);
            let expected = match expected {
                Value::Bool(enabled) => FlagValue::Bool(*enabled),
                Value::String(variant) => FlagValue::variant(variant.as_str()),
                other => panic!("unexpected vector {other}"),
            };
            assert_eq!(flag.value, expected, "{key} for distinct_id_{i}");
        }
    }
}

#[tokio::test]
async fn polled_definitions_are_evaluated_locally_with_no_call_to_flags() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/feature_flag/local_evaluation/"))
        .and(query_param("token", PROJECT_KEY))
        .and(header(
            "authorization",
            format!("Bearer {PERSONAL_KEY}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(vectors()["definitions"].clone())
                .insert_header("ETag", "\"v1\""),
        )
        .expect(1..)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/flags/"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let flags = builder()
        .api_key(PROJECT_KEY)
        .personal_api_key(PERSONAL_KEY)
        .host(server.uri())
        .build()
        .unwrap();
    let snapshot = flags
        .evaluate(&FlagRequest::new("distinct_id_0").key("multivariate-flag"))
        .await;
    assert!(flags.has_definitions());
    assert_eq!(
        snapshot.get("multivariate-flag").unwrap().value,
        FlagValue::variant("second-variant")
    );
    assert!(snapshot.error().is_none());
}

#[tokio::test]
async fn flags_local_evaluation_cannot_decide_are_asked_of_the_server() {
    let server = MockServer::start().await;
    let definitions = json!({"flags": [
        {"key": "local", "active": true, "filters": {"groups": [{"properties": [], "rollout_percentage": 100}]}},
        {"key": "cohort-flag", "active": true, "filters": {"groups": [{"properties": [{"key": "id", "value": 3, "type": "cohort"}]}]}},
        {"key": "plan-flag", "active": true, "filters": {"groups": [{"properties": [{"key": "plan", "value": "pro"}]}]}},
        {"key": "odd-operator", "active": true, "filters": {"groups": [{"properties": [{"key": "plan", "value": "pro", "operator": "sounds_like"}]}]}}
    ]});
    Mock::given(method("GET"))
        .and(path("/api/feature_flag/local_evaluation/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(definitions))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/flags/"))
        .and(query_param("v", "2"))
        .and(body_partial_json(json!({
            "api_key": PROJECT_KEY,
            "distinct_id": "user_1",
            "flag_keys_to_evaluate": ["cohort-flag", "odd-operator", "plan-flag"],
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "flags": {
                "cohort-flag": {"key": "cohort-flag", "enabled": true, "variant": null},
                "plan-flag": {"key": "plan-flag", "enabled": false, "variant": null},
                "odd-operator": {"key": "odd-operator", "enabled": true, "variant": "b"}
            },
            "errorsWhileComputingFlags": false
        })))
        .expect(1)
        .mount(&server)
        .await;
    let flags = builder()
        .api_key(PROJECT_KEY)
        .personal_api_key(PERSONAL_KEY)
        .host(server.uri())
        .build()
        .unwrap();
    // No `plan` property given: plan-flag cannot be decided here either.
    let snapshot = flags.evaluate(&FlagRequest::new("user_1")).await;
    assert!(snapshot.error().is_none(), "{:?}", snapshot.error());
    let origin_and_value = |key: &str| {
        let flag = snapshot.get(key).unwrap();
        (flag.origin, flag.value.clone())
    };
    assert_eq!(
        origin_and_value("local"),
        (FlagOrigin::Local, FlagValue::Bool(true))
    );
    assert_eq!(
        origin_and_value("cohort-flag"),
        (FlagOrigin::Remote, FlagValue::Bool(true))
    );
    assert_eq!(
        origin_and_value("plan-flag"),
        (FlagOrigin::Remote, FlagValue::Bool(false))
    );
    assert_eq!(
        origin_and_value("odd-operator"),
        (FlagOrigin::Remote, FlagValue::variant("b"))
    );
    assert_eq!(
        snapshot.active_keys().collect::<Vec<_>>(),
        ["cohort-flag", "local", "odd-operator"]
    );
}

#[tokio::test]
async fn remote_answers_are_cached_per_request_for_their_ttl() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/flags/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(flags_answer(
            "llm-params",
            true,
            Some("small"),
            Some(r#"{"model":"gpt-5-mini","temperature":0.3}"#),
        )))
        .expect(3)
        .mount(&server)
        .await;
    let flags = builder()
        .api_key(PROJECT_KEY)
        .host(server.uri())
        .cache_ttl(Duration::from_secs(60))
        .max_cached(1)
        .build()
        .unwrap();
    let alice = FlagRequest::new("alice").key("llm-params");
    let bob = FlagRequest::new("bob").key("llm-params");
    for _ in 0..3 {
        let snapshot = flags.evaluate(&alice).await;
        let flag = snapshot.get("llm-params").unwrap();
        assert_eq!(flag.value, FlagValue::variant("small"));
        assert_eq!(
            flag.payload,
            Some(json!({"model": "gpt-5-mini", "temperature": 0.3}))
        );
        assert_eq!(flag.reason.as_deref(), Some("Matched condition set 1"));
        assert_eq!(flag.request_id.as_deref(), Some("req-42"));
    }
    // One answer fits: bob pushes alice out, so alice is asked again.
    flags.evaluate(&bob).await;
    flags.evaluate(&alice).await;
    assert_eq!(flags.cached_answers(), 1);
}

#[tokio::test]
async fn a_slow_server_gives_defaults_and_a_timeout_error_in_time() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/flags/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(flags_answer("llm-params", true, Some("small"), None))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let flags = builder()
        .api_key(PROJECT_KEY)
        .host(server.uri())
        .request_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let snapshot = flags
        .evaluate(&FlagRequest::new("alice").key("llm-params"))
        .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let error = snapshot.error().expect("a timeout error");
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(error.provider(), Some("posthog"));
    assert!(snapshot.get("llm-params").is_none());
    assert_eq!(snapshot.value("llm-params"), FlagValue::Bool(false));
    assert_eq!(snapshot.variant_or("llm-params", "control"), "control");
}

#[tokio::test]
async fn a_failing_server_gives_defaults_and_a_status_error_without_the_key() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/flags/"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "type": "authentication_error", "detail": "Project API key invalid."
        })))
        .mount(&server)
        .await;
    let flags = builder()
        .api_key(PROJECT_KEY)
        .host(server.uri())
        .build()
        .unwrap();
    let snapshot = flags.evaluate(&FlagRequest::new("alice")).await;
    let error = snapshot.error().unwrap();
    assert_eq!(error.status(), Some(401));
    assert_eq!(
        error.to_string(),
        "posthog: http status 401: flags: Project API key invalid."
    );
    assert!(snapshot.is_empty());
    assert!(!snapshot.is_enabled("anything"));
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let flags = builder()
        .api_key(PROJECT_KEY)
        .personal_api_key(PERSONAL_KEY)
        .host(format!("http://{address}"))
        .request_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let snapshot = flags.evaluate(&FlagRequest::new("alice").key("x")).await;
    let error = snapshot.error().unwrap();
    assert!(error.is_connect() || error.is_timeout(), "{error:?}");
    let shown = format!("{error} {error:?} {flags:?}");
    assert!(!shown.contains("test_personal_secret"), "{shown}");
    assert!(!shown.contains(PROJECT_KEY), "{shown}");
    let loaded = flags.load_definitions().await.unwrap_err();
    assert!(!format!("{loaded:?}").contains(PROJECT_KEY), "{loaded:?}");
}

#[tokio::test]
async fn definitions_are_fetched_again_with_their_etag() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/feature_flag/local_evaluation/"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .expect(1..)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/feature_flag/local_evaluation/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(vectors()["definitions"].clone())
                .insert_header("ETag", "\"v1\""),
        )
        .expect(1)
        .mount(&server)
        .await;
    let flags = builder()
        .api_key(PROJECT_KEY)
        .personal_api_key(PERSONAL_KEY)
        .host(server.uri())
        .build()
        .unwrap();
    flags.load_definitions().await.unwrap();
    flags.load_definitions().await.unwrap();
    assert!(flags.has_definitions());
    let snapshot = flags
        .evaluate(&FlagRequest::new("distinct_id_1").key("simple-flag"))
        .await;
    assert_eq!(
        snapshot.get("simple-flag").unwrap().value,
        FlagValue::Bool(true)
    );
    flags.stop_polling();
}

#[tokio::test]
async fn bad_configuration_is_refused_by_build() {
    let err = |builder: traced_llm::posthog::flags::PosthogFlagsBuilder| {
        builder.build().unwrap_err().to_string()
    };
    assert!(err(builder().api_key(PERSONAL_KEY)).contains("phx_"));
    assert!(
        err(builder().api_key(PROJECT_KEY).personal_api_key(PROJECT_KEY))
            .contains("personal API key")
    );
    assert!(err(builder().api_key(PROJECT_KEY).host("ftp://x")).contains("http(s)"));
    assert!(err(builder()
        .api_key(PROJECT_KEY)
        .request_timeout(Duration::ZERO))
    .contains("timeout"));
    assert!(err(builder().definitions_file("/nonexistent/flags.json"))
        .contains("cannot read flag definitions"));
    let shown = format!(
        "{:?}",
        builder()
            .api_key(PROJECT_KEY)
            .personal_api_key(PERSONAL_KEY)
    );
    assert!(
        !shown.contains("test_personal_secret") && !shown.contains("test_project"),
        "{shown}"
    );
}

/// The fake sees the keys only where PostHog expects them.
#[tokio::test]
async fn keys_travel_only_where_posthog_reads_them() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/flags/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"flags": {}})))
        .mount(&server)
        .await;
    let flags = builder()
        .api_key(PROJECT_KEY)
        .host(server.uri())
        .build()
        .unwrap();
    flags
        .evaluate(
            &FlagRequest::new("alice")
                .key("k")
                .person_property("plan", "pro")
                .group("company", "acme")
                .group_property("company", "seats", 3),
        )
        .await;
    let requests: Vec<Request> = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 1);
    let body: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        body,
        json!({
            "api_key": PROJECT_KEY,
            "distinct_id": "alice",
            "flag_keys_to_evaluate": ["k"],
            "groups": {"company": "acme"},
            "person_properties": {"plan": "pro"},
            "group_properties": {"company": {"seats": 3}},
            "geoip_disable": true
        })
    );
    assert!(requests[0].headers.get("authorization").is_none());
}

#[tokio::test]
async fn the_poller_picks_up_changed_definitions() {
    let server = MockServer::start().await;
    let definitions = |rollout: u32| json!({"flags": [{"key": "launch", "active": true, "filters": {"groups": [{"properties": [], "rollout_percentage": rollout}]}}]});
    Mock::given(method("GET"))
        .and(path("/api/feature_flag/local_evaluation/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(definitions(0)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/feature_flag/local_evaluation/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(definitions(100)))
        .mount(&server)
        .await;
    let flags = builder()
        .api_key(PROJECT_KEY)
        .personal_api_key(PERSONAL_KEY)
        .host(server.uri())
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap();
    let request = FlagRequest::new("alice").key("launch");
    assert_eq!(
        flags.evaluate(&request).await.value("launch"),
        FlagValue::Bool(false)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if flags.evaluate(&request).await.value("launch") == FlagValue::Bool(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new definitions never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn hanging_definitions_do_not_stall_an_evaluation() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/feature_flag/local_evaluation/"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(vectors()["definitions"].clone())
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/flags/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(flags_answer(
            "simple-flag",
            true,
            None,
            None,
        )))
        .mount(&server)
        .await;
    let flags = builder()
        .api_key(PROJECT_KEY)
        .personal_api_key(PERSONAL_KEY)
        .host(server.uri())
        .request_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let started = Instant::now();
    let snapshot = flags
        .evaluate(&FlagRequest::new("distinct_id_0").key("simple-flag"))
        .await;
    assert!(started.elapsed() < Duration::from_secs(15));
    // The definitions did not come in time: the server answered instead.
    let flag = snapshot.get("simple-flag").unwrap();
    assert_eq!(flag.origin, FlagOrigin::Remote);
    assert!(snapshot.error().is_none());
    assert!(!flags.has_definitions());
}

/// A builder whose host is plain http, so the tests need no TLS feature; every test that talks
/// to a server sets that server's host after it.
fn builder() -> traced_llm::posthog::flags::PosthogFlagsBuilder {
    PosthogFlags::builder().host("http://127.0.0.1:9")
}
