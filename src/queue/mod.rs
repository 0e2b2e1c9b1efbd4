//! The durable job queue: background work written in the same transaction as the change
//! that calls for it, claimed by one worker at a time, retried with backoff, never lost.
//!
//! A job is a row of `jobs`. A worker claims due jobs (`FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so instances never wait on each other's claims; SQLite has one writer) for a
//! lease; a claim whose holder died lapses with its lease and is claimed again, so a job is
//! done at least once, and handlers make a repeat harmless (providers get the same
//! idempotency key). `jobs::workers` runs the handlers; this module only keeps the rows.

mod backoff;

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{enums::JobStatus, job};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter,
    QueryOrder, Set,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType, OnConflict, Query},
};
use uuid::Uuid;

pub use backoff::Backoff;

use crate::{
    db::{Write, Writer, batch_shape::BatchShape},
    error::AppError,
};

/// Work to do later, as the change that calls for it describes it.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// Names the handler (`jobs::workers` dispatches on it).
    pub kind: &'static str,
    pub payload: serde_json::Value,
    /// Not before this instant.
    pub run_at: DateTime<Utc>,
    /// While a job with this key is unfinished, another with it is not added.
    pub dedupe_key: Option<String>,
}

/// The queue's operations; every change takes the caller's `Write`.
pub struct JobQueue;

impl JobQueue {
    /// Adds `jobs` in the caller's transaction; the workers are woken once it commits. A job
    /// whose `dedupe_key` an unfinished job holds is dropped. Returns how many were added.
    pub async fn enqueue(write: &Write, jobs: Vec<NewJob>) -> Result<u64, AppError> {
        if jobs.is_empty() {
            return Ok(0);
        }
        let now = write.now();
        let rows = jobs.into_iter().map(|job| job::ActiveModel {
            id: Set(Uuid::now_v7()),
            kind: Set(job.kind.to_owned()),
            payload: Set(job.payload),
            status: Set(JobStatus::Queued),
            run_at: Set(job.run_at),
            attempts: Set(0),
            lease_until: Set(None),
            dedupe_key: Set(job.dedupe_key),
            last_error: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        });
        let added = job::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::column(job::Column::DedupeKey)
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(write)
            .await?;
        if added > 0 {
            write.wake_workers();
        }
        Ok(added)
    }

    /// Claims up to `limit` due jobs for `lease`: queued ones whose time came, and running
    /// ones whose holder's lease lapsed. Each claim counts as an attempt.
    pub async fn claim(
        write: &Write,
        limit: u64,
        lease: Duration,
    ) -> Result<Vec<job::Model>, AppError> {
        Self::claim_with(write, limit, lease, &[], lease).await
    }

