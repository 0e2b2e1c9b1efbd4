//! Expanding a recurrence rule into occurrences at the same local wall-clock time.
//!
//! A weekly 10:00 booking stays at 10:00 for the care recipient across a
//! daylight-saving change, so occurrences are computed in their timezone.

use chrono::{DateTime, Days, LocalResult, TimeZone, Utc};
use chrono_tz::Tz;
use entity::enums::Frequency;

use crate::error::AppError;

/// The most occurrences one series may have (two years of weekly visits).
pub const MAX_OCCURRENCES: usize = 104;

/// How a booking repeats: every day or week, a number of times or until a date.
#[derive(Debug, Clone)]
pub struct Recurrence {
    pub frequency: Frequency,
    pub count: Option<i32>,
    pub until: Option<DateTime<Utc>>,
}

impl Recurrence {
    /// The start instants of every occurrence, the first being `first_start`.
    pub fn starts(
        &self,
        first_start: DateTime<Utc>,
        tz: Tz,
    ) -> Result<Vec<DateTime<Utc>>, AppError> {
        let limit = match (self.count, self.until) {
            (Some(count), None) => {
                if !(1..=MAX_OCCURRENCES as i32).contains(&count) {
                    return Err(AppError::bad_input(
                        "recurrence.count",
                        format!("count must be between 1 and {MAX_OCCURRENCES}"),
                    ));
                }
                Limit::Count(count as usize)
            }
            (None, Some(until)) => {
                if until < first_start {
                    return Err(AppError::bad_input(
                        "recurrence.until",
                        "until must not be before startsAt",
                    ));
                }
                Limit::Until(until)
            }
            _ => {
                return Err(AppError::bad_input(
                    "recurrence",
                    "give exactly one of count and until",
                ));
            }
        };
        let step = match self.frequency {
            Frequency::Daily => 1,
            Frequency::Weekly => 7,
        };
        let local_start = first_start.with_timezone(&tz).naive_local();
        let mut starts = Vec::new();
        for index in 0u64.. {
            let local = local_start
                .checked_add_days(Days::new(index * step))
                .ok_or_else(|| AppError::bad_input("recurrence", "the series runs too far"))?;
            let start = match tz.from_local_datetime(&local) {
                LocalResult::Single(start) => start,
                LocalResult::Ambiguous(earliest, _) => earliest,
                // The wall-clock time does not exist that day (clocks jumped forward): an hour later.
                LocalResult::None => tz
                    .from_local_datetime(&(local + chrono::Duration::hours(1)))
                    .earliest()
                    .ok_or_else(|| AppError::bad_input("recurrence", "invalid local time"))?,
            }
            .with_timezone(&Utc);
            let done = match limit {
                Limit::Count(count) => starts.len() == count,
                Limit::Until(until) => start > until,
            };
            if done {
                break;
            }
            if starts.len() == MAX_OCCURRENCES {
                return Err(AppError::bad_input(
                    "recurrence.until",
                    format!("a series has at most {MAX_OCCURRENCES} occurrences"),
                ));
            }
            starts.push(start);
        }
        Ok(starts)
    }
}

#[derive(Clone, Copy)]
enum Limit {
    Count(usize),
    Until(DateTime<Utc>),
}
