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
/// Frames appended during a copy that are few enough to copy with the writers held (4 MiB).
const HOLD_FOR_AT_MOST_FRAMES: i64 = 1024;
/// The most copies a checkpoint makes before holding the writers.
const CATCH_UP_COPIES: usize = 4;

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
/// held back: the frames they appended since the last copy are copied, and the next writer
/// starts the WAL from its beginning instead of growing it. Copying while they write again
/// first, as long as that shrinks what is left, keeps the hold short: after a single copy,
/// the frames appended during it held every sender for 20 to 48 ms at 3,000 messages/s.
async fn checkpoint(db: &DatabaseConnection, queue: &WriteQueue) -> Result<(), DbErr> {
    let mut frames = wal_checkpoint(db, "PASSIVE").await?;
    if frames < RESTART_AFTER_FRAMES {
        return Ok(());
    }
    let mut appended = frames;
    for _ in 0..CATCH_UP_COPIES {
        let now = wal_checkpoint(db, "PASSIVE").await?;
        let appended_meanwhile = now - frames;
        frames = now;
        if appended_meanwhile <= HOLD_FOR_AT_MOST_FRAMES || appended_meanwhile >= appended {
            break;
        }
        appended = appended_meanwhile;
    }
    let _turn = queue.turn().await;
    let held = std::time::Instant::now();
    wal_checkpoint(db, "RESTART").await?;
    tracing::debug!(
        frames,
        held_us = held.elapsed().as_micros() as u64,
        "WAL restarted"
    );
    Ok(())
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
