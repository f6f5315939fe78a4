//! Traced wrappers for other crates' LLM clients: keep your client's own types, get one event
//! per call.
//!
//! Each adapter records through the public [`record`](crate::record) seam, exactly as
//! [`TracedModel`](crate::TracedModel) does: privacy mode, redaction, prices, span scopes and
//! error tracking all apply.
//!
//! - [`async_openai`] (feature `async-openai`): [`TracedClient`](async_openai::TracedClient)
//!   over `async_openai::Client<C>`; chat `create`/`create_stream` and embeddings `create`.
//! - [`rig`] (feature `rig`): [`TracedCompletionModel`](rig::TracedCompletionModel) over any
//!   rig `CompletionModel`, so a rig agent's calls are `$ai_generation` events.

#[cfg(feature = "async-openai")]
pub mod async_openai;
#[cfg(feature = "async-openai")]
mod openai_json;
#[cfg(feature = "rig")]
pub mod rig;
