#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod context;
mod error;
pub mod event;
mod model;
#[cfg(feature = "otel")]
pub mod otel;
pub mod posthog;
pub mod pricing;
#[cfg(any(feature = "openai", feature = "anthropic"))]
pub mod provider;
pub mod redact;
pub mod sink;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;
mod traced;
pub mod types;

pub use crate::context::CallContext;
pub use crate::error::{Error, Result};
pub use crate::model::LlmModel;
pub use crate::trace::{Span, Tracer};
pub use crate::traced::{TracedModel, TracedModelBuilder, TracedStream};
pub use crate::types::{
    ChatRequest, ChatResponse, ChatStream, ContentPart, Message, Role, StreamEvent, Tool, ToolCall,
    Usage,
};

/// Compile-time checks that the types users move across tasks stay `Send` and `Sync`.
#[allow(dead_code)]
fn _assert_impls() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<TracedModel<Box<dyn LlmModel>>>();
    send_sync::<TracedModel<std::sync::Arc<dyn LlmModel>>>();
    send::<TracedStream>();
    send::<ChatStream>();
    send_sync::<Error>();
    send_sync::<event::Event>();
}
