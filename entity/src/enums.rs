//! Enumerations stored as short strings, readable in SQL on both databases.

use sea_orm::{Iterable, entity::prelude::*};

/// What a user is on the marketplace; decides which side of a booking they may take.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Role {
    #[sea_orm(string_value = "care_recipient")]
    CareRecipient,
    #[sea_orm(string_value = "caregiver")]
    Caregiver,
    #[sea_orm(string_value = "admin")]
    Admin,
}

/// Whether a caregiver takes new work; care recipients with upcoming bookings care when it changes.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Availability {
    #[sea_orm(string_value = "available")]
    Available,
    #[sea_orm(string_value = "busy")]
    Busy,
    #[sea_orm(string_value = "unavailable")]
    Unavailable,
}

/// Where a booking is in its lifecycle; only the transitions in `BookingStatus::can_become` exist.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum BookingStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "accepted")]
    Accepted,
    #[sea_orm(string_value = "declined")]
    Declined,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    #[sea_orm(string_value = "completed")]
    Completed,
}

impl BookingStatus {
    /// The booking lifecycle in one table, so no code path can invent a transition
    /// (`docs/architecture.md`, "State machines").
    pub fn can_become(self, next: BookingStatus) -> bool {
        use BookingStatus::*;
        matches!(
            (self, next),
            (Pending, Accepted)
                | (Pending, Declined)
                | (Pending, Cancelled)
                | (Accepted, Cancelled)
                | (Accepted, Completed)
        )
    }

    /// Whether the booking can become nothing else: it has ended, and its chat is read-only.
    pub fn is_final(self) -> bool {
        Self::iter().all(|next| !self.can_become(next))
    }

    /// The lower-case name used in error messages and notification text.
    pub fn as_str(self) -> &'static str {
        match self {
            BookingStatus::Pending => "pending",
            BookingStatus::Accepted => "accepted",
            BookingStatus::Declined => "declined",
            BookingStatus::Cancelled => "cancelled",
            BookingStatus::Completed => "completed",
        }
    }
}

/// How often a recurring series repeats.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Frequency {
    #[sea_orm(string_value = "daily")]
    Daily,
    #[sea_orm(string_value = "weekly")]
    Weekly,
}

/// What a notification is about; preferences are set per type and channel.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(40))")]
pub enum NotificationType {
    /// A care recipient asked the caregiver for a booking.
    #[sea_orm(string_value = "booking_created")]
    BookingCreated,
    /// A care recipient asked the caregiver for a recurring series (one notice per series).
    #[sea_orm(string_value = "booking_series_created")]
    BookingSeriesCreated,
    #[sea_orm(string_value = "booking_accepted")]
    BookingAccepted,
    #[sea_orm(string_value = "booking_declined")]
    BookingDeclined,
    #[sea_orm(string_value = "booking_cancelled")]
    BookingCancelled,
    #[sea_orm(string_value = "booking_completed")]
    BookingCompleted,
    /// A reminder well ahead of an accepted booking (by default 24 hours before).
    #[sea_orm(string_value = "booking_reminder")]
    BookingReminder,
    /// A reminder that an accepted booking starts within the hour.
    #[sea_orm(string_value = "booking_starting_soon")]
    BookingStartingSoon,
    #[sea_orm(string_value = "profile_updated")]
    ProfileUpdated,
    /// A caregiver the user has upcoming bookings with changed their availability.
    #[sea_orm(string_value = "caregiver_availability_changed")]
    CaregiverAvailabilityChanged,
    /// Chat was enabled for a booking; both parties are told.
    #[sea_orm(string_value = "chat_enabled")]
    ChatEnabled,
    /// A new chat message for the user.
    #[sea_orm(string_value = "message_received")]
    MessageReceived,
    /// The other member read the user's messages (a receipt; opt-in, the ticks update live anyway).
    #[sea_orm(string_value = "messages_read")]
    MessagesRead,
    /// A care recipient asks the caregiver for a video call now.
    #[sea_orm(string_value = "video_call_requested")]
    VideoCallRequested,
    #[sea_orm(string_value = "video_call_accepted")]
    VideoCallAccepted,
    #[sea_orm(string_value = "video_call_declined")]
    VideoCallDeclined,
    /// Any other change of a call: cancelled, expired, started, completed.
    #[sea_orm(string_value = "video_call_updated")]
    VideoCallUpdated,
}

