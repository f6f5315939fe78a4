//! 👍/👎: `$ai_feedback` for the conversation's trace, from the user who gave it.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use support::{answering, body_text, post_json, TestService};

#[tokio::test]
async fn thumbs_up_sends_ai_feedback_for_the_trace_with_the_users_distinct_id() {
    let service = TestService::new(answering(&["Fine."], Duration::ZERO));
    let cookie = service.sign_in("alice", "wonderland").await;
    let answer = service.chat(&cookie, json!({"message": "Hi"})).await;
    let conversation = answer.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    body_text(answer).await;

    for rating in ["up", "down"] {
        let response = service
            .send(post_json(
                "/api/feedback",
                Some(&cookie),
                json!({"conversation_id": conversation, "rating": rating, "message_count": 1}),
            ))
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    let mut feedback = service.named("$ai_feedback");
    for properties in &mut feedback {
        properties.remove("$lib_version");
        properties.remove("$ai_lib_version");
    }
    let expected = |score: f64| -> Map<String, Value> {
        let value = json!({
            "$ai_trace_id": conversation,
            "$ai_feedback_score": score,
            "$lib": "traced-llm",
            "$ai_lib": "traced-llm",
            "username": "alice",
            "message_count": 1,
        });
        value.as_object().unwrap().clone()
    };
    assert_eq!(feedback, [expected(1.0), expected(0.0)]);
    assert_eq!(
        service.distinct_ids("$ai_feedback"),
        ["user_alice", "user_alice"]
    );
}

#[tokio::test]
async fn feedback_on_a_conversation_that_is_not_the_users_is_404_and_sends_nothing() {
    let service = TestService::new(answering(&["Fine."], Duration::ZERO));
    let alice = service.sign_in("alice", "wonderland").await;
    let answer = service.chat(&alice, json!({"message": "Hi"})).await;
    let conversation = answer.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    body_text(answer).await;

    let bob = service.sign_in("bob", "builder").await;
    let response = service
        .send(post_json(
            "/api/feedback",
            Some(&bob),
            json!({"conversation_id": conversation, "rating": "up"}),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(service.named("$ai_feedback").is_empty());
}
