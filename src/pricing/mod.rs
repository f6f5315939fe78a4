//! Client-side prices and the cost of a call.
//!
//! PostHog prices `$ai_generation` events on its server from its own table. Pricing on the
//! client is for what that table cannot know: negotiated rates, fine-tunes, self-hosted models,
//! and local sinks that never reach PostHog. When an event carries `$ai_input_cost_usd` and
//! `$ai_output_cost_usd`, PostHog keeps them as they are.
//!
//! - [`ModelPrice`]: USD per million tokens for input, output, cache read and cache write, and
//!   optionally a higher [`LongContextPrice`] for calls whose prompt passes a number of tokens.
//! - [`PriceTable`]: prices by model name, built in ([`PriceTable::builtin`]) and overridable.
//! - [`ModelPrice::cost`]: the [`Cost`] of one call's [`Usage`], under the cache rules of
//!   PostHog's server (see [`CacheAccounting`]).
//!
//! An unknown model has no price, never an error: cost is then left to PostHog. Where a local
//! figure matters (a cost budget, say), the crate logs one warning per unknown model, so that a
//! cost that reads 0 is noticed.

mod table;

pub use self::table::BUILTIN_PRICES_AS_OF;

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::types::Usage;

/// Prices are quoted per this many tokens.
const TOKENS_PER_PRICE_UNIT: f64 = 1_000_000.0;
/// Cache read without an explicit rate, Anthropic-style models: a tenth of the input price.
const ANTHROPIC_CACHE_READ_FACTOR: f64 = 0.1;
/// Cache write without an explicit rate, Anthropic-style models: the 5-minute write premium.
const ANTHROPIC_CACHE_WRITE_FACTOR: f64 = 1.25;
/// Cache read without an explicit rate, other models: half the input price.
const DEFAULT_CACHE_READ_FACTOR: f64 = 0.5;
/// Cache write without an explicit rate, other models: the plain input price.
const DEFAULT_CACHE_WRITE_FACTOR: f64 = 1.0;
/// Anthropic's 1-hour cache write: twice the input price (the 5-minute write is 1.25 ×).
const ANTHROPIC_CACHE_WRITE_1H_FACTOR: f64 = 2.0;

/// What one model costs, in USD per million tokens.
///
/// Cache rates are optional because most providers quote them as a fraction of the input price;
/// without one, [`ModelPrice::cost`] falls back to the multipliers PostHog's server uses (see
/// [`CacheAccounting`]). Prices are expected to be finite and non-negative.
///
/// Some models charge more for long prompts (Claude Sonnet 4 above 200,000 input tokens, Claude
/// Haiku 5.5 above 100,000, GPT-5.5 above 272,000): [`ModelPrice::with_long_context`] adds that
/// tier, and a call whose prompt passes it pays the tier's rates on every token, output included.
///
/// ```
/// use traced_llm::pricing::{LongContextPrice, ModelPrice};
///
/// let sonnet = ModelPrice::new(3.0, 15.0)
///     .with_cache_read(0.30)
///     .with_cache_write(3.75)
///     .with_long_context(LongContextPrice::new(200_000, 6.0, 22.50));
/// assert_eq!(sonnet.cache_write, Some(3.75));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens, reasoning tokens included.
    pub output: f64,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Input tokens written to the prompt cache (Anthropic: the 5-minute rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
    /// The higher rates of calls with a long prompt, when the model has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<LongContextPrice>,
}

impl ModelPrice {
    /// A price with input and output rates and no explicit cache rates.
    pub const fn new(input: f64, output: f64) -> Self {
        Self {
            input,
            output,
            cache_read: None,
            cache_write: None,
            long_context: None,
        }
    }

    /// Sets the cache-read rate.
    #[must_use]
    pub const fn with_cache_read(self, usd_per_million: f64) -> Self {
        Self {
            cache_read: Some(usd_per_million),
            ..self
        }
    }

    /// Sets the cache-write rate.
    #[must_use]
    pub const fn with_cache_write(self, usd_per_million: f64) -> Self {
        Self {
            cache_write: Some(usd_per_million),
            ..self
        }
    }

    /// Sets the rates of calls whose prompt is longer than the tier's threshold.
    #[must_use]
    pub const fn with_long_context(self, tier: LongContextPrice) -> Self {
        Self {
            long_context: Some(tier),
            ..self
        }
    }

