//! Bookings: a care recipient books a caregiver for a time range, once or as a recurring series.

mod graphql;
mod loaders;
mod notices;
mod recurrence;
mod reminders;
mod service;

pub use graphql::{
    Booking, BookingChat, BookingMutation, BookingQuery, BookingSubscription, ChatOfBooking,
};
pub use loaders::{BookingLoader, SeriesLoader};
pub use recurrence::Recurrence;
pub use reminders::{ReminderService, reminder_job};
pub use service::{BookingService, NewBooking};
