//! SeaORM entities: one module per table, shared by the service and its tests.
//!
//! The enums derive `async_graphql::Enum` too, so the database value and the
//! GraphQL value of a status can never drift apart.

pub mod booking;
pub mod booking_reminder;
pub mod booking_series;
pub mod caregiver_profile;
pub mod chat_digest;
pub mod chat_member;
pub mod chat_session;
pub mod delivery_settings;
pub mod device;
pub mod enums;
pub mod job;
pub mod message;
pub mod notification;
pub mod notification_delivery;
pub mod notification_feed;
pub mod notification_preference;
pub mod user;
pub mod video_call;
