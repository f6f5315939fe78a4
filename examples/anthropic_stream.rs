//! A streamed call to Anthropic, or to any server speaking its Messages API, traced.
//!
//! The model's text goes to stderr. The event goes to PostHog when `POSTHOG_API_KEY` is set
//! (`POSTHOG_HOST` honoured) and is printed as a JSON line on stdout otherwise. Input, cache
//! and output tokens are merged from `message_start` and `message_delta`.
//!
//! ```sh
//! ANTHROPIC_API_KEY=sk-ant-... cargo run --example anthropic_stream
//! # an Anthropic-compatible server:
//! ANTHROPIC_API_KEY=unused ANTHROPIC_BASE_URL=http://127.0.0.1:8080 cargo run --example anthropic_stream
//! ```

#[path = "support/sink.rs"]
mod support;

use std::time::Duration;

use traced_llm::provider::Anthropic;
use traced_llm::{ChatRequest, LlmModel, Message, StreamEvent, TracedModel};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ANTHROPIC_API_KEY is required; ANTHROPIC_BASE_URL defaults to https://api.anthropic.com.
    let model = TracedModel::new(Anthropic::from_env()?, support::sink_from_env()?);
    let name = std::env::var("ANTHROPIC_MODEL").unwrap_or_else(|_| "claude-haiku-4-5".to_owned());
    let request = ChatRequest::new(name)
        .message(Message::system("Answer in one short sentence."))
        .message(Message::user("Why is the sky blue?"))
        .max_tokens(300);

    let outcome = run(&model, &request).await;
    // Deliver the events before the process exits.
    model.shutdown(Duration::from_secs(5)).await?;
    outcome
}

async fn run(
    model: &TracedModel<Anthropic>,
    request: &ChatRequest,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut stream = model.chat_stream(request).await?;
    while let Some(event) = stream.next().await {
        match event? {
            StreamEvent::TextDelta { text } => eprint!("{text}"),
            StreamEvent::Finish { reason } => eprint!("\n[{reason}]"),
            _ => {}
        }
    }
    eprintln!();
    Ok(())
}
