//! Where the examples send their events: PostHog when `POSTHOG_API_KEY` is set (`POSTHOG_HOST`
//! honoured), JSON lines on stdout otherwise.

use traced_llm::posthog::PosthogSink;
use traced_llm::sink::{Fanout, JsonlSink};

/// PostHog when its key is set, printed events otherwise.
pub fn sink_from_env() -> Result<Fanout, traced_llm::Error> {
    if std::env::var_os("POSTHOG_API_KEY").is_none() {
        eprintln!("POSTHOG_API_KEY is not set: the events are printed as JSON lines on stdout");
        return Ok(Fanout::new().with(JsonlSink::stdout()));
    }
    let posthog = PosthogSink::from_env()?;
    eprintln!("sending the events to {}", posthog.url());
    Ok(Fanout::new().with(posthog))
}
