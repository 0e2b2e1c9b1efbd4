//! Prometheus metrics: the families this service records, recorded through the `metrics`
//! facade, and the process-wide recorder that `GET /metrics` renders.
//!
//! The recorder is global to the process, so it is installed once however many applications
//! one process builds (the tests build many): they share its families.

use std::{
    sync::OnceLock,
    time::{Duration, Instant},
};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sea_orm::{DatabaseConnection, DbBackend};

/// Open graphql-ws sockets that completed `connection_init` (gauge).
const WEBSOCKETS_OPEN: &str = "caregraph_websockets_open";
/// Live subscriptions, labelled `field` with the subscription field (gauge).
const SUBSCRIPTIONS_LIVE: &str = "caregraph_subscriptions_live";
/// Operations that passed validation, labelled `type` query, mutation or subscription
/// (counter).
const OPERATIONS: &str = "caregraph_graphql_operations_total";
/// Errors in responses and subscription events, labelled `code` with `extensions.code`
/// (counter).
const ERRORS: &str = "caregraph_graphql_errors_total";
/// From `sendMessage` queueing its send to the batch's commit and publication (histogram).
const SEND_LATENCY: &str = "caregraph_send_message_seconds";
/// Connections of the database pool, labelled `state` in_use or idle (gauge, read at scrape).
const POOL_CONNECTIONS: &str = "caregraph_db_pool_connections";

/// Jobs of the durable queue waiting or running (gauge, read at scrape).
const JOBS_PENDING: &str = "caregraph_jobs_pending";
/// Provider answers to deliveries, labelled `channel` (push, email) and `outcome` (sent,
/// retry, failed, dead_token) (counter).
const DELIVERIES: &str = "caregraph_deliveries_total";
/// Attempts to close a video call's provider room, labelled `outcome` (closed,
/// already_over, retry, failed) (counter).
const VIDEO_ROOM_CLOSES: &str = "caregraph_video_room_closes_total";
/// From an instance's commit to another instance receiving its events (histogram).
const BUS_LAG: &str = "caregraph_event_bus_lag_seconds";
/// Times the event bus listened again after losing its connection; each made every
/// subscriber of the instance resynchronise (counter).
const BUS_RECONNECTS: &str = "caregraph_event_bus_reconnects_total";
/// Ephemeral events (typing) not sent to the other instances: the queue was full or the
/// notification failed (counter).
const BUS_DROPPED: &str = "caregraph_event_bus_dropped_total";
/// This instance's id, as a label of a gauge set to 1 (gauge).
const INSTANCE: &str = "caregraph_instance_info";

/// Buckets of [`SEND_LATENCY`], in seconds: a lone send commits in about a millisecond, a
/// batch under load in tens of them, and a send past a second is an incident.
const SEND_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// How often histograms not scraped meanwhile are folded, so their memory stays bounded.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder's handle, once installed; `None` when another recorder was there first.
static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder on first use and returns its handle, shared by every
/// application of the process; `None` (logged) when it could not be installed.
pub fn recorder() -> Option<PrometheusHandle> {
    RECORDER.get_or_init(install).clone()
}

fn install() -> Option<PrometheusHandle> {
    let installed = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(SEND_LATENCY.to_owned()), &SEND_BUCKETS)
        .and_then(|builder| {
            builder.set_buckets_for_metric(Matcher::Full(BUS_LAG.to_owned()), &SEND_BUCKETS)
        })
        .and_then(PrometheusBuilder::install_recorder);
    let handle = match installed {
        Ok(handle) => handle,
        Err(err) => {
            tracing::warn!(error = %err, "metrics are off: the recorder could not be installed");
            return None;
        }
    };
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "metrics upkeep did not start; scrapes still fold histograms");
    }
    describe();
    Some(handle)
}

