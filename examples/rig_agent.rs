//! A rig agent whose completions are traced: one agent run, one trace.
//!
//! With `OPENAI_API_KEY` set, the agent calls OpenAI's Chat Completions API (or the compatible
//! server at `OPENAI_BASE_URL`, model `OPENAI_MODEL`); without it, a fake OpenAI server on
//! 127.0.0.1 answers, so the example runs offline. The events go to PostHog when
//! `POSTHOG_API_KEY` is set (`POSTHOG_HOST` honoured) and are printed as JSON lines otherwise.
//!
//! ```sh
//! cargo run --example rig_agent --features rig
//! OPENAI_API_KEY=sk-... cargo run --example rig_agent --features rig
//! ```

#[path = "support/sink.rs"]
mod support;

use std::future::IntoFuture;
use std::time::Duration;

use rig_core::agent::AgentBuilder;
use rig_core::client::CompletionClient;
use rig_core::completion::Prompt;
use rig_core::providers::openai;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use traced_llm::adapters::rig::TracedCompletionModel;
use traced_llm::record::Recorder;

/// What the fake server answers every chat completion with.
const ANSWER: &str = r#"{"id":"chatcmpl-fake-1","object":"chat.completion","created":1,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Your parcel left Lyon this morning."},"finish_reason":"stop"}],"usage":{"prompt_tokens":31,"completion_tokens":9,"total_tokens":40,"prompt_tokens_details":{"cached_tokens":0}}}"#;

/// A one-route OpenAI fake on 127.0.0.1: every request gets [`ANSWER`].
async fn fake_openai() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                // Read the head, then as much body as Content-Length says.
                loop {
                    let Ok(read) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if read == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..read]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|line| {
                                let (name, value) = line.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ANSWER}",
                    ANSWER.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    Ok(url)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (key, base_url) = match std::env::var("OPENAI_API_KEY") {
        Ok(key) => {
            let base = std::env::var("OPENAI_BASE_URL")
                .unwrap_or_else(|_| "https://api.openai.com/v1".to_owned());
            (key, base)
        }
        Err(_) => {
            eprintln!("OPENAI_API_KEY is not set: a fake OpenAI server on 127.0.0.1 answers");
            ("unused".to_owned(), fake_openai().await?)
        }
    };
    let name = std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".to_owned());

    let recorder = Recorder::new(support::sink_from_env()?);
    let client = openai::Client::builder()
        .api_key(key)
        .base_url(&base_url)
        .build()?
        .completions_api();
    let model = TracedCompletionModel::new(client.completion_model(&name), recorder.clone())
        .model(&name)
        .provider("openai")
        .base_url(&base_url);
    let agent = AgentBuilder::new(model)
        .preamble("You answer parcel questions in one sentence.")
        .build();

    // The agent run is one trace: its completions are generations inside it.
    let span = recorder.tracer().trace("parcel-agent");
    let outcome = span
        .in_scope(agent.prompt("Where is my parcel?").into_future())
        .await;
    match &outcome {
        Ok(answer) => {
            eprintln!("{answer}");
            span.end_with_output(answer);
        }
        Err(err) => span.fail(err),
    }
    recorder.shutdown(Duration::from_secs(5)).await?;
    outcome?;
    Ok(())
}
