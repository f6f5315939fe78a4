//! Secrets never leave a provider: the API key a provider was built with is scrubbed from every
//! error text (and so from `$ai_error`), credentials in a base URL authenticate requests but are
//! never shown, and a base URL with a query is refused without repeating it. Each leak path
//! against fakes on loopback, looked for the way an attacker would: in `Display`, `{:#}`,
//! `Debug`, the message, the API type and code, every cause in the `source()` chain, and the
//! whole PostHog event.

mod support;

use std::error::Error as _;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;
use traced_llm::posthog::capture_event;
use traced_llm::provider::{Anthropic, OpenAi};
use traced_llm::sink::InMemorySink;
use traced_llm::{ChatRequest, Error, LlmModel, Message, Result, StreamEvent, TracedModel};
use wiremock::matchers::{basic_auth, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use support::sse_server::{Reply, SseServer};

const KEY: &str = "sk-live-0123456789abcdefSECRET";
const ANTHROPIC_KEY: &str = "sk-ant-api03-0123456789SECRET";
/// The password of the base URLs with credentials; reqwest sends it as basic auth.
const URL_PASSWORD: &str = "url-pass-5678";
/// `user:url-pass-5678`, base64.
const BASIC_CREDENTIALS: &str = "dXNlcjp1cmwtcGFzcy01Njc4";

/// Everything a caller, a log line or PostHog could see of `err`.
fn shown(err: &Error) -> String {
    let mut text = format!(
        "{err}\n{err:#}\n{err:?}\n{}\n{:?}\n{:?}\n",
        err.message(),
        err.api_error_type(),
        err.api_error_code()
    );
    let mut cause = err.source();
    while let Some(error) = cause {
        text.push_str(&format!("{error}\n{error:?}\n"));
        cause = error.source();
    }
    text
}

/// Every event of `sink` as the JSON PostHog receives.
fn events_json(sink: &InMemorySink) -> String {
    let events = sink.events();
    assert!(!events.is_empty(), "the call sent an event");
    events
        .iter()
        .map(|event| capture_event(event).to_json().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails if any of `secrets`, or a long piece of one, is in `text`.
fn assert_hidden(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} leaked in:\n{text}");
        // A cut never leaves a recognisable part behind either.
        let head = &secret[..secret.len().min(12)];
        assert!(
            !text.contains(head),
            "a part of {secret:?} leaked in:\n{text}"
        );
    }
}

/// A port nothing listens on: bind one, then free it.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fake that answers every POST with `answer`.
async fn answering(answer: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer)
        .mount(&server)
        .await;
    server
}

/// OpenAI at `{base}/v1` with [`KEY`], traced into the returned sink.
fn traced_openai(base: &str) -> (TracedModel<OpenAi>, InMemorySink) {
    let sink = InMemorySink::new();
    let model = OpenAi::builder()
        .api_key(KEY)
        .base_url(format!("{base}/v1"))
        .build()
        .unwrap();
    (TracedModel::new(model, sink.clone()), sink)
}

/// `http://host…` as `http://user:url-pass-5678@host…`.
fn with_credentials(url: &str) -> String {
    url.replacen("http://", &format!("http://user:{URL_PASSWORD}@"), 1)
}

fn request() -> ChatRequest {
    ChatRequest::new("gpt-4o").message(Message::user("hi"))
}

async fn stream_error(model: &impl LlmModel) -> Error {
    match model.chat_stream(&request()).await {
        Err(err) => err,
        Ok(stream) => {
            let events: Vec<Result<StreamEvent>> = stream.collect().await;
            events
                .into_iter()
                .find_map(std::result::Result::err)
                .expect("the stream failed")
        }
    }
}

#[tokio::test]
async fn a_key_echoed_in_an_error_body_is_scrubbed_from_the_error_and_the_event() {
    let server = answering(ResponseTemplate::new(401).set_body_json(json!({"error": {
        "message": format!("Incorrect API key provided: {KEY}. Find your key at ..."),
        "type": format!("invalid_request_error for {KEY}"),
        "code": KEY,
    }})))
    .await;
    let (model, sink) = traced_openai(&server.uri());

    let err = model.chat(&request()).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(
        err.message(),
        "Incorrect API key provided: [redacted]. Find your key at ..."
    );
    assert_eq!(err.api_error_code(), Some("[redacted]"));
    assert_hidden(&shown(&err), &[KEY]);
    let event = events_json(&sink);
    assert_hidden(&event, &[KEY]);
    assert!(
        event.contains("Incorrect API key provided: [redacted]"),
        "{event}"
    );

    // The stream path fails the same way.
    let err = stream_error(&model).await;
    assert_eq!(err.status(), Some(401));
    assert_hidden(&shown(&err), &[KEY]);
    assert_hidden(&events_json(&sink), &[KEY]);
}