/// Where a video call is in its lifecycle.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum VideoCallStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "accepted")]
    Accepted,
    #[sea_orm(string_value = "declined")]
    Declined,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    /// Someone joined the room; the duration limit runs from here.
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "completed")]
    Completed,
    /// Nobody answered in time, or an accepted call nobody joined in time.
    #[sea_orm(string_value = "expired")]
    Expired,
}

impl VideoCallStatus {
    /// The call lifecycle in one table, so no code path (a resolver, the webhook, the
    /// scheduler) can invent a transition (`docs/architecture.md`, "State machines").
    pub fn can_become(self, next: VideoCallStatus) -> bool {
        use VideoCallStatus::*;
        matches!(
            (self, next),
            (Pending, Accepted)
                | (Pending, Declined)
                | (Pending, Cancelled)
                | (Pending, Expired)
                | (Accepted, Active)
                | (Accepted, Completed)
                | (Accepted, Expired)
                | (Active, Completed)
        )
    }

    /// Whether the call can become nothing else; a pair has at most one call that is not.
    pub fn is_final(self) -> bool {
        Self::iter().all(|next| !self.can_become(next))
    }

    /// The lower-case name used in error messages and notification text.
    pub fn as_str(self) -> &'static str {
        match self {
            VideoCallStatus::Pending => "pending",
            VideoCallStatus::Accepted => "accepted",
            VideoCallStatus::Declined => "declined",
            VideoCallStatus::Cancelled => "cancelled",
            VideoCallStatus::Active => "active",
            VideoCallStatus::Completed => "completed",
            VideoCallStatus::Expired => "expired",
        }
    }
}

/// Whether a chat message was written by a person or by caregraph (e.g. a call's outcome).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum MessageKind {
    #[sea_orm(string_value = "text")]
    Text,
    #[sea_orm(string_value = "system")]
    System,
}

/// How a notification reaches its user.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum Channel {
    /// The inbox in the app, with live updates.
    #[sea_orm(string_value = "in_app")]
    InApp,
    /// FCM, APNs or Web Push to the user's devices.
    #[sea_orm(string_value = "push")]
    Push,
    #[sea_orm(string_value = "email")]
    Email,
}

/// Which push service reaches a device.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum DevicePlatform {
    /// Firebase Cloud Messaging: Android, iOS through Firebase, and web through Firebase.
    #[sea_orm(string_value = "fcm")]
    Fcm,
    /// Apple Push Notification service, directly.
    #[sea_orm(string_value = "apns")]
    Apns,
    /// A browser's standard Web Push subscription.
    #[sea_orm(string_value = "web_push")]
    WebPush,
}

/// Where a job is in its life; a job that succeeded is deleted.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    EnumIter,
    DeriveActiveEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum JobStatus {
    /// Waiting for its `run_at`.
    #[sea_orm(string_value = "queued")]
    Queued,
    /// Claimed by a worker until its lease ends.
    #[sea_orm(string_value = "running")]
    Running,
    /// Failed for good; kept for the operator.
    #[sea_orm(string_value = "failed")]
    Failed,
}

/// How far one delivery got.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    EnumIter,
    DeriveActiveEnum,
    async_graphql::Enum,
    serde::Serialize,
    serde::Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
pub enum DeliveryStatus {
    /// Not sent yet, or failed for now and to be retried (see `attempts` and `lastError`).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Waiting for the user's quiet hours to end.
    #[sea_orm(string_value = "deferred")]
    Deferred,
    /// The provider accepted it.
    #[sea_orm(string_value = "sent")]
    Sent,
    /// Failed for good: a dead token, a refused message, or retries exhausted.
    #[sea_orm(string_value = "failed")]
    Failed,
}
