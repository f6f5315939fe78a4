//! The real providers: [`OpenAi`] (OpenAI, Azure OpenAI and every OpenAI-compatible server) and
//! [`Anthropic`].
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
#[cfg(feature = "openai")]
mod openai;
mod transport;

#[cfg(feature = "anthropic")]
pub use self::anthropic::{
    Anthropic, AnthropicBuilder, DEFAULT_ANTHROPIC_BASE_URL, DEFAULT_ANTHROPIC_VERSION,
    DEFAULT_MAX_TOKENS,
};
#[cfg(feature = "openai")]
pub use self::openai::{OpenAi, OpenAiBuilder, DEFAULT_OPENAI_BASE_URL};
pub use self::transport::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_REQUEST_TIMEOUT};

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
}

/// Entry points for the benchmarks; not part of the API.
#[doc(hidden)]
pub mod __bench {
    use bytes::Bytes;
    use futures_core::Stream;

    use super::transport::sse::decode_stream;
    use super::transport::ErrorScope;
    use crate::{ChatRequest, ChatStream};

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
