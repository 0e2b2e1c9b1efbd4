//! Apple Push Notification service over HTTP/2, with token-based authentication: an ES256
//! JWT signed with the team's `.p8` key, reused for most of the hour APNs accepts it.

use std::{
    sync::RwLock,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entity::device;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::provider::{
    MAX_RESPONSE_BODY, Push, PushSender, SendFailure, SetupError, read_body_capped, retry_after,
    transport_failure, within_timeout,
};
use crate::config::ApnsConfig;

const PROVIDER: &str = "apns";
/// How long one provider token is used. APNs refuses tokens older than an hour and
/// answers `TooManyProviderTokenUpdates` to a new one more often than every 20 minutes.
const TOKEN_REUSE: Duration = Duration::from_secs(50 * 60);
/// The largest payload APNs takes for an alert push.
pub const MAX_PAYLOAD: usize = 4096;
/// The longest `apns-collapse-id` APNs takes.
const MAX_COLLAPSE_ID: usize = 64;

#[derive(Serialize)]
struct ProviderClaims<'a> {
    iss: &'a str,
    iat: u64,
}

struct ProviderToken {
    jwt: String,
    issued: Instant,
}

/// Sends pushes to iOS apps through APNs.
pub struct ApnsSender {
    /// Speaks HTTP/2 only (`http2_prior_knowledge`): over `https://` that makes rustls
    /// offer just `h2` by ALPN, which APNs requires; over `http://` (the local fake in
    /// tests) it is h2c with prior knowledge, as there is no TLS to negotiate in. One
    /// client serves both gateways, so connections to each are kept and multiplexed.
    http: reqwest::Client,
    base_url: String,
    sandbox_base_url: String,
    key: EncodingKey,
    key_id: String,
    team_id: String,
    timeout: Duration,
    token: RwLock<Option<ProviderToken>>,
}