    /// The cost of one call.
    ///
    /// Token counts the provider did not report count as zero. Reasoning tokens are not added:
    /// OpenAI and Anthropic already count them in the output tokens. See [`CacheAccounting`]
    /// for how cache tokens are priced.
    ///
    /// With a [`LongContextPrice`], the prompt (uncached input plus cache reads and writes, the
    /// way the provider counts it) decides the tier: a prompt longer than
    /// [`LongContextPrice::above_input_tokens`] prices the whole call at the tier's rates.
    pub fn cost(&self, usage: &Usage, accounting: CacheAccounting) -> Cost {
        let input = usage.input_tokens.unwrap_or(0);
        let output = usage.output_tokens.unwrap_or(0);
        let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
        let cache_write = usage.cache_creation_input_tokens.unwrap_or(0);

        let prompt = if accounting.cache_tokens_in_input {
            input
        } else {
            input.saturating_add(cache_read).saturating_add(cache_write)
        };
        let rates = match self.long_context {
            Some(tier) if prompt > tier.above_input_tokens => Rates {
                input: tier.input,
                output: tier.output,
                cache_read: tier.cache_read,
                cache_write: tier.cache_write,
            },
            _ => Rates {
                input: self.input,
                output: self.output,
                cache_read: self.cache_read,
                cache_write: self.cache_write,
            },
        };

        let (read_factor, write_factor) = if accounting.anthropic_rates {
            (ANTHROPIC_CACHE_READ_FACTOR, ANTHROPIC_CACHE_WRITE_FACTOR)
        } else {
            (DEFAULT_CACHE_READ_FACTOR, DEFAULT_CACHE_WRITE_FACTOR)
        };
        let read_rate = rates.cache_read.unwrap_or(rates.input * read_factor);
        let write_rate = rates.cache_write.unwrap_or(rates.input * write_factor);
        // Writes to Anthropic's 1-hour cache cost more than to its 5-minute one.
        let write_1h = usage
            .cache_creation_1h_input_tokens
            .unwrap_or(0)
            .min(cache_write);
        let write_1h_rate = if accounting.anthropic_rates {
            rates.input * ANTHROPIC_CACHE_WRITE_1H_FACTOR
        } else {
            write_rate
        };

        let uncached = if accounting.cache_tokens_in_input {
            input.saturating_sub(cache_read.saturating_add(cache_write))
        } else {
            input
        };
        let input_usd = usd(uncached, rates.input)
            + usd(cache_read, read_rate)
            + usd(cache_write - write_1h, write_rate)
            + usd(write_1h, write_1h_rate);
        Cost::new(input_usd, usd(output, rates.output))
    }
}

/// The rates one call is priced at: a model's own, or its long-context tier's.
struct Rates {
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
}

/// What a model charges, in USD per million tokens, for a call whose prompt is longer than
/// [`LongContextPrice::above_input_tokens`].
///
/// Providers that charge this way price the whole call at the higher rates once the prompt
/// passes the threshold, output included. The prompt is every input token of the call: uncached
/// input, cache reads and cache writes. Cache rates left out fall back as they do for
/// [`ModelPrice`], from the tier's input rate.
///
/// ```
/// use traced_llm::pricing::{CacheAccounting, LongContextPrice, ModelPrice};
/// use traced_llm::types::Usage;
///
/// let price = ModelPrice::new(3.0, 15.0)
///     .with_long_context(LongContextPrice::new(200_000, 6.0, 22.50));
/// // 150,000 + 60,000 cache reads = 210,000 prompt tokens: the long-context tier.
/// let usage = Usage::new(150_000, 1_000).with_cache_read(60_000);
/// let cost = price.cost(&usage, CacheAccounting::ANTHROPIC);
/// // 150,000 × $6 + 60,000 × $0.60 + 1,000 × $22.50, per million.
/// assert!((cost.total_usd - (0.9 + 0.036 + 0.0225)).abs() < 1e-12);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LongContextPrice {
    /// The longest prompt that still pays the model's normal rates.
    pub above_input_tokens: u64,
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens, reasoning tokens included.
    pub output: f64,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

impl LongContextPrice {
    /// Input and output rates for prompts longer than `above_input_tokens`.
    pub const fn new(above_input_tokens: u64, input: f64, output: f64) -> Self {
        Self {
            above_input_tokens,
            input,
            output,
            cache_read: None,
            cache_write: None,
        }
    }

    /// Sets the cache-read rate of the tier.
    #[must_use]
    pub const fn with_cache_read(self, usd_per_million: f64) -> Self {
        Self {
            cache_read: Some(usd_per_million),
            ..self
        }
    }

    /// Sets the cache-write rate of the tier.
    #[must_use]
    pub const fn with_cache_write(self, usd_per_million: f64) -> Self {
        Self {
            cache_write: Some(usd_per_million),
            ..self
        }
    }
}

/// USD for `tokens` at `usd_per_million`.
fn usd(tokens: u64, usd_per_million: f64) -> f64 {
    tokens as f64 * usd_per_million / TOKENS_PER_PRICE_UNIT
}

/// How a provider reports cache tokens, and which fallback rates apply.
///
/// This mirrors the cost step of PostHog's ingestion, so that a cost computed here matches the one
/// PostHog would compute from the same prices:
///
/// - **Where cache tokens are counted.** OpenAI-style providers count cache reads (and writes)
///   inside the input tokens, so the uncached input is `input − cache read − cache write`,
///   saturating at zero. Anthropic reports them apart, so the uncached input is `input`.
/// - **Rates without an explicit price.** Anthropic-style models: cache read at 0.1 × and cache
///   write at 1.25 × the input price. Other models: cache read at 0.5 × and cache write at 1 × the
///   input price.
/// - **Anthropic-style** means what PostHog's server matches: provider `anthropic`, a model name
///   containing `anthropic` (Bedrock ids), or one starting with `claude` (Vertex and gateways),
///   all compared ASCII case-insensitively; see [`CacheAccounting::for_call`].
///
/// One deliberate difference: PostHog ignores cache-write tokens of non-Anthropic models. Here
/// they are priced like any other input token (or at an explicit cache-write rate, for the
/// OpenAI-compatible servers that publish one), so a call is never cheaper than the bill. With no
/// explicit rate and cache tokens inside the input, as OpenAI reports them, both give the same
/// figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheAccounting {
    cache_tokens_in_input: bool,
    anthropic_rates: bool,
}

