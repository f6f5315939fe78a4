//! The quickstart: one chat call and one streamed call through `TracedModel`.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! With `OPENAI_API_KEY` set it calls OpenAI, or the OpenAI-compatible server at
//! `OPENAI_BASE_URL` (model `OPENAI_MODEL`, default `gpt-4o-mini`); without it, it runs offline
//! on a scripted model. The PostHog events are printed as JSON lines on stdout; the model's
//! answers go to stderr. With `POSTHOG_API_KEY` set, the same events also go to PostHog
//! (`POSTHOG_HOST`, default `https://us.i.posthog.com`), flushed before exit.

use std::io::Write;
use std::time::Duration;

use traced_llm::posthog::PosthogSink;
use traced_llm::provider::OpenAi;
use traced_llm::sink::{Fanout, JsonlSink};
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{
    CallContext, ChatRequest, ChatResponse, LlmModel, Message, StreamEvent, TracedModel,
};

/// A stand-in for a real provider: answers one call, then streams the next.
fn offline_model() -> ScriptedModel {
    let streamed = "Rust's ownership rules free memory exactly when it is no longer used."
        .split_inclusive(' ')
        .map(StreamEvent::text);
    let mut events = vec![StreamEvent::ResponseMetadata {
        id: Some("chatcmpl-offline-2".into()),
        model: Some("gpt-4o-mini-2024-07-18".into()),
    }];
    events.extend(streamed);
    events.push(StreamEvent::Usage(Usage::new(31, 14).with_cache_read(0)));
    events.push(StreamEvent::finish("stop"));
    ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("offline://scripted")
        .respond(
            ChatResponse::text_response("Ownership, borrowing and lifetimes.")
                .with_id("chatcmpl-offline-1")
                .with_model("gpt-4o-mini-2024-07-18")
                .with_finish_reason("stop")
                .with_usage(Usage::new(27, 8)),
        )
        .stream_with_delay(events, Duration::from_millis(15))
}

/// OpenAI (or a compatible server) when a key is set, the offline model otherwise.
fn model_from_env() -> Result<(Box<dyn LlmModel>, String), traced_llm::Error> {
    if std::env::var_os("OPENAI_API_KEY").is_some() {
        let name = std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".to_owned());
        eprintln!("calling {name} through the OpenAI API");
        Ok((Box::new(OpenAi::from_env()?), name))
    } else {
        eprintln!("OPENAI_API_KEY is not set: answering offline with a scripted model");
        Ok((Box::new(offline_model()), "gpt-4o-mini".to_owned()))
    }
}

/// JSON lines on stdout, and PostHog too when its key is set.
fn sink_from_env() -> Result<(Fanout, Option<PosthogSink>), traced_llm::Error> {
    let sink = Fanout::new().with(JsonlSink::stdout());
    if std::env::var_os("POSTHOG_API_KEY").is_none() {
        eprintln!("POSTHOG_API_KEY is not set: events are only printed");
        return Ok((sink, None));
    }
    let posthog = PosthogSink::from_env()?;
    eprintln!("sending events to {}", posthog.url());
    Ok((sink.with(posthog.clone()), Some(posthog)))
}

/// What a chat route knows about the call it makes.
fn context(user_id: &str, conversation_id: &str, message_count: usize) -> CallContext {
    CallContext::new()
        .distinct_id(user_id)
        .trace_id(conversation_id)
        .property("user_name", "Ada")
        .property("message_count", message_count)
        .property("topic", "rust")
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (provider, name) = model_from_env()?;
    let (sink, posthog) = sink_from_env()?;
    let model = TracedModel::new(provider, sink);

    let question = ChatRequest::new(&name)
        .message(Message::system(
            "You answer questions about Rust in one sentence.",
        ))
        .message(Message::user("What are Rust's three core memory ideas?"))
        .max_tokens(100)
        .context(context("user_42", "conversation_7f3a", 1));
    let answer = model.chat(&question).await?;
    eprintln!("assistant: {}", answer.text());

    let follow_up = ChatRequest::new(&name)
        .message(Message::user("And why does ownership matter?"))
        .max_tokens(100)
        .context(context("user_42", "conversation_7f3a", 3));
    let mut stream = model.chat_stream(&follow_up).await?;
    eprint!("assistant: ");
    while let Some(event) = stream.next().await {
        if let StreamEvent::TextDelta { text } = event? {
            eprint!("{text}");
            std::io::stderr().flush()?;
        }
    }
    eprintln!();
    drop(stream);

    // Deliver everything before the process exits; this returns within its timeout even when
    // PostHog does not answer.
    let shutdown = model.shutdown(Duration::from_secs(5)).await;
    if let Some(posthog) = posthog {
        let stats = posthog.stats();
        eprintln!(
            "posthog: {} events sent, {} dropped",
            stats.sent,
            stats.dropped()
        );
    }
    shutdown?;
    Ok(())
}
