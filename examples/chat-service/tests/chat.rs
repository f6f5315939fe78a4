//! `POST /api/chat`: the SSE framing, the call's context on its events, conversations,
//! provider errors, and a client that goes away mid-answer.

mod support;

use std::time::Duration;

use axum::http::{header, StatusCode};
use chat_service::demo::DemoModel;
use serde_json::{json, Value};
use support::{answering, body_json, body_text, properties, TestService};
use traced_llm::posthog::event_name;

#[tokio::test]
async fn the_answer_streams_as_sse_data_frames_then_a_done_frame() {
    let service = TestService::new(answering(&["Hello", ", world", "\nbye"], Duration::ZERO));
    let cookie = service.sign_in("alice", "wonderland").await;
    let response = service.chat(&cookie, json!({"message": "Say hello"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/event-stream"
    );
    let conversation = response.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(response.headers()["x-message-count"], "1");
    let body = body_text(response).await;
    assert_eq!(
        body,
        format!(
            "data: Hello\n\n\
             data: , world\n\n\
             data: \ndata: bye\n\n\
             event: done\ndata: {{\"conversation_id\":\"{conversation}\",\"message_count\":1}}\n\n"
        )
    );
}

#[tokio::test]
async fn every_call_carries_the_user_the_conversation_the_count_and_the_topic() {
    let service = TestService::new(answering(&["Pack ", "layers."], Duration::ZERO));
    let cookie = service.sign_in("alice", "wonderland").await;
    let first = service
        .chat(
            &cookie,
            json!({"message": "What should I pack for Lisbon in April?"}),
        )
        .await;
    let conversation = first.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    body_text(first).await;
    let second = service
        .chat(
            &cookie,
            json!({"message": "And for Porto?", "conversation_id": conversation}),
        )
        .await;
    assert_eq!(second.headers()["x-message-count"], "3");
    body_text(second).await;

    assert_eq!(
        service.distinct_ids("$ai_generation"),
        ["user_alice", "user_alice"]
    );
    let generations = service.generations();
    for (generation, count) in generations.iter().zip([1, 3]) {
        assert_eq!(
            generation["$ai_trace_id"],
            Value::from(conversation.as_str())
        );
        assert_eq!(generation["username"], "alice");
        assert_eq!(generation["message_count"], count);
        assert_eq!(generation["topic"], "pack lisbon april");
        assert_eq!(generation["$ai_span_name"], "chat");
        assert_eq!(generation["$ai_stop_reason"], "stop");
        assert_eq!(generation["$ai_is_error"], false);
        assert_eq!(generation["$ai_input_tokens"], 30);
        assert_eq!(generation["$ai_output_tokens"], 5);
        assert!(generation["$ai_session_id"].is_string());
        assert!(generation["$ai_time_to_first_token"].is_number());
    }
    // The second call sends the whole conversation: system, question, answer, question.
    assert_eq!(
        generations[1]["$ai_input"],
        json!([
            {"role": "system", "content": chat_service::DEFAULT_SYSTEM_PROMPT},
            {"role": "user", "content": "What should I pack for Lisbon in April?"},
            {"role": "assistant", "content": "Pack layers."},
            {"role": "user", "content": "And for Porto?"}
        ])
    );
}

#[tokio::test]
async fn another_users_conversation_is_not_found() {
    let service = TestService::new(answering(&["Hi"], Duration::ZERO));
    let alice = service.sign_in("alice", "wonderland").await;
    let response = service.chat(&alice, json!({"message": "Hello"})).await;
    let conversation = response.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    body_text(response).await;

    let bob = service.sign_in("bob", "builder").await;
    let response = service
        .chat(
            &bob,
            json!({"message": "Hello", "conversation_id": conversation}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        body_json(response).await,
        json!({"error": "This conversation is no longer here; start a new one."})
    );
    assert_eq!(service.generations().len(), 1);
}

#[tokio::test]
async fn a_provider_error_is_a_readable_message_and_a_failed_generation_with_its_exception() {
    let service = TestService::new(DemoModel::new());
    let cookie = service.sign_in("bob", "builder").await;
    let response = service
        .chat(&cookie, json!({"message": "Please #error now"}))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        body_json(response).await,
        json!({"error": "The model provider had a problem (HTTP 503). Please try again."})
    );

    let events = service.events.events();
    let names: Vec<_> = events.iter().map(event_name).collect();
    assert_eq!(
        names,
        ["$feature_flag_called", "$exception", "$ai_generation"]
    );
    let exception = properties(&events[1]);
    let generation = properties(&events[2]);
    assert_eq!(generation["$ai_is_error"], true);
    assert_eq!(generation["$ai_error_type"], "server");
    assert_eq!(generation["$ai_http_status"], 503);
    assert_eq!(generation["username"], "bob");
    assert_eq!(
        generation["$exception_event_id"],
        Value::from(events[1].envelope().uuid.to_string())
    );
    assert_eq!(exception["$ai_trace_id"], generation["$ai_trace_id"]);
    assert_eq!(exception["$exception_list"][0]["type"], "server");
    assert_eq!(service.distinct_ids("$exception"), ["user_bob"]);
}

#[tokio::test]
async fn an_empty_or_oversized_message_is_refused_before_any_call() {
    let service = TestService::with(|config| {
        config
            .model(DemoModel::new())
            .limits(chat_service::Limits::default().max_message_chars(10))
    });
    let cookie = service.sign_in("alice", "wonderland").await;
    let empty = service.chat(&cookie, json!({"message": "   "})).await;
    assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
    let long = service
        .chat(&cookie, json!({"message": "eleven chars"}))
        .await;
    assert_eq!(long.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        body_json(long).await,
        json!({"error": "Messages are limited to 10 characters."})
    );
    assert!(service.events.is_empty());
}

/// A client on a real socket reads the first piece of the answer and hangs up.
#[tokio::test]
async fn a_client_that_disconnects_mid_answer_yields_a_cancelled_generation() {
    let service = TestService::new(answering(
        &["one ", "two ", "three ", "four ", "five ", "six "],
        Duration::from_millis(50),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = service.router.clone();
    let server = tokio::spawn(chat_service::serve(
        listener,
        router,
        std::future::pending(),
    ));

    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://{address}");
    let signed_in = client
        .post(format!("{base}/api/session"))
        .json(&json!({"username": "alice", "password": "wonderland"}))
        .send()
        .await
        .unwrap();
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let mut answer = client
        .post(format!("{base}/api/chat"))
        .header("cookie", &cookie)
        .json(&json!({"message": "Count to six"}))
        .send()
        .await
        .unwrap();
    let conversation = answer.headers()["x-conversation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let first = answer.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: one \n\n");
    drop(answer);
    drop(client);

    // The server notices the closed connection at its next write, within a piece's delay.
    let mut waited = Duration::ZERO;
    while service.generations().is_empty() {
        assert!(
            waited < Duration::from_secs(10),
            "no generation was recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    let generations = service.generations();
    assert_eq!(generations.len(), 1);
    let generation = &generations[0];
    assert_eq!(generation["$ai_stop_reason"], "cancelled");
    assert_eq!(generation["$ai_is_error"], false);
    assert_eq!(
        generation["$ai_trace_id"],
        Value::from(conversation.as_str())
    );
    assert!(generation["$ai_output_choices"][0]["content"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("one "));
    server.abort();
}
