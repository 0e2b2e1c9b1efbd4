//! The one way to change the database: a [`Write`] transaction that carries the change's
//! context (its instant, the events it will publish) and publishes only after it committed.
//!
//! Services that change state take `&Write`; services that only read take
//! `&impl ConnectionTrait`, which a `Write` also is. The only way to get a `Write` is
//! [`Writer::begin`] or [`Writer::run`], which wait their turn in SQLite's write queue, so a
//! write that skips the queue, the clock or the bus does not compile.
//! See `docs/architecture.md` ("The write path").

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use super::WriteQueue;
use crate::{
    bus::{Event, EventBus},
    clock::Clock,
    error::AppError,
    sync::lock,
};

/// Starts write transactions: the connection they run on, the queue they wait in, the
/// clock that stamps them, the bus they publish to and the job workers they wake. Cheap to
/// clone.
#[derive(Clone)]
pub struct Writer {
    db: DatabaseConnection,
    queue: WriteQueue,
    clock: Arc<dyn Clock>,
    bus: Arc<dyn EventBus>,
    workers: JobWake,
    outbound: Outbound,
}

/// Which channels beyond the app this server delivers to, so a change that notifies
/// someone queues only deliveries that can happen.
#[derive(Debug, Clone, Copy, Default)]
pub struct Outbound {
    /// Some push provider is configured.
    pub push: bool,
    /// SMTP is configured.
    pub email: bool,
    /// How long a chat stays unread before it goes into an email digest.
    pub digest_delay: std::time::Duration,
}

/// Wakes the job workers of this instance when a commit added jobs, so a delivery starts
/// at once instead of at the next poll.
#[derive(Clone, Default)]
pub struct JobWake(Arc<tokio::sync::Notify>);

impl JobWake {
    /// Wakes a worker that waits, or the next one to wait.
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Completes at the next wake.
    pub async fn woken(&self) {
        self.0.notified().await;
    }
}

impl Writer {
    /// A writer on `db`; its writes take turns in `queue`.
    pub fn new(
        db: DatabaseConnection,
        queue: WriteQueue,
        clock: Arc<dyn Clock>,
        bus: Arc<dyn EventBus>,
        workers: JobWake,
        outbound: Outbound,
    ) -> Self {
        Self {
            db,
            queue,
            clock,
            bus,
            workers,
            outbound,
        }
    }

    /// The same writer on another connection (the message writer's own, on SQLite).
    pub fn on(&self, db: DatabaseConnection) -> Self {
        Self { db, ..self.clone() }
    }

    /// Starts a write transaction. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`), so a read-then-write can never fail half-way on a lock upgrade.
    /// Its instant is read once the turn came, so it orders like the commits do.
    pub async fn begin(&self) -> Result<Write, AppError> {
        let turn = tokio::time::timeout(self.queue.patience, self.queue.turn())
            .await
            .map_err(|_| AppError::Unavailable("waited too long for the write queue".to_owned()))?;
        let txn = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        Ok(Write {
            txn,
            now: self.clock.now(),
            events: Mutex::default(),
            bus: self.bus.clone(),
            workers: self.workers.clone(),
            wake_workers: AtomicBool::new(false),
            outbound: self.outbound,
            _turn: turn,
        })
    }

    /// Runs `change` in one write transaction and commits it, or rolls it all back if it
    /// failed: what a mutation resolver does in one call.
    pub async fn run<T>(
        &self,
        change: impl AsyncFnOnce(&Write) -> Result<T, AppError>,
    ) -> Result<T, AppError> {
        let write = self.begin().await?;
        let value = change(&write).await?;
        write.commit().await?;
        Ok(value)
    }
}

/// One write transaction with what it will publish once it commits. Dropping it uncommitted
/// rolls the change back and publishes nothing.
pub struct Write {
    txn: DatabaseTransaction,
    now: DateTime<Utc>,
    events: Mutex<Vec<Event>>,
    bus: Arc<dyn EventBus>,
    workers: JobWake,
    outbound: Outbound,
    /// Set when the change added jobs: the workers are woken once it commits.
    wake_workers: AtomicBool,
    /// This writer's turn in the queue, held until the transaction ends.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Write {
    /// The instant of this change: every row it stamps gets the same one.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// Queues `event` for the subscribers; it leaves only if the transaction commits.
    pub fn publish(&self, event: Event) {
        lock(&self.events).push(event);
    }

    /// [`Self::publish`] for each of `events`, in order.
    pub fn publish_all(&self, events: impl IntoIterator<Item = Event>) {
        lock(&self.events).extend(events);
    }

    /// The channels beyond the app this server delivers to.
    pub fn outbound(&self) -> Outbound {
        self.outbound
    }

    /// Wakes this instance's job workers once the change commits (it added jobs).
    pub fn wake_workers(&self) {
        self.wake_workers.store(true, Ordering::Relaxed);
    }

    /// Commits, then publishes what the change produced, in the order it was queued, and
    /// wakes the job workers if it added jobs. Other instances hear of the events by the
    /// announcement it runs first ([`EventBus::announcement`]), which leaves exactly when
    /// the transaction commits.
    pub async fn commit(self) -> Result<(), AppError> {
        let events = std::mem::take(&mut *lock(&self.events));
        if let Some(announcement) = self.bus.announcement(&events) {
            self.txn.execute_raw(announcement).await?;
        }
        self.txn.commit().await?;
        drop(self._turn);
        for event in events {
            self.bus.publish_committed(event);
        }
        if self.wake_workers.load(Ordering::Relaxed) {
            self.workers.wake();
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Write {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }
}
