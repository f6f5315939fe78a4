//! The A/B test: the flag's variant payload sets the call's parameters, the events carry
//! `$feature/<key>`, and the exposure is recorded once.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{answering, body_text, everyone_gets, TestService, FLAG};

#[tokio::test]
async fn the_variant_sets_the_parameters_and_is_stamped_on_the_generation() {
    let service = TestService::with(|config| {
        config
            .model(answering(&["Short."], Duration::ZERO))
            .flag_definitions(everyone_gets("concise"))
    });
    let cookie = service.sign_in("alice", "wonderland").await;
    for _ in 0..2 {
        body_text(service.chat(&cookie, json!({"message": "Hi"})).await).await;
    }

    let generations = service.generations();
    assert_eq!(generations.len(), 2);
    for generation in &generations {
        assert_eq!(generation[&format!("$feature/{FLAG}")], "concise");
        assert_eq!(generation["$active_feature_flags"], json!([FLAG]));
        assert_eq!(
            generation["$ai_model_parameters"],
            json!({"temperature": 0.2, "max_tokens": 60, "stream": true})
        );
    }

    // One exposure per user and value, however many calls.
    let exposures = service.named("$feature_flag_called");
    assert_eq!(exposures.len(), 1);
    assert_eq!(exposures[0]["$feature_flag"], FLAG);
    assert_eq!(exposures[0]["$feature_flag_response"], "concise");
    assert_eq!(service.distinct_ids("$feature_flag_called"), ["user_alice"]);
}

#[tokio::test]
async fn the_control_variant_keeps_its_own_parameters() {
    let service = TestService::new(answering(&["Long answer."], Duration::ZERO));
    let cookie = service.sign_in("bob", "builder").await;
    body_text(service.chat(&cookie, json!({"message": "Hi"})).await).await;
    let generation = &service.generations()[0];
    assert_eq!(generation[&format!("$feature/{FLAG}")], "control");
    assert_eq!(
        generation["$ai_model_parameters"],
        json!({"temperature": 0.7, "max_tokens": 400, "stream": true})
    );
}
