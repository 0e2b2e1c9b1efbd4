//! `GET /ready`: whether a load balancer should send this instance new work; `GET /metrics`:
//! Prometheus' text format.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Json, Response},
};

use super::HttpState;
use crate::{queue::JobQueue, telemetry};

/// How long `/ready` waits for the database before answering 503; shorter than a balancer's
/// usual check timeout, so a hung database reads as "not ready", never as a hung check.
const READY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(1);

/// 200 `{"status":"ready"}` while the instance is not stopping and the database answers
/// within [`READY_DEADLINE`]; 503 with `shutting_down` or `unavailable` otherwise. Unlike
/// `/health` (liveness, kept as it was), a stopping instance is no longer ready.
pub async fn ready(State(state): State<HttpState>) -> Response {
    let not_ready = |status: &str| {
        let body = serde_json::json!({ "status": status });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    };
    if state.shutdown.is_stopping() {
        return not_ready("shutting_down");
    }
    match tokio::time::timeout(READY_DEADLINE, state.services.state.db.ping()).await {
        Ok(Ok(())) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness: the database does not answer");
            not_ready("unavailable")
        }
        Err(_) => {
            tracing::warn!("readiness: no answer from the database within {READY_DEADLINE:?}");
            not_ready("unavailable")
        }
    }
}

/// Every metric family of the process, for a Prometheus scrape; not for the public internet
/// (see `METRICS_ENABLED`). The route exists only with a handle, so `None` never answers here.
pub async fn metrics(State(state): State<HttpState>) -> Response {
    let Some(handle) = &state.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let db = &state.services.state.db;
    match tokio::time::timeout(READY_DEADLINE, JobQueue::depth(db)).await {
        Ok(Ok(depth)) => telemetry::jobs_pending(depth),
        Ok(Err(err)) => tracing::warn!(error = %err, "metrics: reading the job queue's depth"),
        Err(_) => tracing::warn!("metrics: no job queue depth within {READY_DEADLINE:?}"),
    }
    let text = telemetry::render(handle, db);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
