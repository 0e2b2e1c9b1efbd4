//! A user's devices: registering an FCM token, an APNs token or a Web Push subscription,
//! checked before it is stored; moving a token to whoever registers it last; listing and
//! removing them.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use entity::{device, enums::DevicePlatform};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder, Set,
};
use uuid::Uuid;

use crate::{db::Write, error::AppError, viewer::Viewer};

/// The most devices one user keeps: registering one more removes the one used longest ago.
pub const MAX_DEVICES_PER_USER: u64 = 20;
/// The longest label kept.
const MAX_LABEL_CHARS: usize = 80;
/// The longest token or endpoint kept (the column's size).
const MAX_TOKEN_BYTES: usize = 1024;

/// A device as the app registers it, not yet checked.
#[derive(Debug, Clone)]
pub enum NewDevice {
    Fcm {
        token: String,
    },
    Apns {
        token: String,
        bundle_id: String,
        sandbox: bool,
    },
    WebPush {
        endpoint: String,
        p256dh: String,
        auth: String,
    },
}

impl NewDevice {
    /// The platform it is pushed through.
    pub fn platform(&self) -> DevicePlatform {
        match self {
            NewDevice::Fcm { .. } => DevicePlatform::Fcm,
            NewDevice::Apns { .. } => DevicePlatform::Apns,
            NewDevice::WebPush { .. } => DevicePlatform::WebPush,
        }
    }
}

/// Registering, listing and removing the viewer's devices.
pub struct DeviceService;

impl DeviceService {
    /// Registers `new` for the viewer after checking it; a token another user registered
    /// moves to the viewer (a shared or re-sold phone). `allow_loopback` lets Web Push
    /// endpoints on this machine through (development and tests only).
    pub async fn register(
        write: &Write,
        viewer: &Viewer,
        new: NewDevice,
        label: Option<String>,
        allow_loopback: bool,
    ) -> Result<device::Model, AppError> {
        let now = write.now();
        let label = checked_label(label)?;
        let mut row = device::Model {
            id: Uuid::now_v7(),
            user_id: viewer.id,
            platform: DevicePlatform::Fcm,
            token: String::new(),
            apns_topic: None,
            apns_sandbox: None,
            web_push_p256dh: None,
            web_push_auth: None,
            label,
            created_at: now,
            last_used_at: Some(now),
        };
        match new {
            NewDevice::Fcm { token } => {
                row.token = checked_fcm_token(token)?;
            }
            NewDevice::Apns {
                token,
                bundle_id,
                sandbox,
            } => {
                row.platform = DevicePlatform::Apns;
                row.token = checked_apns_token(token)?;
                row.apns_topic = Some(checked_bundle_id(bundle_id)?);
                row.apns_sandbox = Some(sandbox);
            }
            NewDevice::WebPush {
                endpoint,
                p256dh,
                auth,
            } => {
                row.platform = DevicePlatform::WebPush;
                row.token = checked_endpoint(endpoint, allow_loopback)?;
                row.web_push_p256dh = Some(checked_p256dh(&p256dh)?);
                row.web_push_auth = Some(checked_auth(&auth)?);
            }
        }
        let existing = device::Entity::find()
            .filter(device::Column::Platform.eq(row.platform))
            .filter(device::Column::Token.eq(row.token.as_str()))
            .one(write)
            .await?;
        let saved = match existing {
            Some(found) => {
                let mut active = found.into_active_model();
                active.user_id = Set(row.user_id);
                active.apns_topic = Set(row.apns_topic);
                active.apns_sandbox = Set(row.apns_sandbox);
                active.web_push_p256dh = Set(row.web_push_p256dh);
                active.web_push_auth = Set(row.web_push_auth);
                active.label = Set(row.label);
                active.last_used_at = Set(Some(now));
                active.update(write).await?
            }
            None => {
                device::Entity::insert(row.clone().into_active_model())
                    .exec_without_returning(write)
                    .await?;
                row
            }
        };
        Self::evict_beyond_limit(write, viewer.id).await?;
        Ok(saved)
    }

    /// Removes one of the viewer's devices (signing out on it); another user's is
    /// `NOT_FOUND`.
    pub async fn unregister(write: &Write, viewer: &Viewer, id: Uuid) -> Result<(), AppError> {
        let removed = device::Entity::delete_many()
            .filter(device::Column::Id.eq(id))
            .filter(device::Column::UserId.eq(viewer.id))
            .exec(write)
            .await?;
        if removed.rows_affected == 0 {
            return Err(AppError::NotFound("device"));
        }
        Ok(())
    }

    /// The viewer's devices, most recently used first.
    pub async fn list(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
    ) -> Result<Vec<device::Model>, AppError> {
        Ok(device::Entity::find()
            .filter(device::Column::UserId.eq(user_id))
            .order_by_desc(device::Column::LastUsedAt)
            .order_by_desc(device::Column::CreatedAt)
            .all(conn)
            .await?)
    }

    /// Keeps the user's newest [`MAX_DEVICES_PER_USER`] devices.
    async fn evict_beyond_limit(write: &Write, user_id: Uuid) -> Result<(), AppError> {
        let oldest: Vec<Uuid> = Self::list(write, user_id)
            .await?
            .into_iter()
            .skip(MAX_DEVICES_PER_USER as usize)
            .map(|device| device.id)
            .collect();
        if oldest.is_empty() {
            return Ok(());
        }
        device::Entity::delete_many()
            .filter(device::Column::Id.is_in(oldest))
            .exec(write)
            .await?;
        Ok(())
    }
}

