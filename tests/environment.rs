//! Configuration from the environment: code wins, then the environment, then the defaults,
//! applied inside every `build()`. One test, run in order, since the process environment is
//! shared by every test of a binary.

mod support;

use std::time::Duration;

use support::capture_server::CaptureServer;
use traced_llm::posthog::{PosthogSink, PosthogSinkBuilder};
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{ChatRequest, ChatResponse, LlmModel, Message, TracedModel};

const KEY: &str = "phc_environment_test_key_0123456789";

#[tokio::test]
async fn posthog_settings_come_from_code_then_environment_then_defaults() {
    std::env::remove_var("POSTHOG_API_KEY");
    std::env::remove_var("POSTHOG_HOST");

    // No key anywhere: the error says where to put one.
    let err = PosthogSinkBuilder::new().build().unwrap_err();
    assert!(err.is_builder());
    assert!(err.to_string().contains("POSTHOG_API_KEY"), "{err}");
    let err = TracedModel::builder(ScriptedModel::new())
        .try_build()
        .unwrap_err();
    assert!(
        err.is_builder() && err.to_string().contains("POSTHOG_API_KEY"),
        "{err}"
    );

    // A blank key is named as blank, not as missing.
    std::env::set_var("POSTHOG_API_KEY", "   ");
    let err = PosthogSinkBuilder::new().build().unwrap_err();
    assert!(err.to_string().contains("set but blank"), "{err}");

    // The plain builder reads the environment inside build().
    let server = CaptureServer::start(vec![]);
    std::env::set_var("POSTHOG_API_KEY", KEY);
    std::env::set_var("POSTHOG_HOST", server.url());
    let from_builder = PosthogSink::builder().build().unwrap();
    assert_eq!(from_builder.url(), format!("{}/batch/", server.url()));
    let from_env = PosthogSink::from_env().unwrap();
    assert_eq!(from_env.url(), from_builder.url());
    // What the code sets wins over the environment.
    let from_code = PosthogSink::builder()
        .host("http://127.0.0.1:9")
        .build()
        .unwrap();
    assert_eq!(from_code.url(), "http://127.0.0.1:9/batch/");

    // A traced model built without a sink sends to PostHog from the environment.
    let model = TracedModel::builder(
        ScriptedModel::new()
            .respond(ChatResponse::text_response("hi").with_usage(Usage::new(5, 1))),
    )
    .build();
    std::env::remove_var("POSTHOG_API_KEY");
    std::env::remove_var("POSTHOG_HOST");
    assert!(format!("{:?}", model.sink()).contains("PosthogSink"));
    model
        .chat(&ChatRequest::new("gpt-4o-mini").message(Message::user("hello")))
        .await
        .unwrap();
    model.shutdown(Duration::from_secs(10)).await.unwrap();
    let delivered = server.delivered_events();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0]["properties"]["$ai_input_tokens"], 5);
    assert_eq!(
        server.requests()[0].header("content-encoding"),
        Some("gzip")
    );
    for sink in [from_builder, from_env, from_code] {
        sink.shutdown(Duration::from_secs(1)).await.ok();
    }
}
