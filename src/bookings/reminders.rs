//! Reminders before accepted bookings: scheduled at acceptance, sent once by the scheduler.
//!
//! Each (booking, offset) is one row, claimed by setting `settled_at` in the
//! transaction that notifies; a claim is a conditional update, so two
//! instances, or a restart half-way, never send a reminder twice.

use chrono::{DateTime, Duration, Utc};
use entity::{booking, booking_reminder, enums::BookingStatus};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

use super::notices::{self, Parties};
use crate::{db::Write, error::AppError, notifications::NotificationService};

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
            booking_reminder::Entity::insert(booking_reminder::ActiveModel {
                id: Set(Uuid::now_v7()),
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
        }
        Ok(())
    }

    /// Reminders whose time has come and that nobody settled yet, oldest first.
    pub async fn due(
        conn: &impl ConnectionTrait,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<booking_reminder::Model>, AppError> {
        Ok(booking_reminder::Entity::find()
            .filter(booking_reminder::Column::SettledAt.is_null())
            .filter(booking_reminder::Column::DueAt.lte(now))
            .order_by_asc(booking_reminder::Column::DueAt)
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
