//! Fakes shared by the integration tests. Each listens on loopback only.
#![allow(dead_code, unreachable_pub)]

pub mod capture_server;
pub mod events;
pub mod http;
#[cfg(feature = "otel")]
pub mod otel;
#[cfg(feature = "otel")]
pub mod otlp_receiver;
pub mod sse_server;
