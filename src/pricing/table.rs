//! The built-in prices.
//!
//! Each row is the provider's own list price for standard (not batch, not priority) processing,
//! read from its official pricing or model page on [`BUILTIN_PRICES_AS_OF`]. A model whose price
//! could not be confirmed there is left out: no cost beats a wrong cost.
//!
//! - Anthropic: <https://platform.claude.com/docs/en/about-claude/pricing> ("Model pricing";
//!   cache write is the 5-minute rate, cache read the "cache hits and refreshes" rate).
//! - OpenAI: the model pages under <https://developers.openai.com/api/docs/models> and the
//!   pricing page <https://platform.openai.com/docs/pricing> ("Text tokens", standard tier:
//!   input, cached input, output). OpenAI bills no cache writes for these models.
//!
//! Keys are written without a date: a key also prices its dated snapshots (see
//! [`PriceTable::price_for`](super::PriceTable::price_for)).

use super::ModelPrice;

/// The day the built-in prices were last checked against the providers' pages.
pub const BUILTIN_PRICES_AS_OF: &str = "2026-11-28";

/// Anthropic list price: input, 5-minute cache write, cache read, output.
const fn anthropic(input: f64, cache_write: f64, cache_read: f64, output: f64) -> ModelPrice {
    ModelPrice::new(input, output)
        .with_cache_write(cache_write)
        .with_cache_read(cache_read)
}

/// OpenAI list price: input, cached input, output.
const fn openai(input: f64, cached_input: f64, output: f64) -> ModelPrice {
    ModelPrice::new(input, output).with_cache_read(cached_input)
}

pub(super) const BUILTIN: &[(&str, ModelPrice)] = &[
    // Anthropic, Opus.
    ("claude-opus-4-8", anthropic(5.0, 6.25, 0.50, 25.0)),
    ("claude-opus-4-7", anthropic(5.0, 6.25, 0.50, 25.0)),
    ("claude-opus-4-6", anthropic(5.0, 6.25, 0.50, 25.0)),
    ("claude-opus-4-5", anthropic(5.0, 6.25, 0.50, 25.0)),
    ("claude-opus-4-1", anthropic(15.0, 18.75, 1.50, 75.0)),
    ("claude-opus-4", anthropic(15.0, 18.75, 1.50, 75.0)),
    // Anthropic, Sonnet.
    ("claude-sonnet-4-6", anthropic(3.0, 3.75, 0.30, 15.0)),
    ("claude-sonnet-4-5", anthropic(3.0, 3.75, 0.30, 15.0)),
    ("claude-sonnet-4", anthropic(3.0, 3.75, 0.30, 15.0)),
    ("claude-3-7-sonnet", anthropic(3.0, 3.75, 0.30, 15.0)),
    ("claude-3-5-sonnet", anthropic(3.0, 3.75, 0.30, 15.0)),
    // Anthropic, Haiku.
    ("claude-haiku-4-5", anthropic(1.0, 1.25, 0.10, 5.0)),
    ("claude-3-5-haiku", anthropic(0.80, 1.0, 0.08, 4.0)),
    ("claude-3-haiku", anthropic(0.25, 0.30, 0.03, 1.25)),
    // OpenAI.
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
