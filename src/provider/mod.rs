//! The real providers: [`OpenAi`] (OpenAI's Chat Completions, Azure OpenAI and every
//! OpenAI-compatible server), [`OpenAiResponses`] (OpenAI's and Azure's Responses API),
//! [`Anthropic`] and [`Gemini`].
//!
//! Each provider value owns one `reqwest` client, reused by every call, so connections and TLS
//! sessions are pooled; clone the value to share it. Wrap it in
//! [`TracedModel`](crate::TracedModel) to send every call to PostHog.
//!
//! ```no_run
//! use traced_llm::provider::OpenAi;
//! use traced_llm::sink::JsonlSink;
//! use traced_llm::TracedModel;
//!
//! # fn run() -> traced_llm::Result<()> {
//! let model = TracedModel::new(OpenAi::from_env()?, JsonlSink::stdout());
//! # let _ = model;
//! # Ok(())
//! # }
//! ```
//!
//! # Timeouts
//!
//! Connecting may take [`DEFAULT_CONNECT_TIMEOUT`] and a whole call, a stream's last byte
//! included, [`DEFAULT_REQUEST_TIMEOUT`]; both are set on the builders.
//!
//! # No automatic retries
//!
//! A failed call is returned, never re-sent. A request that timed out or lost its connection may
//! still have been processed and billed by the provider, so sending it again can bill it twice,
//! and a stream that broke halfway cannot be resumed: only the caller knows whether a retry is
//! worth it. (The HTTP client only re-sends requests the server refused at the protocol level
//! before reading them, which cannot bill.)
//!
//! # Cancellation
//!
//! Dropping the future of a call, or the stream of a streaming call, drops the HTTP request and
//! closes its connection, so the provider stops generating.

#[cfg(feature = "anthropic")]
mod anthropic;
#[cfg(feature = "gemini")]
mod gemini;
#[cfg(feature = "openai")]
mod openai;
#[cfg(feature = "openai")]
mod responses;
mod transport;

#[cfg(feature = "anthropic")]
pub use self::anthropic::{
    Anthropic, AnthropicBuilder, DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
};
#[cfg(feature = "gemini")]
pub use self::gemini::{
    Gemini, GeminiBuilder, DEFAULT_GEMINI_API_VERSION, DEFAULT_GEMINI_BASE_URL,
};
#[cfg(feature = "openai")]
pub use self::openai::{OpenAi, OpenAiBuilder, DEFAULT_OPENAI_BASE_URL};
#[cfg(feature = "openai")]
pub use self::responses::OpenAiResponses;
pub use self::transport::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};

/// What the adapters for other crates' clients borrow from the providers: the OpenAI parsing.
#[cfg(feature = "async-openai")]
pub(crate) mod adapter_support {
    use std::collections::VecDeque;

    use super::openai::wire::Completion;
    use super::openai::OpenAiDecoder;
    use super::transport::sse::Decoder;
    use crate::types::{ChatResponse, StreamEvent};

    /// A Chat Completions answer, as JSON bytes, read as the OpenAI provider reads it; an
    /// answer it cannot read is an empty response.
    pub(crate) fn openai_completion(bytes: &[u8]) -> ChatResponse {
        serde_json::from_slice::<Completion>(bytes)
            .map(Completion::into_response)
            .unwrap_or_default()
    }

    /// Chat Completions chunks, as JSON text, read as the OpenAI provider reads them.
    #[derive(Debug, Default)]
    pub(crate) struct OpenAiChunks {
        decoder: OpenAiDecoder,
        out: VecDeque<StreamEvent>,
    }

    impl OpenAiChunks {
        /// Passes each event `chunk` says to `observe`. A chunk that cannot be read is
        /// skipped: the client that parsed it already, so it is the client's to fail on.
        pub(crate) fn observe(&mut self, chunk: &str, mut observe: impl FnMut(&StreamEvent)) {
            let _ = self.decoder.decode("message", chunk, &mut self.out);
            for event in self.out.drain(..) {
                observe(&event);
            }
        }
    }
}

/// Compile-time checks: provider values are shared across tasks and cloned freely.
#[allow(dead_code)]
fn _assert_impls() {
    fn shareable<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
    #[cfg(feature = "openai")]
    {
        shareable::<OpenAi>();
        shareable::<OpenAiBuilder>();
    }
    #[cfg(feature = "anthropic")]
    {
        shareable::<Anthropic>();
        shareable::<AnthropicBuilder>();
    }
    #[cfg(feature = "openai")]
    shareable::<OpenAiResponses>();
    #[cfg(feature = "gemini")]
    {
        shareable::<Gemini>();
        shareable::<GeminiBuilder>();
    }
}

/// Entry points for the benchmarks; not part of the API.
#[doc(hidden)]
pub mod __bench {
    use bytes::Bytes;
    use futures_core::Stream;

    use super::transport::sse::decode_stream;
    use super::transport::ErrorScope;
    #[cfg(any(feature = "openai", feature = "anthropic"))]
    use crate::ChatRequest;
    use crate::ChatStream;

    /// Parses an OpenAI event stream from memory through the providers' own path.
    #[cfg(feature = "openai")]
    pub fn openai_stream<S>(bytes: S) -> ChatStream
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let decoder = super::openai::OpenAiDecoder::default();
        decode_stream(bytes, decoder, ErrorScope::new("openai", []))
    }

    /// Parses an Anthropic event stream from memory through the providers' own path.
    #[cfg(feature = "anthropic")]
    pub fn anthropic_stream<S>(bytes: S) -> ChatStream
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let decoder = super::anthropic::AnthropicDecoder::default();
        decode_stream(bytes, decoder, ErrorScope::new("anthropic", []))
    }

    /// Parses a Gemini event stream from memory through the providers' own path.
    #[cfg(feature = "gemini")]
    pub fn gemini_stream<S>(bytes: S) -> ChatStream
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let decoder = super::gemini::GeminiDecoder::default();
        decode_stream(bytes, decoder, ErrorScope::new("gemini", []))
    }

    /// Parses a Responses API event stream from memory through the providers' own path.
    #[cfg(feature = "openai")]
    pub fn responses_stream<S>(bytes: S) -> ChatStream
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    {
        let decoder = super::responses::ResponsesDecoder::default();
        decode_stream(bytes, decoder, ErrorScope::new("openai", []))
    }

    /// The bytes an OpenAI chat call sends (`max_tokens` named as for compatible servers),
    /// encoded as the provider encodes them.
    #[cfg(feature = "openai")]
    pub fn openai_request_body(request: &ChatRequest, stream: bool) -> Vec<u8> {
        use super::openai::wire::{ChatBody, MaxTokensField};
        let body = ChatBody::new(request, stream, MaxTokensField::MaxTokens);
        serde_json::to_vec(&body).expect("a request serializes")
    }

    /// The bytes an Anthropic Messages call sends, encoded as the provider encodes them.
    #[cfg(feature = "anthropic")]
    pub fn anthropic_request_body(request: &ChatRequest, stream: bool) -> Vec<u8> {
        use super::anthropic::wire::MessagesBody;
        let body = MessagesBody::new(request, stream, super::DEFAULT_MAX_TOKENS);
        serde_json::to_vec(&body).expect("a request serializes")
    }
}
