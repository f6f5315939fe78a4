//! An A/B test of model parameters: a feature flag picks each user's variant, the variant's
//! payload sets the call's parameters, and every event carries the flag.
//!
//! ```text
//! cargo run --example experiment
//! ```
//!
//! Without `POSTHOG_API_KEY` it runs offline: the flag `EXPERIMENT_FLAG` (default
//! `llm-params`) is evaluated locally from `examples/experiment_flags.json` (or the file named
//! by `EXPERIMENT_FLAGS_FILE`), the calls go to a scripted model, and every event is printed as
//! a PostHog JSON line on stdout: the exposures (`$feature_flag_called`) and the generations,
//! which carry `$feature/<flag>` and `$active_feature_flags`.
//!
//! With `POSTHOG_API_KEY` (and `POSTHOG_HOST`) set, the flag is evaluated by that PostHog
//! (`/flags`, or locally from polled definitions when `POSTHOG_PERSONAL_API_KEY` is set too),
//! and the events go to its capture API. With `OPENAI_API_KEY` set the calls go to OpenAI.
//! Which variant each user got is printed on stderr.

use std::time::Duration;

use traced_llm::flags::{Exposures, FlagRequest, FlagSource};
use traced_llm::posthog::flags::PosthogFlags;
use traced_llm::posthog::PosthogSink;
use traced_llm::provider::OpenAi;
use traced_llm::sink::{JsonlSink, Sink};
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{CallContext, ChatRequest, ChatResponse, LlmModel, Message, TracedModel};

/// The people the chat route serves in this run.
const USERS: [&str; 6] = ["user_1", "user_2", "user_3", "user_4", "user_5", "user_6"];

fn offline_model() -> ScriptedModel {
    ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("offline://scripted")
        .respond(
            ChatResponse::text_response("Pack layers: Lisbon's spring evenings are cool.")
                .with_finish_reason("stop")
                .with_usage(Usage::new(24, 11)),
        )
        .repeat_last()
}

fn model_from_env() -> Result<Box<dyn LlmModel>, traced_llm::Error> {
    if std::env::var_os("OPENAI_API_KEY").is_some() {
        eprintln!("calling the OpenAI API");
        Ok(Box::new(OpenAi::from_env()?))
    } else {
        Ok(Box::new(offline_model()))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flag = std::env::var("EXPERIMENT_FLAG").unwrap_or_else(|_| "llm-params".to_owned());
    let online = std::env::var_os("POSTHOG_API_KEY").is_some();

    // Where events go: PostHog's capture API online, JSON lines on stdout offline.
    let (sink, posthog): (std::sync::Arc<dyn Sink>, Option<PosthogSink>) = if online {
        let posthog = PosthogSink::from_env()?;
        eprintln!("sending events to {}", posthog.url());
        (std::sync::Arc::new(posthog.clone()), Some(posthog))
    } else {
        (std::sync::Arc::new(JsonlSink::stdout()), None)
    };
    let model = TracedModel::builder(model_from_env()?)
        .shared_sink(sink.clone())
        .error_tracking(true)
        .build();

    // The flag source: exposures go to the same sink as every other event.
    let exposures = Exposures::from_arc(sink, traced_llm::flags::DEFAULT_MAX_EXPOSURES);
    let flags = if online {
        PosthogFlags::builder().exposures(exposures).build()?
    } else {
        let file = std::env::var("EXPERIMENT_FLAGS_FILE").ok();
        eprintln!(
            "POSTHOG_API_KEY is not set: evaluating {flag} locally from {}",
            file.as_deref().unwrap_or("examples/experiment_flags.json")
        );
        let file = file.unwrap_or_else(|| {
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/experiment_flags.json"
            )
            .to_owned()
        });
        PosthogFlags::builder()
            .definitions_file(file)
            .exposures(exposures)
            .build()?
    };

    for user in USERS {
        let snapshot = flags.evaluate(&FlagRequest::new(user).key(&flag)).await;
        if let Some(err) = snapshot.error() {
            eprintln!("{user}: flags unavailable ({err}); default parameters");
        }
        let mut request = ChatRequest::new("gpt-4o-mini")
            .message(Message::system("You are a concise travel assistant."))
            .message(Message::user("What should I pack for Lisbon in April?"))
            .max_tokens(300)
            .context(
                CallContext::new()
                    .distinct_id(user)
                    .trace_id(format!("conversation_{user}")),
            );
        // The variant's payload sets the parameters; reading it reports the exposure, and the
        // flag is stamped on the call's event.
        match snapshot.apply_payload(&flag, &mut request) {
            Ok(value) => eprintln!(
                "{user}: {flag} = {value} -> model {}, temperature {}, max_tokens {}",
                request.model,
                request
                    .temperature
                    .map_or("default".to_owned(), |t| t.to_string()),
                request
                    .max_tokens
                    .map_or("default".to_owned(), |t| t.to_string()),
            ),
            Err(err) => {
                eprintln!("{user}: the {flag} payload is unusable ({err}); default parameters")
            }
        }
        if let Err(err) = model.chat(&request).await {
            eprintln!("{user}: the call failed: {err}");
        }
    }

    let shutdown = model.shutdown(Duration::from_secs(5)).await;
    if let Some(posthog) = posthog {
        let stats = posthog.stats();
        eprintln!(
            "posthog: {} events sent, {} dropped",
            stats.sent,
            stats.dropped()
        );
    }
    shutdown?;
    Ok(())
}
