#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "async-openai", feature = "rig"))]
pub mod adapters;
mod error;
pub mod event;
pub mod flags;
mod model;
#[cfg(feature = "monitor")]
pub mod monitor;
#[cfg(feature = "otel")]
pub mod otel;
pub mod posthog;
pub mod pricing;
#[cfg(any(feature = "openai", feature = "anthropic", feature = "gemini"))]
pub mod provider;
pub mod record;
pub mod redact;
pub mod sink;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
pub mod traced;
pub mod types;
mod util;

pub use crate::error::{Error, Result};
pub use crate::model::LlmModel;
pub use crate::record::CallContext;
pub use crate::traced::TracedModel;
pub use crate::types::{ChatRequest, ChatResponse, ChatStream, Message, StreamEvent};
/// Re-exported so an [`LlmModel`] can be implemented without adding `async-trait` yourself.
pub use async_trait::async_trait;

/// Compile-time checks that the types users move across tasks stay `Send` and `Sync`.
#[allow(dead_code)]
fn _assert_impls() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<TracedModel<Box<dyn LlmModel>>>();
    send_sync::<TracedModel<std::sync::Arc<dyn LlmModel>>>();
    send::<record::TracedStream>();
    send_sync::<record::Recorder>();
    send::<record::CallInProgress>();
    send::<ChatStream>();
    send_sync::<Error>();
    send_sync::<event::Event>();
    send_sync::<flags::FlagSnapshot>();
    send_sync::<flags::Exposures>();
}
