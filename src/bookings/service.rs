//! The booking lifecycle and its queries, over SeaORM.

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use entity::{
    booking, booking_series, caregiver_profile,
    enums::{BookingStatus, Role},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::{
    notices::{self, Parties},
    recurrence::Recurrence,
    reminders::ReminderService,
};
use crate::db::Write;
use crate::db::parties::{either_party, find_for, party_table};
use crate::{
    bus::Event, error::AppError, notifications::NotificationService, users::UserService,
    viewer::Viewer,
};

const MAX_NOTES: usize = 2000;
const MAX_DURATION_HOURS: i64 = 24;

/// What `createBooking` asks for.
#[derive(Debug)]
pub struct NewBooking {
    pub caregiver_id: Uuid,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub notes: Option<String>,
    pub recurrence: Option<Recurrence>,
}

/// What a party can do to an existing booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingAction {
    Accept,
    Decline,
    Cancel,
    Complete,
}

impl BookingAction {
    fn target(self) -> BookingStatus {
        match self {
            BookingAction::Accept => BookingStatus::Accepted,
            BookingAction::Decline => BookingStatus::Declined,
            BookingAction::Cancel => BookingStatus::Cancelled,
            BookingAction::Complete => BookingStatus::Completed,
        }
    }

    fn verb(self) -> &'static str {
        match self {
            BookingAction::Accept => "accept",
            BookingAction::Decline => "decline",
            BookingAction::Cancel => "cancel",
            BookingAction::Complete => "complete",
        }
    }

    /// Answering a request is the caregiver's alone; cancelling and completing are either party's.
    fn is_caregivers_answer(self) -> bool {
        matches!(self, BookingAction::Accept | BookingAction::Decline)
    }
}

/// The rules of bookings. Every function sees only what the viewer is a party to.
pub struct BookingService;