    /// [`Self::claim`], with jobs of `short_kinds` claimed for `short_lease` instead: work
    /// bounded by a short provider timeout (closing a video room) is taken over soon after
    /// its worker died.
    pub async fn claim_with(
        write: &Write,
        limit: u64,
        lease: Duration,
        short_kinds: &[&str],
        short_lease: Duration,
    ) -> Result<Vec<job::Model>, AppError> {
        let now = write.now();
        let lease_until = if short_kinds.is_empty() {
            Expr::value(later(now, lease))
        } else {
            Expr::case(
                job::Column::Kind.is_in(short_kinds.iter().copied()),
                Expr::value(later(now, short_lease)),
            )
            .finally(Expr::value(later(now, lease)))
            .into()
        };
        let mut due = Query::select();
        due.column(job::Column::Id)
            .from(job::Entity)
            .cond_where(Self::claimable(now))
            .order_by(job::Column::RunAt, Order::Asc)
            .limit(limit)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
        let claimed = job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Running))
            .col_expr(
                job::Column::Attempts,
                Expr::col(job::Column::Attempts).add(1),
            )
            .col_expr(job::Column::LeaseUntil, lease_until)
            .col_expr(job::Column::UpdatedAt, Expr::value(now))
            .filter(job::Column::Id.in_subquery(due))
            .exec_with_returning(write)
            .await?;
        Ok(claimed)
    }

    /// The job is done: it leaves the queue.
    pub async fn finish(write: &Write, id: Uuid) -> Result<(), AppError> {
        job::Entity::delete_by_id(id).exec(write).await?;
        Ok(())
    }

    /// The job is done and nothing else changes with it (its subject is gone, or there was
    /// nothing to send): it leaves the queue in a transaction of its own.
    pub async fn finish_alone(writer: &Writer, id: Uuid) -> Result<(), AppError> {
        writer
            .run(async |write| Self::finish(write, id).await)
            .await
    }

    /// The jobs are done: they leave the queue, in one statement.
    pub async fn finish_all(write: &Write, ids: Vec<Uuid>) -> Result<(), AppError> {
        if ids.is_empty() {
            return Ok(());
        }
        job::Entity::delete_many()
            .filter(BatchShape::of(write).is_in(job::Column::Id, ids))
            .exec(write)
            .await?;
        Ok(())
    }

    /// The job failed for now: it runs again at `at`, and keeps `error` for the operator.
    pub async fn retry_at(
        write: &Write,
        id: Uuid,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), AppError> {
        Self::set_state(write, id, JobStatus::Queued, at, Some(error)).await
    }

    /// The job waits until `at` without it counting as a failed attempt (quiet hours).
    pub async fn postpone(write: &Write, id: Uuid, at: DateTime<Utc>) -> Result<(), AppError> {
        job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(JobStatus::Queued))
            .col_expr(job::Column::RunAt, Expr::value(at))
            .col_expr(
                job::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                job::Column::Attempts,
                Expr::col(job::Column::Attempts).sub(1),
            )
            .col_expr(job::Column::UpdatedAt, Expr::value(write.now()))
            .filter(job::Column::Id.eq(id))
            .exec(write)
            .await?;
        Ok(())
    }

    /// The job failed for good: kept, never claimed again, with `error` for the operator.
    pub async fn fail(write: &Write, id: Uuid, error: &str) -> Result<(), AppError> {
        Self::set_state(write, id, JobStatus::Failed, write.now(), Some(error)).await
    }

    /// When the next job falls due (or a lease lapses), so an idle worker sleeps until then.
    pub async fn next_due(conn: &impl ConnectionTrait) -> Result<Option<DateTime<Utc>>, AppError> {
        let queued = job::Entity::find()
            .filter(job::Column::Status.eq(JobStatus::Queued))
            .order_by_asc(job::Column::RunAt)
            .one(conn)
            .await?
            .map(|job| job.run_at);
        let lapsing = job::Entity::find()
            .filter(job::Column::Status.eq(JobStatus::Running))
            .order_by_asc(job::Column::LeaseUntil)
            .one(conn)
            .await?
            .and_then(|job| job.lease_until);
        Ok(queued.into_iter().chain(lapsing).min())
    }

    /// How many jobs are waiting or running: the queue's depth, for `/metrics`.
    pub async fn depth(conn: &impl ConnectionTrait) -> Result<u64, AppError> {
        Ok(job::Entity::find()
            .filter(job::Column::Status.ne(JobStatus::Failed))
            .count(conn)
            .await?)
    }

    /// Jobs a worker may take at `now`.
    fn claimable(now: DateTime<Utc>) -> Condition {
        Condition::any()
            .add(
                Condition::all()
                    .add(job::Column::Status.eq(JobStatus::Queued))
                    .add(job::Column::RunAt.lte(now)),
            )
            .add(
                Condition::all()
                    .add(job::Column::Status.eq(JobStatus::Running))
                    .add(job::Column::LeaseUntil.lte(now)),
            )
    }

    async fn set_state(
        write: &Write,
        id: Uuid,
        status: JobStatus,
        run_at: DateTime<Utc>,
        error: Option<&str>,
    ) -> Result<(), AppError> {
        job::Entity::update_many()
            .col_expr(job::Column::Status, Expr::value(status))
            .col_expr(job::Column::RunAt, Expr::value(run_at))
            .col_expr(
                job::Column::LeaseUntil,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(job::Column::LastError, Expr::value(error.map(truncate)))
            .col_expr(job::Column::UpdatedAt, Expr::value(write.now()))
            .filter(job::Column::Id.eq(id))
            .exec(write)
            .await?;
        Ok(())
    }
}

/// What `job` is about, as its handler reads it; `None` (logged) for a payload no handler
/// can read, whose job the caller finishes rather than retries.
pub fn payload_of<T: serde::de::DeserializeOwned>(job: &job::Model) -> Option<T> {
    serde_json::from_value(job.payload.clone())
        .inspect_err(|err| {
            tracing::error!(job = %job.id, kind = %job.kind, error = %err, "a job whose payload its handler cannot read");
        })
        .ok()
}

/// `wait` after `now`, saturating instead of overflowing.
pub fn later(now: DateTime<Utc>, wait: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(wait)
        .ok()
        .and_then(|wait| now.checked_add_signed(wait))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The kinds of job, each the name its handler is found by.
pub mod kinds {
    /// Push one notification to its user's devices.
    pub const PUSH: &str = "push";
    /// Email one notification to its user.
    pub const EMAIL: &str = "email";
    /// Email a user the chats still unread after a while.
    pub const CHAT_DIGEST: &str = "chat_digest";
    /// End a video call at its limit.
    pub const VIDEO_END_CALL: &str = "video_end_call";
    /// Expire a video call request nobody answered, or an accepted call nobody joined.
    pub const VIDEO_EXPIRE: &str = "video_expire";
    /// Close the provider room of a video call that ended.
    pub const VIDEO_CLOSE_ROOM: &str = "video_close_room";
    /// Remind both parties of an accepted booking ahead of its start.
    pub const BOOKING_REMINDER: &str = "booking_reminder";
    /// The video kinds, claimed with the short lease of bounded provider calls.
    pub const VIDEO: [&str; 3] = [VIDEO_END_CALL, VIDEO_EXPIRE, VIDEO_CLOSE_ROOM];
}

/// An error kept for the operator, cut to a size a row can carry.
pub fn truncate(error: &str) -> String {
    const MAX: usize = 500;
    match error.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &error[..end]),
        None => error.to_owned(),
    }
}
