//! What bookings tell people: the notification text for each booking event,
//! written for each recipient in their own timezone.

use entity::{
    booking, booking_series,
    enums::{BookingStatus, Frequency, NotificationType},
    user,
};
use sea_orm::ConnectionTrait;
use serde_json::json;
use uuid::Uuid;

use crate::{
    error::AppError,
    notifications::{
        Notice,
        text::{duration_in_words, time_range},
    },
    users::UserService,
};

/// The two people a booking concerns, loaded once for all the notices of one change.
pub struct Parties {
    pub recipient: user::Model,
    pub caregiver: user::Model,
}

impl Parties {
    pub async fn of(
        conn: &impl ConnectionTrait,
        booking: &booking::Model,
    ) -> Result<Self, AppError> {
        let (recipient, caregiver) =
            UserService::pair(conn, booking.care_recipient_id, booking.caregiver_id).await?;
        Ok(Self {
            recipient,
            caregiver,
        })
    }

    fn both(&self) -> [(&user::Model, &user::Model); 2] {
        [
            (&self.recipient, &self.caregiver),
            (&self.caregiver, &self.recipient),
        ]
    }
}

fn range_for(booking: &booking::Model, reader: &user::Model) -> String {
    time_range(booking.starts_at, booking.ends_at, reader.time_zone())
}

/// To the caregiver: someone asked for them.
pub fn created(booking: &booking::Model, parties: &Parties) -> Notice {
    Notice {
        user_id: parties.caregiver.id,
        kind: NotificationType::BookingCreated,
        title: "New booking request".to_owned(),
        body: format!(
            "{} asked to book you for {}",
            parties.recipient.display_name,
            range_for(booking, &parties.caregiver)
        ),
        data: json!({ "bookingId": booking.id }),
        dedupe_key: Some(format!("booking:{}:created", booking.id)),
    }
}

/// To the caregiver, once for a whole recurring series.
pub fn series_created(
    series: &booking_series::Model,
    first: &booking::Model,
    occurrences: usize,
    parties: &Parties,
) -> Notice {
    let every = match series.frequency {
        Frequency::Daily => "daily",
        Frequency::Weekly => "weekly",
    };
    Notice {
        user_id: parties.caregiver.id,
        kind: NotificationType::BookingSeriesCreated,
        title: "New recurring booking request".to_owned(),
        body: format!(
            "{} asked to book you {every}, {occurrences} times, starting {}",
            parties.recipient.display_name,
            range_for(first, &parties.caregiver)
        ),
        data: json!({ "bookingId": first.id, "seriesId": series.id }),
        dedupe_key: Some(format!("series:{}:created", series.id)),
    }
}

/// To both parties: the booking changed status, and who did it.
pub fn status_changed(booking: &booking::Model, actor_id: Uuid, parties: &Parties) -> Vec<Notice> {
    let (kind, title, verb) = match booking.status {
        BookingStatus::Accepted => (
            NotificationType::BookingAccepted,
            "Booking accepted",
            "accepted",
        ),
        BookingStatus::Declined => (
            NotificationType::BookingDeclined,
            "Booking declined",
            "declined",
        ),
        BookingStatus::Cancelled => (
            NotificationType::BookingCancelled,
            "Booking cancelled",
            "cancelled",
        ),
        BookingStatus::Completed => (
            NotificationType::BookingCompleted,
            "Booking completed",
            "completed",
        ),
        BookingStatus::Pending => return Vec::new(),
    };
    parties
        .both()
        .into_iter()
        .map(|(reader, other)| {
            let range = range_for(booking, reader);
            let body = if reader.id == actor_id {
                format!(
                    "You {verb} the booking with {} for {range}",
                    other.display_name
                )
            } else {
                format!("{} {verb} your booking for {range}", other.display_name)
            };
            Notice {
                user_id: reader.id,
                kind,
                title: title.to_owned(),
                body,
                data: json!({ "bookingId": booking.id }),
                dedupe_key: Some(format!(
                    "booking:{}:{}",
                    booking.id,
                    booking.status.as_str()
                )),
            }
        })
        .collect()
}

/// To both parties, `offset_minutes` before an accepted booking starts.
pub fn reminder(booking: &booking::Model, offset_minutes: i32, parties: &Parties) -> Vec<Notice> {
    let (kind, title) = if offset_minutes <= 60 {
        (NotificationType::BookingStartingSoon, "Booking starts soon")
    } else {
        (NotificationType::BookingReminder, "Booking reminder")
    };
    let lead = duration_in_words(i64::from(offset_minutes));
    parties
        .both()
        .into_iter()
        .map(|(reader, other)| Notice {
            user_id: reader.id,
            kind,
            title: title.to_owned(),
            body: format!(
                "Your booking with {} starts in {lead}: {}",
                other.display_name,
                range_for(booking, reader)
            ),
            data: json!({ "bookingId": booking.id }),
            dedupe_key: Some(format!("booking:{}:reminder:{offset_minutes}", booking.id)),
        })
        .collect()
}
