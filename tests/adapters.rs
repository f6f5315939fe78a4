//! The adapters end to end on loopback fakes: async-openai's own client and types against a
//! fake OpenAI server, and a rig agent over a traced completion model, with the exact
//! `$ai_generation` properties.

mod support;

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionRequestArgs,
};
use async_openai::types::embeddings::CreateEmbeddingRequestArgs;
use async_openai::Client;
use futures_util::StreamExt;
use serde_json::{json, Value};
use traced_llm::adapters::async_openai::TracedClient;
use traced_llm::adapters::rig::TracedCompletionModel;
use traced_llm::posthog::capture_event;
use traced_llm::record::Recorder;
use traced_llm::sink::InMemorySink;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use support::sse_server::{Reply, SseServer};

fn properties(event: &traced_llm::event::Event) -> Value {
    capture_event(event).to_json()["properties"].clone()
}

fn client(base: &str, sink: &InMemorySink) -> TracedClient<OpenAIConfig> {
    let config = OpenAIConfig::new()
        .with_api_key("sk-test")
        .with_api_base(format!("{base}/v1"));
    TracedClient::new(Client::with_config(config), Recorder::new(sink.clone()))
}

fn chat_request() -> CreateChatCompletionRequest {
    CreateChatCompletionRequestArgs::default()
        .model("gpt-4o-mini")
        .temperature(0.2)
        .messages([ChatCompletionRequestUserMessage::from("Hi").into()])
        .build()
        .unwrap()
}

#[tokio::test]
async fn async_openai_create_is_recorded_with_the_servers_counts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-9", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini-2024-07-18",
            "system_fingerprint": "fp_1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1500, "completion_tokens": 20, "total_tokens": 1520,
                      "prompt_tokens_details": {"cached_tokens": 1024},
                      "completion_tokens_details": {"reasoning_tokens": 8}}
        })))
        .mount(&server)
        .await;
    let sink = InMemorySink::new();
    let client = client(&server.uri(), &sink);
    let response = client.chat().create(chat_request()).await.unwrap();
    assert_eq!(
        response.choices[0].message.content.as_deref(),
        Some("Hello!")
    );

    let props = properties(&sink.events()[0]);
    assert_eq!(props["$ai_provider"], "openai");
    assert_eq!(props["$ai_model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(props["$ai_base_url"], format!("{}/v1", server.uri()));
    assert_eq!(props["$ai_input_tokens"], 1500);
    assert_eq!(props["$ai_output_tokens"], 20);
    assert_eq!(props["$ai_cache_read_input_tokens"], 1024);
    assert_eq!(props["$ai_reasoning_tokens"], 8);
    assert_eq!(props["$ai_cache_reporting_exclusive"], false);
    assert_eq!(props["$ai_stop_reason"], "stop");
    assert_eq!(props["$ai_completion_id"], "chatcmpl-9");
    assert_eq!(props["$ai_http_status"], 200);
    assert_eq!(
        props["$ai_input"],
        json!([{"role": "user", "content": "Hi"}])
    );
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]}])
    );
    assert_eq!(props["$ai_model_parameters"]["temperature"], 0.2);
    assert_eq!(props["$ai_provider_metadata"]["system_fingerprint"], "fp_1");
}

#[tokio::test]
async fn async_openai_streams_ask_for_usage_and_are_recorded_once() {
    let chunks = [
        r#"{"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
        r#"{"id":"chatcmpl-s","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"total_tokens":14,"prompt_tokens_details":{"cached_tokens":0}}}"#,
        "[DONE]",
    ];
    let server = SseServer::start(vec![Reply::sse().data_events(chunks)]).await;
    let sink = InMemorySink::new();
    let client = client(server.url(), &sink).include_usage(true);
    let mut stream = client.chat().create_stream(chat_request()).await.unwrap();
    let mut text = String::new();
    while let Some(chunk) = stream.next().await {
        for choice in chunk.unwrap().choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or_default());
        }
    }
    assert_eq!(text, "Hello");
    assert_eq!(
        server.requests()[0].json()["stream_options"],
        json!({"include_usage": true})
    );
    let events = sink.events();
    assert_eq!(events.len(), 1);
    let props = properties(&events[0]);
    assert_eq!(props["$ai_input_tokens"], 12);
    assert_eq!(props["$ai_output_tokens"], 2);
    assert_eq!(props["$ai_stop_reason"], "stop");
    assert_eq!(props["$ai_completion_id"], "chatcmpl-s");
    assert_eq!(props["$ai_model_parameters"]["stream"], true);
    assert!(props["$ai_time_to_first_token"].as_f64().is_some());
    assert_eq!(
        props["$ai_output_choices"][0]["content"],
        json!([{"type": "text", "text": "Hello"}])
    );
}

