//! Helpers every HTTP client of the crate shares (the providers, the PostHog sink, and whatever
//! talks to PostHog next): secrets that never show, environment variables, URLs that are safe to
//! show, and the `reqwest` client.
//!
//! Nothing here knows a provider or PostHog; callers pass in their names and messages.

// Each helper serves several of those clients, so a build with only some of them (one cargo
// feature) leaves some helpers unused; the full build keeps the lint.
#![cfg_attr(
    not(all(feature = "openai", feature = "anthropic", feature = "posthog")),
    allow(dead_code)
)]
// `url::display` serves every build: the recording core shows base URLs with it.

#[cfg(feature = "__http")]
pub(crate) mod env;
#[cfg(feature = "__http")]
pub(crate) mod http;
#[cfg(feature = "__http")]
pub(crate) mod secret;
pub(crate) mod url;