#[tokio::test]
async fn a_key_in_a_raw_error_page_is_scrubbed_before_the_page_is_cut() {
    // A proxy's HTML page whose echo of the key straddles the 300 characters kept: cut first,
    // the first 14 characters of the key would survive.
    let page = format!("<html>{}{KEY} rejected</html>", "x".repeat(280));
    let server = answering(ResponseTemplate::new(502).set_body_raw(page, "text/html")).await;
    let (model, sink) = traced_openai(&server.uri());
    let err = model.chat(&request()).await.unwrap_err();
    assert_eq!(err.status(), Some(502));
    assert!(
        err.message().contains("x[redacted] rej"),
        "{}",
        err.message()
    );
    assert_hidden(&shown(&err), &[KEY]);
    assert_hidden(&events_json(&sink), &[KEY]);
}

#[tokio::test]
async fn a_key_quoted_by_a_decode_error_is_scrubbed() {
    // serde quotes the string it did not expect: `invalid type: string "sk-live-…"`.
    let server = answering(ResponseTemplate::new(200).set_body_json(json!({"choices": KEY}))).await;
    let (model, sink) = traced_openai(&server.uri());
    let err = model.chat(&request()).await.unwrap_err();
    assert!(err.is_decode(), "{err:?}");
    assert!(err.message().contains("[redacted]"), "{}", err.message());
    assert_hidden(&shown(&err), &[KEY]);
    assert_hidden(&events_json(&sink), &[KEY]);
}

#[tokio::test]
async fn a_key_echoed_by_an_in_stream_error_is_scrubbed() {
    let reply = Reply::sse().data_events([
        r#"{"id":"c1","model":"m","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
        &format!(r#"{{"error":{{"message":"upstream refused key {KEY}","type":"auth {KEY}","code":"{KEY}"}}}}"#),
    ]);
    let server = SseServer::start(vec![reply]).await;
    let (model, sink) = traced_openai(server.url());
    let err = stream_error(&model).await;
    assert!(err.is_stream(), "{err:?}");
    assert_eq!(err.message(), "upstream refused key [redacted]");
    assert_hidden(&shown(&err), &[KEY]);
    let event = events_json(&sink);
    assert_hidden(&event, &[KEY]);
    // The partial answer is still there.
    assert!(event.contains("Hel"), "{event}");
}

#[tokio::test]
async fn a_key_sent_as_a_header_is_scrubbed_like_the_api_key() {
    let server = answering(ResponseTemplate::new(403).set_body_json(json!({
        "error": format!("token {KEY} is not allowed")
    })))
    .await;
    let model = OpenAi::compatible("gateway", format!("{}/v1", server.uri()))
        .header("Authorization", format!("Bearer {KEY}"))
        .build()
        .unwrap();
    let err = model.chat(&request()).await.unwrap_err();
    assert_eq!(err.message(), "token [redacted] is not allowed");
    assert_hidden(&shown(&err), &[KEY]);
    assert_hidden(&format!("{model:?}"), &[KEY]);
}

#[tokio::test]
async fn credentials_in_the_base_url_authenticate_and_never_show() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(basic_auth("user", URL_PASSWORD))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}]
        })))
        .expect(1)
        .mount(&server)
        .await;
    let plain = format!("{}/v1", server.uri());
    let builder = OpenAi::compatible("proxy", with_credentials(&plain));
    assert_hidden(&format!("{builder:?}"), &[URL_PASSWORD, "user:"]);
    let sink = InMemorySink::new();
    let model = builder.build().unwrap();
    assert_eq!(model.base_url(), plain);
    assert_hidden(&format!("{model:?}"), &[URL_PASSWORD, "user:"]);
    let model = TracedModel::new(model, sink.clone());
    assert_eq!(model.base_url(), plain);

    let answer = model.chat(&request()).await.unwrap();
    assert_eq!(answer.text(), "ok");
    let event = capture_event(&sink.events()[0]).to_json();
    assert_eq!(event["properties"]["$ai_base_url"], plain);
    assert_hidden(&event.to_string(), &[URL_PASSWORD, "user:"]);
}