impl ApnsSender {
    /// Reads the `.p8` key and checks that it signs ES256.
    pub fn new(config: &ApnsConfig, timeout: Duration) -> Result<Self, SetupError> {
        let pem = std::fs::read(&config.key_file).map_err(|err| {
            SetupError::new(
                PROVIDER,
                format!("cannot read the auth key {}: {err}", config.key_file),
            )
        })?;
        let key = EncodingKey::from_ec_pem(&pem).map_err(|err| {
            SetupError::new(
                PROVIDER,
                format!(
                    "the auth key {} is not a PKCS#8 EC key: {err}",
                    config.key_file
                ),
            )
        })?;
        let http = reqwest::Client::builder()
            .http2_prior_knowledge()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|err| SetupError::new(PROVIDER, format!("HTTP client: {err}")))?;
        let sender = ApnsSender {
            http,
            base_url: config.base_url.trim_end_matches('/').to_owned(),
            sandbox_base_url: config.sandbox_base_url.trim_end_matches('/').to_owned(),
            key,
            key_id: config.key_id.clone(),
            team_id: config.team_id.clone(),
            timeout,
            token: RwLock::new(None),
        };
        // A key of another curve parses as EC but cannot sign ES256: fail here.
        sender
            .sign()
            .map_err(|reason| SetupError::new(PROVIDER, reason))?;
        Ok(sender)
    }

    fn sign(&self) -> Result<String, String> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        encode(
            &header,
            &ProviderClaims {
                iss: &self.team_id,
                iat,
            },
            &self.key,
        )
        .map_err(|err| format!("cannot sign the provider token: {err}"))
    }

    /// The provider token in use, or a new one when it is 50 minutes old or was refused.
    fn provider_token(&self) -> Result<String, SendFailure> {
        {
            let cached = self
                .token
                .read()
                .unwrap_or_else(|poison| poison.into_inner());
            if let Some(token) = cached.as_ref()
                && token.issued.elapsed() < TOKEN_REUSE
            {
                return Ok(token.jwt.clone());
            }
        }
        let mut cached = self
            .token
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        // Another send may have signed one meanwhile.
        if let Some(token) = cached.as_ref()
            && token.issued.elapsed() < TOKEN_REUSE
        {
            return Ok(token.jwt.clone());
        }
        let jwt = self.sign().map_err(SendFailure::transient)?;
        *cached = Some(ProviderToken {
            jwt: jwt.clone(),
            issued: Instant::now(),
        });
        Ok(jwt)
    }

    /// Forgets `used` when it is still the token in use (APNs refused it).
    fn forget_token(&self, used: &str) {
        let mut cached = self
            .token
            .write()
            .unwrap_or_else(|poison| poison.into_inner());
        if cached.as_ref().is_some_and(|token| token.jwt == used) {
            *cached = None;
        }
    }

    async fn send_once(
        &self,
        device: &device::Model,
        push: &Push,
        now: DateTime<Utc>,
    ) -> Result<(), SendFailure> {
        if device.token.is_empty() || !device.token.bytes().all(|b| b.is_ascii_hexdigit()) {
            // APNs would answer BadDeviceToken; it is not put in a URL.
            return Err(SendFailure::DeadToken(
                "apns: the device token is not hex".to_owned(),
            ));
        }
        let Some(topic) = device.apns_topic.as_deref() else {
            return Err(SendFailure::Rejected(
                "apns: the device has no apns_topic (bundle id)".to_owned(),
            ));
        };
        let body = payload(push)?;
        let base = if device.apns_sandbox == Some(true) {
            &self.sandbox_base_url
        } else {
            &self.base_url
        };
        let jwt = self.provider_token()?;
        let mut request = self
            .http
            .post(format!("{base}/3/device/{}", device.token))
            .header("authorization", format!("bearer {jwt}"))
            .header("apns-topic", topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", if push.urgent { "10" } else { "5" })
            .header("apns-id", push.idempotency_key.hyphenated().to_string())
            .header("content-type", "application/json")
            .body(body);
        if let Some(collapse) = push.collapse {
            let id = collapse.simple().to_string();
            debug_assert!(id.len() <= MAX_COLLAPSE_ID);
            request = request.header("apns-collapse-id", id);
        }
        if let Some(at) = push.expires_at {
            request = request.header("apns-expiration", at.timestamp().max(0).to_string());
        }
        let response = request
            .send()
            .await
            .map_err(|err| transport_failure(PROVIDER, err))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let wait = retry_after(response.headers(), now);
        let body = read_body_capped(response, MAX_RESPONSE_BODY)
            .await
            .unwrap_or_default();
        let reason_code = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|value| value["reason"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let reason = format!("apns answered {status}: {reason_code}");
        match (status.as_u16(), reason_code.as_str()) {
            (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => {
                Err(SendFailure::DeadToken(reason))
            }
            (403, "ExpiredProviderToken" | "InvalidProviderToken") => {
                self.forget_token(&jwt);
                Err(SendFailure::Transient {
                    reason,
                    retry_after: wait,
                })
            }
            (429 | 500..=599, _) => Err(SendFailure::Transient {
                reason,
                retry_after: wait,
            }),
            _ => Err(SendFailure::Rejected(reason)),
        }
    }
}

#[async_trait]
impl PushSender for ApnsSender {
    async fn send(
        &self,
        device: &device::Model,
        push: &Push,
        now: DateTime<Utc>,
    ) -> Result<(), SendFailure> {
        within_timeout("apns", self.timeout, self.send_once(device, push, now)).await
    }
}

/// The JSON payload: `aps` with the alert, badge, sound and thread, and the push's data
/// (and `deliveryId`) as top-level strings. The body text is shortened to keep it within
/// APNs' 4 KB; when the rest alone is too large, the push is rejected.
pub fn payload(push: &Push) -> Result<Vec<u8>, SendFailure> {
    let build = |body: &str| {
        let mut aps = json!({
            "alert": { "title": push.title, "body": body },
            "badge": push.badge,
            "sound": "default",
        });
        if let Some(collapse) = push.collapse {
            aps["thread-id"] = json!(collapse.simple().to_string());
        }
        let mut root = Map::new();
        for (key, value) in &push.data {
            if key != "aps" {
                root.insert(key.clone(), Value::String(value.clone()));
            }
        }
        root.insert(
            "deliveryId".to_owned(),
            Value::String(push.idempotency_key.to_string()),
        );
        root.insert("aps".to_owned(), aps);
        serde_json::to_vec(&Value::Object(root)).unwrap_or_default()
    };
    let full = build(&push.body);
    if full.len() <= MAX_PAYLOAD {
        return Ok(full);
    }
    // Escaping can make a character cost up to 6 bytes: cut by the excess, then again
    // until it fits.
    let mut body: Vec<char> = push.body.chars().collect();
    loop {
        let text: String = body.iter().collect();
        let bytes = build(&format!("{text}…"));
        if bytes.len() <= MAX_PAYLOAD {
            return Ok(bytes);
        }
        if body.is_empty() {
            return Err(SendFailure::Rejected(format!(
                "apns: the payload is {} bytes without its body text, over {MAX_PAYLOAD}",
                bytes.len()
            )));
        }
        let excess = bytes.len() - MAX_PAYLOAD;
        let cut = excess.div_ceil(6).max(1).min(body.len());
        body.truncate(body.len() - cut);
    }
}
