//! Sign-in, the session cookie, and 401 for every API call without a valid one.

mod support;

use std::time::Duration;

use axum::http::{header, StatusCode};
use chat_service::demo::DemoModel;
use serde_json::json;
use support::{body_json, get, post_json, TestService};

#[tokio::test]
async fn the_right_password_sets_a_signed_http_only_strict_cookie() {
    let service = TestService::new(DemoModel::new());
    let response = service
        .send(post_json(
            "/api/session",
            None,
            json!({"username": "alice", "password": "wonderland"}),
        ))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    let (value, attributes) = cookie.split_once("; ").unwrap();
    assert_eq!(
        attributes,
        "HttpOnly; SameSite=Strict; Path=/; Max-Age=43200"
    );
    // `chat_session=v1.<session id>.alice.<issued>.<64 hex digits>`
    let parts: Vec<&str> = value
        .trim_start_matches("chat_session=")
        .split('.')
        .collect();
    assert_eq!(parts.len(), 5, "{value}");
    assert_eq!(
        (parts[0], parts[2], parts[3]),
        ("v1", "alice", "1800000000")
    );
    assert_eq!(parts[4].len(), 64);
    assert!(!cookie.contains("wonderland"));
    assert_eq!(body_json(response).await, json!({"username": "alice"}));

    let me = service.send(get("/api/session", Some(value))).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(body_json(me).await, json!({"username": "alice"}));
}

#[tokio::test]
async fn a_wrong_password_or_an_unknown_user_gets_401_and_no_cookie() {
    let service = TestService::new(DemoModel::new());
    for (username, password) in [("alice", "builder"), ("carol", "wonderland"), ("alice", "")] {
        let response = service
            .send(post_json(
                "/api/session",
                None,
                json!({"username": username, "password": password}),
            ))
            .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(response.headers().get(header::SET_COOKIE).is_none());
        assert_eq!(
            body_json(response).await,
            json!({"error": "Wrong username or password."})
        );
    }
}

#[tokio::test]
async fn api_calls_without_a_cookie_get_401() {
    let service = TestService::new(DemoModel::new());
    let chat = post_json("/api/chat", None, json!({"message": "Hi"}));
    let feedback = post_json(
        "/api/feedback",
        None,
        json!({"conversation_id": "c", "rating": "up"}),
    );
    for request in [chat, feedback, get("/api/session", None)] {
        let response = service.send(request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            body_json(response).await,
            json!({"error": "Please sign in first."})
        );
    }
    assert!(service.events.is_empty());
}

#[tokio::test]
async fn a_tampered_forged_or_expired_cookie_gets_401() {
    let service = TestService::new(DemoModel::new());
    let cookie = service.sign_in("alice", "wonderland").await;
    let as_bob = cookie.replace(".alice.", ".bob.");
    let mut flipped = cookie.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    let unsigned = cookie.rsplit_once('.').unwrap().0.to_owned();
    for bad in [as_bob, flipped, unsigned, "chat_session=garbage".to_owned()] {
        let response = service.chat(&bad, json!({"message": "Hi"})).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad}");
    }

    // Twelve hours and a second later the cookie has expired.
    service.clock.0.advance(Duration::from_secs(12 * 3600 + 1));
    let response = service.send(get("/api/session", Some(&cookie))).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(service.events.is_empty());
}

#[tokio::test]
async fn signing_out_deletes_the_cookie() {
    let service = TestService::new(DemoModel::new());
    let response = service
        .send(
            axum::http::Request::delete("/api/session")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        response.headers()[header::SET_COOKIE],
        "chat_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    );
}
