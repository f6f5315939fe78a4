//! An in-process monitor: rolling windows of tokens, cost, calls, errors and latency per
//! model, provider and distinct id; alerts on thresholds and on unusual use, seconds after it
//! starts; budgets that refuse a call before it is made (feature `monitor`).
//!
//! PostHog's own alerts run on insights, hourly at best, and an agent stuck in a loop can burn a
//! day's budget in that hour. A [`Monitor`] is a [`Sink`]: put it beside the PostHog sink with
//! [`Fanout`](crate::sink::Fanout) and it sees every event, also those sampling keeps away from
//! PostHog.
//!
//! - **Windows.** Each key keeps a rolling window ([`DEFAULT_WINDOW`], in
//!   [`DEFAULT_BUCKETS`] buckets) of input, output and cached tokens, cost, calls, errors by
//!   kind, and latency and time-to-first-token histograms, plus the totals of its past
//!   [`DEFAULT_BASELINE_WINDOWS`] whole windows: its baseline. [`Monitor::snapshot`] reads them.
//!   A call counts when the monitor sees its event, that is when it ended, on the monitor's
//!   [`Clock`].
//! - **Memory is bounded.** At most [`DEFAULT_MAX_DISTINCT_IDS`] distinct ids (and
//!   [`DEFAULT_MAX_MODELS`] models, [`DEFAULT_MAX_PROVIDERS`] providers) are tracked; beyond,
//!   the least recently seen is evicted (each of up to 16 shards evicts its own, to within a
//!   bucket), and its raised alerts clear. A key costs about 1.3 KB with the default window:
//!   56 bytes a bucket, 32 a baseline window, 256 for its four half-window histograms, about
//!   180 for its running totals, name and table entry; 100,000 ids measured 123 MiB resident.
//! - **`capture` is O(1)** and allocates nothing once a key is tracked: three short locks (one
//!   per scope, sharded by one SipHash of the key), fixed-size counters, no I/O. Alerts are
//!   queued to the monitor's own thread, which calls your callback, logs a `tracing` warning
//!   and sends the alert event.
//! - **Rules** ([`Rule`]): a threshold, or "unusual": the window above k× the key's baseline.
//!   Each has a cooldown, and a clear follows when the condition ends. Build them in code or
//!   read them from a TOML or JSON file ([`MonitorConfig`]).
//! - **Budgets** ([`Budget`]): [`Monitor::check`] or the [`Budgeted`] decorator refuses a call
//!   for a distinct id whose window budget is spent, with an [`Error`](crate::Error) of kind
//!   `budget`; recorded like any failed call, it reaches PostHog with `$ai_error_type: "budget"`.
//!
//! Alerts reach PostHog as the custom events `llm_alert` and `llm_alert_cleared` (see
//! [`posthog`](crate::posthog) for their properties) when an alert sink is set.
//!
//! ```
//! use std::time::Duration;
//! use traced_llm::monitor::{Budget, Budgeted, ManualClock, Metric, Monitor, Rule, Scope};
//! use traced_llm::sink::{Fanout, InMemorySink};
//! use traced_llm::testing::ScriptedModel;
//! use traced_llm::types::Usage;
//! use traced_llm::{CallContext, ChatRequest, ChatResponse, LlmModel, Message, TracedModel};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let alerts = InMemorySink::new(); // in production: the PostHog sink
//! let clock = ManualClock::new();
//! let monitor = Monitor::builder()
//!     .rule(Rule::above("tokens-per-user", Metric::Tokens, Scope::DistinctId, 5_000.0))
//!     .budget(Budget::tokens(8_000))
//!     .on_alert(|alert| eprintln!("{} {} for {}", alert.state, alert.rule, alert.key))
//!     .alert_sink(alerts.clone())
//!     .clock(clock.clone())
//!     .build()?;
//!
//! let events = InMemorySink::new();
//! let answer = ChatResponse::text_response("...").with_usage(Usage::new(2_000, 1_000));
//! let model = TracedModel::new(
//!     Budgeted::new(ScriptedModel::new().respond(answer).repeat_last(), monitor.clone()),
//!     Fanout::new().with(monitor.clone()).with(events.clone()),
//! );
//! let request = ChatRequest::new("gpt-5-mini")
//!     .message(Message::user("Keep going"))
//!     .context(CallContext::new().distinct_id("user_42"));
//!
//! let mut refused = None;
//! for _ in 0..5 {
//!     if let Err(err) = model.chat(&request).await {
//!         refused = Some(err);
//!         break;
//!     }
//!     clock.advance(Duration::from_secs(10));
//! }
//! // Three calls of 3,000 tokens pass (the third crosses the budget); the fourth is refused.
//! assert!(refused.unwrap().is_budget());
//! monitor.flush(Duration::from_secs(5)).await?;
//! assert_eq!(alerts.len(), 1); // tokens-per-user, raised at 6,000
//! let user = monitor.figures(Scope::DistinctId, "user_42").unwrap();
//! assert_eq!((user.tokens, user.calls, user.refused), (9_000, 3, 1));
//! # Ok(())
//! # }
//! ```

mod budget;
mod clock;
mod config;
mod dispatch;
mod rule;
mod snapshot;
mod table;
mod window;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::oneshot;
use uuid::Uuid;

pub use self::budget::{Budget, BudgetExceeded, Budgeted, Spent};
pub use self::clock::{Clock, ManualClock, SystemClock, MANUAL_CLOCK_WALL_ORIGIN};
pub use self::config::{ConfigError, MonitorConfig};
pub use self::rule::{Condition, Metric, Rule, Scope, DEFAULT_COOLDOWN, DEFAULT_MIN_CALLS};
pub use self::snapshot::{ActiveAlert, Baseline, KeyFigures, MonitorStats, Snapshot};
pub use crate::event::{Alert, AlertState};

