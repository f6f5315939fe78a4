//! PostHog's bucketing hash.

/// 15 hex digits of SHA-1, all ones: the divisor that maps a hash onto `[0, 1]`.
const LONG_SCALE: f64 = 0xFFF_FFFF_FFFF_FFFF_u64 as f64;

/// The salt of the variant hash.
pub(super) const VARIANT_SALT: &str = "variant";

/// Where `bucketing_value` (a distinct id, or a group key) falls for flag `key`, in `[0, 1]`:
/// the first 15 hex digits of SHA-1 of `"{key}.{bucketing_value}{salt}"`, over
/// `0xFFFFFFFFFFFFFFF`. Every PostHog SDK and the server compute the same number, so a person
/// lands in the same bucket everywhere. Rollouts use the salt `""`: a person is in a rollout of
/// `p` percent when the bucket is at most `p / 100`. Variants use the salt `"variant"`: each
/// variant owns a share of `[0, 1)` in the order the flag lists them.
///
/// ```
/// use traced_llm::posthog::flags::bucket;
///
/// let at = bucket("simple-flag", "distinct_id_1", "");
/// assert!((0.0..=1.0).contains(&at));
/// assert!(at <= 0.45, "distinct_id_1 is in a 45% rollout of simple-flag");
/// ```
pub fn bucket(key: &str, bucketing_value: &str, salt: &str) -> f64 {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b".");
    sha.update(bucketing_value.as_bytes());
    sha.update(salt.as_bytes());
    let digest = sha.digest().bytes();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 16 hex digits, less the last one.
    let fifteen_digits = u64::from_be_bytes(first) >> 4;
    fifteen_digits as f64 / LONG_SCALE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_match_the_hex_digits_of_sha1() {
        // sha1("some-flag.user-1") starts with these 15 hex digits.
        let digest = sha1_smol::Sha1::from("some-flag.user-1")
            .digest()
            .to_string();
        let expected = u64::from_str_radix(&digest[..15], 16).unwrap() as f64 / LONG_SCALE;
        assert_eq!(bucket("some-flag", "user-1", ""), expected);
        let digest = sha1_smol::Sha1::from("some-flag.user-1variant")
            .digest()
            .to_string();
        let expected = u64::from_str_radix(&digest[..15], 16).unwrap() as f64 / LONG_SCALE;
        assert_eq!(bucket("some-flag", "user-1", VARIANT_SALT), expected);
    }

    #[test]
    fn the_scale_is_fifteen_hex_digits() {
        assert_eq!(LONG_SCALE, 1_152_921_504_606_846_975.0);
        assert!((0.0..=1.0).contains(&bucket("k", "", "")));
    }
}
