//! The Gemini provider against fakes on loopback, from the documented wire format: request
//! bodies and headers, whole answers, streams split across reads, safety blocks, error bodies,
//! malformed JSON and SSE, embeddings, and the exact `$ai_generation` properties.

mod support;

use serde_json::{json, Value};
use traced_llm::posthog::capture_event;
use traced_llm::provider::Gemini;
use traced_llm::sink::InMemorySink;
use traced_llm::types::{EmbeddingRequest, Tool};
use traced_llm::{ChatRequest, LlmModel, Message, StreamEvent, TracedModel};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use support::sse_server::{Reply, SseServer};

const KEY: &str = "AIza-test-key-123";

fn gemini(base: &str) -> Gemini {
    Gemini::builder()
        .api_key(KEY)
        .base_url(format!("{base}/v1beta"))
        .build()
        .unwrap()
}

fn properties(sink: &InMemorySink) -> Value {
    let events = sink.events();
    assert_eq!(events.len(), 1, "exactly one event per call");
    capture_event(&events[0]).to_json()["properties"].clone()
}

fn request() -> ChatRequest {
    ChatRequest::new("gemini-2.5-flash")
        .message(Message::system("Be terse."))
        .message(Message::user("Weather in Paris?"))
        .tool(Tool::new(
            "get_weather",
            "Current weather",
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        ))
}

const ANSWER: &str = r#"{
  "candidates": [{
    "content": {"role": "model", "parts": [
      {"text": "I should look it up.", "thought": true},
      {"text": "Checking."},
      {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    ]},
    "finishReason": "STOP", "index": 0,
    "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"}]
  }],
  "usageMetadata": {"promptTokenCount": 1200, "candidatesTokenCount": 30, "cachedContentTokenCount": 1000,
                    "thoughtsTokenCount": 70, "totalTokenCount": 1300},
  "modelVersion": "gemini-2.5-flash", "responseId": "resp-abc"
}"#;

#[tokio::test]
async fn a_chat_call_sends_the_key_in_a_header_and_records_exact_properties() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(ANSWER, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(gemini(&server.uri()), sink.clone());
    let response = model.chat(&request()).await.unwrap();
    assert_eq!(response.text(), "Checking.");

    let sent = &server.received_requests().await.unwrap()[0];
    assert!(sent.url.query().is_none(), "the key never goes in the url");
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Be terse."}]})
    );
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "Weather in Paris?"}]}])
    );
    assert_eq!(
        body["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );

    let props = properties(&sink);
    assert_eq!(props["$ai_provider"], "gemini");
    assert_eq!(props["$ai_model"], "gemini-2.5-flash");
    assert_eq!(props["$ai_base_url"], format!("{}/v1beta", server.uri()));
    assert_eq!(props["$ai_input_tokens"], 1200);
    // PostHog adds the thoughts back for Gemini 2.5: output without them, reasoning apart.
    assert_eq!(props["$ai_output_tokens"], 30);
    assert_eq!(props["$ai_reasoning_tokens"], 70);
    assert_eq!(props["$ai_cache_read_input_tokens"], 1000);
    assert_eq!(props["$ai_cache_reporting_exclusive"], false);
    assert_eq!(props["$ai_stop_reason"], "STOP");
    assert_eq!(props["$ai_completion_id"], "resp-abc");
    assert_eq!(props["$ai_http_status"], 200);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "function", "id": "get_weather",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        ]}])
    );
    // The crate's own count keeps the billed total.
    assert_eq!(sink.generations()[0].usage.output_tokens, Some(100));
}

const STREAM: [&str; 3] = [
    r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Thinking","thought":true}]}}],"usageMetadata":{"promptTokenCount":50,"thoughtsTokenCount":12},"modelVersion":"gemini-2.5-pro","responseId":"resp-s1"}"#,
    r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"It is "},{"functionCall":{"name":"get_weather","args":{"city":"Paris"}}}]}}],"usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":4,"thoughtsTokenCount":12},"modelVersion":"gemini-2.5-pro","responseId":"resp-s1"}"#,
    r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"sunny."}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":9,"cachedContentTokenCount":32,"thoughtsTokenCount":12,"totalTokenCount":71},"modelVersion":"gemini-2.5-pro","responseId":"resp-s1"}"#,
];

fn stream_body() -> String {
    STREAM
        .iter()
        .map(|data| format!("data: {data}\r\n\r\n"))
        .collect()
}

