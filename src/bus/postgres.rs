//! The bus of several instances on one PostgreSQL database: `NOTIFY` in the committing
//! transaction, `LISTEN` on a connection of its own.
//!
//! Each instance delivers its own events to its own subscribers at once, and other instances'
//! events as they arrive on its listening connection ([`InProcessBus`] fans them out on both
//! paths). PostgreSQL delivers notifications in commit order, only for committed transactions,
//! to the sessions listening at that moment; so when the listening connection is lost, the
//! instance listens again and then tells every subscriber it may have missed events: each
//! resynchronises from its cursor or its stored state (see the module above), which covers
//! everything committed while nobody listened.

use std::sync::Arc;

use async_graphql::futures_util::{FutureExt, future::BoxFuture, stream::BoxStream};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value, sqlx::postgres::PgListener,
};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{Delivery, Event, EventBus, InProcessBus, Topic, wire};
use crate::{queue::Backoff, telemetry};

/// The channel every instance of one database notifies and listens on.
const CHANNEL: &str = "caregraph_events";

/// Events no transaction carries (typing) waiting to be notified; past this, they are
/// dropped: each is superseded by the next, and "typing" ends by itself.
const EPHEMERAL_QUEUE: usize = 4096;

/// The most ephemeral events one notifying statement carries.
const EPHEMERAL_BATCH: usize = 256;

/// The waits between attempts to listen again: 50 ms doubling to 5 s, for as long as it takes.
const RECONNECT: Backoff = Backoff {
    base: std::time::Duration::from_millis(50),
    max: std::time::Duration::from_secs(5),
    max_attempts: i32::MAX,
};

/// Carries events between the instances of one PostgreSQL database.
pub struct PostgresBus {
    local: Arc<InProcessBus>,
    instance: Uuid,
    ephemeral: mpsc::Sender<Event>,
}

/// A bus's background work, which the application runs while it serves: for
/// [`PostgresBus`], its listening connection and the notifier of ephemeral events. A crash
/// (or a test's kill) ends it with the rest of the instance.
pub struct BusTasks(BoxFuture<'static, ()>);

impl BusTasks {
    /// A bus with nothing to do in the background.
    pub fn none() -> Self {
        Self(std::future::pending().boxed())
    }

    /// Runs the work; it ends only when dropped.
    pub async fn run(self) {
        self.0.await;
    }
}

impl PostgresBus {
    /// A bus for instance `instance` on `db`, listening on a connection to `listen_url`, and
    /// the background work it needs. Fails when it cannot listen at start, so a wrong URL
    /// stops the start-up rather than splitting the users into worlds of their own.
    pub async fn start(
        db: DatabaseConnection,
        listen_url: &str,
        instance: Uuid,
        capacity: usize,
    ) -> Result<(Arc<Self>, BusTasks), sea_orm::sqlx::Error> {
        let listener = listen(listen_url).await?;
        let local = Arc::new(InProcessBus::new(capacity));
        let (ephemeral, queued) = mpsc::channel(EPHEMERAL_QUEUE);
        let bus = Arc::new(Self {
            local: local.clone(),
            instance,
            ephemeral,
        });
        let receiving = Receiver {
            local,
            own_prefix: wire::sender_prefix(instance),
        }
        .run(listener, listen_url.to_owned());
        let notifying = notify_ephemeral(db, queued, instance);
        let tasks = async move {
            tokio::join!(receiving, notifying);
        };
        Ok((bus, BusTasks(tasks.boxed())))
    }
}

impl EventBus for PostgresBus {
    fn announcement(&self, events: &[Event]) -> Option<Statement> {
        notify(wire::envelopes(self.instance, now_micros(), events))
    }

    fn publish_committed(&self, event: Event) {
        self.local.publish(event);
    }

    fn publish(&self, event: Event) {
        self.local.publish(event.clone());
        if self.ephemeral.try_send(event).is_err() {
            telemetry::bus_dropped();
        }
    }

    fn subscribe(&self, topic: Topic) -> BoxStream<'static, Delivery> {
        self.local.subscribe(topic)
    }
}

/// One statement that notifies each of `payloads`, in order; `None` for none.
fn notify(payloads: Vec<String>) -> Option<Statement> {
    if payloads.is_empty() {
        return None;
    }
    let calls: Vec<String> = (1..=payloads.len())
        .map(|n| format!("pg_notify('{CHANNEL}', ${n})"))
        .collect();
    Some(Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("SELECT {}", calls.join(", ")),
        payloads.into_iter().map(Value::from),
    ))
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn listen(url: &str) -> Result<PgListener, sea_orm::sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Hands what other instances published to this instance's subscribers.
struct Receiver {
    local: Arc<InProcessBus>,
    /// How this instance's own envelopes begin: it delivered those events itself.
    own_prefix: String,
}

impl Receiver {
    async fn run(self, mut listener: PgListener, url: String) {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => self.receive(notification.payload()),
                // The connection was lost and a new one listens again.
                Ok(None) => self.listening_again(),
                Err(err) => {
                    tracing::warn!(error = %err, "the event bus lost its listening connection");
                    listener = Self::reconnect(&url).await;
                    self.listening_again();
                }
            }
        }
    }

    fn receive(&self, payload: &str) {
        if payload.starts_with(&self.own_prefix) {
            return;
        }
        let Some(envelope) = wire::open(payload) else {
            tracing::warn!(
                bytes = payload.len(),
                "an event envelope this version does not read: every subscriber resynchronises"
            );
            self.local.missed_everything();
            return;
        };
        telemetry::bus_lag(now_micros().saturating_sub(envelope.at));
        self.local.missed(&envelope.missed);
        for event in envelope.events {
            self.local.publish(event);
        }
    }

    /// Events committed while nobody listened were not delivered here: every subscriber
    /// reads again what it may have missed.
    fn listening_again(&self) {
        telemetry::bus_reconnected();
        tracing::info!("the event bus listens again; subscribers resynchronise");
        self.local.missed_everything();
    }

    async fn reconnect(url: &str) -> PgListener {
        let mut attempt = 1;
        loop {
            let wait = RECONNECT.wait(attempt, None, 1.0);
            tokio::time::sleep(wait).await;
            match listen(url).await {
                Ok(listener) => return listener,
                Err(err) => {
                    tracing::warn!(error = %err, ?wait, "the event bus cannot listen yet");
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

/// Notifies the events no transaction carries, batched: one statement for all that are
/// waiting. A failed notification is dropped (they are ephemeral).
async fn notify_ephemeral(
    db: DatabaseConnection,
    mut queued: mpsc::Receiver<Event>,
    instance: Uuid,
) {
    let mut batch = Vec::with_capacity(EPHEMERAL_BATCH);
    while queued.recv_many(&mut batch, EPHEMERAL_BATCH).await > 0 {
        if let Some(statement) = notify(wire::envelopes(instance, now_micros(), &batch))
            && let Err(err) = db.execute_raw(statement).await
        {
            tracing::warn!(error = %err, dropped = batch.len(), "notifying typing events");
            telemetry::bus_dropped();
        }
        batch.clear();
    }
}
