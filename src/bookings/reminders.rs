//! Reminders before accepted bookings: scheduled at acceptance as jobs of the durable queue,
//! sent once by whichever instance's worker claims the job when it falls due.
//!
//! Each (booking, offset) is one row, claimed by setting `settled_at` in the transaction
//! that notifies and finishes the job; a claim is a conditional update, so a job run twice
//! (its worker died after the commit, or the scheduler's safety net queued it again) never
//! sends a reminder twice.

use chrono::{DateTime, Duration, Utc};
use entity::{booking, booking_reminder, enums::BookingStatus, job};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, OnConflict},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::notices::{self, Parties};
use crate::{
    db::Write,
    error::AppError,
    notifications::NotificationService,
    queue::{JobQueue, NewJob, kinds, payload_of},
    state::AppState,
};

/// What a reminder job carries.
#[derive(Debug, Serialize, Deserialize)]
struct ReminderJob {
    reminder_id: Uuid,
}

/// The job that sends reminder `reminder_id` at `due_at`; one per reminder while it is
/// unfinished.
pub fn reminder_job(reminder_id: Uuid, due_at: DateTime<Utc>) -> NewJob {
    NewJob {
        kind: kinds::BOOKING_REMINDER,
        payload: serde_json::json!(ReminderJob { reminder_id }),
        run_at: due_at,
        dedupe_key: Some(format!("{}:{reminder_id}", kinds::BOOKING_REMINDER)),
    }
}

/// Scheduling and sending booking reminders.
pub struct ReminderService;

impl ReminderService {
    /// Schedules the reminders still ahead of a just-accepted booking; one already past
    /// (accepted inside its window) is not owed.
    pub async fn schedule(
        write: &Write,
        booking: &booking::Model,
        offsets_minutes: &[i32],
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        for &offset in offsets_minutes {
            let due_at = booking.starts_at - Duration::minutes(i64::from(offset));
            if due_at <= now {
                continue;
            }
            let id = Uuid::now_v7();
            let added = booking_reminder::Entity::insert(booking_reminder::ActiveModel {
                id: Set(id),
                booking_id: Set(booking.id),
                offset_minutes: Set(offset),
                due_at: Set(due_at),
                settled_at: Set(None),
            })
            .on_conflict(
                OnConflict::columns([
                    booking_reminder::Column::BookingId,
                    booking_reminder::Column::OffsetMinutes,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(write)
            .await?;
            if added == 1 {
                JobQueue::enqueue(write, vec![reminder_job(id, due_at)]).await?;
            }
        }
        Ok(())
    }

    /// `booking_reminder`: settles the job's reminder and finishes the job, in one
    /// transaction, so the reminder is sent and its job done together or not at all.
    pub async fn run_job(state: &AppState, job: &job::Model) -> Result<(), AppError> {
        let order = payload_of::<ReminderJob>(job);
        state
            .writer
            .run(async |write| {
                let reminder = match order {
                    Some(order) => {
                        booking_reminder::Entity::find_by_id(order.reminder_id)
                            .one(write)
                            .await?
                    }
                    None => None,
                };
                if let Some(reminder) = reminder {
                    Self::settle(write, &reminder).await?;
                }
                JobQueue::finish(write, job.id).await
            })
            .await
    }

    /// Reminders whose time has come and that nobody settled yet, oldest first, after the
    /// (due instant, id) `after` when given: one page of what the scheduler looks at.
    pub async fn due(
        conn: &impl ConnectionTrait,
        now: DateTime<Utc>,
        after: Option<(DateTime<Utc>, Uuid)>,
        limit: u64,
    ) -> Result<Vec<booking_reminder::Model>, AppError> {
        let mut due = booking_reminder::Entity::find()
            .filter(booking_reminder::Column::SettledAt.is_null())
            .filter(booking_reminder::Column::DueAt.lte(now));
        if let Some((due_at, id)) = after {
            due = due.filter(
                sea_orm::Condition::any()
                    .add(booking_reminder::Column::DueAt.gt(due_at))
                    .add(
                        sea_orm::Condition::all()
                            .add(booking_reminder::Column::DueAt.eq(due_at))
                            .add(booking_reminder::Column::Id.gt(id)),
                    ),
            );
        }
        Ok(due
            .order_by_asc(booking_reminder::Column::DueAt)
            .order_by_asc(booking_reminder::Column::Id)
            .limit(limit)
            .all(conn)
            .await?)
    }

    /// Claims one due reminder and, if it is still owed, notifies both parties.
    /// Not owed: the booking is no longer accepted or has started, or a closer reminder is
    /// also due (after downtime, only the most urgent one is sent). Returns whether it sent.
    pub async fn settle(
        write: &Write,
        reminder: &booking_reminder::Model,
    ) -> Result<bool, AppError> {
        let now = write.now();
        let claimed = booking_reminder::Entity::update_many()
            .col_expr(booking_reminder::Column::SettledAt, Expr::value(now))
            .filter(booking_reminder::Column::Id.eq(reminder.id))
            .filter(booking_reminder::Column::SettledAt.is_null())
            .exec(write)
            .await?
            .rows_affected
            == 1;
        if !claimed {
            return Ok(false);
        }
        let Some(booking) = booking::Entity::find_by_id(reminder.booking_id)
            .one(write)
            .await?
        else {
            return Ok(false);
        };
        if booking.status != BookingStatus::Accepted || booking.starts_at <= now {
            return Ok(false);
        }
        let closer_due = booking_reminder::Entity::find()
            .filter(booking_reminder::Column::BookingId.eq(booking.id))
            .filter(booking_reminder::Column::OffsetMinutes.lt(reminder.offset_minutes))
            .filter(booking_reminder::Column::DueAt.lte(now))
            .one(write)
            .await?;
        if closer_due.is_some() {
            return Ok(false);
        }
        let parties = Parties::of(write, &booking).await?;
        for notice in notices::reminder(&booking, reminder.offset_minutes, &parties) {
            NotificationService::notify(write, notice).await?;
        }
        Ok(true)
    }
}