fn checked_label(label: Option<String>) -> Result<Option<String>, AppError> {
    let Some(label) = label.map(|label| label.trim().to_owned()) else {
        return Ok(None);
    };
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err(AppError::bad_input(
            "label",
            format!("a device label is at most {MAX_LABEL_CHARS} characters"),
        ));
    }
    Ok((!label.is_empty()).then_some(label))
}

/// FCM registration tokens are opaque, but always of these characters and about 150 to 250
/// long.
fn checked_fcm_token(token: String) -> Result<String, AppError> {
    let fine = (32..=MAX_TOKEN_BYTES).contains(&token.len())
        && token
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b':'));
    if !fine {
        return Err(AppError::bad_input(
            "token",
            "not an FCM registration token: expected 32 to 1024 characters of A-Z, a-z, 0-9, -, _ and :",
        ));
    }
    Ok(token)
}

/// APNs device tokens are 32 bytes today, sent as 64 hex digits; Apple warns they may grow.
fn checked_apns_token(token: String) -> Result<String, AppError> {
    let token = token.to_ascii_lowercase();
    let fine = token.len() >= 64
        && token.len() <= 200
        && token.len().is_multiple_of(2)
        && token.bytes().all(|byte| byte.is_ascii_hexdigit());
    if !fine {
        return Err(AppError::bad_input(
            "token",
            "not an APNs device token: expected an even number (64 to 200) of hex digits",
        ));
    }
    Ok(token)
}

/// A bundle id is reverse-DNS: letters, digits, dots and hyphens.
fn checked_bundle_id(bundle_id: String) -> Result<String, AppError> {
    let fine = (3..=255).contains(&bundle_id.len())
        && bundle_id.contains('.')
        && bundle_id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-'));
    if !fine {
        return Err(AppError::bad_input(
            "bundleId",
            "not a bundle id: expected reverse-DNS such as com.example.care",
        ));
    }
    Ok(bundle_id)
}

/// A push service's endpoint: an https URL on a named host. An endpoint on this machine
/// (any scheme) passes only where `allow_loopback` (development), so a user cannot point
/// the server at itself or its network in production.
fn checked_endpoint(endpoint: String, allow_loopback: bool) -> Result<String, AppError> {
    let refuse =
        |why: &str| AppError::bad_input("endpoint", format!("not a Web Push endpoint: {why}"));
    if endpoint.len() > MAX_TOKEN_BYTES {
        return Err(refuse("longer than 1024 bytes"));
    }
    let url = reqwest::Url::parse(&endpoint).map_err(|_| refuse("not a URL"))?;
    let host = url.host().ok_or_else(|| refuse("no host"))?;
    let loopback = match &host {
        url::Host::Domain(name) => *name == "localhost",
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    if loopback {
        return if allow_loopback && matches!(url.scheme(), "http" | "https") {
            Ok(endpoint)
        } else {
            Err(refuse("an endpoint on this server's own machine"))
        };
    }
    if url.scheme() != "https" {
        return Err(refuse("the endpoint must be https"));
    }
    if !matches!(host, url::Host::Domain(_)) {
        return Err(refuse("push services are named hosts, not IP addresses"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("credentials in the URL"));
    }
    Ok(endpoint)
}

/// The browser's key: an uncompressed point on P-256 (65 bytes), base64url.
fn checked_p256dh(key: &str) -> Result<String, AppError> {
    let bytes =
        decode_base64url(key).ok_or_else(|| AppError::bad_input("keys.p256dh", "not base64url"))?;
    let point = (bytes.len() == 65 && bytes[0] == 4)
        .then(|| p256::PublicKey::from_sec1_bytes(&bytes).ok())
        .flatten();
    if point.is_none() {
        return Err(AppError::bad_input(
            "keys.p256dh",
            "not a P-256 public key: expected an uncompressed point (65 bytes) on the curve",
        ));
    }
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The subscription's authentication secret: 16 bytes, base64url.
fn checked_auth(secret: &str) -> Result<String, AppError> {
    match decode_base64url(secret) {
        Some(bytes) if bytes.len() == 16 => Ok(URL_SAFE_NO_PAD.encode(bytes)),
        _ => Err(AppError::bad_input(
            "keys.auth",
            "not a Web Push auth secret: expected 16 bytes, base64url",
        )),
    }
}

/// Base64url with or without padding, as browsers and libraries write it.
fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    if text.len() > 200 {
        return None;
    }
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_https_on_named_hosts() {
        let ok = |url: &str, loopback| checked_endpoint(url.to_owned(), loopback).is_ok();
        assert!(ok("https://fcm.googleapis.com/fcm/send/abc", false));
        assert!(!ok(
            "http://updates.push.services.mozilla.com/wpush/v2/x",
            false
        ));
        assert!(!ok("https://10.0.0.7/push", false));
        assert!(!ok("https://user:pw@push.example.com/x", false));
        assert!(!ok("http://127.0.0.1:9/push", false));
        assert!(ok("http://127.0.0.1:9/push", true));
        assert!(!ok("file:///etc/passwd", true));
    }

    #[test]
    fn tokens_are_checked_by_their_platform_rules() {
        assert!(checked_fcm_token("a".repeat(31)).is_err());
        assert!(checked_fcm_token(format!("{}:APA91b", "x".repeat(140))).is_ok());
        assert!(checked_fcm_token(format!("{} ", "x".repeat(140))).is_err());
        assert!(checked_apns_token("ab".repeat(32)).is_ok());
        assert!(checked_apns_token("ab".repeat(31)).is_err());
        assert!(checked_apns_token("zz".repeat(32)).is_err());
    }
}
