//! Notifications: the in-app inbox every domain writes to, preferences, and live counts.
//!
//! Domains call [`NotificationService::notify`] inside the transaction of the
//! change that causes the notification; the inbox and its live streams are here.

mod graphql;
mod outbox;
mod preferences;
mod service;
pub mod text;

pub use graphql::{NotificationMutation, NotificationQuery, NotificationSubscription};
pub use preferences::PreferenceService;
pub use service::{Notice, NotificationService};
