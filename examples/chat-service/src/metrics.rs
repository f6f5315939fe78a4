//! `GET /metrics`: the monitor's live figures, per model, provider and user.
//!
//! Unauthenticated, like most metrics endpoints: the service listens on loopback; a deployed
//! one would put this behind its operators' access control.

use axum::extract::State;
use axum::Json;
use traced_llm::monitor::Snapshot;

use crate::state::AppState;

/// Tokens, calls, errors by kind, refusals, cost and latency percentiles in the current
/// window, as JSON.
pub(crate) async fn get_metrics(State(state): State<AppState>) -> Json<Snapshot> {
    Json(state.monitor.snapshot())
}
