use serde::{Deserialize, Serialize};

/// Token counts of one call, as the provider reported them.
///
/// Every field is an `Option`: `None` means the provider did not say, which is not the same as
/// zero. Streams report usage in pieces (Anthropic sends input tokens first and output tokens at
/// the end), so [`Usage::merge`] keeps what an earlier report said when a later one is silent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Prompt tokens. Whether cached tokens are inside this count depends on the provider; see
    /// [`LlmModel::cache_tokens_in_input`](crate::LlmModel::cache_tokens_in_input).
    pub input_tokens: Option<u64>,
    /// Completion tokens, reasoning tokens included where the provider counts them there.
    pub output_tokens: Option<u64>,
    /// Prompt tokens served from the provider's prompt cache.
    pub cache_read_input_tokens: Option<u64>,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_creation_input_tokens: Option<u64>,
    /// Tokens the model spent reasoning.
    pub reasoning_tokens: Option<u64>,
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

    /// Sets the reasoning tokens.
    #[must_use]
    pub fn with_reasoning(mut self, tokens: u64) -> Self {
        self.reasoning_tokens = Some(tokens);
        self
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
        keep(&mut self.reasoning_tokens, later.reasoning_tokens);
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
}
