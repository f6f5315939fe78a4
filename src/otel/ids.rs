//! How the crate's ids become OpenTelemetry ids, and the id generator that makes the SDK use
//! them.
//!
//! # The mapping
//!
//! Every event names its trace with the text PostHog receives as `$ai_trace_id`, and its span
//! with `$ai_span_id` (its parent with `$ai_parent_id`). OpenTelemetry needs 16- and 8-byte ids:
//!
//! | crate id | OpenTelemetry id |
//! |---|---|
//! | a trace id that is a UUID (the crate's own UUIDv7s, any hyphenated or 32-hex-digit UUID) | its 16 bytes: `0190b6c1-…` becomes trace id `0190b6c1…` |
//! | any other trace id (`conversation_7f3a`) | the 128-bit FNV-1a hash of its UTF-8 bytes |
//! | a span id of 16 hex digits (an OpenTelemetry span id) | those 8 bytes |
//! | any other span id (the crate's UUIDv7 span ids, `step_2`) | the 64-bit FNV-1a hash of its UTF-8 bytes |
//!
//! FNV-1a is `h = offset; for each byte: h = (h ^ byte) * prime` with the standard offset basis
//! and prime of its width (64 bits: `0xcbf29ce484222325`, `0x100000001b3`; 128 bits:
//! `0x6c62272e07bb014262b821756295c58d`, `0x1000000000000000000013b`), so the ids can be
//! recomputed anywhere to join PostHog's view with a trace backend's. [`trace_id_for`] and
//! [`span_id_for`] compute them here.
//!
//! Which text names which span:
//!
//! - an event with a span id (every call or span nested in a trace) is named by it;
//! - a trace's root, which has none, by its trace id — the id its children name as parent;
//! - any other event (a call that is its own trace) by its event UUID.
//!
//! # The id generator
//!
//! The OpenTelemetry SDK draws span ids from its provider's id generator, so a span cannot be
//! given an id through the API. [`TracedIdGenerator`] lends the SDK the id of the event being
//! exported, on the exporting thread, and draws random ids (or your generator's) for every
//! other span. Without it the spans still arrive, but with random ids: the spans of a crate
//! trace no longer point at their parents, and the ids no longer match PostHog's. The sink
//! warns once when it sees that.

use std::cell::Cell;
use std::fmt;

use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use uuid::Uuid;

const FNV64_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV64_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV128_OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
const FNV128_PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;

/// The OpenTelemetry trace id of the crate's trace id `text` (see the [module docs](self)).
///
/// ```
/// use traced_llm::otel::trace_id_for;
///
/// let id = trace_id_for("0190b6c1-8a2b-7c3d-9e4f-a1b2c3d4e5f6");
/// assert_eq!(id.to_string(), "0190b6c18a2b7c3d9e4fa1b2c3d4e5f6");
/// assert_eq!(trace_id_for("conversation_7f3a"), trace_id_for("conversation_7f3a"));
/// ```
pub fn trace_id_for(text: &str) -> TraceId {
    if let Ok(uuid) = Uuid::try_parse(text) {
        if !uuid.is_nil() {
            return TraceId::from_bytes(uuid.into_bytes());
        }
    }
    let hash = fnv1a_128(text.as_bytes());
    TraceId::from(if hash == 0 { FNV128_OFFSET } else { hash })
}

/// The OpenTelemetry span id of the crate's span id `text` (see the [module docs](self)).
///
/// ```
/// use traced_llm::otel::span_id_for;
///
/// assert_eq!(span_id_for("00f067aa0ba902b7").to_string(), "00f067aa0ba902b7");
/// assert_eq!(span_id_for("step_2"), span_id_for("step_2"));
/// ```
pub fn span_id_for(text: &str) -> SpanId {
    if text.len() == 16 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        if let Ok(id) = u64::from_str_radix(text, 16) {
            if id != 0 {
                return SpanId::from(id);
            }
        }
    }
    let hash = fnv1a_64(text.as_bytes());
    SpanId::from(if hash == 0 { FNV64_OFFSET } else { hash })
}

fn fnv1a_64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV64_OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(FNV64_PRIME)
    })
}

