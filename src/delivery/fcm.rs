//! Firebase Cloud Messaging over its HTTP v1 API, authenticated as a service account.
//!
//! The service account's key signs an RS256 JWT that its `token_uri` exchanges for an
//! OAuth 2.0 access token (the JWT bearer grant); the token is cached until shortly
//! before it expires, and every send carries it as `Authorization: Bearer`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entity::device;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::provider::{
    MAX_RESPONSE_BODY, Push, PushSender, SendFailure, SetupError, read_body_capped, retry_after,
    transport_failure, within_timeout,
};
use crate::config::FcmConfig;

const PROVIDER: &str = "fcm";
/// The OAuth scope of sending messages.
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// How long before its `expires_in` a cached access token is replaced.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// The lifetime asked for in the grant's JWT (Google's maximum).
const ASSERTION_LIFETIME: u64 = 3600;

/// The fields of a service account's JSON key file that are used.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    private_key: String,
    client_email: String,
    token_uri: String,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

struct AccessToken {
    value: String,
    refresh_at: Instant,
}

/// Sends pushes to Android (and iOS and web apps registered with FCM) through FCM HTTP v1.
pub struct FcmSender {
    http: reqwest::Client,
    send_url: String,
    token_uri: String,
    client_email: String,
    key: EncodingKey,
    timeout: Duration,
    /// The cached access token; held across a refresh, so concurrent sends wait for one
    /// token request rather than each making their own.
    token: Mutex<Option<AccessToken>>,
}

impl FcmSender {
    /// Reads the service account's key file and checks that its key signs.
    pub fn new(config: &FcmConfig, timeout: Duration) -> Result<Self, SetupError> {
        let file = std::fs::read_to_string(&config.service_account_file).map_err(|err| {
            SetupError::new(
                PROVIDER,
                format!(
                    "cannot read the service account file {}: {err}",
                    config.service_account_file
                ),
            )
        })?;
        let account: ServiceAccount = serde_json::from_str(&file).map_err(|err| {
            SetupError::new(
                PROVIDER,
                format!(
                    "the service account file {} is not a service account key: {err}",
                    config.service_account_file
                ),
            )
        })?;
        let key = EncodingKey::from_rsa_pem(account.private_key.as_bytes()).map_err(|err| {
            SetupError::new(
                PROVIDER,
                format!("the service account's private_key is not an RSA PEM key: {err}"),
            )
        })?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|err| SetupError::new(PROVIDER, format!("HTTP client: {err}")))?;
        let sender = FcmSender {
            http,
            send_url: format!(
                "{}/v1/projects/{}/messages:send",
                config.api_base_url.trim_end_matches('/'),
                account.project_id
            ),
            token_uri: account.token_uri,
            client_email: account.client_email,
            key,
            timeout,
            token: Mutex::new(None),
        };
        // A key that parses but cannot sign (a wrong type) fails here, not on every send.
        sender
            .assertion()
            .map_err(|reason| SetupError::new(PROVIDER, reason))?;
        Ok(sender)
    }

    /// The signed JWT of the bearer grant.
    fn assertion(&self) -> Result<String, String> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let claims = AssertionClaims {
            iss: &self.client_email,
            scope: SCOPE,
            aud: &self.token_uri,
            iat,
            exp: iat + ASSERTION_LIFETIME,
        };
        encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|err| format!("cannot sign the token request: {err}"))
    }

    /// The cached access token, or a new one when none is cached or it is about to expire.
    async fn access_token(&self, now: DateTime<Utc>) -> Result<String, SendFailure> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref()
            && Instant::now() < token.refresh_at
        {
            return Ok(token.value.clone());
        }
        let fresh = self.request_token(now).await?;
        let value = fresh.value.clone();
        *cached = Some(fresh);
        Ok(value)
    }

    /// Exchanges a signed JWT for an access token. Every failure is transient: a refused
    /// grant is a credentials problem of this server, not of the push, and retries pick up
    /// the fix.
    async fn request_token(&self, now: DateTime<Utc>) -> Result<AccessToken, SendFailure> {
        let assertion = self.assertion().map_err(SendFailure::transient)?;
        let requested = Instant::now();
        let response = self
            .http
            .post(&self.token_uri)
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|err| transport_failure("fcm token endpoint", err))?;
        let status = response.status();
        let wait = retry_after(response.headers(), now);
        let body = read_body_capped(response, MAX_RESPONSE_BODY)
            .await
            .map_err(|err| transport_failure("fcm token endpoint", err))?;
        if !status.is_success() {
            return Err(SendFailure::Transient {
                reason: format!(
                    "fcm token endpoint answered {status}: {}",
                    String::from_utf8_lossy(&body)
                ),
                retry_after: wait,
            });
        }
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|err| {
            SendFailure::transient(format!("fcm token endpoint: unreadable answer: {err}"))
        })?;
        let lifetime = Duration::from_secs(token.expires_in).saturating_sub(REFRESH_MARGIN);
        Ok(AccessToken {
            value: token.access_token,
            refresh_at: requested + lifetime,
        })
    }

    /// Forgets `used` when it is still the cached token (FCM refused it).
    async fn forget_token(&self, used: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|token| token.value == used) {
            *cached = None;
        }
    }

    async fn send_once(
        &self,
        device: &device::Model,
        push: &Push,
        now: DateTime<Utc>,
    ) -> Result<(), SendFailure> {
        let token = self.access_token(now).await?;
        let response = self
            .http
            .post(&self.send_url)
            .bearer_auth(&token)
            .json(&message(device, push, now))
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
        let error = FcmError::parse(&body);
        let reason = format!("fcm answered {status}: {}", error.describe(&body));
        match status.as_u16() {
            401 => {
                self.forget_token(&token).await;
                Err(SendFailure::Transient {
                    reason,
                    retry_after: wait,
                })
            }
            429 | 500..=599 => Err(SendFailure::Transient {
                reason,
                retry_after: wait,
            }),
            _ if error.error_code.as_deref() == Some("UNREGISTERED") => {
                Err(SendFailure::DeadToken(reason))
            }
            // FCM's own "entity not found" about the token; a 404 without FCM's error
            // body (a wrong base URL) says nothing about the token.
            404 if error.status.as_deref() == Some("NOT_FOUND") => {
                Err(SendFailure::DeadToken(reason))
            }
            _ => Err(SendFailure::Rejected(reason)),
        }
    }
}