#[tokio::test]
async fn a_stream_split_across_reads_carries_the_last_usage_and_calls() {
    for split in [3, 17, 64] {
        let server = SseServer::start(vec![Reply::sse().split_every(split, &stream_body())]).await;
        let sink = InMemorySink::new();
        let model = TracedModel::new(gemini(server.url()), sink.clone());
        let mut request = request();
        request.model = "gemini-2.5-pro".into();
        let mut stream = model.chat_stream(&request).await.unwrap();
        let mut text = String::new();
        while let Some(event) = stream.next().await {
            if let StreamEvent::TextDelta { text: piece } = event.unwrap() {
                text.push_str(&piece);
            }
        }
        assert_eq!(text, "It is sunny.");
        let recorded = &server.requests()[0];
        assert_eq!(
            recorded.path,
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
        );
        assert_eq!(recorded.header("x-goog-api-key"), Some(KEY));

        let props = properties(&sink);
        assert_eq!(props["$ai_input_tokens"], 50, "split {split}");
        assert_eq!(props["$ai_output_tokens"], 9);
        assert_eq!(props["$ai_reasoning_tokens"], 12);
        assert_eq!(props["$ai_cache_read_input_tokens"], 32);
        assert_eq!(props["$ai_stop_reason"], "STOP");
        assert_eq!(props["$ai_completion_id"], "resp-s1");
        assert!(props["$ai_time_to_first_token"].as_f64().is_some());
        assert_eq!(
            props["$ai_output_choices"][0]["content"][1]["function"],
            json!({"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        assert_eq!(sink.generations()[0].usage.output_tokens, Some(21));
    }
}

#[tokio::test]
async fn a_blocked_prompt_is_an_error_event_with_the_block_reason() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[{"category":"HARM_CATEGORY_DANGEROUS_CONTENT","probability":"HIGH","blocked":true}]},"usageMetadata":{"promptTokenCount":7,"totalTokenCount":7},"modelVersion":"gemini-2.5-flash"}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(gemini(&server.uri()), sink.clone());
    let err = model.chat(&request()).await.unwrap_err();
    assert_eq!(err.provider(), Some("gemini"));
    assert_eq!(err.api_error_code(), Some("SAFETY"));
    let props = properties(&sink);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_http_status"], 200);
    assert!(
        props["$ai_error"]
            .as_str()
            .unwrap()
            .contains("the prompt was blocked (SAFETY)"),
        "{props}"
    );

    let server = SseServer::start(vec![Reply::sse().data_events([
        r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":7}}"#,
    ])])
    .await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(gemini(server.url()), sink.clone());
    let mut stream = model.chat_stream(&request()).await.unwrap();
    let mut last = None;
    while let Some(event) = stream.next().await {
        last = Some(event);
    }
    let err = last.unwrap().unwrap_err();
    assert_eq!(err.api_error_code(), Some("PROHIBITED_CONTENT"));
    let props = properties(&sink);
    assert_eq!(props["$ai_is_error"], true);
    assert_eq!(props["$ai_input_tokens"], 7);
}

#[tokio::test]
async fn error_bodies_are_typed_errors_without_the_key() {
    for (status, kind) in [
        (400, "INVALID_ARGUMENT"),
        (429, "RESOURCE_EXHAUSTED"),
        (503, "UNAVAILABLE"),
    ] {
        let server = MockServer::start().await;
        let body = format!(
            r#"{{"error":{{"code":{status},"message":"bad things for {KEY}","status":"{kind}"}}}}"#
        );
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        let sink = InMemorySink::new();
        let model = TracedModel::new(gemini(&server.uri()), sink.clone());
        let err = model.chat(&request()).await.unwrap_err();
        assert!(err.is_status());
        assert_eq!(err.status(), Some(status));
        assert!(!err.to_string().contains(KEY), "{err}");
        assert_eq!(properties(&sink)["$ai_http_status"], status);
    }
}