impl BookingService {
    /// Creates a pending booking, or a whole recurring series of them, for the viewer (a care
    /// recipient) with a caregiver. Returns the first occurrence.
    pub async fn create(
        write: &Write,
        viewer: &Viewer,
        input: NewBooking,
    ) -> Result<booking::Model, AppError> {
        let now = write.now();
        if viewer.role != Role::CareRecipient {
            return Err(AppError::Forbidden(
                "only care recipients can book a caregiver".to_owned(),
            ));
        }
        let starts_at = input.starts_at.trunc_subsecs(0);
        let ends_at = input.ends_at.trunc_subsecs(0);
        if ends_at <= starts_at {
            return Err(AppError::bad_input(
                "endsAt",
                "endsAt must be after startsAt",
            ));
        }
        if starts_at <= now {
            return Err(AppError::bad_input(
                "startsAt",
                "startsAt must be in the future",
            ));
        }
        if ends_at - starts_at > Duration::hours(MAX_DURATION_HOURS) {
            return Err(AppError::bad_input(
                "endsAt",
                format!("a booking lasts at most {MAX_DURATION_HOURS} hours"),
            ));
        }
        let notes = input.notes.unwrap_or_default().trim().to_owned();
        if notes.chars().count() > MAX_NOTES {
            return Err(AppError::bad_input(
                "notes",
                format!("notes must be at most {MAX_NOTES} characters"),
            ));
        }
        let caregiver = UserService::find(write, input.caregiver_id).await?;
        if !caregiver.is_some_and(|caregiver| caregiver.role == Role::Caregiver) {
            return Err(AppError::bad_input(
                "caregiverId",
                "no caregiver has this id",
            ));
        }
        let starts = match &input.recurrence {
            None => vec![starts_at],
            Some(rule) => {
                let recipient = UserService::find(write, viewer.id)
                    .await?
                    .ok_or(AppError::NotFound("user"))?;
                rule.starts(starts_at, recipient.time_zone())?
            }
        };
        let series = match &input.recurrence {
            None => None,
            Some(rule) => {
                let series = booking_series::ActiveModel {
                    id: Set(Uuid::now_v7()),
                    care_recipient_id: Set(viewer.id),
                    caregiver_id: Set(input.caregiver_id),
                    frequency: Set(rule.frequency),
                    count: Set(rule.count),
                    until: Set(rule.until),
                    created_at: Set(now),
                }
                .insert(write)
                .await?;
                Some(series)
            }
        };
        let series_id = series.as_ref().map(|series| series.id);
        let length = ends_at - starts_at;
        let mut created = Vec::with_capacity(starts.len());
        for start in starts {
            let booking = booking::ActiveModel {
                id: Set(Uuid::now_v7()),
                care_recipient_id: Set(viewer.id),
                caregiver_id: Set(input.caregiver_id),
                starts_at: Set(start),
                ends_at: Set(start + length),
                notes: Set(notes.clone()),
                status: Set(BookingStatus::Pending),
                series_id: Set(series_id),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(write)
            .await?;
            write.publish(Event::BookingChanged(Arc::new(booking.clone())));
            created.push(booking);
        }
        let occurrences = created.len();
        let first = created
            .into_iter()
            .next()
            .ok_or_else(|| AppError::Internal("a booking series without occurrences".to_owned()))?;
        let parties = Parties::of(write, &first).await?;
        let notice = match &series {
            None => notices::created(&first, &parties),
            Some(series) => notices::series_created(series, &first, occurrences, &parties),
        };
        NotificationService::notify(write, notice).await?;
        Ok(first)
    }

    /// Applies a lifecycle action to one of the viewer's bookings: the transition must exist,
    /// the viewer must be allowed to take it, and its time rules must hold.
    /// Both parties are notified; an accepted booking gets its reminders scheduled.
    pub async fn apply(
        write: &Write,
        viewer: &Viewer,
        id: Uuid,
        action: BookingAction,
        reminder_offsets_minutes: &[i32],
    ) -> Result<booking::Model, AppError> {
        let now = write.now();
        let booking = find_for::<booking::Entity>(write, viewer.id, id).await?;
        let verb = action.verb();
        if action.is_caregivers_answer() && booking.caregiver_id != viewer.id {
            return Err(AppError::Forbidden(format!(
                "only the caregiver can {verb} a booking"
            )));
        }
        if !booking.status.can_become(action.target()) {
            return Err(AppError::InvalidState(format!(
                "cannot {verb} a booking that is {}",
                booking.status.as_str()
            )));
        }
        match action {
            BookingAction::Accept => Self::check_acceptable(write, &booking, now).await?,
            BookingAction::Cancel
                if booking.status == BookingStatus::Accepted && booking.ends_at <= now =>
            {
                return Err(AppError::InvalidState(
                    "cannot cancel a booking that has already taken place; complete it instead"
                        .to_owned(),
                ));
            }
            BookingAction::Complete if booking.ends_at > now => {
                return Err(AppError::InvalidState(format!(
                    "cannot complete a booking before it ends at {}",
                    booking.ends_at.to_rfc3339()
                )));
            }
            _ => {}
        }
        let changed = Self::transition(write, booking, action.target()).await?;
        if action == BookingAction::Accept {
            ReminderService::schedule(write, &changed, reminder_offsets_minutes, now).await?;
        }
        let parties = Parties::of(write, &changed).await?;
        for notice in notices::status_changed(&changed, viewer.id, &parties) {
            NotificationService::notify(write, notice).await?;
        }
        Ok(changed)
    }

    /// A booking can be accepted before it starts, and only if it overlaps no other booking
    /// the caregiver accepted.
    async fn check_acceptable(
        conn: &impl ConnectionTrait,
        booking: &booking::Model,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        if booking.starts_at <= now {
            return Err(AppError::InvalidState(
                "cannot accept a booking whose start time has passed".to_owned(),
            ));
        }
        // One accept at a time per caregiver, so two overlapping requests cannot both pass the
        // overlap check: a row lock on PostgreSQL; SQLite's write transaction already serialises.
        caregiver_profile::Entity::find_by_id(booking.caregiver_id)
            .lock_exclusive()
            .one(conn)
            .await?;
        let overlapping = booking::Entity::find()
            .filter(booking::Column::CaregiverId.eq(booking.caregiver_id))
            .filter(booking::Column::Status.eq(BookingStatus::Accepted))
            .filter(booking::Column::Id.ne(booking.id))
            .filter(booking::Column::StartsAt.lt(booking.ends_at))
            .filter(booking::Column::EndsAt.gt(booking.starts_at))
            .one(conn)
            .await?;
        match overlapping {
            Some(other) => Err(AppError::Conflict(format!(
                "overlaps accepted booking {} ({} to {})",
                other.id,
                other.starts_at.to_rfc3339(),
                other.ends_at.to_rfc3339()
            ))),
            None => Ok(()),
        }
    }

    /// Moves `booking` to `next` only if nobody changed its status meanwhile.
    async fn transition(
        write: &Write,
        booking: booking::Model,
        next: BookingStatus,
    ) -> Result<booking::Model, AppError> {
        let now = write.now();
        let updated = booking::Entity::update_many()
            .col_expr(booking::Column::Status, Expr::value(next))
            .col_expr(booking::Column::UpdatedAt, Expr::value(now))
            .filter(booking::Column::Id.eq(booking.id))
            .filter(booking::Column::Status.eq(booking.status))
            .exec(write)
            .await?;
        if updated.rows_affected != 1 {
            let current = booking::Entity::find_by_id(booking.id)
                .one(write)
                .await?
                .ok_or(AppError::NotFound("booking"))?;
            return Err(AppError::InvalidState(format!(
                "the booking became {} meanwhile",
                current.status.as_str()
            )));
        }
        let changed = booking::Model {
            status: next,
            updated_at: now,
            ..booking
        };
        write.publish(Event::BookingChanged(Arc::new(changed.clone())));
        Ok(changed)
    }

    /// The viewer's bookings changed at or after `since`, oldest change first: what a
    /// subscriber that fell behind the bus re-reads to catch up.
    pub async fn changed_since(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Vec<booking::Model>, AppError> {
        Ok(booking::Entity::find()
            .filter(either_party(
                booking::Column::CareRecipientId,
                booking::Column::CaregiverId,
                user_id,
            ))
            .filter(booking::Column::UpdatedAt.gte(since))
            .order_by_asc(booking::Column::UpdatedAt)
            .all(conn)
            .await?)
    }

    /// Many series with their occurrences, by start time, in two queries whatever their
    /// number: what a page of bookings that each name their series needs. Callers check
    /// that the viewer is a party.
    pub async fn series_many(
        conn: &impl ConnectionTrait,
        series_ids: &[Uuid],
    ) -> Result<HashMap<Uuid, (booking_series::Model, Vec<booking::Model>)>, AppError> {
        let mut found: HashMap<_, _> = booking_series::Entity::find()
            .filter(booking_series::Column::Id.is_in(series_ids.iter().copied()))
            .all(conn)
            .await?
            .into_iter()
            .map(|series| (series.id, (series, Vec::new())))
            .collect();
        let occurrences = booking::Entity::find()
            .filter(booking::Column::SeriesId.is_in(series_ids.iter().copied()))
            .order_by_asc(booking::Column::StartsAt)
            .all(conn)
            .await?;
        for occurrence in occurrences {
            let series = occurrence.series_id.and_then(|id| found.get_mut(&id));
            if let Some((_, list)) = series {
                list.push(occurrence);
            }
        }
        Ok(found)
    }

    /// Many bookings by id, in one query; callers check that the viewer is a party.
    pub async fn find_many(
        conn: &impl ConnectionTrait,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, booking::Model>, AppError> {
        Ok(booking::Entity::find()
            .filter(booking::Column::Id.is_in(ids.iter().copied()))
            .all(conn)
            .await?
            .into_iter()
            .map(|booking| (booking.id, booking))
            .collect())
    }
}

// The viewer's bookings, on either side, soonest first.
party_table!(booking {
    parties: [CareRecipientId, CaregiverId],
    status: Status,
    listed_by: (StartsAt, starts_at, Asc),
    noun: "booking",
});
