//! The monitor's token budget per user: past it, 429 with a clear message, and the refusal
//! recorded; `/metrics` shows the figures.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use support::{answering, body_json, body_text, get, TestService};

#[tokio::test]
async fn past_the_budget_the_chat_answers_429_and_the_refusal_is_recorded() {
    let service = TestService::with(|config| {
        config
            .model(answering(&["Sure."], Duration::ZERO))
            .token_budget(50)
    });
    let cookie = service.sign_in("alice", "wonderland").await;
    // 35 tokens, then 70: the second call crosses the budget, the third is refused.
    for _ in 0..2 {
        let response = service.chat(&cookie, json!({"message": "Go on"})).await;
        assert_eq!(response.status(), StatusCode::OK);
        body_text(response).await;
    }
    let refused = service.chat(&cookie, json!({"message": "Go on"})).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    let message = body_json(refused).await["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.starts_with(
            "You have used your token budget: 70 of 50 tokens in the last 10 minutes. Try again in about "
        ),
        "{message}"
    );

    let generations = service.generations();
    assert_eq!(generations.len(), 3);
    let refusal = &generations[2];
    assert_eq!(refusal["$ai_is_error"], true);
    assert_eq!(refusal["$ai_error_type"], "budget");
    assert_eq!(refusal["username"], "alice");
    assert_eq!(service.distinct_ids("$ai_generation")[2], "user_alice");

    // Another user still has their whole budget.
    let bob = service.sign_in("bob", "builder").await;
    let response = service.chat(&bob, json!({"message": "Hi"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    body_text(response).await;

    let metrics = body_json(service.send(get("/metrics", None)).await).await;
    let alice = metrics["distinct_ids"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["key"] == "user_alice")
        .unwrap();
    assert_eq!(
        (
            &alice["calls"],
            &alice["refused"],
            &alice["tokens"],
            &alice["errors_by_kind"]
        ),
        (&json!(2), &json!(1), &json!(70), &json!({"budget": 1}))
    );
    let model = &metrics["models"][0];
    assert_eq!(
        (&model["key"], &model["tokens"]),
        (&json!("gpt-4o-mini"), &json!(105))
    );
    assert!(model["cost_usd"].as_f64().unwrap() > 0.0);
}