use self::clock::nanos;
use self::dispatch::{AlertHandler, Delivery, Message, Outbox};
use self::rule::Reading;
use self::table::{lock, Dimension, Firing, Hashing, RuleState, Table};
use self::window::{bin_of, bucket_cost, bucket_tokens, Geometry, Sample, Tick};
use crate::event::{Envelope, ErrorKind, Event};
use crate::pricing::{CacheAccounting, ModelPrice, PriceTable};
use crate::sink::{Sink, SinkError};
use crate::types::Usage;

/// The rolling window every rule and budget reads.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10 * 60);
/// Buckets per window: the window moves on in steps of `window / buckets`.
pub const DEFAULT_BUCKETS: u32 = 10;
/// Past whole windows kept for a key's baseline.
pub const DEFAULT_BASELINE_WINDOWS: u32 = 6;
/// Whole windows a key must have been tracked for before "unusual" reads its baseline.
pub const DEFAULT_MIN_BASELINE_WINDOWS: u32 = 1;
/// Distinct ids tracked at most; the least recently seen is evicted beyond.
pub const DEFAULT_MAX_DISTINCT_IDS: usize = 10_000;
/// Models tracked at most.
pub const DEFAULT_MAX_MODELS: usize = 256;
/// Providers tracked at most.
pub const DEFAULT_MAX_PROVIDERS: usize = 64;
/// How often the monitor's thread evaluates raised alerts, so that they clear without calls.
pub const DEFAULT_EVALUATE_EVERY: Duration = Duration::from_secs(1);
/// Alerts waiting for the monitor's thread at most; beyond, alerts are dropped and counted.
pub const DEFAULT_ALERT_QUEUE: usize = 1024;
/// Rules a monitor holds at most.
pub const MAX_RULES: usize = 64;
/// Trace ids an alert names at most.
pub const SAMPLE_TRACE_IDS: usize = 3;

const MAX_BUCKETS: u32 = 120;
const MAX_BASELINE_WINDOWS: u32 = 48;
const ID_SHARDS: usize = 16;
const MODEL_SHARDS: usize = 4;
const PROVIDER_SHARDS: usize = 2;
/// Keys read per lock when a snapshot walks a shard, so captures wait at most that long.
const SNAPSHOT_CHUNK: usize = 256;

/// Watches every event it is given, raises alerts and enforces budgets; see the
/// [module docs](self).
///
/// Cheap to clone: clones share the windows, so keep one to call [`Monitor::check`] and
/// [`Monitor::snapshot`] and put another in the sink [`Fanout`](crate::sink::Fanout).
#[derive(Clone)]
pub struct Monitor {
    engine: Arc<Engine>,
}

/// What a model's key keeps besides its windows: its price, found once.
#[derive(Debug, Default)]
struct ModelInfo {
    resolved: bool,
    price: Option<ModelPrice>,
    anthropic_rates: bool,
}

struct Engine {
    geometry: Geometry,
    clock: Arc<dyn Clock>,
    pricing: PriceTable,
    rules: Vec<Rule>,
    /// Rule indices by scope.
    by_scope: [Vec<u16>; 3],
    models: Dimension<ModelInfo>,
    providers: Dimension<()>,
    ids: Dimension<()>,
    budget: Option<Budget>,
    budgets: HashMap<String, Budget>,
    outbox: Outbox,
    alert_sink: Option<Arc<dyn Sink>>,
    events: AtomicU64,
    raised: AtomicU64,
    cleared: AtomicU64,
    stopped: AtomicBool,
}

/// One call as the monitor reads it.
struct Call<'a> {
    model: &'a str,
    provider: &'a str,
    distinct_id: Option<&'a str>,
    usage: &'a Usage,
    cost_usd: Option<f64>,
    cache_tokens_in_input: bool,
    error: Option<ErrorKind>,
    latency: Duration,
    ttft: Option<Duration>,
}

impl<'a> Call<'a> {
    fn of(event: &'a Event) -> Option<Self> {
        match event {
            Event::Generation(generation) => Some(Self {
                model: &generation.model,
                provider: &generation.provider,
                distinct_id: generation.envelope.distinct_id.as_deref(),
                usage: &generation.usage,
                cost_usd: generation.cost.map(|cost| cost.total_usd),
                cache_tokens_in_input: generation.cache_tokens_in_input,
                error: generation.error.as_ref().map(|error| error.kind),
                latency: generation.latency,
                ttft: generation.time_to_first_token,
            }),
            Event::Embedding(embedding) => Some(Self {
                model: &embedding.model,
                provider: &embedding.provider,
                distinct_id: embedding.envelope.distinct_id.as_deref(),
                usage: &embedding.usage,
                cost_usd: embedding.cost.map(|cost| cost.total_usd),
                cache_tokens_in_input: true,
                error: embedding.error.as_ref().map(|error| error.kind),
                latency: embedding.latency,
                ttft: None,
            }),
            _ => None,
        }
    }