fn fnv1a_128(bytes: &[u8]) -> u128 {
    bytes.iter().fold(FNV128_OFFSET, |hash, &byte| {
        (hash ^ u128::from(byte)).wrapping_mul(FNV128_PRIME)
    })
}

thread_local! {
    static LENT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
    static LENT_SPAN_ID: Cell<Option<SpanId>> = const { Cell::new(None) };
}

/// Lends `trace_id` and `span_id` to a [`TracedIdGenerator`] for the span `build` starts on
/// this thread; whatever `build` does not take is withdrawn when it returns or unwinds.
pub(super) fn with_lent_ids<R>(trace_id: TraceId, span_id: SpanId, build: impl FnOnce() -> R) -> R {
    struct Withdraw;
    impl Drop for Withdraw {
        fn drop(&mut self) {
            LENT_TRACE_ID.with(|cell| cell.set(None));
            LENT_SPAN_ID.with(|cell| cell.set(None));
        }
    }
    LENT_TRACE_ID.with(|cell| cell.set(Some(trace_id)));
    LENT_SPAN_ID.with(|cell| cell.set(Some(span_id)));
    let _withdraw = Withdraw;
    build()
}

/// An SDK id generator that gives each exported event's span the ids PostHog sees for it (see
/// the [module docs](self)); every other span gets its ids from the wrapped generator, random
/// by default.
///
/// Install it on the tracer provider the [`OtelSink`](super::OtelSink) uses:
///
/// ```
/// use opentelemetry_sdk::trace::SdkTracerProvider;
/// use traced_llm::otel::TracedIdGenerator;
///
/// let provider = SdkTracerProvider::builder()
///     .with_id_generator(TracedIdGenerator::new())
///     .build();
/// # let _ = provider;
/// ```
pub struct TracedIdGenerator {
    fallback: Box<dyn IdGenerator>,
}

impl TracedIdGenerator {
    /// Random ids for every span but the sink's.
    pub fn new() -> Self {
        Self::wrap(RandomIdGenerator::default())
    }

    /// `fallback`'s ids for every span but the sink's.
    pub fn wrap(fallback: impl IdGenerator + 'static) -> Self {
        Self {
            fallback: Box::new(fallback),
        }
    }
}

impl Default for TracedIdGenerator {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TracedIdGenerator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedIdGenerator")
            .field("fallback", &self.fallback)
            .finish()
    }
}

impl IdGenerator for TracedIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        LENT_TRACE_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.fallback.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        LENT_SPAN_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.fallback.new_span_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a_128(b""), FNV128_OFFSET);
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
    }

    #[test]
    fn uuids_and_otel_ids_map_directly_other_ids_hash() {
        let uuid = "0190b6c1-8a2b-7c3d-9e4f-a1b2c3d4e5f6";
        assert_eq!(
            trace_id_for(uuid),
            TraceId::from_hex("0190b6c18a2b7c3d9e4fa1b2c3d4e5f6").unwrap()
        );
        assert_eq!(
            trace_id_for("0190b6c18a2b7c3d9e4fa1b2c3d4e5f6"),
            trace_id_for(uuid)
        );
        assert_eq!(
            trace_id_for("conversation_7f3a"),
            TraceId::from(fnv1a_128(b"conversation_7f3a"))
        );
        assert_eq!(
            span_id_for("00f067aa0ba902b7"),
            SpanId::from(0x00f0_67aa_0ba9_02b7)
        );
        assert_eq!(span_id_for(uuid), SpanId::from(fnv1a_64(uuid.as_bytes())));
        assert_ne!(span_id_for("0000000000000000"), SpanId::INVALID);
    }

    #[test]
    fn lent_ids_are_taken_once_and_withdrawn_after() {
        let generator = TracedIdGenerator::new();
        let (trace, span) = (TraceId::from(7_u128), SpanId::from(9_u64));
        with_lent_ids(trace, span, || {
            assert_eq!(generator.new_span_id(), span);
            assert_ne!(generator.new_span_id(), span);
        });
        assert_ne!(generator.new_trace_id(), trace);
    }
}
