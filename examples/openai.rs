//! One plain call and one streamed call to OpenAI, or to any OpenAI-compatible server, traced.
//!
//! The model's text goes to stderr. The events go to PostHog when `POSTHOG_API_KEY` is set
//! (`POSTHOG_HOST` honoured) and are printed as JSON lines on stdout otherwise.
//!
//! ```sh
//! OPENAI_API_KEY=sk-... cargo run --example openai
//! # any compatible server, e.g. a local one:
//! OPENAI_API_KEY=unused OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_MODEL=llama3 \
//!     cargo run --example openai
//! ```

#[path = "support/sink.rs"]
mod support;

use std::time::Duration;

use traced_llm::provider::OpenAi;
use traced_llm::{ChatRequest, LlmModel, Message, StreamEvent, TracedModel};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // OPENAI_API_KEY is required; OPENAI_BASE_URL defaults to https://api.openai.com/v1.
    let model = TracedModel::new(OpenAi::from_env()?, support::sink_from_env()?);
    let name = std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".to_owned());
    let request = ChatRequest::new(name)
        .message(Message::system("Answer in one short sentence."))
        .message(Message::user("Why is the sky blue?"))
        .max_tokens(200);

    let outcome = run(&model, &request).await;
    // Deliver the events before the process exits.
    model.shutdown(Duration::from_secs(5)).await?;
    outcome
}

async fn run(
    model: &TracedModel<OpenAi>,
    request: &ChatRequest,
) -> Result<(), Box<dyn std::error::Error>> {
    let response = model.chat(request).await?;
    eprintln!("{}", response.text());

    // The stream asks for usage (`stream_options.include_usage`), so its event has tokens too.
    let mut stream = model.chat_stream(request).await?;
    while let Some(event) = stream.next().await {
        if let StreamEvent::TextDelta { text } = event? {
            eprint!("{text}");
        }
    }
    eprintln!();
    Ok(())
}