    fn sample(&self, cost_usd: f64) -> Sample {
        let usage = self.usage;
        let input = usage.input_tokens.unwrap_or(0);
        let cache_read = usage.cache_read_input_tokens.unwrap_or(0);
        let cache_write = usage.cache_creation_input_tokens.unwrap_or(0);
        let input = if self.cache_tokens_in_input {
            input
        } else {
            input.saturating_add(cache_read).saturating_add(cache_write)
        };
        let latency_us = micros(self.latency);
        let ttft_us = self.ttft.map(micros);
        Sample {
            input,
            output: usage.output_tokens.unwrap_or(0),
            cached: cache_read,
            cost_usd,
            error: self.error,
            latency_us,
            ttft_us,
            latency_bin: bin_of(latency_us),
            ttft_bin: ttft_us.map_or(0, bin_of),
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

impl Engine {
    fn now(&self) -> Tick {
        self.geometry.tick(nanos(self.clock.now()))
    }

    fn window(&self) -> Duration {
        Duration::from_nanos(self.geometry.window_nanos())
    }

    fn has_rules(&self, scope: Scope) -> bool {
        !self.by_scope[scope.index()].is_empty()
    }

    /// Counts one event into its model, provider and distinct id, and evaluates their rules.
    fn observe(&self, event: &Event) {
        let Some(call) = Call::of(event) else {
            return;
        };
        self.events.fetch_add(1, Ordering::Relaxed);
        let now = self.now();
        let envelope = event.envelope();
        // A call without a trace is its own trace, named by its uuid: formatted on the stack.
        let mut uuid_text = Uuid::encode_buffer();
        let trace: &str = match &envelope.trace_id {
            Some(trace) => trace,
            None => envelope.uuid.hyphenated().encode_lower(&mut uuid_text),
        };
        let sample = self.observe_key(Scope::Model, &self.models, call.model, now, trace, |info| {
            let cost = match call.cost_usd {
                Some(cost) => cost,
                None => self.price(info, &call),
            };
            call.sample(cost)
        });
        self.observe_key(
            Scope::Provider,
            &self.providers,
            call.provider,
            now,
            trace,
            |_| sample,
        );
        if let Some(distinct_id) = call.distinct_id {
            self.observe_key(
                Scope::DistinctId,
                &self.ids,
                distinct_id,
                now,
                trace,
                |_| sample,
            );
        }
    }

    /// The cost of a call that carries none, at the monitor's prices; 0 (and one warning per
    /// model) when the model has no price.
    fn price(&self, info: &mut ModelInfo, call: &Call<'_>) -> f64 {
        if !info.resolved {
            info.resolved = true;
            info.price = self.pricing.price_or_warn(call.model).copied();
            info.anthropic_rates =
                CacheAccounting::for_call(call.provider, call.model, call.cache_tokens_in_input)
                    .anthropic_rates();
        }
        match &info.price {
            Some(price) => {
                let accounting =
                    CacheAccounting::new(call.cache_tokens_in_input, info.anthropic_rates);
                price.cost(call.usage, accounting).total_usd
            }
            None => 0.0,
        }
    }

    fn observe_key<E: Default>(
        &self,
        scope: Scope,
        dimension: &Dimension<E>,
        key: &str,
        now: Tick,
        trace: &str,
        make: impl FnOnce(&mut E) -> Sample,
    ) -> Sample {
        let (mut table, hash) = dimension.lock(key);
        let slot = self.slot_for(scope, &mut table, key, hash, now);
        let sample = make(&mut table.slot_mut(slot).extra);
        {
            let mut windows = table.windows(slot);
            windows.advance(&now);
            windows.record(&sample);
        }
        if self.has_rules(scope) {
            table.remember_trace(slot, trace);
            self.evaluate_slot(scope, &mut table, slot, now, Some(&sample));
        }
        sample
    }

    /// The slot of `key`, tracking it (and evicting the least recently seen) when new.
    fn slot_for<E: Default>(
        &self,
        scope: Scope,
        table: &mut Table<E>,
        key: &str,
        hash: u64,
        now: Tick,
    ) -> u32 {
        if let Some(slot) = table.find(key, hash) {
            table.touch(slot, now.epoch);
            return slot;
        }
        if let Some(victim) = table.victim() {
            self.forget(scope, table, victim, now);
        }
        table.insert(key, hash, now.epoch)
    }

    /// A key is about to be evicted: its raised alerts clear.
    fn forget<E: Default>(&self, scope: Scope, table: &mut Table<E>, slot: u32, now: Tick) {
        let active = table.slot(slot).active;
        if active == 0 {
            return;
        }
        table.windows(slot).advance(&now);
        let sums = table.windows(slot).sums();
        for index in bits(active) {
            let Some(state) = table.states.remove(&(slot, index)) else {
                continue;
            };
            if let Some(firing) = state.firing {
                let rule = &self.rules[usize::from(index)];
                let reading = rule.read(&sums, &table.windows(slot));
                let alert = self.alert(
                    AlertState::Cleared,
                    scope,
                    table,
                    slot,
                    rule,
                    reading,
                    &firing,
                    now,
                );
                self.send(alert);
            }
        }
        table.slot_mut(slot).active = 0;
    }

    /// Reads the scope's rules for one key and raises or clears their alerts. After a call
    /// (`sample`), every rule that could breach; without one (the background evaluation), only
    /// the rules that have a state for the key.
    fn evaluate_slot<E: Default>(
        &self,
        scope: Scope,
        table: &mut Table<E>,
        slot: u32,
        now: Tick,
        sample: Option<&Sample>,
    ) {
        let rules = &self.by_scope[scope.index()];
        if rules.is_empty() {
            return;
        }
        let sums = {
            let mut windows = table.windows(slot);
            windows.advance(&now);
            windows.sums()
        };
        for &index in rules {
            let rule = &self.rules[usize::from(index)];
            let bit = 1u64 << index;
            let active = table.slot(slot).active & bit != 0;
            if !active && (sample.is_none() || !rule.could_breach(&sums, sample)) {
                continue;
            }
            if let Some(only) = rule.key() {
                if *table.slot(slot).key != *only {
                    continue;
                }
            }
            let reading = rule.read(&sums, &table.windows(slot));
            if reading.breach || active {
                self.transition(scope, table, slot, index, reading, now);
            }
        }
    }

    /// Moves one rule's state for one key, sending the alert or clear that goes with it.
    fn transition<E: Default>(
        &self,
        scope: Scope,
        table: &mut Table<E>,
        slot: u32,
        index: u16,
        reading: Reading,
        now: Tick,
    ) {
        let rule = &self.rules[usize::from(index)];
        let cooldown = nanos(rule.cooldown_duration());
        let before = table.states.get(&(slot, index)).copied();
        let mut state = before.unwrap_or(RuleState {
            firing: None,
            last_raised: None,
        });
        let mut changed = false;
        match (state.firing, reading.breach) {
            // Still raised: the common case of a hot key, which touches nothing.
            (Some(_), true) => return,
            (None, true) => {
                let cooled = state
                    .last_raised
                    .is_none_or(|at| now.nanos.saturating_sub(at) >= cooldown);
                if cooled {
                    let firing = Firing {
                        alert_id: Uuid::now_v7(),
                        since: now.nanos,
                        since_wall: self.clock.wall(),
                        threshold: reading.threshold,
                        baseline: reading.baseline,
                    };
                    state.firing = Some(firing);
                    state.last_raised = Some(now.nanos);
                    changed = true;
                    let alert = self.alert(
                        AlertState::Raised,
                        scope,
                        table,
                        slot,
                        rule,
                        reading,
                        &firing,
                        now,
                    );
                    self.raised.fetch_add(1, Ordering::Relaxed);
                    self.send(alert);
                }
            }
            (Some(firing), false) => {
                state.firing = None;
                changed = true;
                let alert = self.alert(
                    AlertState::Cleared,
                    scope,
                    table,
                    slot,
                    rule,
                    reading,
                    &firing,
                    now,
                );
                self.cleared.fetch_add(1, Ordering::Relaxed);
                self.send(alert);
            }
            (None, false) => {}
        }
        // A state is kept while the alert is raised or its cooldown runs (a breach held back by
        // the cooldown is raised by a later evaluation).
        let keep = state.firing.is_some()
            || state
                .last_raised
                .is_some_and(|at| now.nanos.saturating_sub(at) < cooldown);
        let bit = 1u64 << index;
        if keep {
            if changed || before.is_none() {
                table.states.insert((slot, index), state);
            }
            table.slot_mut(slot).active |= bit;
        } else {
            if before.is_some() {
                table.states.remove(&(slot, index));
            }
            table.slot_mut(slot).active &= !bit;
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn alert<E: Default>(
        &self,
        state: AlertState,
        scope: Scope,
        table: &Table<E>,
        slot: u32,
        rule: &Rule,
        reading: Reading,
        firing: &Firing,
        now: Tick,
    ) -> Alert {
        let key = table.slot(slot).key.to_string();
        let mut envelope = Envelope::at(self.clock.wall());
        if scope == Scope::DistinctId {
            envelope.distinct_id = Some(key.clone());
        }
        // A clear reads the window again; without a baseline any more it keeps the raise's.
        let (threshold, baseline) = if reading.threshold.is_finite() {
            (reading.threshold, reading.baseline)
        } else {
            (firing.threshold, firing.baseline)
        };
        Alert {
            envelope,
            state,
            alert_id: firing.alert_id,
            rule: rule.name().to_owned(),
            metric: rule.metric().name().into_owned(),
            condition: rule.condition().as_str().to_owned(),
            scope: scope.as_str().to_owned(),
            key,
            window: self.window(),
            observed: reading.observed,
            threshold,
            baseline,
            factor: match rule.condition() {
                Condition::Unusual { factor } => Some(factor),
                Condition::Above(_) => None,
            },
            sample_trace_ids: table.samples(slot, SAMPLE_TRACE_IDS),
            raised_at: firing.since_wall,
            firing_for: (state == AlertState::Cleared)
                .then(|| Duration::from_nanos(now.nanos.saturating_sub(firing.since))),
        }
    }

    fn send(&self, alert: Alert) {
        if self.stopped.load(Ordering::Relaxed) {
            self.outbox.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.outbox.send(alert);
    }

    /// Evaluates every key with a raised alert or a running cooldown: alerts clear, and
    /// breaches held back by a cooldown are raised.
    fn evaluate(&self) {
        let now = self.now();
        self.evaluate_dimension(Scope::Model, &self.models, now);
        self.evaluate_dimension(Scope::Provider, &self.providers, now);
        self.evaluate_dimension(Scope::DistinctId, &self.ids, now);
    }

    fn evaluate_dimension<E: Default>(&self, scope: Scope, dimension: &Dimension<E>, now: Tick) {
        if !self.has_rules(scope) {
            return;
        }
        for shard in dimension.shards() {
            let mut table = lock(shard);
            if table.states.is_empty() {
                continue;
            }
            let mut slots: Vec<u32> = table.states.keys().map(|&(slot, _)| slot).collect();
            slots.sort_unstable();
            slots.dedup();
            for slot in slots {
                self.evaluate_slot(scope, &mut table, slot, now, None);
            }
        }
    }

    fn check(&self, distinct_id: &str) -> Result<(), BudgetExceeded> {
        let Some(budget) = self
            .budgets
            .get(distinct_id)
            .or(self.budget.as_ref())
            .copied()
        else {
            return Ok(());
        };
        if budget.max_tokens.is_none() && budget.max_cost_usd.is_none() {
            return Ok(());
        }
        let now = self.now();
        let (mut table, hash) = self.ids.lock(distinct_id);
        let slot = table.find(distinct_id, hash);
        let mut windows = slot.map(|slot| table.windows(slot));
        if let Some(windows) = &mut windows {
            windows.advance(&now);
        }
        let (tokens, cost) = windows.as_ref().map_or((0, 0.0), |windows| windows.spent());
        let refusal = |spent: Spent, retry_after: Option<u64>| BudgetExceeded {
            distinct_id: distinct_id.to_owned(),
            spent,
            window: self.window(),
            retry_after: retry_after.map(Duration::from_nanos),
        };
        if let Some(limit) = budget.max_tokens {
            if tokens >= limit {
                let retry = windows.as_ref().and_then(|windows| {
                    windows.relief_after(now.nanos, bucket_tokens, limit as f64)
                });
                return Err(refusal(
                    Spent::Tokens {
                        spent: tokens,
                        limit,
                    },
                    retry,
                ));
            }
        }
        if let Some(limit) = budget.max_cost_usd {
            if cost >= limit {
                let retry = windows
                    .as_ref()
                    .and_then(|windows| windows.relief_after(now.nanos, bucket_cost, limit));
                return Err(refusal(Spent::CostUsd { spent: cost, limit }, retry));
            }
        }
        Ok(())
    }

    fn figures_of<E: Default>(&self, dimension: &Dimension<E>, now: Tick) -> Vec<KeyFigures> {
        let mut rows = Vec::new();
        for shard in dimension.shards() {
            let mut start = 0;
            loop {
                // A chunk per lock, so that a large table never holds captures up for long.
                let mut table = lock(shard);
                let end = (start + SNAPSHOT_CHUNK).min(table.slot_count());
                for slot in start..end {
                    let slot = slot as u32;
                    let key = Arc::clone(&table.slot(slot).key);
                    let mut windows = table.windows(slot);
                    windows.advance(&now);
                    rows.push(KeyFigures::read(&key, &windows));
                }
                if end >= table.slot_count() {
                    break;
                }
                start = end;
            }
        }
        rows.sort_by(|a, b| b.tokens.cmp(&a.tokens).then_with(|| a.key.cmp(&b.key)));
        rows
    }

    fn figures<E: Default>(&self, dimension: &Dimension<E>, key: &str) -> Option<KeyFigures> {
        let now = self.now();
        let (mut table, hash) = dimension.lock(key);
        let slot = table.find(key, hash)?;
        let mut windows = table.windows(slot);
        windows.advance(&now);
        Some(KeyFigures::read(key, &windows))
    }

    fn active_alerts<E: Default>(
        &self,
        scope: Scope,
        dimension: &Dimension<E>,
        now: Tick,
        out: &mut Vec<ActiveAlert>,
    ) {
        for shard in dimension.shards() {
            let table = lock(shard);
            for (&(slot, index), state) in &table.states {
                if let Some(firing) = &state.firing {
                    out.push(ActiveAlert {
                        rule: self.rules[usize::from(index)].name().to_owned(),
                        scope,
                        key: table.slot(slot).key.to_string(),
                        firing_seconds: Duration::from_nanos(
                            now.nanos.saturating_sub(firing.since),
                        )
                        .as_secs_f64(),
                    });
                }
            }
        }
    }

    fn stats(&self) -> MonitorStats {
        let (models, models_evicted) = self.models.counts();
        let (providers, providers_evicted) = self.providers.counts();
        let (distinct_ids, ids_evicted) = self.ids.counts();
        MonitorStats {
            events: self.events.load(Ordering::Relaxed),
            models,
            providers,
            distinct_ids,
            evicted: models_evicted + providers_evicted + ids_evicted,
            alerts_raised: self.raised.load(Ordering::Relaxed),
            alerts_cleared: self.cleared.load(Ordering::Relaxed),
            alerts_dropped: self.outbox.dropped.load(Ordering::Relaxed),
        }
    }
}

/// The indices of the set bits of `mask`.
fn bits(mask: u64) -> impl Iterator<Item = u16> {
    (0..64u16).filter(move |bit| mask & (1u64 << bit) != 0)
}

impl Monitor {
    /// A builder: window, rules, budgets, callback, alert sink, clock.
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }

    /// Refuses a call for `distinct_id` when its budget for the window is spent: the tokens
    /// (input plus output) or the cost of its calls in the window reached the limit.
    ///
    /// O(1), without waiting on anything but a short lock. An id without a budget, or not seen
    /// in the window, passes. The call that crosses a limit is let through (its cost is known
    /// only when it ends); the next one is refused. To record a refusal made here, fail the
    /// call's [`CallInProgress`](crate::record::CallInProgress) with the error it converts to,
    /// or use [`Budgeted`], which does both.
    ///
    /// # Errors
    /// [`BudgetExceeded`], naming the limit, what was spent and when to retry.
    pub fn check(&self, distinct_id: &str) -> Result<(), BudgetExceeded> {
        self.engine.check(distinct_id)
    }

    /// Every tracked key's current window, the alerts raised now and the monitor's counters.
    ///
    /// It walks every key (a few hundred nanoseconds each), a chunk at a time so that captures
    /// never wait long; for a health page, not for every request.
    pub fn snapshot(&self) -> Snapshot {
        let engine = &*self.engine;
        let now = engine.now();
        let mut active_alerts = Vec::new();
        engine.active_alerts(Scope::Model, &engine.models, now, &mut active_alerts);
        engine.active_alerts(Scope::Provider, &engine.providers, now, &mut active_alerts);
        engine.active_alerts(Scope::DistinctId, &engine.ids, now, &mut active_alerts);
        active_alerts.sort_by(|a, b| (a.scope, &a.key, &a.rule).cmp(&(b.scope, &b.key, &b.rule)));
        Snapshot {
            window_seconds: engine.window().as_secs_f64(),
            models: engine.figures_of(&engine.models, now),
            providers: engine.figures_of(&engine.providers, now),
            distinct_ids: engine.figures_of(&engine.ids, now),
            active_alerts,
            stats: engine.stats(),
        }
    }

    /// The current window of one key, if it is tracked.
    pub fn figures(&self, scope: Scope, key: &str) -> Option<KeyFigures> {
        let engine = &*self.engine;
        match scope {
            Scope::Model => engine.figures(&engine.models, key),
            Scope::Provider => engine.figures(&engine.providers, key),
            Scope::DistinctId => engine.figures(&engine.ids, key),
        }
    }

    /// The monitor's counters: events, tracked and evicted keys, alerts.
    pub fn stats(&self) -> MonitorStats {
        self.engine.stats()
    }

    /// Evaluates now every key with a raised alert or a running cooldown: what the monitor's
    /// thread does every [`MonitorBuilder::evaluate_every`]. Tests call it after moving a
    /// [`ManualClock`].
    pub fn evaluate(&self) {
        self.engine.evaluate();
    }

    /// The rules, in the order they were added.
    pub fn rules(&self) -> &[Rule] {
        &self.engine.rules
    }

    /// The rolling window.
    pub fn window(&self) -> Duration {
        self.engine.window()
    }

    /// Waits until every alert raised so far was delivered (callback, log, alert sink), then
    /// flushes the alert sink, all within `timeout`.
    ///
    /// # Errors
    /// [`SinkError::Timeout`] when that took longer.
    pub async fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        let deadline = Instant::now() + timeout;
        self.drain(deadline, timeout).await?;
        self.flush_alert_sink(deadline).await
    }

    async fn drain(&self, deadline: Instant, timeout: Duration) -> Result<(), SinkError> {
        let (done, delivered) = oneshot::channel();
        if !self
            .engine
            .outbox
            .send_control(Message::Flush(done), deadline)
            .await
        {
            return if self.engine.stopped.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err(SinkError::Timeout(timeout))
            };
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, delivered).await {
            Ok(_) => Ok(()),
            Err(_) => Err(SinkError::Timeout(timeout)),
        }
    }

    async fn flush_alert_sink(&self, deadline: Instant) -> Result<(), SinkError> {
        match &self.engine.alert_sink {
            Some(sink) => {
                sink.flush(deadline.saturating_duration_since(Instant::now()))
                    .await
            }
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let engine = &*self.engine;
        f.debug_struct("Monitor")
            .field("window", &engine.window())
            .field("buckets", &engine.geometry.buckets)
            .field("rules", &engine.rules.len())
            .field("budget", &engine.budget)
            .field("clock", &engine.clock)
            .field("stats", &engine.stats())
            .finish_non_exhaustive()
    }
}

/// Sees every event without keeping it: [`Sink::capture_ref`] costs no copy, so put the
/// monitor before the sink that keeps events in a [`Fanout`](crate::sink::Fanout).
#[async_trait]
impl Sink for Monitor {
    fn capture(&self, event: Event) {
        self.engine.observe(&event);
    }

    fn capture_ref(&self, event: &Event) {
        self.engine.observe(event);
    }

    async fn flush(&self, timeout: Duration) -> Result<(), SinkError> {
        Monitor::flush(self, timeout).await
    }

    /// Delivers what is queued, stops the monitor's thread and flushes (never shuts down) the
    /// alert sink. Windows and budgets keep working; later alerts are dropped and counted.
    async fn shutdown(&self, timeout: Duration) -> Result<(), SinkError> {
        if self.engine.stopped.swap(true, Ordering::SeqCst) {
            return Err(SinkError::AlreadyShutdown);
        }
        let deadline = Instant::now() + timeout;
        let (done, stopped) = oneshot::channel();
        if !self
            .engine
            .outbox
            .send_control(Message::Stop(done), deadline)
            .await
        {
            return Err(SinkError::Timeout(timeout));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if tokio::time::timeout(left, stopped).await.is_err() {
            return Err(SinkError::Timeout(timeout));
        }
        self.flush_alert_sink(deadline).await
    }
}

/// Why a monitor could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The rules file is invalid; the error names the line.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A rule cannot work.
    #[error("invalid monitor rule `{rule}`: {reason}")]
    Rule {
        /// The rule's name.
        rule: String,
        /// Why.
        reason: String,
    },
    /// A setting is out of range.
    #[error("invalid monitor setting `{setting}`: {reason}")]
    Setting {
        /// The setting.
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// The monitor's thread could not be started.
    #[error("could not start the monitor's thread: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Builds a [`Monitor`]; every setting has a `DEFAULT_*` value, the first bad one is returned by
/// [`build`](MonitorBuilder::build).
///
/// Settings given in code win over a rules file's ([`MonitorBuilder::config`],
/// [`MonitorBuilder::rules_file`]), which win over the defaults. The file's rules come first,
/// then the code's; names must be unique.
#[must_use]
#[derive(Default)]
pub struct MonitorBuilder {
    window: Option<Duration>,
    buckets: Option<u32>,
    baseline_windows: Option<u32>,
    min_baseline_windows: Option<u32>,
    max_distinct_ids: Option<usize>,
    max_models: Option<usize>,
    max_providers: Option<usize>,
    rules: Vec<Rule>,
    file: Option<FileSource>,
    budget: Option<Budget>,
    budgets: HashMap<String, Budget>,
    handler: Option<AlertHandler>,
    alert_sink: Option<Arc<dyn Sink>>,
    pricing: Option<PriceTable>,
    clock: Option<Arc<dyn Clock>>,
    evaluate_every: Option<Duration>,
    alert_queue: Option<usize>,
}

enum FileSource {
    Parsed(MonitorConfig),
    Path(PathBuf),
}

impl MonitorBuilder {
    /// The rolling window rules and budgets read (default [`DEFAULT_WINDOW`]).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }

    /// Buckets per window, 1 to 120 (default [`DEFAULT_BUCKETS`]): more move the window on in
    /// smaller steps, at 52 bytes per bucket and key.
    pub fn buckets(mut self, buckets: u32) -> Self {
        self.buckets = Some(buckets);
        self
    }

    /// Past whole windows kept for the baseline, 0 to 48 (default
    /// [`DEFAULT_BASELINE_WINDOWS`]); 0 keeps none, and no rule can be "unusual".
    pub fn baseline_windows(mut self, windows: u32) -> Self {
        self.baseline_windows = Some(windows);
        self
    }

    /// Whole windows a key must have been tracked for before it has a baseline (default
    /// [`DEFAULT_MIN_BASELINE_WINDOWS`]).
    pub fn min_baseline_windows(mut self, windows: u32) -> Self {
        self.min_baseline_windows = Some(windows);
        self
    }

    /// Distinct ids tracked at most (default [`DEFAULT_MAX_DISTINCT_IDS`]).
    pub fn max_distinct_ids(mut self, ids: usize) -> Self {
        self.max_distinct_ids = Some(ids);
        self
    }

    /// Models tracked at most (default [`DEFAULT_MAX_MODELS`]).
    pub fn max_models(mut self, models: usize) -> Self {
        self.max_models = Some(models);
        self
    }

    /// Providers tracked at most (default [`DEFAULT_MAX_PROVIDERS`]).
    pub fn max_providers(mut self, providers: usize) -> Self {
        self.max_providers = Some(providers);
        self
    }

    /// Adds a rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds rules.
    pub fn rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// Takes settings, rules and budgets from a parsed rules file (replacing an earlier
    /// [`MonitorBuilder::rules_file`]).
    pub fn config(mut self, config: MonitorConfig) -> Self {
        self.file = Some(FileSource::Parsed(config));
        self
    }

    /// Reads settings, rules and budgets from a `.toml` or `.json` file at
    /// [`build`](MonitorBuilder::build) (see [`MonitorConfig`] for the format).
    pub fn rules_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(FileSource::Path(path.into()));
        self
    }

    /// The budget of every distinct id without one of its own.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The budget of one distinct id ([`Budget::unlimited`] exempts it).
    pub fn budget_for(mut self, distinct_id: impl Into<String>, budget: Budget) -> Self {
        self.budgets.insert(distinct_id.into(), budget);
        self
    }

    /// Calls `handler` with every alert raised or cleared, on the monitor's thread, never on
    /// the caller's. A handler that blocks holds up later alerts (they queue, then drop); one
    /// that panics is logged and called again for the next alert.
    pub fn on_alert(mut self, handler: impl Fn(&Alert) + Send + Sync + 'static) -> Self {
        self.handler = Some(Arc::new(handler));
        self
    }

    /// Sends every alert as an event (`llm_alert`, `llm_alert_cleared`) to `sink`: the PostHog
    /// sink, say. Not the fan-out that holds this monitor: the monitor would own itself.
    pub fn alert_sink(mut self, sink: impl Sink + 'static) -> Self {
        self.alert_sink = Some(Arc::new(sink));
        self
    }

    /// Sends every alert as an event to a shared sink.
    pub fn shared_alert_sink(mut self, sink: Arc<dyn Sink>) -> Self {
        self.alert_sink = Some(sink);
        self
    }

    /// Prices calls that carry no cost (default [`PriceTable::builtin`]). A model without a
    /// price costs 0, with one warning per model.
    pub fn pricing(mut self, table: PriceTable) -> Self {
        self.pricing = Some(table);
        self
    }

    /// Reads time from `clock` (default [`SystemClock`]); tests use a [`ManualClock`].
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How often the monitor's thread evaluates raised alerts so that they clear without
    /// calls (default [`DEFAULT_EVALUATE_EVERY`]); [`Duration::ZERO`] never does, leaving it to
    /// calls and [`Monitor::evaluate`].
    pub fn evaluate_every(mut self, every: Duration) -> Self {
        self.evaluate_every = Some(every);
        self
    }

    /// Alerts that may wait for the monitor's thread (default [`DEFAULT_ALERT_QUEUE`]).
    pub fn alert_queue(mut self, alerts: usize) -> Self {
        self.alert_queue = Some(alerts);
        self
    }

    /// The monitor, with its thread started.
    ///
    /// # Errors
    /// [`MonitorError`]: an invalid rules file (naming the line), rule or setting, or a thread
    /// that would not start.
    pub fn build(self) -> Result<Monitor, MonitorError> {
        let file = match self.file {
            Some(FileSource::Parsed(config)) => config,
            Some(FileSource::Path(path)) => MonitorConfig::from_path(path)?,
            None => MonitorConfig::default(),
        };
        let setting =
            |setting: &'static str, reason: String| MonitorError::Setting { setting, reason };
        let window = self.window.or(file.window).unwrap_or(DEFAULT_WINDOW);
        let buckets = self.buckets.or(file.buckets).unwrap_or(DEFAULT_BUCKETS);
        let baseline_windows = self
            .baseline_windows
            .or(file.baseline_windows)
            .unwrap_or(DEFAULT_BASELINE_WINDOWS);
        let min_baseline_windows = self
            .min_baseline_windows
            .or(file.min_baseline_windows)
            .unwrap_or(DEFAULT_MIN_BASELINE_WINDOWS);
        if !(1..=MAX_BUCKETS).contains(&buckets) {
            return Err(setting(
                "buckets",
                format!("{buckets} is not between 1 and {MAX_BUCKETS}"),
            ));
        }
        let bucket_nanos = nanos(window) / u64::from(buckets);
        if bucket_nanos < 1_000_000 {
            return Err(setting(
                "window",
                format!("{window:?} in {buckets} buckets makes buckets shorter than 1 ms"),
            ));
        }
        if baseline_windows > MAX_BASELINE_WINDOWS {
            return Err(setting(
                "baseline_windows",
                format!("{baseline_windows} is more than {MAX_BASELINE_WINDOWS}"),
            ));
        }
        if min_baseline_windows == 0 || min_baseline_windows > baseline_windows.max(1) {
            return Err(setting(
                "min_baseline_windows",
                format!("{min_baseline_windows} is not between 1 and baseline_windows ({baseline_windows})"),
            ));
        }
        let capacity =
            |setting_name: &'static str, code: Option<usize>, file: Option<usize>, default| {
                let value = code.or(file).unwrap_or(default);
                if value == 0 {
                    Err(setting(setting_name, "must be at least 1".into()))
                } else {
                    Ok(value)
                }
            };
        let max_ids = capacity(
            "max_distinct_ids",
            self.max_distinct_ids,
            file.max_distinct_ids,
            DEFAULT_MAX_DISTINCT_IDS,
        )?;
        let max_models = capacity(
            "max_models",
            self.max_models,
            file.max_models,
            DEFAULT_MAX_MODELS,
        )?;
        let max_providers = capacity(
            "max_providers",
            self.max_providers,
            file.max_providers,
            DEFAULT_MAX_PROVIDERS,
        )?;

        let rules: Vec<Rule> = file.rules.into_iter().chain(self.rules).collect();
        if rules.len() > MAX_RULES {
            return Err(setting(
                "rules",
                format!("{} rules; a monitor holds at most {MAX_RULES}", rules.len()),
            ));
        }
        let mut by_scope: [Vec<u16>; 3] = Default::default();
        for (index, rule) in rules.iter().enumerate() {
            if let Some(reason) = rule.problem() {
                return Err(MonitorError::Rule {
                    rule: rule.name().to_owned(),
                    reason,
                });
            }
            if rules[..index]
                .iter()
                .any(|other| other.name() == rule.name())
            {
                return Err(MonitorError::Rule {
                    rule: rule.name().to_owned(),
                    reason: "two rules have this name; alerts are told apart by it".into(),
                });
            }
            if matches!(rule.condition(), Condition::Unusual { .. }) && baseline_windows == 0 {
                return Err(MonitorError::Rule {
                    rule: rule.name().to_owned(),
                    reason: "an unusual rule needs baseline_windows of 1 or more".into(),
                });
            }
            by_scope[rule.scope().index()].push(index as u16);
        }
        let budget = self.budget.or(file.budget);
        let mut budgets: HashMap<String, Budget> = file.budgets.into_iter().collect();
        budgets.extend(self.budgets);
        for budget in budget.iter().chain(budgets.values()) {
            if let Some(reason) = budget.problem() {
                return Err(setting("budget", reason));
            }
        }

        let geometry = Geometry {
            bucket_nanos,
            buckets,
            baseline_windows,
            min_baseline_windows,
        };
        let (sender, receiver) =
            sync_channel(self.alert_queue.unwrap_or(DEFAULT_ALERT_QUEUE).max(1));
        let engine = Arc::new(Engine {
            geometry,
            clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock::new())),
            pricing: self.pricing.unwrap_or_else(PriceTable::builtin),
            rules,
            by_scope,
            models: Dimension::new(geometry, max_models, MODEL_SHARDS, Hashing::fast()),
            providers: Dimension::new(geometry, max_providers, PROVIDER_SHARDS, Hashing::fast()),
            ids: Dimension::new(geometry, max_ids, ID_SHARDS, Hashing::sip()),
            budget,
            budgets,
            outbox: Outbox::new(sender),
            alert_sink: self.alert_sink.clone(),
            events: AtomicU64::new(0),
            raised: AtomicU64::new(0),
            cleared: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        });
        let delivery = Delivery {
            handler: self.handler,
            sink: self.alert_sink,
        };
        let every = self.evaluate_every.unwrap_or(DEFAULT_EVALUATE_EVERY);
        let weak = Arc::downgrade(&engine);
        std::thread::Builder::new()
            .name("traced-llm-monitor".into())
            .spawn(move || dispatch::run(receiver, weak, delivery, every))
            .map_err(MonitorError::Spawn)?;
        Ok(Monitor { engine })
    }
}

impl fmt::Debug for MonitorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MonitorBuilder")
            .field("window", &self.window)
            .field("buckets", &self.buckets)
            .field("rules", &self.rules)
            .field("budget", &self.budget)
            .field("on_alert", &self.handler.as_ref().map(|_| "Fn"))
            .field("alert_sink", &self.alert_sink)
            .finish_non_exhaustive()
    }
}
