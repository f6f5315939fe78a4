//! The service in-process, with an in-memory sink, a manual clock and a model of the test's
//! choosing; requests through `tower::ServiceExt::oneshot`, and readable views of the events.

#![allow(dead_code)]

pub mod webdriver;

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::response::Response;
use axum::Router;
use chat_service::auth::SessionKey;
use chat_service::{app, ChatConfig};
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use tower::ServiceExt;
use traced_llm::event::Event;
use traced_llm::monitor::{Clock, ManualClock};
use traced_llm::posthog::{capture_event, event_name};
use traced_llm::sink::InMemorySink;
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{LlmModel, StreamEvent};

pub const FLAG: &str = "chat-model-params";

/// Monotonic time from the manual clock, the wall clock at a fixed moment plus it: session
/// cookies and the monitor's windows both follow the test.
#[derive(Debug, Clone, Default)]
pub struct TestClock(pub ManualClock);

impl Clock for TestClock {
    fn now(&self) -> Duration {
        self.0.now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + self.0.now()
    }
}

pub struct TestService {
    pub router: Router,
    pub events: InMemorySink,
    pub clock: TestClock,
}

/// Flag definitions that give every user `variant`.
pub fn everyone_gets(variant: &str) -> Value {
    json!({
        "flags": [{
            "id": 7, "key": FLAG, "active": true, "version": 3,
            "filters": {
                "groups": [{"properties": [], "rollout_percentage": 100}],
                "multivariate": {"variants": [
                    {"key": "control", "rollout_percentage": if variant == "control" { 100 } else { 0 }},
                    {"key": "concise", "rollout_percentage": if variant == "concise" { 100 } else { 0 }}
                ]},
                "payloads": {
                    "control": "{\"temperature\": 0.7, \"max_tokens\": 400}",
                    "concise": "{\"temperature\": 0.2, \"max_tokens\": 60}"
                }
            }
        }],
        "group_type_mapping": {}
    })
}

/// The offline configuration over `events` and `clock`, everyone in the control variant.
pub fn config(events: &InMemorySink, clock: &TestClock) -> ChatConfig {
    ChatConfig::offline()
        .session_key(SessionKey::from_secret("a test secret of enough bytes").unwrap())
        .sink(events.clone())
        .clock(clock.clone())
        .flag_definitions(everyone_gets("control"))
}

impl TestService {
    pub fn new(model: impl LlmModel + 'static) -> Self {
        Self::with(|config| config.model(model))
    }

    pub fn with(adjust: impl FnOnce(ChatConfig) -> ChatConfig) -> Self {
        let events = InMemorySink::new();
        let clock = TestClock::default();
        let router = app(adjust(config(&events, &clock))).expect("the service builds");
        Self {
            router,
            events,
            clock,
        }
    }

    pub async fn send(&self, request: Request<Body>) -> Response {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible")
    }

    /// Signs in and returns the `Cookie` header value to send back.
    pub async fn sign_in(&self, username: &str, password: &str) -> String {
        let response = self
            .send(post_json(
                "/api/session",
                None,
                json!({"username": username, "password": password}),
            ))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        set_cookie.split(';').next().unwrap().to_owned()
    }

    pub async fn chat(&self, cookie: &str, body: Value) -> Response {
        self.send(post_json("/api/chat", Some(cookie), body)).await
    }

    /// Generation events, as PostHog properties.
    pub fn generations(&self) -> Vec<Map<String, Value>> {
        self.named("$ai_generation")
    }

    /// Events named `name`, as PostHog properties.
    pub fn named(&self, name: &str) -> Vec<Map<String, Value>> {
        self.events
            .events()
            .iter()
            .filter(|event| event_name(event) == name)
            .map(properties)
            .collect()
    }

    /// The `distinct_id` of the events named `name`.
    pub fn distinct_ids(&self, name: &str) -> Vec<String> {
        self.events
            .events()
            .iter()
            .filter(|event| event_name(event) == name)
            .map(|event| {
                capture_event(event).to_json()["distinct_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }
}

pub fn post_json(path: &str, cookie: Option<&str>, body: Value) -> Request<Body> {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::from(body.to_string())).unwrap()
}

pub fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut request = Request::get(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request.body(Body::empty()).unwrap()
}

pub async fn body_text(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

pub async fn body_json(response: Response) -> Value {
    serde_json::from_str(&body_text(response).await).unwrap()
}

/// The event's PostHog `properties`.
pub fn properties(event: &Event) -> Map<String, Value> {
    match capture_event(event).to_json() {
        Value::Object(mut object) => match object.remove("properties") {
            Some(Value::Object(properties)) => properties,
            other => panic!("properties is not an object: {other:?}"),
        },
        other => panic!("not an object: {other:?}"),
    }
}

/// A model that answers every call with `pieces`, `delay` apart, usage 30 in and 5 out.
pub fn answering(pieces: &[&str], delay: Duration) -> ScriptedModel {
    let mut events = vec![StreamEvent::ResponseMetadata {
        id: Some("chatcmpl-test".into()),
        model: Some("gpt-4o-mini".into()),
    }];
    events.extend(pieces.iter().map(|piece| StreamEvent::text(*piece)));
    events.push(StreamEvent::Usage(Usage::new(30, 5)));
    events.push(StreamEvent::finish("stop"));
    ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("offline://scripted")
        .stream_with_delay(events, delay)
        .repeat_last()
}
