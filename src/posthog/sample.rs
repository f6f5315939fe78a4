//! Trace-consistent sampling, as PostHog proposed it for its SDKs (posthog-js#4997,
//! posthog-python#965): a trace is kept when the 32-bit FNV-1a hash of its `$ai_trace_id`,
//! divided by 2^32, is below the rate, so every event of a trace, in every SDK, gets the same
//! decision.

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

/// The 32-bit FNV-1a hash of `bytes`.
pub(crate) fn fnv1a_32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(FNV_OFFSET, |hash, &byte| {
        (hash ^ u32::from(byte)).wrapping_mul(FNV_PRIME)
    })
}

/// Whether sampling applies to `event`: the `$ai_*` events only.
pub(crate) fn applies_to(event: &crate::event::Event) -> bool {
    super::format::event_name(event).starts_with("$ai_")
}

/// Whether the trace named `trace_id` is kept at `rate`.
pub(crate) fn keeps(trace_id: &str, rate: f64) -> bool {
    f64::from(fnv1a_32(trace_id.as_bytes())) / 4_294_967_296.0 < rate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_values() {
        // The FNV reference test vectors.
        assert_eq!(fnv1a_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a_32(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn a_trace_is_kept_below_the_rate_and_always_alike() {
        // fnv1a("a") / 2^32 = 0.8908…, fnv1a("foobar") / 2^32 = 0.7485…
        assert!(keeps("a", 0.9) && !keeps("a", 0.89));
        assert!(keeps("foobar", 0.75) && !keeps("foobar", 0.74));
        assert!(keeps("anything", 1.0) && !keeps("anything", 0.0));
        let kept = (0..10_000)
            .filter(|i| keeps(&format!("trace-{i}"), 0.25))
            .count();
        assert!((2_200..2_800).contains(&kept), "{kept}");
    }
}
