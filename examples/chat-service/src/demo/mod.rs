//! The offline model: plausible answers streamed word by word, and a provider error on demand.

use std::time::Duration;

use traced_llm::testing::ScriptedModel;
use traced_llm::types::{Role, Usage};
use traced_llm::{
    async_trait, ChatRequest, ChatResponse, ChatStream, Error, LlmModel, StreamEvent,
};

use crate::chat::topic_of;

/// A message containing this word (any case) makes the offline provider fail with HTTP 503,
/// so the error banner and the failed generation with its `$exception` can be seen.
pub const FAIL_WORD: &str = "#error";

/// The pause before each word of an answer.
pub const DEFAULT_WORD_DELAY: Duration = Duration::from_millis(60);

/// What the offline model reports as its provider, so prices and dashboards read as OpenAI's.
const PROVIDER: &str = "openai";
const BASE_URL: &str = "offline://scripted";

/// Answers offline: a [`ScriptedModel`] per call, scripted from the question. Each word comes
/// after a pause; an answer stops at the request's `max_tokens` words (finish reason
/// `length`); usage counts about four characters a token.
#[derive(Debug, Clone)]
pub struct DemoModel {
    word_delay: Duration,
}

impl Default for DemoModel {
    fn default() -> Self {
        Self::new()
    }
}

impl DemoModel {
    /// Words [`DEFAULT_WORD_DELAY`] apart.
    pub fn new() -> Self {
        Self {
            word_delay: DEFAULT_WORD_DELAY,
        }
    }

    /// Words `delay` apart.
    #[must_use]
    pub fn with_word_delay(mut self, delay: Duration) -> Self {
        self.word_delay = delay;
        self
    }

    fn script(&self, request: &ChatRequest) -> ScriptedModel {
        let model = ScriptedModel::new()
            .with_provider(PROVIDER)
            .with_base_url(BASE_URL);
        let question = request
            .messages
            .iter()
            .rev()
            .find(|message| message.role == Role::User)
            .map(|message| message.text())
            .unwrap_or_default();
        if question.to_lowercase().contains(FAIL_WORD) {
            return model.fail(
                Error::from_status(
                    503,
                    "the offline provider is overloaded (asked for by the fail word)",
                )
                .with_provider(PROVIDER),
            );
        }
        let answer = answer_to(&question);
        let mut words: Vec<&str> = answer.split_inclusive(' ').collect();
        let mut finish = "stop";
        if let Some(max) = request.max_tokens {
            if words.len() > max as usize {
                words.truncate(max as usize);
                finish = "length";
            }
        }
        let input_chars: usize = request.messages.iter().map(|m| m.text().len()).sum();
        let output_chars: usize = words.iter().map(|word| word.len()).sum();
        let mut events = vec![StreamEvent::ResponseMetadata {
            id: Some(format!(
                "chatcmpl-offline-{}",
                uuid::Uuid::new_v4().simple()
            )),
            model: Some(request.model.clone()),
        }];
        events.extend(words.into_iter().map(StreamEvent::text));
        events.push(StreamEvent::Usage(Usage::new(
            tokens(input_chars),
            tokens(output_chars),
        )));
        events.push(StreamEvent::finish(finish));
        model.stream_with_delay(events, self.word_delay)
    }
}

fn tokens(chars: usize) -> u64 {
    (chars as u64).div_ceil(4).max(1)
}

/// A plausible answer to `question`.
fn answer_to(question: &str) -> String {
    let lower = question.to_lowercase();
    if lower.contains("lisbon") {
        return "Lisbon in spring is mild by day and cool at night, so pack light layers, \
                comfortable shoes for the steep cobbled hills, and a light rain jacket. Take \
                tram 28 early in the morning, watch the sunset from a miradouro, and try a \
                pastel de nata still warm from the oven in Belém."
            .to_owned();
    }
    if lower.contains("rust") {
        return "Rust gives you memory safety without a garbage collector: every value has one \
                owner, borrows are checked at compile time, and memory is freed exactly when \
                the owner goes out of scope. Start with the Rust book, write small command-line \
                tools, and let the compiler's messages teach you the rules."
            .to_owned();
    }
    format!(
        "Good question about {}. I would start with the simplest version that works, check it \
         against a real example, and then refine the details that matter most to you. If you \
         tell me a little more about your situation, I can give you a more specific answer \
         with concrete next steps.",
        topic_of(question)
    )
}

#[async_trait]
impl LlmModel for DemoModel {
    async fn chat(&self, request: &ChatRequest) -> traced_llm::Result<ChatResponse> {
        self.script(request).chat(request).await
    }

    async fn chat_stream(&self, request: &ChatRequest) -> traced_llm::Result<ChatStream> {
        self.script(request).chat_stream(request).await
    }

    fn provider(&self) -> &str {
        PROVIDER
    }

    fn base_url(&self) -> &str {
        BASE_URL
    }
}