/// The `# HELP` lines of each family.
fn describe() {
    metrics::describe_gauge!(
        WEBSOCKETS_OPEN,
        "Open graphql-ws sockets past connection_init."
    );
    metrics::describe_gauge!(
        SUBSCRIPTIONS_LIVE,
        "Live subscriptions by subscription field."
    );
    metrics::describe_counter!(
        OPERATIONS,
        "GraphQL operations that passed validation, by type."
    );
    metrics::describe_counter!(ERRORS, "GraphQL errors by extensions.code.");
    metrics::describe_histogram!(
        SEND_LATENCY,
        metrics::Unit::Seconds,
        "sendMessage from queueing to the commit and publication of its batch."
    );
    metrics::describe_gauge!(POOL_CONNECTIONS, "Database pool connections by state.");
    metrics::describe_gauge!(
        JOBS_PENDING,
        "Jobs of the durable queue waiting or running."
    );
    metrics::describe_counter!(
        DELIVERIES,
        "Push and email deliveries by channel and provider outcome."
    );
    metrics::describe_counter!(
        VIDEO_ROOM_CLOSES,
        "Attempts to close a video call's provider room, by outcome."
    );
    metrics::describe_histogram!(
        BUS_LAG,
        metrics::Unit::Seconds,
        "From another instance's commit to this instance receiving its events."
    );
    metrics::describe_counter!(
        BUS_RECONNECTS,
        "Times the event bus listened again after losing its connection (each resynchronised every subscriber)."
    );
    metrics::describe_counter!(
        BUS_DROPPED,
        "Typing events not sent to the other instances (queue full or notification failed)."
    );
    metrics::describe_gauge!(INSTANCE, "This instance's id, logged at start-up too.");
}

/// This instance's id, for telling instances apart in a scrape.
pub fn instance(id: uuid::Uuid) {
    metrics::gauge!(INSTANCE, "instance" => id.to_string()).set(1.0);
}

/// How long another instance's events took to arrive, in microseconds.
pub fn bus_lag(micros: i64) {
    metrics::histogram!(BUS_LAG).record(micros.max(0) as f64 / 1e6);
}

/// The event bus listens again after losing its connection.
pub fn bus_reconnected() {
    metrics::counter!(BUS_RECONNECTS).increment(1);
}

/// Ephemeral events were not sent to the other instances.
pub fn bus_dropped() {
    metrics::counter!(BUS_DROPPED).increment(1);
}

/// The job queue's depth, read just before a scrape renders.
pub fn jobs_pending(depth: u64) {
    metrics::gauge!(JOBS_PENDING).set(depth as f64);
}

/// One provider answer to a delivery on `channel` ("push", "email"): `outcome` is sent,
/// retry, failed or dead_token.
pub fn delivery(channel: &'static str, outcome: &'static str) {
    metrics::counter!(DELIVERIES, "channel" => channel, "outcome" => outcome).increment(1);
}

/// One attempt to close a video room: `outcome` is closed, already_over, retry or failed.
pub fn video_room_close(outcome: &'static str) {
    metrics::counter!(VIDEO_ROOM_CLOSES, "outcome" => outcome).increment(1);
}

/// Renders every family in Prometheus' text format, with the pool read now.
pub fn render(handle: &PrometheusHandle, db: &DatabaseConnection) -> String {
    let (size, idle) = match db.get_database_backend() {
        DbBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => return handle.render(),
    };
    let idle = u32::try_from(idle).unwrap_or(u32::MAX);
    metrics::gauge!(POOL_CONNECTIONS, "state" => "idle").set(idle);
    metrics::gauge!(POOL_CONNECTIONS, "state" => "in_use").set(size.saturating_sub(idle));
    handle.render()
}

/// One more open socket; [`socket_closed`] when it ends.
pub fn socket_opened() {
    metrics::gauge!(WEBSOCKETS_OPEN).increment(1);
}

/// One open socket fewer.
pub fn socket_closed() {
    metrics::gauge!(WEBSOCKETS_OPEN).decrement(1);
}

/// One operation of `kind` (query, mutation, subscription) passed validation.
pub fn operation(kind: &'static str) {
    metrics::counter!(OPERATIONS, "type" => kind).increment(1);
}

/// One error with `extensions.code` `code` went to a client.
pub fn error(code: &str) {
    metrics::counter!(ERRORS, "code" => code.to_owned()).increment(1);
}

/// One `sendMessage` committed and published, `since` it was queued.
pub fn message_sent(since: Instant) {
    metrics::histogram!(SEND_LATENCY).record(since.elapsed().as_secs_f64());
}

/// A live subscription, counted under its field from creation until it is dropped.
pub struct LiveSubscription {
    field: String,
}

impl LiveSubscription {
    /// Counts one more live subscription of `field`, a field of the schema (never client
    /// text that was not validated: each value is a series).
    pub fn start(field: String) -> Self {
        metrics::gauge!(SUBSCRIPTIONS_LIVE, "field" => field.clone()).increment(1);
        Self { field }
    }
}

impl Drop for LiveSubscription {
    fn drop(&mut self) {
        metrics::gauge!(SUBSCRIPTIONS_LIVE, "field" => self.field.clone()).decrement(1);
    }
}
