//! Human sentences for notifications, with times in the recipient's timezone.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// "Tue 3 Mar, 10:00–12:00", or with both dates when the range crosses midnight.
pub fn time_range(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>, tz: Tz) -> String {
    let start = starts_at.with_timezone(&tz);
    let end = ends_at.with_timezone(&tz);
    let end_format = if start.date_naive() == end.date_naive() {
        "%H:%M"
    } else {
        "%a %-d %b, %H:%M"
    };
    format!(
        "{}\u{2013}{}",
        start.format("%a %-d %b, %H:%M"),
        end.format(end_format)
    )
}

/// "24 hours", "1 hour", "30 minutes".
pub fn duration_in_words(minutes: i64) -> String {
    match (minutes % 60, minutes / 60) {
        (0, 1) => "1 hour".to_owned(),
        (0, hours) => format!("{hours} hours"),
        _ if minutes == 1 => "1 minute".to_owned(),
        _ => format!("{minutes} minutes"),
    }
}