impl CacheAccounting {
    /// OpenAI and OpenAI-compatible servers: cache tokens inside the input, default rates.
    pub const OPENAI: Self = Self::new(true, false);
    /// Anthropic's own API: cache tokens apart from the input, Anthropic rates.
    pub const ANTHROPIC: Self = Self::new(false, true);

    /// Accounting from its two answers; see the type's docs.
    pub const fn new(cache_tokens_in_input: bool, anthropic_rates: bool) -> Self {
        Self {
            cache_tokens_in_input,
            anthropic_rates,
        }
    }

    /// Accounting for a call to `model` through `provider`, where `cache_tokens_in_input` is
    /// [`LlmModel::cache_tokens_in_input`](crate::LlmModel::cache_tokens_in_input).
    ///
    /// ```
    /// use traced_llm::pricing::CacheAccounting;
    ///
    /// let vertex = CacheAccounting::for_call("vertex", "claude-sonnet-4@20250514", false);
    /// assert!(vertex.anthropic_rates());
    /// assert_eq!(CacheAccounting::for_call("openai", "gpt-5-mini", true), CacheAccounting::OPENAI);
    /// ```
    pub fn for_call(provider: &str, model: &str, cache_tokens_in_input: bool) -> Self {
        Self::new(cache_tokens_in_input, is_anthropic_style(provider, model))
    }

    /// Whether the input tokens already include the cache tokens.
    pub const fn cache_tokens_in_input(&self) -> bool {
        self.cache_tokens_in_input
    }

    /// Whether Anthropic's fallback cache rates apply.
    pub const fn anthropic_rates(&self) -> bool {
        self.anthropic_rates
    }
}

/// PostHog's "Anthropic-matched" test, without allocating.
fn is_anthropic_style(provider: &str, model: &str) -> bool {
    const ANTHROPIC: &[u8] = b"anthropic";
    const CLAUDE: &[u8] = b"claude";
    let model = model.as_bytes();
    provider.eq_ignore_ascii_case("anthropic")
        || model
            .windows(ANTHROPIC.len())
            .any(|window| window.eq_ignore_ascii_case(ANTHROPIC))
        || model
            .get(..CLAUDE.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(CLAUDE))
}

/// The cost of one call in USD, as PostHog's `$ai_input_cost_usd`, `$ai_output_cost_usd` and
/// `$ai_total_cost_usd`.
///
/// Input cost includes cache reads and writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Cost {
    /// Uncached input, cache reads and cache writes.
    pub input_usd: f64,
    /// Output, reasoning included.
    pub output_usd: f64,
    /// Input plus output.
    pub total_usd: f64,
}

impl Cost {
    /// A cost from its input and output parts; the total is their sum.
    pub fn new(input_usd: f64, output_usd: f64) -> Self {
        Self {
            input_usd,
            output_usd,
            total_usd: input_usd + output_usd,
        }
    }

    /// The charge a provider reported (`total_usd`), split between input and output as this
    /// estimate splits it (all input without an estimate).
    pub(crate) fn reported(total_usd: f64, estimate: Option<Cost>) -> Self {
        match estimate {
            Some(estimate) if estimate.total_usd > 0.0 => {
                let scale = total_usd / estimate.total_usd;
                Self {
                    input_usd: estimate.input_usd * scale,
                    output_usd: estimate.output_usd * scale,
                    total_usd,
                }
            }
            _ => Self {
                input_usd: total_usd,
                output_usd: 0.0,
                total_usd,
            },
        }
    }
}

/// Prices by model name.
///
/// A model name finds the longest key that it equals or extends with a snapshot tag, after
/// dropping any `provider/` prefix and ignoring ASCII case:
///
/// - `openai/gpt-5-mini` is looked up as `gpt-5-mini`;
/// - `gpt-5-mini-2025-08-07`, `claude-3-5-sonnet-20241022`, `claude-sonnet-4@20250514`,
///   `claude-3-7-sonnet-latest` and the alias `claude-sonnet-4-0` find the key without the tag;
/// - anything else after the key makes it a different model, so `claude-opus-4` does not price
///   `claude-opus-4-5` (which costs a third as much), nor `gpt-5` `gpt-5.5`: a name no key covers
///   gets no price rather than a wrong one.
///
/// Cloning is cheap (the entries sit behind an [`Arc`]) and lookups do not allocate. Adding a
/// model copies the entries only while they are shared.
///
/// ```
/// use traced_llm::pricing::{CacheAccounting, ModelPrice, PriceTable};
/// use traced_llm::types::Usage;
///
/// let prices = PriceTable::builtin()
///     // A fine-tune the built-in table cannot know.
///     .with_model("acme-support-v2", ModelPrice::new(0.30, 1.20).with_cache_read(0.15))
///     // A negotiated rate wins over the list price, snapshots included.
///     .with_model("claude-sonnet-4", ModelPrice::new(2.40, 12.0));
///
/// let usage = Usage::new(1_000, 500);
/// let cost = prices
///     .cost("openai", "openai/acme-support-v2", &usage, true)
///     .expect("a price was configured");
/// assert!((cost.total_usd - 0.0009).abs() < 1e-12);
///
/// let sonnet = prices.price_for("claude-sonnet-4-20250514").unwrap();
/// assert_eq!(sonnet.input, 2.40);
/// let cost = sonnet.cost(&usage, CacheAccounting::ANTHROPIC);
/// assert!((cost.total_usd - 0.0084).abs() < 1e-12);
///
/// assert!(prices.price_for("my-local-llama").is_none());
/// ```
#[derive(Clone)]
pub struct PriceTable {
    /// Longest key first, so the first match is the longest.
    entries: Arc<Vec<Entry>>,
}

