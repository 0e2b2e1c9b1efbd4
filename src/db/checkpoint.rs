//! SQLite checkpoints off the write path.
//!
//! In WAL mode every commit appends the pages it changed to the WAL, and a checkpoint copies
//! them back into the database file and fsyncs it. SQLite's automatic checkpoint runs inside
//! whichever commit crosses the threshold, so that send and every send queued behind it
//! waited for the copy and the fsync: a batch of chat messages changes a few hundred pages,
//! and the write path's p99 was the checkpoint's duration. Here a background task does the
//! copying while writers go on, and takes the writers' turn only to restart a long WAL, when
//! there is little left to copy. The automatic checkpoint stays as a backstop.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};

use super::WriteQueue;

/// How often the WAL is copied back; at saturation that is some tens of megabytes.
const EVERY: Duration = Duration::from_millis(200);
/// A WAL of this many pages (32 MiB) is started over at the next checkpoint.
const RESTART_AFTER_FRAMES: i64 = 8192;

/// Checkpoints the database behind `db` every [`EVERY`], for as long as the server runs.
/// For PostgreSQL, which checkpoints by itself, it does nothing and never returns.
pub async fn run(db: DatabaseConnection, queue: WriteQueue) {
    if db.get_database_backend() != DbBackend::Sqlite {
        return std::future::pending().await;
    }
    let mut ticks = tokio::time::interval(EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(err) = checkpoint(&db, &queue).await {
            tracing::warn!(error = %err, "WAL checkpoint failed; SQLite's own checkpoint remains");
        }
    }
}

/// Copies the WAL while writers continue. Once the WAL is long, finishes with the writers
/// held back: the few frames they appended meanwhile are copied, and the next writer starts
/// the WAL from its beginning instead of growing it.
async fn checkpoint(db: &DatabaseConnection, queue: &WriteQueue) -> Result<(), DbErr> {
    let frames = wal_checkpoint(db, "PASSIVE").await?;
    if frames < RESTART_AFTER_FRAMES {
        return Ok(());
    }
    let _turn = queue.turn().await;
    wal_checkpoint(db, "RESTART").await.map(|_| ())
}

/// `PRAGMA wal_checkpoint(mode)`; returns how many frames the WAL held.
async fn wal_checkpoint(db: &DatabaseConnection, mode: &str) -> Result<i64, DbErr> {
    let sql = format!("PRAGMA wal_checkpoint({mode})");
    let statement = Statement::from_string(DbBackend::Sqlite, sql);
    match db.query_one_raw(statement).await? {
        Some(row) => row.try_get_by_index(1),
        None => Ok(0),
    }
}
