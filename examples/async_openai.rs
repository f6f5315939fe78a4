//! async-openai, traced: the one-line change is where the client is built.
//!
//! The model's text goes to stderr. The events go to PostHog when `POSTHOG_API_KEY` is set
//! (`POSTHOG_HOST` honoured) and are printed as JSON lines on stdout otherwise.
//!
//! ```sh
//! OPENAI_API_KEY=sk-... cargo run --example async_openai --features async-openai
//! # any OpenAI-compatible server (async-openai reads OPENAI_BASE_URL itself):
//! OPENAI_API_KEY=unused OPENAI_BASE_URL=http://127.0.0.1:8000/v1 OPENAI_MODEL=llama3 \
//!     cargo run --example async_openai --features async-openai
//! ```

#[path = "support/sink.rs"]
mod support;

use std::io::Write;
use std::time::Duration;

use async_openai::types::chat::{
    ChatCompletionRequestSystemMessage, ChatCompletionRequestUserMessage,
    CreateChatCompletionRequestArgs,
};
use async_openai::Client;
use futures_util::StreamExt;
use traced_llm::adapters::async_openai::TracedClient;
use traced_llm::record::Recorder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorder = Recorder::new(support::sink_from_env()?);
    // Before: `let client = Client::new();` -- the one line that changes. `include_usage` makes
    // streams ask for their token counts.
    let client = TracedClient::new(Client::new(), recorder.clone()).include_usage(true);

    let model = std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".to_owned());
    let request = CreateChatCompletionRequestArgs::default()
        .model(model)
        .max_completion_tokens(200u32)
        .messages([
            ChatCompletionRequestSystemMessage::from("Answer in one short sentence.").into(),
            ChatCompletionRequestUserMessage::from("Why is the sky blue?").into(),
        ])
        .build()?;

    let outcome = run(&client, request).await;
    recorder.shutdown(Duration::from_secs(5)).await?;
    outcome
}

async fn run(
    client: &TracedClient<async_openai::config::OpenAIConfig>,
    request: async_openai::types::chat::CreateChatCompletionRequest,
) -> Result<(), Box<dyn std::error::Error>> {
    let response = client.chat().create(request.clone()).await?;
    if let Some(choice) = response.choices.first() {
        eprintln!("{}", choice.message.content.as_deref().unwrap_or_default());
    }

    let mut stream = client.chat().create_stream(request).await?;
    while let Some(chunk) = stream.next().await {
        for choice in chunk?.choices {
            if let Some(text) = choice.delta.content {
                eprint!("{text}");
                std::io::stderr().flush()?;
            }
        }
    }
    eprintln!();
    Ok(())
}
