//! Prompts from a loopback fake of PostHog's prompt API: caching, stale copies when PostHog
//! fails, the code fallback, labels and versions, and keys kept out of errors.
#![cfg(feature = "prompts")]

use std::time::Duration;

use serde_json::json;
use traced_llm::posthog::prompts::{PromptSource, PromptVersion, Prompts};
use traced_llm::ChatRequest;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const PROJECT_KEY: &str = "phc_prompt_project";
const PERSONAL_KEY: &str = "phx_prompt_personal_secret";
const PROMPT_PATH: &str = "/api/environments/@current/llm_prompts/name/support%20system/";

fn prompts(server: &MockServer, ttl: Duration) -> Prompts {
    prompts_with_timeout(server, ttl, Duration::from_secs(5))
}

fn prompts_with_timeout(server: &MockServer, ttl: Duration, timeout: Duration) -> Prompts {
    Prompts::builder()
        .personal_api_key(PERSONAL_KEY)
        .api_key(PROJECT_KEY)
        .host(server.uri())
        .cache_ttl(ttl)
        .request_timeout(timeout)
        .build()
        .unwrap()
}

fn prompt_body(version: u64) -> serde_json::Value {
    json!({
        "id": "p1",
        "name": "support system",
        "prompt": "You help {{company}}'s customers on the {{tier}} plan.",
        "version": version,
        "config": {"model": "gpt-5-mini", "temperature": 0.2, "max_tokens": 300}
    })
}

#[tokio::test]
async fn a_prompt_is_fetched_once_then_served_from_the_cache() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PROMPT_PATH))
        .and(query_param("token", PROJECT_KEY))
        .and(header(
            "authorization",
            format!("Bearer {PERSONAL_KEY}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(prompt_body(3)))
        .expect(1)
        .mount(&server)
        .await;
    let prompts = prompts(&server, Duration::from_secs(300));
    let first = prompts
        .get("support system", PromptVersion::Latest)
        .await
        .unwrap();
    assert_eq!(first.source, PromptSource::Api);
    assert_eq!(
        (first.name.as_str(), first.version),
        ("support system", Some(3))
    );
    let second = prompts
        .get("support system", PromptVersion::Latest)
        .await
        .unwrap();
    assert_eq!(second.source, PromptSource::Cache);
    assert_eq!(
        second
            .compile([("company", "Acme"), ("tier", "pro")])
            .unwrap(),
        "You help Acme's customers on the pro plan."
    );
    let err = second.compile([("company", "Acme")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "prompt \"support system\" needs variables that were not given: tier"
    );

    let mut request = ChatRequest::new("gpt-5");
    second.apply_config(&mut request).unwrap();
    assert_eq!(request.model, "gpt-5-mini");
    assert_eq!(
        (request.temperature, request.max_tokens),
        (Some(0.2), Some(300))
    );
    let named = request.context.prompt.unwrap();
    assert_eq!(
        (named.name.as_str(), named.version),
        ("support system", Some(3))
    );
}

#[tokio::test]
async fn versions_and_labels_are_asked_for_and_cached_apart() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PROMPT_PATH))
        .and(query_param("version", "1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(prompt_body(1)))
        .expect(1)
        .mount(&server)
        .await;
    let mut labelled = prompt_body(2);
    labelled["label"] = json!("production");
    Mock::given(method("GET"))
        .and(path(PROMPT_PATH))
        .and(query_param("label", "production"))
        .respond_with(ResponseTemplate::new(200).set_body_json(labelled))
        .expect(1)
        .mount(&server)
        .await;
    let prompts = prompts(&server, Duration::from_secs(300));
    for _ in 0..2 {
        let v1 = prompts.get("support system", 1).await.unwrap();
        assert_eq!(v1.version, Some(1));
        let production = prompts
            .get("support system", PromptVersion::label("production"))
            .await
            .unwrap();
        assert_eq!(production.version, Some(2));
        assert_eq!(production.label.as_deref(), Some("production"));
    }
}

#[tokio::test]
async fn a_stale_copy_is_served_when_posthog_fails() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PROMPT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(prompt_body(3)))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(PROMPT_PATH))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    // A zero TTL: every get asks PostHog, and the copy is always stale.
    let prompts = prompts(&server, Duration::ZERO);
    assert_eq!(
        prompts
            .get("support system", PromptVersion::Latest)
            .await
            .unwrap()
            .source,
        PromptSource::Api
    );
    let stale = prompts
        .get("support system", PromptVersion::Latest)
        .await
        .unwrap();
    assert_eq!(stale.source, PromptSource::StaleCache);
    assert_eq!(stale.version, Some(3));
    assert_eq!(stale.error().unwrap().status(), Some(503));
    // Even the fallback variant prefers the stale copy over the code.
    let stale = prompts
        .get_or("support system", PromptVersion::Latest, "in code")
        .await;
    assert_eq!(stale.source, PromptSource::StaleCache);
    prompts.clear_cache(Some("support system"));
    let fallback = prompts
        .get_or(
            "support system",
            PromptVersion::Latest,
            "You help {{company}}.",
        )
        .await;
    assert_eq!(fallback.source, PromptSource::CodeFallback);
    assert_eq!(fallback.template, "You help {{company}}.");
    assert_eq!(fallback.version, None);
    assert_eq!(fallback.error().unwrap().status(), Some(503));
}

#[tokio::test]
async fn with_no_copy_a_failure_is_an_error_or_the_code_fallback() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PROMPT_PATH))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"detail": "Not found."})))
        .mount(&server)
        .await;
    let prompts = prompts(&server, Duration::from_secs(300));
    let err = prompts.get("support system", 9).await.unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert_eq!(
        err.to_string(),
        "posthog: http status 404: prompt \"support system\" (version 9) not found"
    );
    let fallback = prompts.get_or("support system", 9, "Be helpful.").await;
    assert_eq!(fallback.source, PromptSource::CodeFallback);
    assert_eq!(
        fallback.compile(Vec::<(&str, &str)>::new()).unwrap(),
        "Be helpful."
    );
}

#[tokio::test]
async fn a_slow_posthog_times_out_and_keys_stay_out_of_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PROMPT_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(prompt_body(3))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let prompts = prompts_with_timeout(
        &server,
        Duration::from_secs(300),
        Duration::from_millis(300),
    );
    let started = std::time::Instant::now();
    let err = prompts
        .get("support system", PromptVersion::Latest)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(err.is_timeout(), "{err:?}");
    let shown = format!("{err} {err:?} {prompts:?}");
    assert!(!shown.contains("prompt_personal_secret"), "{shown}");
    assert!(!shown.contains(PROJECT_KEY), "{shown}");
}

#[tokio::test]
async fn answers_that_are_not_prompts_are_decode_errors() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(PROMPT_PATH))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"name": "support system"})))
        .mount(&server)
        .await;
    let err = prompts(&server, Duration::from_secs(1))
        .get("support system", PromptVersion::Latest)
        .await
        .unwrap_err();
    assert!(err.is_decode(), "{err:?}");
}

#[test]
fn building_needs_both_keys_of_the_right_kind() {
    let err = |builder: traced_llm::posthog::prompts::PromptsBuilder| builder.build().unwrap_err();
    assert!(err(Prompts::builder()
        .personal_api_key(PROJECT_KEY)
        .api_key(PROJECT_KEY))
    .is_builder());
    assert!(err(Prompts::builder()
        .personal_api_key(PERSONAL_KEY)
        .api_key(PERSONAL_KEY))
    .to_string()
    .contains("project API key"));
}
