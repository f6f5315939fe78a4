//! One chat call and one streamed call to Gemini, traced.
//!
//! The model's text goes to stderr. The events go to PostHog when `POSTHOG_API_KEY` is set
//! (`POSTHOG_HOST` honoured) and are printed as JSON lines on stdout otherwise.
//!
//! ```sh
//! GEMINI_API_KEY=... cargo run --example gemini
//! # a Gemini-compatible server, e.g. a local one (a bare host gets `/v1beta`):
//! GEMINI_API_KEY=unused GEMINI_BASE_URL=http://127.0.0.1:8080 cargo run --example gemini
//! ```

#[path = "support/sink.rs"]
mod support;

use std::io::Write;
use std::time::Duration;

use traced_llm::provider::Gemini;
use traced_llm::{CallContext, ChatRequest, LlmModel, Message, StreamEvent, TracedModel};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // GEMINI_API_KEY (or GOOGLE_API_KEY) is required; GEMINI_BASE_URL defaults to Google's API.
    let model = TracedModel::new(Gemini::from_env()?, support::sink_from_env()?);
    let name = std::env::var("GEMINI_MODEL").unwrap_or_else(|_| "gemini-2.5-flash".to_owned());
    let request = ChatRequest::new(name)
        .message(Message::system("Answer in one short sentence."))
        .message(Message::user("Why is the sky blue?"))
        .max_tokens(400)
        .context(CallContext::new().distinct_id("example_user"));

    let outcome = run(&model, &request).await;
    // Deliver the events before the process exits.
    model.shutdown(Duration::from_secs(5)).await?;
    outcome
}

async fn run(
    model: &TracedModel<Gemini>,
    request: &ChatRequest,
) -> Result<(), Box<dyn std::error::Error>> {
    let response = model.chat(request).await?;
    eprintln!("{}", response.text());

    let mut stream = model.chat_stream(request).await?;
    while let Some(event) = stream.next().await {
        if let StreamEvent::TextDelta { text } = event? {
            eprint!("{text}");
            std::io::stderr().flush()?;
        }
    }
    eprintln!();
    Ok(())
}
