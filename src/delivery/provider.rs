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

/// A provider that cannot be built from its configuration (an unreadable key file, a
/// malformed key): start-up stops with it, rather than failing every delivery later.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{provider}: {reason}")]
pub struct SetupError {
    pub provider: &'static str,
    pub reason: String,
}

impl SetupError {
    /// `provider` could not be set up, for `reason`.
    pub fn new(provider: &'static str, reason: impl Into<String>) -> Self {
        SetupError {
            provider,
            reason: reason.into(),
        }
    }
}

/// The most of a provider's answer that is read: its error JSON is small, and a broken or
/// hostile endpoint cannot make a worker buffer more.
pub const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// Reads at most `limit` bytes of `response`'s body; the rest is left unread.
pub async fn read_body_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(body)
}

/// The wait a `Retry-After` header asks for: delay-seconds, or an HTTP-date taken against
/// `now` (a date already past is no wait). `None` when absent or unreadable.
pub fn retry_after(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A failed request as a transient failure: a timeout, a refused connection, a reset
/// stream. The URL is left out of the reason (an APNs URL holds the device token).
pub fn transport_failure(provider: &str, err: reqwest::Error) -> SendFailure {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    SendFailure::transient(format!("{provider}: {kind}: {}", err.without_url()))
}

/// Runs one provider request to its answer, or gives up after `timeout` with a transient
/// failure: every provider's promise that a hanging service never holds up a worker.
pub async fn within_timeout<T>(
    provider: &str,
    timeout: Duration,
    request: impl Future<Output = Result<T, SendFailure>>,
) -> Result<T, SendFailure> {
    tokio::time::timeout(timeout, request)
        .await
        .unwrap_or_else(|_| {
            Err(SendFailure::transient(format!(
                "{provider}: no answer within {} ms",
                timeout.as_millis()
            )))
        })
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
    /// The VAPID public key browsers subscribe with, when Web Push is on.
    pub web_push_public_key: Option<String>,
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

    /// Says at start-up which channels this server delivers to, and how to turn on the rest.
    pub fn log_channels(&self) {
        let mut on = Vec::new();
        let mut off = Vec::new();
        for (name, configured, how) in [
            ("FCM", self.fcm.is_some(), "FCM_SERVICE_ACCOUNT_FILE"),
            (
                "APNs",
                self.apns.is_some(),
                "APNS_KEY_FILE, APNS_KEY_ID and APNS_TEAM_ID",
            ),
            (
                "Web Push",
                self.web_push.is_some(),
                "VAPID_PRIVATE_KEY and VAPID_SUBJECT",
            ),
            ("email", self.email.is_some(), "SMTP_URL and EMAIL_FROM"),
        ] {
            if configured {
                on.push(name);
            } else {
                off.push(format!("{name} (set {how})"));
            }
        }
        if !on.is_empty() {
            tracing::info!("delivering notifications by {}", on.join(", "));
        }
        if !off.is_empty() {
            tracing::info!("not configured, so off: {}", off.join("; "));
        }
    }

    /// Whether any push platform is on.
    pub fn any_push(&self) -> bool {
        self.fcm.is_some() || self.apns.is_some() || self.web_push.is_some()
    }
}