#[tokio::test]
async fn async_openai_streams_that_do_not_ask_for_usage_leave_the_tokens_out() {
    // What the server sends when nobody asked for `include_usage`: no usage chunk.
    let chunks = [
        r#"{"id":"chatcmpl-n","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-n","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ];
    let server = SseServer::start(vec![Reply::sse().data_events(chunks)]).await;
    let sink = InMemorySink::new();
    let mut stream = client(server.url(), &sink)
        .chat()
        .create_stream(chat_request())
        .await
        .unwrap();
    while let Some(chunk) = stream.next().await {
        chunk.unwrap();
    }
    assert_eq!(server.requests()[0].json().get("stream_options"), None);
    let events = sink.events();
    assert_eq!(events.len(), 1);
    let props = properties(&events[0]);
    // Unknown, not zero: PostHog shows an unknown cost rather than $0.
    assert_eq!(props.get("$ai_input_tokens"), None);
    assert_eq!(props.get("$ai_output_tokens"), None);
    assert_eq!(props["$ai_stop_reason"], "stop");
    assert_eq!(props["$ai_is_error"], false);
}

#[tokio::test]
async fn async_openai_errors_and_embeddings_are_recorded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(429).set_body_json(json!({
            "error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded", "param": null}
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/embeddings"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "object": "list", "model": "text-embedding-3-small",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
            "usage": {"prompt_tokens": 4, "total_tokens": 4}
        })))
        .mount(&server)
        .await;
    let sink = InMemorySink::new();
    let client = client(&server.uri(), &sink);
    assert!(client.chat().create(chat_request()).await.is_err());
    let request = CreateEmbeddingRequestArgs::default()
        .model("text-embedding-3-small")
        .input("four token text")
        .build()
        .unwrap();
    let response = client.embeddings().create(request).await.unwrap();
    assert_eq!(response.data[0].embedding, vec![0.1, 0.2]);

    let events = sink.events();
    let failed = properties(&events[0]);
    assert_eq!(failed["$ai_is_error"], true);
    assert_eq!(failed["$ai_http_status"], 429);
    assert_eq!(failed["$ai_error_type"], "rate_limit");
    let embedded = properties(&events[1]);
    assert_eq!(
        capture_event(&events[1]).to_json()["event"],
        "$ai_embedding"
    );
    assert_eq!(embedded["$ai_input_tokens"], 4);
    assert_eq!(embedded["$ai_input"], json!(["four token text"]));
}

mod rig_fake {
    use rig_core::completion::{
        AssistantContent, CompletionError, CompletionModel, CompletionRequest, CompletionResponse,
        Usage,
    };
    use rig_core::streaming::StreamingCompletionResponse;
    use rig_core::OneOrMany;

    /// A rig model that answers every prompt with one text and fixed counts.
    #[derive(Clone, Debug)]
    pub struct Scripted;

    impl CompletionModel for Scripted {
        type Response = ();
        type StreamingResponse = ();
        type Client = ();

        fn make(_: &(), _: impl Into<String>) -> Self {
            Scripted
        }

        async fn completion(
            &self,
            _request: CompletionRequest,
        ) -> Result<CompletionResponse<()>, CompletionError> {
            let mut usage = Usage::new();
            usage.input_tokens = 42;
            usage.output_tokens = 7;
            usage.total_tokens = 49;
            usage.cached_input_tokens = 10;
            Ok(CompletionResponse {
                choice: OneOrMany::one(AssistantContent::text("Your parcel is in Lyon.")),
                usage,
                raw_response: (),
                message_id: Some("msg_rig_1".into()),
            })
        }

        async fn stream(
            &self,
            _request: CompletionRequest,
        ) -> Result<StreamingCompletionResponse<()>, CompletionError> {
            Err(CompletionError::ProviderError("no streams here".into()))
        }
    }
}

#[tokio::test]
async fn a_rig_agent_run_is_one_trace_of_generations() {
    use rig_core::agent::AgentBuilder;
    use rig_core::completion::Prompt;
    use std::future::IntoFuture;

    let sink = InMemorySink::new();
    let recorder = Recorder::new(sink.clone());
    let model = TracedCompletionModel::new(rig_fake::Scripted, recorder.clone())
        .model("scripted-1")
        .provider("openai");
    let agent = AgentBuilder::new(model).preamble("Be brief.").build();
    let span = recorder.tracer().trace("support-agent");
    let trace_id = span.trace_id().to_owned();
    let answer = span
        .in_scope(agent.prompt("Where is my parcel?").into_future())
        .await
        .unwrap();
    span.end();
    assert_eq!(answer, "Your parcel is in Lyon.");

    let events = sink.events();
    let generation = events
        .iter()
        .find(|event| capture_event(event).to_json()["event"] == "$ai_generation")
        .expect("the agent's call");
    let props = properties(generation);
    assert_eq!(props["$ai_trace_id"], trace_id.as_str());
    assert_eq!(props["$ai_parent_id"], trace_id.as_str());
    assert_eq!(props["$ai_model"], "scripted-1");
    assert_eq!(props["$ai_provider"], "openai");
    assert_eq!(props["$ai_input_tokens"], 42);
    assert_eq!(props["$ai_output_tokens"], 7);
    assert_eq!(props["$ai_cache_read_input_tokens"], 10);
    assert_eq!(
        props.get("$ai_reasoning_tokens"),
        None,
        "rig's 0 means unreported"
    );
    assert_eq!(props["$ai_completion_id"], "msg_rig_1");
    assert!(props["$ai_latency"].as_f64().is_some());
    assert_eq!(
        props["$ai_input"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Where is my parcel?"}])
    );
    assert_eq!(
        props["$ai_output_choices"],
        json!([{"role": "assistant", "content": [{"type": "text", "text": "Your parcel is in Lyon."}]}])
    );
    assert!(events
        .iter()
        .any(|event| capture_event(event).to_json()["event"] == "$ai_trace"));
}
