//! A runaway agent, caught in the process: the monitor raises an "unusual tokens" alert within
//! seconds of the loop starting, and the user's budget then stops the loop.
//!
//! ```text
//! cargo run --example monitor
//! ```
//!
//! It runs offline: a scripted model answers, and a manual clock stands in for time, so twenty
//! minutes of normal use and the loop that follows take no time at all. Every event goes to
//! stdout as one JSON line in PostHog's capture format, the `llm_alert` event and the refused
//! call (`$ai_error_type: "budget"`) among them; what happens is told on stderr.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use traced_llm::monitor::{
    Budget, BudgetExceeded, Budgeted, Clock, ManualClock, Metric, Monitor, Rule, Scope,
};
use traced_llm::sink::{Fanout, JsonlSink, Sink};
use traced_llm::testing::ScriptedModel;
use traced_llm::types::Usage;
use traced_llm::{CallContext, ChatRequest, ChatResponse, LlmModel, Message, TracedModel};

const USER: &str = "agent-user-42";
const MODEL: &str = "gpt-5-mini";
/// Calls the scripted model can answer; the budget stops the loop long before.
const SCRIPTED_STEPS: u64 = 60;
/// Calls of normal use: one every two minutes for twenty minutes.
const QUIET_STEPS: u64 = 11;

/// Quiet calls of 2,000 tokens, then a loop whose prompt grows by 1,000 tokens a step.
fn scripted_agent() -> ScriptedModel {
    let mut model = ScriptedModel::new()
        .with_provider("openai")
        .with_base_url("offline://scripted");
    for step in 0..SCRIPTED_STEPS {
        let usage = if step < QUIET_STEPS {
            Usage::new(1_600, 400)
        } else {
            Usage::new(4_000 + 1_000 * (step - QUIET_STEPS), 1_000)
        };
        model = model.respond(
            ChatResponse::text_response("Not done yet; calling the search tool again.")
                .with_model("gpt-5-mini-2025-08-07")
                .with_finish_reason("stop")
                .with_usage(usage),
        );
    }
    model
}

/// Simulated time for the windows, the real time of day for the alert events' timestamps (as
/// the other events have).
#[derive(Debug, Clone, Default)]
struct DemoClock(ManualClock);

impl Clock for DemoClock {
    fn now(&self) -> Duration {
        self.0.now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let stdout: Arc<dyn Sink> = Arc::new(JsonlSink::stdout());
    let clock = DemoClock::default();
    let monitor = Monitor::builder()
        // Three times the user's usual tokens per 10-minute window, and at least 20,000.
        .rule(
            Rule::unusual("unusual-tokens", Metric::Tokens, Scope::DistinctId, 3.0)
                .at_least(20_000.0),
        )
        // 60,000 tokens per user per 10-minute window.
        .budget(Budget::tokens(60_000))
        .on_alert(|alert| {
            eprintln!(
                "ALERT {} {}: {} of {} {} is {:.0}, above {:.0} ({}x its usual {:.0}); traces {:?}",
                alert.state,
                alert.rule,
                alert.metric,
                alert.scope,
                alert.key,
                alert.observed,
                alert.threshold,
                alert.factor.unwrap_or(1.0),
                alert.baseline.unwrap_or(0.0),
                alert.sample_trace_ids,
            );
        })
        .shared_alert_sink(Arc::clone(&stdout))
        .clock(clock.clone())
        .build()?;

    // The monitor sees every event beside the sink that keeps them (here stdout; in a service,
    // PostHog); the budget is checked before each call reaches the model.
    let model = TracedModel::new(
        Budgeted::new(scripted_agent(), monitor.clone()),
        Fanout::new()
            .with(monitor.clone())
            .with_shared(Arc::clone(&stdout)),
    );

    let mut step = 0u64;
    loop {
        let request = ChatRequest::new(MODEL)
            .message(Message::user("Find every flight to Lisbon under 100 EUR."))
            .context(
                CallContext::new()
                    .distinct_id(USER)
                    .trace_id(format!("agent-run-{step:02}")),
            );
        let result = model.chat(&request).await;
        // Deliver any alert before the next call, so stdout reads in order.
        monitor.flush(Duration::from_secs(5)).await?;
        match result {
            Ok(_) => {}
            Err(err) if err.is_budget() => {
                let refused = BudgetExceeded::of(&err).expect("a budget refusal");
                eprintln!("REFUSED step {step}: {err}");
                eprintln!(
                    "the budget stopped the loop after {step} calls ({} of them in the loop)",
                    step - QUIET_STEPS
                );
                debug_assert!(refused.retry_after.is_some());
                break;
            }
            Err(err) => return Err(err.into()),
        }
        step += 1;
        if step >= SCRIPTED_STEPS {
            return Err("the budget never stopped the loop".into());
        }
        // Two quiet minutes between calls for the first twenty minutes; then a step every ten
        // seconds: the loop.
        clock.0.advance(if step < QUIET_STEPS {
            Duration::from_secs(120)
        } else {
            Duration::from_secs(10)
        });
    }

    let user = monitor
        .figures(Scope::DistinctId, USER)
        .expect("the user is tracked");
    eprintln!(
        "{USER} in the last {:?}: {} calls, {} refused, {} tokens, ${:.4}; usual window {:.0} tokens",
        monitor.window(),
        user.calls,
        user.refused,
        user.tokens,
        user.cost_usd,
        user.baseline.map_or(0.0, |baseline| baseline.tokens),
    );
    let stats = monitor.stats();
    eprintln!(
        "monitor: {} events, {} alert(s) raised, {} dropped",
        stats.events, stats.alerts_raised, stats.alerts_dropped
    );
    model.shutdown(Duration::from_secs(5)).await?;
    Ok(())
}
