use serde::{Deserialize, Serialize};

/// Token counts of one call, as the provider reported them.
///
/// Every field is an `Option`: `None` means the provider did not say, which is not the same as
/// zero, and backends are told nothing rather than 0 (a cancelled call without usage then reads
/// as "unknown cost", not "$0"). Streams report usage in pieces (Anthropic sends input tokens
/// first and output tokens at the end), so [`Usage::merge`] keeps what an earlier report said
/// when a later one is silent.
///
/// What includes what:
///
/// - `output_tokens` is every billed output token, reasoning included, whatever the provider's
///   own split: Gemini reports thoughts apart from its candidates, and its provider adds them
///   back here, so a price times `output_tokens` is the bill. A backend that wants them apart
///   gets them apart (the PostHog mapping does it for the models PostHog adds them back for).
/// - `cache_read_input_tokens` and `cache_creation_input_tokens` are inside `input_tokens` or
///   beside it, as [`LlmModel::cache_tokens_in_input`](crate::LlmModel::cache_tokens_in_input)
///   says for the provider; a call whose input is smaller than its cache reads and writes counts
///   them apart whatever the provider says (see [`Usage::counts_cache_apart`]).
/// - `cache_creation_5m_input_tokens` and `cache_creation_1h_input_tokens` split
///   `cache_creation_input_tokens` by how long the cache lives, where the provider says
///   (Anthropic); the two add up to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Prompt tokens. Whether cached tokens are inside this count depends on the provider; see
    /// [`LlmModel::cache_tokens_in_input`](crate::LlmModel::cache_tokens_in_input).
    pub input_tokens: Option<u64>,
    /// Completion tokens, reasoning tokens included.
    pub output_tokens: Option<u64>,
    /// Prompt tokens served from the provider's prompt cache.
    pub cache_read_input_tokens: Option<u64>,
    /// Prompt tokens written to the provider's prompt cache, whatever the cache's lifetime.
    pub cache_creation_input_tokens: Option<u64>,
    /// The part of `cache_creation_input_tokens` written to a cache that lives 5 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_5m_input_tokens: Option<u64>,
    /// The part of `cache_creation_input_tokens` written to a cache that lives 1 hour (billed at
    /// a higher rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_1h_input_tokens: Option<u64>,
    /// Tokens the model spent reasoning (inside `output_tokens`).
    pub reasoning_tokens: Option<u64>,
    /// Web searches the provider ran for the call (billed per search).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_search_count: Option<u64>,
    /// What the provider says the call cost, in USD (OpenRouter's `usage.cost`). When set, it is
    /// the call's cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// Usage with input and output tokens set.
    pub fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens: Some(input_tokens),
            output_tokens: Some(output_tokens),
            ..Self::default()
        }
    }

    /// Sets the input tokens.
    #[must_use]
    pub fn with_input(mut self, tokens: u64) -> Self {
        self.input_tokens = Some(tokens);
        self
    }

    /// Sets the output tokens.
    #[must_use]
    pub fn with_output(mut self, tokens: u64) -> Self {
        self.output_tokens = Some(tokens);
        self
    }

    /// Sets the cache-read tokens.
    #[must_use]
    pub fn with_cache_read(mut self, tokens: u64) -> Self {
        self.cache_read_input_tokens = Some(tokens);
        self
    }

    /// Sets the cache-creation tokens.
    #[must_use]
    pub fn with_cache_creation(mut self, tokens: u64) -> Self {
        self.cache_creation_input_tokens = Some(tokens);
        self
    }

    /// Sets the cache-creation tokens by cache lifetime; their sum becomes the cache-creation
    /// tokens.
    #[must_use]
    pub fn with_cache_creation_ttl(mut self, five_minutes: u64, one_hour: u64) -> Self {
        self.cache_creation_5m_input_tokens = Some(five_minutes);
        self.cache_creation_1h_input_tokens = Some(one_hour);
        self.cache_creation_input_tokens = Some(five_minutes.saturating_add(one_hour));
        self
    }

    /// Sets the reasoning tokens.
    #[must_use]
    pub fn with_reasoning(mut self, tokens: u64) -> Self {
        self.reasoning_tokens = Some(tokens);
        self
    }

    /// Sets the number of web searches.
    #[must_use]
    pub fn with_web_searches(mut self, count: u64) -> Self {
        self.web_search_count = Some(count);
        self
    }

    /// Sets what the provider says the call cost, in USD.
    #[must_use]
    pub fn with_cost_usd(mut self, usd: f64) -> Self {
        self.cost_usd = Some(usd);
        self
    }

    /// Whether the counts show the cache tokens to be apart from the input tokens, whatever the
    /// provider declares: fewer input tokens than cache reads plus writes cannot include them.
    /// (A proxy that forwards Anthropic's counts through an OpenAI-style API does this.)
    pub fn counts_cache_apart(&self) -> bool {
        let cached = self
            .cache_read_input_tokens
            .unwrap_or(0)
            .saturating_add(self.cache_creation_input_tokens.unwrap_or(0));
        self.input_tokens.is_some_and(|input| input < cached)
    }

    /// Folds a later report into this one: fields the later report states win, fields it leaves
    /// out keep their earlier value.
    pub fn merge(&mut self, later: &Usage) {
        fn keep(earlier: &mut Option<u64>, later: Option<u64>) {
            if later.is_some() {
                *earlier = later;
            }
        }
        keep(&mut self.input_tokens, later.input_tokens);
        keep(&mut self.output_tokens, later.output_tokens);
        keep(
            &mut self.cache_read_input_tokens,
            later.cache_read_input_tokens,
        );
        keep(
            &mut self.cache_creation_input_tokens,
            later.cache_creation_input_tokens,
        );
        keep(
            &mut self.cache_creation_5m_input_tokens,
            later.cache_creation_5m_input_tokens,
        );
        keep(
            &mut self.cache_creation_1h_input_tokens,
            later.cache_creation_1h_input_tokens,
        );
        keep(&mut self.reasoning_tokens, later.reasoning_tokens);
        keep(&mut self.web_search_count, later.web_search_count);
        if later.cost_usd.is_some() {
            self.cost_usd = later.cost_usd;
        }
    }

    /// True when no field is known.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_never_erases_an_earlier_value() {
        let mut usage = Usage {
            input_tokens: Some(10),
            cache_read_input_tokens: Some(4),
            ..Usage::default()
        };
        usage.merge(&Usage {
            output_tokens: Some(7),
            ..Usage::default()
        });
        assert_eq!(usage, Usage::new(10, 7).with_cache_read(4));
        usage.merge(&Usage {
            output_tokens: Some(9),
            ..Usage::default()
        });
        assert_eq!(usage.output_tokens, Some(9));
        assert_eq!(usage.input_tokens, Some(10));
    }

    #[test]
    fn cache_counts_larger_than_the_input_are_apart_from_it() {
        let inclusive = Usage::new(1_000, 5)
            .with_cache_read(600)
            .with_cache_creation(300);
        assert!(!inclusive.counts_cache_apart());
        let exclusive = Usage::new(10, 5)
            .with_cache_read(600)
            .with_cache_creation(300);
        assert!(exclusive.counts_cache_apart());
        // Unknown input says nothing.
        assert!(!Usage::default().with_cache_read(5).counts_cache_apart());
    }

    #[test]
    fn ttl_split_sums_to_the_cache_creation_tokens() {
        let usage = Usage::default().with_cache_creation_ttl(30, 40);
        assert_eq!(usage.cache_creation_input_tokens, Some(70));
        let mut merged = Usage::new(1, 1);
        merged.merge(&usage.with_web_searches(2).with_cost_usd(0.5));
        assert_eq!(merged.cache_creation_1h_input_tokens, Some(40));
        assert_eq!(merged.web_search_count, Some(2));
        assert_eq!(merged.cost_usd, Some(0.5));
    }
}
