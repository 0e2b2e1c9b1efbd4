//! What every push and email provider is asked to do, and how it may fail: the seam between
//! the delivery jobs and FCM, APNs, Web Push and SMTP (each a module of its own), and the
//! seam tests point at local fakes through the providers' configurable base URLs.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{device, enums::DevicePlatform};
use uuid::Uuid;

/// One push, as every platform gets it; each sender maps it to its own format.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    /// The same for every attempt of one delivery, so a resend after a crash replaces the
    /// first on the device instead of showing twice: APNs `apns-id`, the FCM notification's
    /// tag, Web Push's `Topic` (when no `collapse` is set).
    pub idempotency_key: Uuid,
    /// Pushes with the same key replace each other on the device: one visible push per
    /// chat burst, updated in place (APNs `apns-collapse-id`, FCM `collapse_key` and tag,
    /// Web Push `Topic`).
    pub collapse: Option<Uuid>,
    pub title: String,
    pub body: String,
    /// Strings the app reads to open the right screen (`notificationId`, `type`,
    /// `bookingId`, `sessionId`, `seq`, `callId`); FCM data values must be strings.
    pub data: BTreeMap<String, String>,
    /// The user's unread notifications, shown as the app's badge.
    pub badge: u32,
    /// A video call request: the highest priority the platform allows (FCM
    /// `android.priority=high`, APNs `apns-priority: 10`, Web Push `Urgency: high`).
    pub urgent: bool,
    /// Not worth showing after this instant (a call request's expiry): FCM `ttl`,
    /// `apns-expiration`, Web Push `TTL`. `None`: the provider's default.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Push {
    /// Seconds left until `expires_at` at `now` (at least 0), for the TTL fields.
    pub fn ttl_seconds(&self, now: DateTime<Utc>) -> Option<u64> {
        self.expires_at
            .map(|at| u64::try_from((at - now).num_seconds()).unwrap_or(0))
    }

    /// The key the device collapses on: the chat's when set, else this delivery's.
    pub fn collapse_or_idempotency(&self) -> Uuid {
        self.collapse.unwrap_or(self.idempotency_key)
    }
}

/// One email with both parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Email {
    /// The same for every attempt: the `Message-ID` (`<id@caregraph>`), which mail systems
    /// deduplicate on.
    pub idempotency_key: Uuid,
    pub to: String,
    pub to_name: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Turns the email's type off without signing in: a link in both parts, and the
    /// `List-Unsubscribe` (with `List-Unsubscribe-Post: List-Unsubscribe=One-Click`) headers.
    pub unsubscribe_url: String,
}

/// Why a provider did not take a push or an email.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendFailure {
    /// Worth retrying: a timeout, a connection error, 429 or 5xx; `retry_after` when the
    /// provider said how long to wait.
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused this message for good (malformed, too large, forbidden).
    #[error("{0}")]
    Rejected(String),
    /// The device token or subscription is gone: the device is removed, nothing more is
    /// sent to it.
    #[error("{0}")]
    DeadToken(String),
}

impl SendFailure {
    /// A transient failure without a wait the provider asked for.
    pub fn transient(reason: impl Into<String>) -> Self {
        SendFailure::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// Why a configured provider could not be set up at start-up (an unreadable key, a URL
/// that is not allowed).
#[derive(Debug, thiserror::Error)]
#[error("{provider}: {reason}")]
pub struct SetupError {
    pub provider: &'static str,
    pub reason: String,
}

/// Sends pushes to the devices of one platform.
#[async_trait::async_trait]
pub trait PushSender: Send + Sync {
    /// Sends `push` to `device`; `now` is the application clock's, for TTLs. Returns within
    /// the configured provider timeout, whatever the provider does.
    async fn send(
        &self,
        device: &device::Model,
        push: &Push,
        now: DateTime<Utc>,
    ) -> Result<(), SendFailure>;
}

/// Sends email.
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Sends `email`; returns within the configured provider timeout.
    async fn send(&self, email: &Email) -> Result<(), SendFailure>;
}

/// The configured providers; a `None` is a channel this server does not offer.
#[derive(Clone, Default)]
pub struct Providers {
    pub fcm: Option<Arc<dyn PushSender>>,
    pub apns: Option<Arc<dyn PushSender>>,
    pub web_push: Option<Arc<dyn PushSender>>,
    pub email: Option<Arc<dyn Mailer>>,
}

impl Providers {
    /// The sender for `platform`, when this server offers it.
    pub fn push(&self, platform: DevicePlatform) -> Option<&Arc<dyn PushSender>> {
        match platform {
            DevicePlatform::Fcm => self.fcm.as_ref(),
            DevicePlatform::Apns => self.apns.as_ref(),
            DevicePlatform::WebPush => self.web_push.as_ref(),
        }
    }

    /// Whether any push platform is on.
    pub fn any_push(&self) -> bool {
        self.fcm.is_some() || self.apns.is_some() || self.web_push.is_some()
    }
}
