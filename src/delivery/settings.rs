//! How a user's pushes read and when they may arrive: message previews on the lock screen
//! (off unless the user opts in) and quiet hours in their own time zone.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use entity::delivery_settings;
use sea_orm::{ConnectionTrait, EntityTrait, Set, sea_query::OnConflict};
use uuid::Uuid;

use crate::{db::Write, error::AppError};

/// A user's delivery settings, the defaults where they never chose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// Whether a message push shows the text, not only who wrote it.
    pub message_previews: bool,
    pub quiet_hours: Option<QuietHours>,
}

/// A daily span, in the user's time zone, during which pushes wait (video call requests
/// excepted). `start` after `end` spans midnight (22:00 to 07:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// Reads "HH:MM" pairs; equal times would be quiet all day or never, so they are refused.
    pub fn parse(start: &str, end: &str) -> Result<Self, AppError> {
        let time = |field: &'static str, text: &str| {
            NaiveTime::parse_from_str(text.trim(), "%H:%M").map_err(|_| {
                AppError::bad_input(field, format!("{text:?} is not a time of day as HH:MM"))
            })
        };
        let quiet = QuietHours {
            start: time("quietHours.start", start)?,
            end: time("quietHours.end", end)?,
        };
        if quiet.start == quiet.end {
            return Err(AppError::bad_input(
                "quietHours.end",
                "quiet hours must end at another time than they start",
            ));
        }
        Ok(quiet)
    }

    /// When the quiet hours under way at `now` end, in UTC; `None` when `now` is not quiet.
    pub fn ends_after(&self, now: DateTime<Utc>, zone: Tz) -> Option<DateTime<Utc>> {
        let local = now.with_timezone(&zone);
        let time = local.time();
        let quiet = if self.start < self.end {
            time >= self.start && time < self.end
        } else {
            time >= self.start || time < self.end
        };
        if !quiet {
            return None;
        }
        let mut day = local.date_naive();
        if time >= self.end {
            day = day.succ_opt()?;
        }
        // A local end time skipped by a daylight-saving jump ends the quiet an hour later.
        let end = day.and_time(self.end);
        zone.from_local_datetime(&end)
            .earliest()
            .or_else(|| {
                zone.from_local_datetime(&(end + Duration::hours(1)))
                    .earliest()
            })
            .map(|at| at.with_timezone(&Utc))
    }

    fn minutes(time: NaiveTime) -> i16 {
        (time.hour() * 60 + time.minute()) as i16
    }

    fn from_minutes(minutes: i16) -> Option<NaiveTime> {
        let minutes = u32::try_from(minutes).ok()?;
        NaiveTime::from_hms_opt(minutes / 60, minutes % 60, 0)
    }
}

/// Reading and changing delivery settings.
pub struct SettingsService;

impl SettingsService {
    /// The user's settings, or the defaults.
    pub async fn get(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
    ) -> Result<DeliverySettings, AppError> {
        let row = delivery_settings::Entity::find_by_id(user_id)
            .one(conn)
            .await?;
        Ok(Self::from_row(row.as_ref()))
    }

    /// The settings a stored row says, or the defaults when there is none.
    pub fn from_row(row: Option<&delivery_settings::Model>) -> DeliverySettings {
        match row {
            Some(row) => DeliverySettings {
                message_previews: row.message_previews,
                quiet_hours: row.quiet_hours_start.zip(row.quiet_hours_end).and_then(
                    |(start, end)| {
                        Some(QuietHours {
                            start: QuietHours::from_minutes(start)?,
                            end: QuietHours::from_minutes(end)?,
                        })
                    },
                ),
            },
            None => DeliverySettings {
                message_previews: false,
                quiet_hours: None,
            },
        }
    }

    /// Stores the user's settings whole.
    pub async fn set(
        write: &Write,
        user_id: Uuid,
        settings: &DeliverySettings,
    ) -> Result<(), AppError> {
        let row = delivery_settings::ActiveModel {
            user_id: Set(user_id),
            message_previews: Set(settings.message_previews),
            quiet_hours_start: Set(settings
                .quiet_hours
                .map(|quiet| QuietHours::minutes(quiet.start))),
            quiet_hours_end: Set(settings
                .quiet_hours
                .map(|quiet| QuietHours::minutes(quiet.end))),
            updated_at: Set(write.now()),
        };
        delivery_settings::Entity::insert(row)
            .on_conflict(
                OnConflict::column(delivery_settings::Column::UserId)
                    .update_columns([
                        delivery_settings::Column::MessagePreviews,
                        delivery_settings::Column::QuietHoursStart,
                        delivery_settings::Column::QuietHoursEnd,
                        delivery_settings::Column::UpdatedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(write)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .expect("instant")
    }

    #[test]
    fn quiet_hours_across_midnight_end_the_next_morning_in_the_users_zone() {
        let quiet = QuietHours::parse("22:00", "07:00").expect("valid");
        let lisbon: Tz = "Europe/Lisbon".parse().expect("zone");
        // 23:30 in Lisbon in winter is 23:30 UTC: quiet until 07:00 the next day.
        assert_eq!(
            quiet.ends_after(at("2026-12-01T23:30:00Z"), lisbon),
            Some(at("2026-12-02T07:00:00Z"))
        );
        // 06:59 is still quiet, until 07:00 the same day.
        assert_eq!(
            quiet.ends_after(at("2026-12-02T06:59:00Z"), lisbon),
            Some(at("2026-12-02T07:00:00Z"))
        );
        assert_eq!(quiet.ends_after(at("2026-12-02T12:00:00Z"), lisbon), None);
        let tokyo: Tz = "Asia/Tokyo".parse().expect("zone");
        // 14:00 UTC is 23:00 in Tokyo: quiet until 07:00 Tokyo, 22:00 UTC.
        assert_eq!(
            quiet.ends_after(at("2026-12-02T14:00:00Z"), tokyo),
            Some(at("2026-12-02T22:00:00Z"))
        );
    }

    #[test]
    fn quiet_hours_within_one_day_and_bad_times() {
        let quiet = QuietHours::parse("13:00", "15:00").expect("valid");
        assert_eq!(
            quiet.ends_after(at("2026-12-02T14:00:00Z"), chrono_tz::UTC),
            Some(at("2026-12-02T15:00:00Z"))
        );
        assert!(QuietHours::parse("25:00", "07:00").is_err());
        assert!(QuietHours::parse("07:00", "07:00").is_err());
    }
}
