//! Tracing a client that is not an `LlmModel`, through the public recording seam alone.
//!
//! ```text
//! cargo run --example record_any_client
//! ```
//!
//! Three calls of a made-up client are recorded: a plain async function that returns text, a
//! stream of text pieces built by hand, and the same stream dropped halfway by its caller. Each
//! becomes one `$ai_generation`, printed as a PostHog JSON line on stdout; the dropped one has
//! `$ai_stop_reason: "cancelled"` and keeps the text that arrived. It runs offline.

use std::time::Duration;

use futures_util::stream::{self, Stream, StreamExt};
use traced_llm::record::{CallInfo, Recorder, TracedStream};
use traced_llm::sink::JsonlSink;
use traced_llm::types::Usage;
use traced_llm::{CallContext, ChatResponse, ChatStream, Message, StreamEvent};

/// The client being traced: it knows nothing of this crate.
mod weather_bot {
    use std::time::Duration;

    use futures_util::stream::{self, Stream, StreamExt};

    /// Answers in one piece.
    pub async fn ask(question: &str) -> Result<String, std::io::Error> {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Ok(format!("It is sunny wherever you asked \"{question}\"."))
    }

    /// Answers word by word, each word 10 ms after the last.
    pub fn ask_streaming(_question: &str) -> impl Stream<Item = String> + Send + 'static {
        let words = ["Sunny ", "in ", "Lisbon, ", "22 °C ", "at ", "noon."];
        stream::iter(words).then(|word| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            word.to_owned()
        })
    }
}

const MODEL: &str = "weather-bot-1";
const PROVIDER: &str = "weather-bot";

/// The client's stream, as the events a recorded call observes. The last piece reports usage,
/// as providers do at the end of a stream.
fn events_of(
    words: impl Stream<Item = String> + Send + 'static,
) -> impl Stream<Item = traced_llm::Result<StreamEvent>> + Send + 'static {
    words
        .map(|word| Ok(StreamEvent::text(word)))
        .chain(stream::iter([
            Ok(StreamEvent::Usage(Usage::new(9, 6))),
            Ok(StreamEvent::finish("stop")),
        ]))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let recorder = Recorder::new(JsonlSink::stdout());
    let context = CallContext::new()
        .distinct_id("user_42")
        .trace_id("conversation_7f3a");

    // 1. A plain async function: start the call, run the client, end the call with its outcome.
    let question = "Weather in Lisbon?";
    let messages = [Message::user(question)];
    let call = recorder.start(
        CallInfo::new(MODEL, PROVIDER)
            .messages(&messages)
            .context(&context),
    );
    match weather_bot::ask(question).await {
        Ok(text) => call.succeed(&ChatResponse::text_response(text).with_usage(Usage::new(9, 11))),
        Err(err) => call.fail(&traced_llm::Error::other("weather bot failed").with_source(err)),
    }

    // 2. A hand-made stream, read to its end: the event has the whole text and the usage.
    let call = recorder.start(
        CallInfo::new(MODEL, PROVIDER)
            .messages(&messages)
            .context(&context)
            .stream(true),
    );
    let mut answer = ChatStream::new(TracedStream::new(
        events_of(weather_bot::ask_streaming(question)),
        call,
    ));
    let mut text = String::new();
    while let Some(event) = answer.next().await {
        if let StreamEvent::TextDelta { text: piece } = event? {
            text.push_str(&piece);
        }
    }
    eprintln!("streamed: {text}");

    // 3. The same stream, dropped after three pieces (a client that closed the page): the
    //    event is sent on drop, as cancelled, with the three pieces that arrived.
    let call = recorder.start(
        CallInfo::new(MODEL, PROVIDER)
            .messages(&messages)
            .context(&context)
            .stream(true),
    );
    let mut answer = ChatStream::new(TracedStream::new(
        events_of(weather_bot::ask_streaming(question)),
        call,
    ));
    for _ in 0..3 {
        answer.next().await.transpose()?;
    }
    drop(answer);
    eprintln!("dropped the third call's stream after three pieces");

    recorder.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}