#[tokio::test]
async fn malformed_json_and_sse_fail_as_decode_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200).set_body_raw("{\"candidates\": [", "application/json"),
        )
        .mount(&server)
        .await;
    let err = gemini(&server.uri()).chat(&request()).await.unwrap_err();
    assert!(err.is_decode());

    let server = SseServer::start(vec![Reply::sse()
        .now("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}]}\n\n")
        .now("data: {not json\n\n")])
    .await;
    let mut stream = gemini(server.url()).chat_stream(&request()).await.unwrap();
    assert!(matches!(
        stream.next().await,
        Some(Ok(StreamEvent::TextDelta { .. }))
    ));
    let err = loop {
        match stream.next().await {
            Some(Err(err)) => break err,
            Some(Ok(_)) => continue,
            None => panic!("no error"),
        }
    };
    assert!(err.is_decode());

    // A body that ends before any finish reason is a broken stream.
    let server = SseServer::start(vec![
        Reply::sse().data_events([r#"{"candidates":[{"content":{"parts":[{"text":"a"}]}}]}"#])
    ])
    .await;
    let mut stream = gemini(server.url()).chat_stream(&request()).await.unwrap();
    stream.next().await.unwrap().unwrap();
    assert!(stream.next().await.unwrap().unwrap_err().is_stream());
}

#[tokio::test]
async fn embeddings_use_embed_content_for_one_text_and_batch_for_many() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-embedding-001:embedContent"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"embedding": {"values": [0.5, 0.25]}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(
            "/v1beta/models/gemini-embedding-001:batchEmbedContents",
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"embeddings": [{"values": [1.0]}, {"values": [2.0]}]})),
        )
        .mount(&server)
        .await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(gemini(&server.uri()), sink.clone());
    let one = model
        .embed(&EmbeddingRequest::new("gemini-embedding-001", ["a"]))
        .await
        .unwrap();
    assert_eq!(one.embeddings, vec![vec![0.5, 0.25]]);
    let many = model
        .embed(&EmbeddingRequest::new("gemini-embedding-001", ["a", "b"]))
        .await
        .unwrap();
    assert_eq!(many.embeddings, vec![vec![1.0], vec![2.0]]);
    let requests = server.received_requests().await.unwrap();
    let batch: Value = serde_json::from_slice(&requests[1].body).unwrap();
    assert_eq!(batch["requests"][1]["model"], "models/gemini-embedding-001");
    let events = sink.events();
    assert_eq!(events.len(), 2);
    let props = capture_event(&events[0]).to_json()["properties"].clone();
    assert_eq!(props["$ai_provider"], "gemini");
    // Gemini reports no token counts for embeddings: none is sent.
    assert_eq!(props.get("$ai_input_tokens"), None);
}

#[tokio::test]
async fn a_tool_round_trip_with_an_image_and_the_generation_config_is_sent_exactly() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"id": "fc-7", "name": "get_weather", "args": {"city": "Rome"}}}
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 80, "candidatesTokenCount": 6, "totalTokenCount": 86},
            "modelVersion": "gemini-2.5-flash", "responseId": "resp-tools"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let sink = InMemorySink::new();
    let model = TracedModel::new(gemini(&server.uri()), sink.clone());
    let request = request()
        .message(Message::assistant_tool_calls([
            traced_llm::types::ToolCall::new("get_weather", "get_weather", r#"{"city":"Paris"}"#),
        ]))
        .message(Message::tool_result("get_weather", r#"{"sky":"clear"}"#))
        .message(Message::user("And where this was taken?").with_part(
            traced_llm::types::ContentPart::image_base64("image/jpeg", "/9j/4AAQ"),
        ))
        .temperature(0.4)
        .top_p(0.95)
        .extra("topK", 32)
        .max_tokens(256)
        .stop("END")
        .stop("STOP HERE")
        .seed(1234)
        .response_format(traced_llm::types::ResponseFormat::JsonObject)
        .extra(
            "responseSchema",
            json!({"type": "OBJECT", "properties": {"city": {"type": "STRING"}}}),
        );
    let response = model.chat(&request).await.unwrap();
    assert_eq!(
        response.tool_calls().collect::<Vec<_>>(),
        vec![&traced_llm::types::ToolCall::new(
            "fc-7",
            "get_weather",
            r#"{"city":"Rome"}"#
        )]
    );

    let sent: Value =
        serde_json::from_slice(&server.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        sent,
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "Weather in Paris?"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"sky": "clear"}}}]},
                {"role": "user", "parts": [
                    {"text": "And where this was taken?"},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                ]},
            ],
            "systemInstruction": {"parts": [{"text": "Be terse."}]},
            "tools": [{"functionDeclarations": [{
                "name": "get_weather",
                "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            }]}],
            "generationConfig": {
                "temperature": 0.4,
                "topP": 0.95,
                "maxOutputTokens": 256,
                "stopSequences": ["END", "STOP HERE"],
                "seed": 1234,
                "responseMimeType": "application/json",
                "topK": 32,
                "responseSchema": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
            },
        })
    );

    let props = properties(&sink);
    assert_eq!(props["$ai_completion_id"], "resp-tools");
    assert_eq!(props["$ai_stop_reason"], "STOP");
    assert_eq!(props["$ai_input_tokens"], 80);
    assert_eq!(props["$ai_output_tokens"], 6);
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "function", "id": "fc-7",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]}])
    );
}

