//! Connecting to the database, SQLite's write queue, and the [`Write`] transaction every
//! change runs in (see [`write`]).

pub mod batch_shape;
pub mod checkpoint;
mod nodelay;
pub mod parties;
pub mod write;

pub use write::{JobWake, Outbound, Write, Writer};

use std::{sync::Arc, time::Duration};

use sea_orm::{
    ConnectOptions, Database, DatabaseConnection, DbErr,
    sqlx::{
        postgres::PgConnectOptions,
        sqlite::{SqliteJournalMode, SqliteSynchronous},
    },
};

use crate::config::DatabaseConfig;

/// Opens the pool. SQLite gets WAL, a busy timeout and foreign keys, so
/// readers never block the writer and concurrent writers queue instead of failing.
/// Every wait for the database is bounded by `limits`, so an absent or locked database
/// becomes a prompt `SERVICE_UNAVAILABLE` instead of a hang.
pub async fn connect(url: &str, limits: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    connect_pool(url, limits, 8).await
}

/// The connection the message writer, which writes one batch at a time, works on. On SQLite
/// it is one of its own: a connection drops its page cache whenever another one wrote, so a
/// writer that took turns with the pool's other connections read every index page it
/// changed back from the WAL. An in-memory SQLite database lives in its pool, which a second
/// pool would not see, so it uses the pool. So does PostgreSQL: a connection of its own was
/// measured only before plans were forced custom (see `batch_shape`), and then lost to
/// generic plans made on small tables.
pub async fn writer_connection(
    url: &str,
    limits: &DatabaseConfig,
    pool: &DatabaseConnection,
) -> Result<DatabaseConnection, DbErr> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if url.starts_with("sqlite:") && !in_memory {
        connect_pool(url, limits, 1).await
    } else {
        Ok(pool.clone())
    }
}

/// A pool of at most `sqlite_connections` on SQLite, 32 on PostgreSQL.
///
/// sqlx bounds the whole acquisition by `acquire_timeout`: waiting for a free connection,
/// opening a new one (sea-orm's `connect_timeout` sets the same sqlx field, so it is left
/// alone) and pinging an idle one before handing it out, so a connection whose peer went
/// silent is dropped at the deadline instead of hanging the request.
async fn connect_pool(
    url: &str,
    limits: &DatabaseConfig,
    sqlite_connections: u32,
) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url);
    options
        .sqlx_logging(false)
        .acquire_timeout(limits.acquire_timeout);
    if url.starts_with("sqlite:") {
        let busy_timeout = limits.sqlite_busy_timeout;
        options
            .max_connections(sqlite_connections)
            .min_connections(1)
            .map_sqlx_sqlite_opts(move |sqlite| {
                sqlite
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(busy_timeout)
                    .foreign_keys(true)
                    // The backstop behind `checkpoint::run`, which keeps the WAL far smaller.
                    .pragma("wal_autocheckpoint", "50000")
                    .pragma("journal_size_limit", "67108864")
                    // Batch statements come in nine shapes each (`batch_shape`); sqlx's
                    // default of 100 statements would evict them.
                    .statement_cache_capacity(512)
            });
    } else {
        let port = url
            .parse::<PgConnectOptions>()
            .map_or(5432, |options| options.get_port());
        let statement_timeout = limits.statement_timeout.as_millis().to_string();
        options
            .max_connections(32)
            .min_connections(1)
            // Statements stay prepared, but each run is planned for its own parameters. A
            // generic plan is made once per connection and kept until the table is next
            // analyzed; made while a table was small, it scanned the whole of it for every
            // lookup by id, and for every batch (`batch_shape`) as it grew.
            // A statement that outlives `statement_timeout` is cancelled by the server.
            .map_sqlx_postgres_opts(move |postgres| {
                postgres.options([
                    ("plan_cache_mode", "force_custom_plan"),
                    ("statement_timeout", statement_timeout.as_str()),
                ])
            })
            .map_sqlx_postgres_pool_opts(move |pool| {
                pool.after_connect(move |_, _| {
                    Box::pin(async move {
                        if let Err(err) = nodelay::set_on_sockets_to(port) {
                            tracing::warn!(error = %err, "could not set TCP_NODELAY on the pool's sockets");
                        }
                        Ok(())
                    })
                })
            });
    }
    Database::connect(options).await
}

/// Queues this process's writers before SQLite's single write lock. Contending for the lock
/// inside SQLite means its busy handler sleeping in steps of up to 100 ms; a FIFO queue here
/// hands the lock from one transaction to the next with no sleep. PostgreSQL needs none.
#[derive(Clone)]
pub struct WriteQueue {
    queue: Option<Arc<tokio::sync::Mutex<()>>>,
    /// How long a write waits for its turn before the database counts as busy.
    patience: Duration,
}

impl WriteQueue {
    /// Waits for this writer's turn; `None` where there is no queue.
    pub async fn turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.queue {
            Some(queue) => Some(queue.clone().lock_owned().await),
            None => None,
        }
    }

    /// A queue for SQLite URLs, none for servers with row-level locking; a writer waits at
    /// most `patience` for its turn.
    pub fn for_url(url: &str, patience: Duration) -> Self {
        Self {
            queue: url
                .starts_with("sqlite:")
                .then(|| Arc::new(tokio::sync::Mutex::new(()))),
            patience,
        }
    }
}
