//! The built-in prices.
//!
//! Each row is the provider's own list price for standard (not batch, not priority) processing,
//! read from its official pricing or model page on [`BUILTIN_PRICES_AS_OF`]. A model whose price
//! could not be confirmed there is left out: no cost beats a wrong cost.
//!
//! - Anthropic: <https://platform.claude.com/docs/en/about-claude/pricing> ("Model pricing";
//!   cache write is the 5-minute rate, cache read the "cache hits and refreshes" rate) and the
//!   model overview pages under <https://platform.claude.com/docs/en/models> (Claude 5.x).
//!   Long context: Claude Sonnet 4 and 4.5 charge more above 200,000 prompt tokens (input, cache
//!   reads and cache writes counted together), Claude Haiku 5.5 above 100,000; the other 1M-
//!   context models (Sonnet 4.6 and later, Opus 4.6 and later, Fable, Mythos) are flat.
//! - OpenAI: the model pages under <https://developers.openai.com/api/docs/models> and the
//!   pricing page <https://developers.openai.com/api/docs/pricing> ("Text tokens", standard
//!   tier: input, cached input, output; GPT-5.4 and GPT-5.5 charge more above 272,000 input
//!   tokens). OpenAI bills no cache writes for these models; the pro models have no cached rate,
//!   so their cached input is priced as input.
//!
//! Keys are written without a date: a key also prices its dated snapshots (see
//! [`PriceTable::price_for`](super::PriceTable::price_for)).

use super::{LongContextPrice, ModelPrice};

/// The day the built-in prices were last checked against the providers' pages.
pub const BUILTIN_PRICES_AS_OF: &str = "2026-12-01";

/// Anthropic list price: input, 5-minute cache write, cache read, output.
const fn anthropic(input: f64, cache_write: f64, cache_read: f64, output: f64) -> ModelPrice {
    ModelPrice::new(input, output)
        .with_cache_write(cache_write)
        .with_cache_read(cache_read)
}

/// Anthropic long-context tier above `above` prompt tokens: input, 5-minute cache write, cache
/// read, output.
const fn anthropic_long(
    above: u64,
    input: f64,
    cache_write: f64,
    cache_read: f64,
    output: f64,
) -> LongContextPrice {
    LongContextPrice::new(above, input, output)
        .with_cache_write(cache_write)
        .with_cache_read(cache_read)
}

/// OpenAI list price: input, cached input, output.
const fn openai(input: f64, cached_input: f64, output: f64) -> ModelPrice {
    ModelPrice::new(input, output).with_cache_read(cached_input)
}

/// OpenAI long-context tier above `above` input tokens: input, cached input, output.
const fn openai_long(above: u64, input: f64, cached_input: f64, output: f64) -> LongContextPrice {
    LongContextPrice::new(above, input, output).with_cache_read(cached_input)
}

/// Claude Sonnet 4 and 4.5 above 200,000 prompt tokens.
const SONNET_4_LONG: LongContextPrice = anthropic_long(200_000, 6.0, 7.50, 0.60, 22.50);

pub(super) const BUILTIN: &[(&str, ModelPrice)] = &[
    // Anthropic, Fable and Mythos (Mythos shares Fable's specification and price).
    ("claude-fable-5-1", anthropic(10.0, 12.50, 0.25, 50.0)),
    ("claude-mythos-5-1", anthropic(10.0, 12.50, 0.25, 50.0)),
    ("claude-fable-5", anthropic(10.0, 12.50, 1.0, 50.0)),
    ("claude-mythos-5", anthropic(10.0, 12.50, 1.0, 50.0)),
    // Anthropic, Opus.
    ("claude-opus-5-5", anthropic(4.0, 5.0, 0.20, 20.0)),
    ("claude-opus-5", anthropic(5.0, 6.25, 0.50, 25.0)),
    ("claude-opus-4-8", anthropic(5.0, 6.25, 0.50, 25.0)),
    ("claude-opus-4-7", anthropic(5.0, 6.25, 0.50, 25.0)),
    ("claude-opus-4-6", anthropic(5.0, 6.25, 0.50, 25.0)),
    ("claude-opus-4-5", anthropic(5.0, 6.25, 0.50, 25.0)),
    ("claude-opus-4-1", anthropic(15.0, 18.75, 1.50, 75.0)),
    ("claude-opus-4", anthropic(15.0, 18.75, 1.50, 75.0)),
    // Anthropic, Sonnet. Sonnet 5.5's cache reads went from $0.20 to $0.10 on 2026-10-07.
    ("claude-sonnet-5-5", anthropic(2.0, 2.50, 0.10, 10.0)),
    ("claude-sonnet-5", anthropic(2.0, 2.50, 0.20, 10.0)),
    ("claude-sonnet-4-6", anthropic(3.0, 3.75, 0.30, 15.0)),
    (
        "claude-sonnet-4-5",
        anthropic(3.0, 3.75, 0.30, 15.0).with_long_context(SONNET_4_LONG),
    ),
    (
        "claude-sonnet-4",
        anthropic(3.0, 3.75, 0.30, 15.0).with_long_context(SONNET_4_LONG),
    ),
    ("claude-3-7-sonnet", anthropic(3.0, 3.75, 0.30, 15.0)),
    ("claude-3-5-sonnet", anthropic(3.0, 3.75, 0.30, 15.0)),
    // Anthropic, Haiku.
    (
        "claude-haiku-5-5",
        anthropic(0.10, 0.125, 0.01, 0.50)
            .with_long_context(anthropic_long(100_000, 0.50, 0.625, 0.05, 2.50)),
    ),
    ("claude-haiku-4-5", anthropic(1.0, 1.25, 0.10, 5.0)),
    ("claude-3-5-haiku", anthropic(0.80, 1.0, 0.08, 4.0)),
    ("claude-3-haiku", anthropic(0.25, 0.30, 0.03, 1.25)),
    // OpenAI, GPT-5.x.
    (
        "gpt-5.5",
        openai(5.0, 0.50, 30.0).with_long_context(openai_long(272_000, 10.0, 1.0, 45.0)),
    ),
    ("gpt-5.5-pro", openai(30.0, 30.0, 180.0)),
    (
        "gpt-5.4",
        openai(2.50, 0.25, 15.0).with_long_context(openai_long(272_000, 5.0, 0.50, 22.50)),
    ),
    ("gpt-5.4-mini", openai(0.75, 0.075, 4.50)),
    ("gpt-5.4-nano", openai(0.20, 0.02, 1.25)),
    ("gpt-5.4-pro", openai(30.0, 30.0, 180.0)),
    ("gpt-5.2", openai(1.75, 0.175, 14.0)),
    ("gpt-5.1", openai(1.25, 0.125, 10.0)),
    // OpenAI, earlier.
    ("gpt-5", openai(1.25, 0.125, 10.0)),
    ("gpt-5-mini", openai(0.25, 0.025, 2.0)),
    ("gpt-5-nano", openai(0.05, 0.005, 0.40)),
    ("gpt-4.1", openai(2.0, 0.50, 8.0)),
    ("gpt-4.1-mini", openai(0.40, 0.10, 1.60)),
    ("gpt-4.1-nano", openai(0.10, 0.025, 0.40)),
    ("gpt-4o", openai(2.50, 1.25, 10.0)),
    ("gpt-4o-mini", openai(0.15, 0.075, 0.60)),
    ("o1", openai(15.0, 7.50, 60.0)),
    ("o3", openai(2.0, 0.50, 8.0)),
    ("o3-mini", openai(1.10, 0.55, 4.40)),
    ("o4-mini", openai(1.10, 0.275, 4.40)),
];