#[derive(Clone)]
struct Entry {
    /// Lower-case, without a provider prefix.
    key: Cow<'static, str>,
    price: ModelPrice,
}

impl PriceTable {
    /// The current OpenAI and Anthropic list prices, as of [`BUILTIN_PRICES_AS_OF`].
    ///
    /// Anthropic: Claude Fable 5 and 5.1, Mythos 5 and 5.1; Opus 4, 4.1, 4.5–4.8, 5, 5.5;
    /// Sonnet 3.5, 3.7, 4, 4.5, 4.6, 5, 5.5; Haiku 3, 3.5, 4.5, 5.5. OpenAI: GPT-5.5 (pro),
    /// GPT-5.4 (mini, nano, pro), GPT-5.2, GPT-5.1, GPT-5 (mini, nano), GPT-4.1 (mini, nano),
    /// GPT-4o (mini), o1, o3, o3-mini, o4-mini. Long-context tiers are included where the
    /// provider charges them (Sonnet 4 and 4.5, Haiku 5.5, GPT-5.4, GPT-5.5). Other models are
    /// left out; add them with [`PriceTable::with_model`].
    pub fn builtin() -> Self {
        static BUILTIN: OnceLock<PriceTable> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let mut entries: Vec<Entry> = table::BUILTIN
                    .iter()
                    .map(|&(key, price)| Entry {
                        key: Cow::Borrowed(key),
                        price,
                    })
                    .collect();
                entries.sort_by_key(|entry| Reverse(entry.key.len()));
                PriceTable {
                    entries: Arc::new(entries),
                }
            })
            .clone()
    }

    /// A table without prices.
    pub fn empty() -> Self {
        Self {
            entries: Arc::new(Vec::new()),
        }
    }

    /// Adds `model` with `price`, replacing the entry of the same name if there is one.
    ///
    /// The name is stored like lookups see it: lower-cased, without a `provider/` prefix, and
    /// it covers its dated snapshots. An empty name is ignored.
    #[must_use]
    pub fn with_model(mut self, model: impl AsRef<str>, price: ModelPrice) -> Self {
        let key = without_provider(model.as_ref()).to_ascii_lowercase();
        if key.is_empty() {
            return self;
        }
        let entries = Arc::make_mut(&mut self.entries);
        match entries.iter_mut().find(|entry| entry.key == key) {
            Some(entry) => entry.price = price,
            None => {
                entries.push(Entry {
                    key: Cow::Owned(key),
                    price,
                });
                entries.sort_by_key(|entry| Reverse(entry.key.len()));
            }
        }
        self
    }

    /// The price of `model`, or `None` when no key covers it.
    pub fn price_for(&self, model: &str) -> Option<&ModelPrice> {
        let name = without_provider(model).as_bytes();
        self.entries
            .iter()
            .find(|entry| covers(entry.key.as_bytes(), name))
            .map(|entry| &entry.price)
    }

    /// The cost of one call to `model` through `provider`, or `None` when the model has no
    /// price.
    ///
    /// `cache_tokens_in_input` is
    /// [`LlmModel::cache_tokens_in_input`](crate::LlmModel::cache_tokens_in_input); see
    /// [`CacheAccounting::for_call`].
    pub fn cost(
        &self,
        provider: &str,
        model: &str,
        usage: &Usage,
        cache_tokens_in_input: bool,
    ) -> Option<Cost> {
        let accounting = CacheAccounting::for_call(provider, model, cache_tokens_in_input);
        self.price_for(model)
            .map(|price| price.cost(usage, accounting))
    }

    /// [`PriceTable::price_for`], and one warning (target `traced_llm::pricing`) the first time a
    /// model has no price, so that a cost that reads 0 is noticed.
    ///
    /// The warning names the model and how to price it. Each model is warned about once per
    /// process; after [`MAX_WARNED_MODELS`] different names, one last warning says that more
    /// are unpriced and the rest stay silent, so that a stream of made-up names cannot flood
    /// the log or grow memory.
    pub fn price_or_warn(&self, model: &str) -> Option<&ModelPrice> {
        let price = self.price_for(model);
        if price.is_none() {
            warn_unpriced(model);
        }
        price
    }
}

/// How many different unpriced model names [`PriceTable::price_or_warn`] warns about by name.
pub const MAX_WARNED_MODELS: usize = 256;

/// The unpriced model names warned about so far, and whether the overflow warning was given.
fn warned_models() -> &'static Mutex<(HashSet<String>, bool)> {
    static WARNED: OnceLock<Mutex<(HashSet<String>, bool)>> = OnceLock::new();
    WARNED.get_or_init(|| Mutex::new((HashSet::new(), false)))
}