#[tokio::test]
async fn the_url_password_is_scrubbed_when_a_server_echoes_it() {
    let reply = Reply::with_status(401, "application/json").now(format!(
        r#"{{"error":{{"message":"basic auth user:{URL_PASSWORD} refused"}}}}"#
    ));
    let server = SseServer::start(vec![reply]).await;
    let model = OpenAi::compatible("proxy", with_credentials(server.url()))
        .build()
        .unwrap();
    let err = stream_error(&model).await;
    assert_eq!(err.status(), Some(401));
    assert_hidden(&shown(&err), &[URL_PASSWORD]);
    let request = &server.requests()[0];
    assert_eq!(
        request.header("authorization"),
        Some(format!("Basic {BASIC_CREDENTIALS}").as_str())
    );
}

#[tokio::test]
async fn transport_errors_show_the_url_without_credentials() {
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let (model, sink) = traced_openai(&with_credentials(&closed));
    let err = model.chat(&request()).await.unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    let text = shown(&err);
    assert_hidden(&text, &[URL_PASSWORD, "user:", KEY]);
    // The cause still says where the call went.
    assert!(text.contains("127.0.0.1"), "{text}");
    assert_hidden(&events_json(&sink), &[URL_PASSWORD, "user:", KEY]);

    // A stream that times out: the same.
    let mut reply = Reply::sse();
    for _ in 0..20 {
        reply = reply.piece(Duration::from_millis(50), ": still thinking\n\n");
    }
    let server = SseServer::start(vec![reply]).await;
    let model = OpenAi::compatible("proxy", with_credentials(server.url()))
        .api_key(KEY)
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = stream_error(&model).await;
    assert!(err.is_timeout(), "{err:?}");
    assert_hidden(&shown(&err), &[URL_PASSWORD, "user:", KEY]);
}

#[test]
fn a_base_url_with_a_query_is_refused_without_repeating_it() {
    let url = "http://user:PASSWORD-42@127.0.0.1:1/v1?key=QUERY-SECRET-42";
    let errors = [
        OpenAi::builder()
            .api_key(KEY)
            .base_url(url)
            .build()
            .unwrap_err(),
        OpenAi::compatible("x", url).build().unwrap_err(),
        OpenAi::azure(url, "2024-10-21", KEY).build().unwrap_err(),
        Anthropic::builder()
            .api_key(ANTHROPIC_KEY)
            .base_url(url)
            .build()
            .unwrap_err(),
    ];
    for err in errors {
        assert!(err.is_builder(), "{err:?}");
        let text = shown(&err);
        assert_hidden(
            &text,
            &["PASSWORD-42", "QUERY-SECRET-42", KEY, ANTHROPIC_KEY],
        );
        assert!(text.contains("key=[redacted]"), "{text}");
    }
    // Nor does a builder's `Debug`.
    let builder = Anthropic::builder().api_key(ANTHROPIC_KEY).base_url(url);
    assert_hidden(
        &format!("{builder:?}"),
        &["PASSWORD-42", "QUERY-SECRET-42", ANTHROPIC_KEY],
    );
}

#[tokio::test]
async fn anthropic_scrubs_its_key_and_hides_url_credentials() {
    let echo = format!(
        r#"{{"type":"error","error":{{"type":"authentication_error","message":"invalid x-api-key {ANTHROPIC_KEY}"}}}}"#
    );
    let stream_echo = format!(
        "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_1\",\"model\":\"claude\",\"usage\":{{\"input_tokens\":3}}}}}}\n\n\
         event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"Overloaded for {ANTHROPIC_KEY}\"}}}}\n\n"
    );
    let server = SseServer::start(vec![
        Reply::with_status(401, "application/json").now(&echo),
        Reply::sse().now(&stream_echo),
    ])
    .await;
    let sink = InMemorySink::new();
    let model = Anthropic::builder()
        .api_key(ANTHROPIC_KEY)
        .base_url(with_credentials(server.url()))
        .build()
        .unwrap();
    assert_eq!(model.base_url(), server.url());
    assert_hidden(
        &format!("{model:?}"),
        &[ANTHROPIC_KEY, URL_PASSWORD, "user:"],
    );
    let model = TracedModel::new(model, sink.clone());

    let err = model.chat(&request()).await.unwrap_err();
    assert_eq!(err.message(), "invalid x-api-key [redacted]");
    assert_hidden(&shown(&err), &[ANTHROPIC_KEY]);

    let err = stream_error(&model).await;
    assert!(err.is_stream(), "{err:?}");
    assert_eq!(err.message(), "Overloaded for [redacted]");
    assert_hidden(&shown(&err), &[ANTHROPIC_KEY]);
    assert_hidden(&events_json(&sink), &[ANTHROPIC_KEY, URL_PASSWORD, "user:"]);

    let requests = server.requests();
    assert_eq!(requests[0].header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Basic {BASIC_CREDENTIALS}").as_str())
    );
}
