//! `devices`: where a user's pushes go, one row per FCM token, APNs token or Web Push
//! subscription.

use sea_orm::entity::prelude::*;

use crate::enums::DevicePlatform;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub platform: DevicePlatform,
    /// The FCM registration token, the APNs device token (hex) or the Web Push endpoint;
    /// unique per platform, so registering it again moves it to the new user.
    pub token: String,
    /// APNs only: the app's bundle id, sent as `apns-topic`.
    pub apns_topic: Option<String>,
    /// APNs only: a development-build token, sent to the sandbox gateway.
    pub apns_sandbox: Option<bool>,
    /// Web Push only: the browser's P-256 public key (base64url), the payload's recipient.
    pub web_push_p256dh: Option<String>,
    /// Web Push only: the 16-byte authentication secret (base64url).
    pub web_push_auth: Option<String>,
    pub label: Option<String>,
    pub created_at: DateTimeUtc,
    /// The last time a push was accepted for it, or it was registered again.
    pub last_used_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