/// Warns once per process that `model` has no price.
pub(crate) fn warn_unpriced(model: &str) {
    let mut warned = warned_models()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (names, overflowed) = &mut *warned;
    if names.contains(model) {
        return;
    }
    if names.len() >= MAX_WARNED_MODELS {
        if !*overflowed {
            *overflowed = true;
            tracing::warn!(
                target: "traced_llm::pricing",
                "more than {MAX_WARNED_MODELS} models have no price; their cost reads 0 and no further model is named"
            );
        }
        return;
    }
    names.insert(model.to_owned());
    drop(warned);
    tracing::warn!(
        target: "traced_llm::pricing",
        model,
        "model {model:?} has no price: its cost reads 0 (add it with PriceTable::with_model or CallContext::price)"
    );
}

/// Whether [`warn_unpriced`] has warned about `model` (tests).
#[cfg(test)]
pub(crate) fn was_warned(model: &str) -> bool {
    warned_models()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .0
        .contains(model)
}

impl fmt::Debug for PriceTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|entry| (&*entry.key, &entry.price)))
            .finish()
    }
}

/// `openai/gpt-5-mini` → `gpt-5-mini`.
fn without_provider(model: &str) -> &str {
    match model.rfind('/') {
        Some(slash) => &model[slash + 1..],
        None => model,
    }
}

/// Whether `key` prices `name`: `name` is `key`, or `key` followed by a snapshot tag.
fn covers(key: &[u8], name: &[u8]) -> bool {
    let Some((head, rest)) = name.split_at_checked(key.len()) else {
        return false;
    };
    head.eq_ignore_ascii_case(key) && is_snapshot_suffix(rest)
}