#[async_trait]
impl PushSender for FcmSender {
    async fn send(
        &self,
        device: &device::Model,
        push: &Push,
        now: DateTime<Utc>,
    ) -> Result<(), SendFailure> {
        // The client's timeout bounds each request; this bounds a token refresh and the
        // send together, and a wait for another send's refresh.
        within_timeout("fcm", self.timeout, self.send_once(device, push, now)).await
    }
}

/// The parts of FCM's error body (`{"error": {"status", "message", "details": [{"@type":
/// "…FcmError", "errorCode"}]}}`) that decide the outcome.
#[derive(Default)]
struct FcmError {
    status: Option<String>,
    message: Option<String>,
    error_code: Option<String>,
}

impl FcmError {
    fn parse(body: &[u8]) -> Self {
        let Ok(value) = serde_json::from_slice::<Value>(body) else {
            return FcmError::default();
        };
        let error = &value["error"];
        let error_code = error["details"].as_array().and_then(|details| {
            details
                .iter()
                .filter(|detail| {
                    detail["@type"].as_str()
                        == Some("type.googleapis.com/google.firebase.fcm.v1.FcmError")
                })
                .find_map(|detail| detail["errorCode"].as_str().map(str::to_owned))
        });
        FcmError {
            status: error["status"].as_str().map(str::to_owned),
            message: error["message"].as_str().map(str::to_owned),
            error_code,
        }
    }

    fn describe(&self, body: &[u8]) -> String {
        match (&self.error_code, &self.status, &self.message) {
            (code, Some(status), message) => format!(
                "{}{status}: {}",
                code.as_ref()
                    .map(|code| format!("{code} "))
                    .unwrap_or_default(),
                message.as_deref().unwrap_or("")
            ),
            _ => String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        }
    }
}

/// The `messages:send` body for `push` to `device`.
fn message(device: &device::Model, push: &Push, now: DateTime<Utc>) -> Value {
    let mut data: Map<String, Value> = push
        .data
        .iter()
        .map(|(key, value)| (key.clone(), Value::String(value.clone())))
        .collect();
    data.insert(
        "deliveryId".to_owned(),
        Value::String(push.idempotency_key.to_string()),
    );
    let tag = push.collapse_or_idempotency().simple().to_string();
    let ttl = push.ttl_seconds(now);

    let mut android = json!({
        "priority": if push.urgent { "high" } else { "normal" },
        "notification": { "tag": tag, "notification_count": push.badge },
    });
    if let Some(ttl) = ttl {
        android["ttl"] = json!(format!("{ttl}s"));
    }
    if let Some(collapse) = push.collapse {
        android["collapse_key"] = json!(collapse.simple().to_string());
    }

    let mut apns_headers = json!({
        "apns-priority": if push.urgent { "10" } else { "5" },
        "apns-collapse-id": tag,
    });
    if let Some(at) = push.expires_at {
        apns_headers["apns-expiration"] = json!(at.timestamp().max(0).to_string());
    }

    let mut webpush_headers = json!({
        "Urgency": if push.urgent { "high" } else { "normal" },
        "Topic": tag,
    });
    if let Some(ttl) = ttl {
        webpush_headers["TTL"] = json!(ttl.to_string());
    }

    json!({
        "message": {
            "token": device.token,
            "notification": { "title": push.title, "body": push.body },
            "data": data,
            "android": android,
            "apns": {
                "headers": apns_headers,
                "payload": { "aps": { "badge": push.badge, "sound": "default" } },
            },
            "webpush": { "headers": webpush_headers },
        }
    })
}