#[tokio::test]
async fn finish_reasons_are_the_stop_reason_and_a_safety_stop_is_no_error() {
    for reason in [
        "MAX_TOKENS",
        "SAFETY",
        "RECITATION",
        "MALFORMED_FUNCTION_CALL",
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": "Partly"}]},
                    "finishReason": reason, "index": 0,
                    "safetyRatings": [{"category": "HARM_CATEGORY_HARASSMENT", "probability": "LOW"}]}],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}
            })))
            .mount(&server)
            .await;
        let server_stream = SseServer::start(vec![Reply::sse().data_events([
            r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Partly"}]}}]}"#,
            &format!(
                r#"{{"candidates":[{{"content":{{"role":"model","parts":[{{"text":""}}]}},"finishReason":"{reason}"}}],"usageMetadata":{{"promptTokenCount":5,"candidatesTokenCount":1}}}}"#
            ),
        ])])
        .await;
        for (base, streamed) in [
            (server.uri(), false),
            (server_stream.url().to_owned(), true),
        ] {
            let sink = InMemorySink::new();
            let model = TracedModel::new(gemini(&base), sink.clone());
            let response = if streamed {
                model
                    .chat_stream(&request())
                    .await
                    .unwrap()
                    .collect_response()
                    .await
                    .unwrap()
            } else {
                model.chat(&request()).await.unwrap()
            };
            assert_eq!(response.text(), "Partly");
            assert_eq!(response.finish_reason.as_deref(), Some(reason));
            let props = properties(&sink);
            assert_eq!(props["$ai_stop_reason"], reason, "streamed {streamed}");
            assert_eq!(props["$ai_is_error"], false);
            assert_eq!(props["$ai_input_tokens"], 5);
            assert_eq!(props["$ai_output_tokens"], 1);
        }
    }
}

#[tokio::test]
async fn from_env_reads_gemini_then_google_api_key_and_the_base_url() {
    // The only test of this binary that touches these variables.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(ANSWER, "application/json"))
        .mount(&server)
        .await;
    std::env::remove_var("GEMINI_API_KEY");
    std::env::remove_var("GOOGLE_API_KEY");
    std::env::set_var("GEMINI_BASE_URL", format!("{}/v1beta", server.uri()));
    let err = Gemini::from_env().unwrap_err();
    assert!(err.is_builder());
    assert!(err.to_string().contains("GEMINI_API_KEY"), "{err}");

    std::env::set_var("GOOGLE_API_KEY", "AIza-google");
    let from_google = Gemini::from_env().unwrap();
    std::env::set_var("GEMINI_API_KEY", "AIza-gemini");
    let from_gemini = Gemini::from_env().unwrap();
    std::env::remove_var("GEMINI_API_KEY");
    std::env::remove_var("GOOGLE_API_KEY");
    std::env::remove_var("GEMINI_BASE_URL");
    assert_eq!(from_google.base_url(), format!("{}/v1beta", server.uri()));
    let debug = format!("{from_google:?} {from_gemini:?}");
    assert!(
        !debug.contains("AIza-google") && !debug.contains("AIza-gemini"),
        "{debug}"
    );

    from_google.chat(&request()).await.unwrap();
    from_gemini.chat(&request()).await.unwrap();
    let sent = server.received_requests().await.unwrap();
    let keys: Vec<_> = sent
        .iter()
        .map(|request| {
            request
                .headers
                .get("x-goog-api-key")
                .unwrap()
                .to_str()
                .unwrap()
        })
        .collect();
    // GEMINI_API_KEY wins when both are set.
    assert_eq!(keys, ["AIza-google", "AIza-gemini"]);
}

#[tokio::test]
async fn a_base_url_that_is_only_a_host_gets_the_api_version() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1beta/models/gemini-2.5-flash:generateContent"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(ANSWER, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/proxy/models/gemini-2.5-flash:generateContent"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(ANSWER, "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    let sink = InMemorySink::new();
    for base in [
        format!("{}/", server.uri()),
        format!("{}/proxy", server.uri()),
    ] {
        let model = Gemini::builder()
            .api_key(KEY)
            .base_url(base)
            .build()
            .unwrap();
        TracedModel::new(model, sink.clone())
            .chat(&request())
            .await
            .unwrap();
    }
    let shown: Vec<_> = sink
        .events()
        .iter()
        .map(|event| capture_event(event).to_json()["properties"]["$ai_base_url"].clone())
        .collect();
    assert_eq!(
        shown,
        [
            format!("{}/v1beta", server.uri()),
            format!("{}/proxy", server.uri())
        ]
    );
}