/// Nothing, or `-`/`@` followed by a date (`2024-07-18`, `20241022`, `0613`), `latest`, a
/// version (`v2`) or the `0` of aliases such as `claude-sonnet-4-0`.
fn is_snapshot_suffix(rest: &[u8]) -> bool {
    let tag = match rest.split_first() {
        None => return true,
        Some((b'-' | b'@', tag)) => tag,
        Some(_) => return false,
    };
    let end = tag
        .iter()
        .position(|byte| !byte.is_ascii_alphanumeric())
        .unwrap_or(tag.len());
    let segment = &tag[..end];
    let all_digits = |bytes: &[u8]| !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit);
    (segment.len() >= 4 && all_digits(segment))
        || segment.eq_ignore_ascii_case(b"latest")
        || segment == b"0"
        || matches!(segment, [b'v' | b'V', number @ ..] if all_digits(number))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_usd(actual: f64, expected: f64) {
        assert!(
            (actual - expected).abs() < 1e-12,
            "expected {expected} USD, got {actual} USD"
        );
    }

    fn assert_cost(cost: Cost, input_usd: f64, output_usd: f64, total_usd: f64) {
        assert_usd(cost.input_usd, input_usd);
        assert_usd(cost.output_usd, output_usd);
        assert_usd(cost.total_usd, total_usd);
    }

    // gpt-4o-mini at $0.15 in, $0.075 cached, $0.60 out; 1,000 input of which 400 cached,
    // 200 output:
    //   uncached 600 × 0.15 / 1e6 = 0.000090
    //   cached   400 × 0.075 / 1e6 = 0.000030   → input 0.000120
    //   output   200 × 0.60 / 1e6 = 0.000120   → total 0.000240
    #[test]
    fn openai_cached_tokens_are_taken_out_of_the_input_and_priced_apart() {
        let price = ModelPrice::new(0.15, 0.60).with_cache_read(0.075);
        let usage = Usage::new(1_000, 200).with_cache_read(400);
        let cost = price.cost(&usage, CacheAccounting::OPENAI);
        assert_cost(cost, 0.000_120, 0.000_120, 0.000_240);
    }

    // Built-in gpt-4.1-nano at $0.10 in, $0.025 cached, $0.40 out, same usage:
    //   uncached 600 × 0.10 / 1e6 = 0.000060
    //   cached   400 × 0.025 / 1e6 = 0.000010  → input 0.000070
    //   output   200 × 0.40 / 1e6 = 0.000080   → total 0.000150
    #[test]
    fn builtin_openai_price_with_cached_tokens() {
        let usage = Usage::new(1_000, 200).with_cache_read(400);
        let cost = PriceTable::builtin()
            .cost("openai", "gpt-4.1-nano-2025-04-14", &usage, true)
            .unwrap();
        assert_cost(cost, 0.000_070, 0.000_080, 0.000_150);
    }

    // Without a cached rate, OpenAI-style cache reads cost half the input price:
    //   400 × 0.05 / 1e6 = 0.000020, plus 600 × 0.10 / 1e6 = 0.000060 → input 0.000080
    #[test]
    fn openai_cache_read_falls_back_to_half_the_input_price() {
        let usage = Usage::new(1_000, 200).with_cache_read(400);
        let cost = ModelPrice::new(0.10, 0.40).cost(&usage, CacheAccounting::OPENAI);
        assert_cost(cost, 0.000_080, 0.000_080, 0.000_160);
    }

    // claude-sonnet-4 at $3 in, $3.75 5-minute write, $0.30 read, $15 out; 1,000 input (cache
    // tokens reported apart), 3,000 cache read, 500 cache write, 200 output:
    //   uncached 1,000 × 3 / 1e6    = 0.003000
    //   read     3,000 × 0.30 / 1e6 = 0.000900
    //   write      500 × 3.75 / 1e6 = 0.001875  → input 0.005775
    //   output     200 × 15 / 1e6   = 0.003000  → total 0.008775
    #[test]
    fn anthropic_cache_read_and_write_are_added_to_the_input() {
        let usage = Usage::new(1_000, 200)
            .with_cache_read(3_000)
            .with_cache_creation(500);
        let cost = PriceTable::builtin()
            .cost("anthropic", "claude-sonnet-4-20250514", &usage, false)
            .unwrap();
        assert_cost(cost, 0.005_775, 0.003, 0.008_775);
    }

    // Without cache rates an Anthropic-style model reads at 0.1 × and writes at 1.25 × the
    // input price: $0.30 and $3.75 for a $3 model, so the figures above come out again.
    #[test]
    fn anthropic_cache_rates_fall_back_to_anthropic_multipliers() {
        let usage = Usage::new(1_000, 200)
            .with_cache_read(3_000)
            .with_cache_creation(500);
        let cost = ModelPrice::new(3.0, 15.0).cost(&usage, CacheAccounting::ANTHROPIC);
        assert_cost(cost, 0.005_775, 0.003, 0.008_775);
    }

    // A gateway that counts Claude's cache tokens inside the input: 4,500 input of which 3,000
    // read and 500 written leaves the same 1,000 uncached tokens.
    #[test]
    fn inclusive_anthropic_input_takes_out_reads_and_writes() {
        let usage = Usage::new(4_500, 200)
            .with_cache_read(3_000)
            .with_cache_creation(500);
        let accounting = CacheAccounting::for_call("gateway", "claude-sonnet-4", true);
        let cost = PriceTable::builtin()
            .price_for("claude-sonnet-4")
            .unwrap()
            .cost(&usage, accounting);
        assert_cost(cost, 0.005_775, 0.003, 0.008_775);
    }

    #[test]
    fn uncached_input_never_goes_below_zero() {
        // 100 input tokens "including" 300 cached ones: only the 300 cached tokens are priced,
        // 300 × 0.5 / 1e6 = 0.000150.
        let usage = Usage::new(100, 0).with_cache_read(300);
        let cost = ModelPrice::new(1.0, 1.0)
            .with_cache_read(0.5)
            .cost(&usage, CacheAccounting::OPENAI);
        assert_cost(cost, 0.000_150, 0.0, 0.000_150);
    }

    // Cache writes of a non-Anthropic model reported apart from the input are priced at the
    // input rate: (1,000 + 200) × 2 / 1e6 = 0.002400.
    #[test]
    fn non_anthropic_cache_writes_cost_the_input_price() {
        let usage = Usage::new(1_000, 0).with_cache_creation(200);
        let cost = ModelPrice::new(2.0, 8.0).cost(&usage, CacheAccounting::new(false, false));
        assert_cost(cost, 0.002_400, 0.0, 0.002_400);
    }

    #[test]
    fn reasoning_tokens_are_not_added_to_the_output() {
        // 1,000 output tokens of which 800 reasoning: 1,000 × 2 / 1e6 = 0.002.
        let usage = Usage::new(0, 1_000).with_reasoning(800);
        let cost = ModelPrice::new(0.25, 2.0).cost(&usage, CacheAccounting::OPENAI);
        assert_cost(cost, 0.0, 0.002, 0.002);
    }

    #[test]
    fn missing_token_counts_cost_nothing() {
        let cost = ModelPrice::new(3.0, 15.0).cost(&Usage::default(), CacheAccounting::ANTHROPIC);
        assert_eq!(cost, Cost::default());
    }

    #[test]
    fn longest_key_wins_so_gpt_4o_does_not_price_gpt_4o_mini() {
        let four_o = ModelPrice::new(2.50, 10.0);
        let mini = ModelPrice::new(0.15, 0.60);
        let table = PriceTable::empty()
            .with_model("gpt-4o", four_o)
            .with_model("gpt-4o-mini", mini);
        assert_eq!(table.price_for("gpt-4o"), Some(&four_o));
        assert_eq!(table.price_for("gpt-4o-2024-08-06"), Some(&four_o));
        assert_eq!(table.price_for("gpt-4o-mini"), Some(&mini));
        assert_eq!(table.price_for("gpt-4o-mini-2024-07-18"), Some(&mini));
    }

    #[test]
    fn dated_snapshots_aliases_and_provider_prefixes_find_their_model() {
        let table = PriceTable::builtin();
        let price = |model: &str| {
            table
                .price_for(model)
                .map(|price| (price.input, price.output))
        };
        assert_eq!(price("gpt-5-mini-2025-08-07"), Some((0.25, 2.0)));
        assert_eq!(price("openai/gpt-5-nano"), Some((0.05, 0.40)));
        assert_eq!(price("OpenAI/GPT-5-Nano-2025-08-07"), Some((0.05, 0.40)));
        assert_eq!(price("claude-3-5-sonnet-20241022"), Some((3.0, 15.0)));
        assert_eq!(price("claude-3-5-sonnet-latest"), Some((3.0, 15.0)));
        assert_eq!(price("claude-3-5-haiku-20241022"), Some((0.80, 4.0)));
        assert_eq!(price("claude-sonnet-4@20250514"), Some((3.0, 15.0)));
        assert_eq!(
            price("anthropic/claude-haiku-4-5-20251001"),
            Some((1.0, 5.0))
        );
        assert_eq!(price("claude-opus-4-20250514"), Some((15.0, 75.0)));
        assert_eq!(price("claude-opus-4-0"), Some((15.0, 75.0)));
        assert_eq!(price("claude-opus-4-1-20250805"), Some((15.0, 75.0)));
        assert_eq!(price("claude-opus-4-5-20251101"), Some((5.0, 25.0)));
    }

    #[test]
    fn a_different_model_behind_a_known_key_has_no_price() {
        let table = PriceTable::builtin();
        for model in [
            "claude-opus-4-9",
            "gpt-5-mini-search-preview",
            "gpt-5.9",
            "gpt-5.5-mini",
            "claude-haiku-5-5-1",
            "gpt-4.1-nano2",
            "llama-3.3-70b",
            "claude",
            "",
            "openai/",
            "é-claude-opus-4",
        ] {
            assert_eq!(table.price_for(model), None, "{model}");
        }
    }

    #[test]
    fn unknown_model_costs_nothing_and_is_no_error() {
        let usage = Usage::new(1_000, 200);
        assert_eq!(
            PriceTable::builtin().cost("openai", "gpt-9000", &usage, true),
            None
        );
    }

    #[test]
    fn user_entries_win_over_builtins_and_leave_other_tables_alone() {
        let builtin = PriceTable::builtin();
        let negotiated = ModelPrice::new(2.40, 12.0);
        let table = builtin
            .clone()
            .with_model("Anthropic/Claude-Sonnet-4", negotiated);
        assert_eq!(
            table.price_for("claude-sonnet-4-20250514"),
            Some(&negotiated)
        );
        assert_eq!(table.price_for("claude-sonnet-4-0"), Some(&negotiated));
        // The longer built-in key keeps its own price.
        assert_eq!(table.price_for("claude-sonnet-4-5").unwrap().input, 3.0);
        // The table it was made from is unchanged.
        assert_eq!(builtin.price_for("claude-sonnet-4").unwrap().input, 3.0);
    }

    #[test]
    fn user_entries_can_add_models() {
        let custom = ModelPrice::new(0.30, 1.20).with_cache_read(0.15);
        let table = PriceTable::empty()
            .with_model("acme/support-v2", custom)
            .with_model("", ModelPrice::new(1.0, 1.0));
        assert_eq!(table.price_for("support-v2"), Some(&custom));
        assert_eq!(
            table.price_for("other/SUPPORT-V2-2026-01-01"),
            Some(&custom)
        );
        assert_eq!(table.price_for("anything"), None);
    }

    #[test]
    fn anthropic_style_follows_posthogs_match() {
        assert!(CacheAccounting::for_call("anthropic", "claude-sonnet-4", false).anthropic_rates());
        assert!(CacheAccounting::for_call("Anthropic", "my-proxy-model", false).anthropic_rates());
        assert!(CacheAccounting::for_call(
            "bedrock",
            "us.anthropic.claude-sonnet-4-20250514-v1:0",
            true
        )
        .anthropic_rates());
        assert!(CacheAccounting::for_call("vertex", "Claude-3-5-Haiku", false).anthropic_rates());
        assert!(!CacheAccounting::for_call("openai", "gpt-5-mini", true).anthropic_rates());
        assert!(!CacheAccounting::for_call("openrouter", "x/claude-like", true).anthropic_rates());
    }

    #[test]
    fn builtin_keys_are_normalised_and_unique() {
        let mut keys: Vec<&str> = table::BUILTIN.iter().map(|&(key, _)| key).collect();
        for key in &keys {
            assert_eq!(*key, without_provider(key).to_ascii_lowercase(), "{key}");
        }
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), table::BUILTIN.len());
    }

    // claude-sonnet-4-5 above 200,000 prompt tokens: $6 in, $7.50 5-minute write, $0.60 read,
    // $22.50 out. Anthropic reports cache tokens apart, and they count toward the threshold:
    // 150,000 input + 40,000 read + 20,000 written = 210,000 prompt tokens.
    //   uncached 150,000 × 6 / 1e6    = 0.900
    //   read      40,000 × 0.60 / 1e6 = 0.024
    //   write     20,000 × 7.50 / 1e6 = 0.150  → input 1.074
    //   output     2,000 × 22.50 / 1e6 = 0.045 → total 1.119
    #[test]
    fn a_prompt_above_the_threshold_pays_the_long_context_rates_on_every_token() {
        let usage = Usage::new(150_000, 2_000)
            .with_cache_read(40_000)
            .with_cache_creation(20_000);
        let cost = PriceTable::builtin()
            .cost("anthropic", "claude-sonnet-4-5-20250929", &usage, false)
            .unwrap();
        assert_cost(cost, 1.074, 0.045, 1.119);
    }

    // The same call with 10,000 fewer uncached tokens: 200,000 prompt tokens, not above the
    // threshold, so the normal rates apply:
    //   140,000 × 3 + 40,000 × 0.30 + 20,000 × 3.75 = 0.420 + 0.012 + 0.075 = 0.507
    //   2,000 × 15 = 0.030
    #[test]
    fn a_prompt_at_the_threshold_pays_the_normal_rates() {
        let usage = Usage::new(140_000, 2_000)
            .with_cache_read(40_000)
            .with_cache_creation(20_000);
        let cost = PriceTable::builtin()
            .cost("anthropic", "claude-sonnet-4-5", &usage, false)
            .unwrap();
        assert_cost(cost, 0.507, 0.030, 0.537);
    }

    // gpt-5.5 counts cached tokens inside the input: 300,000 input of which 100,000 cached is a
    // 300,000-token prompt, above 272,000: $10 in, $1 cached, $45 out.
    //   uncached 200,000 × 10 / 1e6 = 2.0, cached 100,000 × 1 / 1e6 = 0.1, output 1,000 × 45 /
    //   1e6 = 0.045
    #[test]
    fn openai_long_context_counts_cached_tokens_inside_the_input() {
        let usage = Usage::new(300_000, 1_000).with_cache_read(100_000);
        let cost = PriceTable::builtin()
            .cost("openai", "gpt-5.5", &usage, true)
            .unwrap();
        assert_cost(cost, 2.1, 0.045, 2.145);
        let short = Usage::new(272_000, 1_000);
        let cost = PriceTable::builtin()
            .cost("openai", "gpt-5.5-2026-04-23", &short, true)
            .unwrap();
        assert_cost(cost, 1.36, 0.03, 1.39);
    }

    // Haiku 5.5 changes tier above 100,000 prompt tokens.
    #[test]
    fn haiku_5_5_has_a_tier_above_100k_prompt_tokens() {
        let price = *PriceTable::builtin().price_for("claude-haiku-5-5").unwrap();
        let tier = price.long_context.unwrap();
        assert_eq!(tier.above_input_tokens, 100_000);
        assert_eq!((price.input, price.output), (0.10, 0.50));
        assert_eq!((tier.input, tier.output), (0.50, 2.50));
        // 100,001 uncached input tokens: 100,001 × 0.50 / 1e6.
        let cost = price.cost(&Usage::new(100_001, 0), CacheAccounting::ANTHROPIC);
        assert_usd(cost.total_usd, 0.050_000_5);
    }

    // A tier without cache rates falls back from its own input rate: Anthropic reads at 0.1 ×
    // $6 = $0.60.
    #[test]
    fn long_context_cache_rates_fall_back_from_the_tier_input_price() {
        let price =
            ModelPrice::new(3.0, 15.0).with_long_context(LongContextPrice::new(10, 6.0, 22.5));
        let cost = price.cost(
            &Usage::new(0, 0).with_cache_read(1_000_000),
            CacheAccounting::ANTHROPIC,
        );
        assert_usd(cost.total_usd, 0.60);
    }

    #[test]
    fn current_models_are_priced() {
        let table = PriceTable::builtin();
        let price = |model: &str| {
            table
                .price_for(model)
                .map(|price| (price.input, price.cache_read, price.output))
        };
        assert_eq!(price("claude-fable-5-1"), Some((10.0, Some(0.25), 50.0)));
        assert_eq!(price("claude-mythos-5"), Some((10.0, Some(1.0), 50.0)));
        assert_eq!(price("claude-opus-5-5"), Some((4.0, Some(0.20), 20.0)));
        assert_eq!(price("claude-opus-5"), Some((5.0, Some(0.50), 25.0)));
        assert_eq!(price("claude-sonnet-5-5"), Some((2.0, Some(0.10), 10.0)));
        assert_eq!(price("claude-sonnet-5"), Some((2.0, Some(0.20), 10.0)));
        assert_eq!(price("gpt-5.5"), Some((5.0, Some(0.50), 30.0)));
        assert_eq!(price("gpt-5.5-pro"), Some((30.0, Some(30.0), 180.0)));
        assert_eq!(
            price("openai/gpt-5.4-mini"),
            Some((0.75, Some(0.075), 4.50))
        );
        assert_eq!(price("gpt-5.4-nano"), Some((0.20, Some(0.02), 1.25)));
        assert_eq!(price("gpt-5.2"), Some((1.75, Some(0.175), 14.0)));
        assert_eq!(price("gpt-5.1-2025-11-13"), Some((1.25, Some(0.125), 10.0)));
        // Flat-priced 1M-context models have no tier.
        assert!(table
            .price_for("claude-sonnet-4-6")
            .unwrap()
            .long_context
            .is_none());
    }

    #[test]
    fn an_unpriced_model_is_warned_about_once() {
        let table = PriceTable::builtin();
        assert!(table
            .price_or_warn("made-up-model-for-the-warning-test")
            .is_none());
        assert!(was_warned("made-up-model-for-the-warning-test"));
        assert!(table.price_or_warn("gpt-5.5").is_some());
        assert!(!was_warned("gpt-5.5"));
    }

    #[test]
    fn long_context_tiers_serialize_only_when_set() {
        let plain = serde_json::to_value(ModelPrice::new(1.0, 2.0)).unwrap();
        assert!(plain.get("long_context").is_none());
        let tiered =
            ModelPrice::new(1.0, 2.0).with_long_context(LongContextPrice::new(5, 2.0, 3.0));
        let json = serde_json::to_value(tiered).unwrap();
        assert_eq!(json["long_context"]["above_input_tokens"], 5);
        let back: ModelPrice = serde_json::from_value(json).unwrap();
        assert_eq!(back, tiered);
    }

    #[test]
    fn debug_lists_the_prices() {
        let table = PriceTable::empty().with_model("m", ModelPrice::new(1.0, 2.0));
        let debug = format!("{table:?}");
        assert!(debug.contains("\"m\": ModelPrice"), "{debug}");
    }
}
