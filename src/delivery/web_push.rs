//! Web Push: the payload encrypted for the browser's subscription (RFC 8291, `aes128gcm`
//! of RFC 8188) and posted to the subscription's endpoint with a VAPID token (RFC 8292).
//!
//! A device's `token` is the subscription's endpoint, `web_push_p256dh` its public key and
//! `web_push_auth` its authentication secret. The push service learns nothing of the
//! payload; it checks the VAPID token against the key the subscription was created with.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aes_gcm::{Aes128Gcm, KeyInit, Nonce, aead::Aead};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use entity::device;
use hkdf::Hkdf;
use p256::{
    PublicKey, SecretKey,
    ecdsa::{Signature, SigningKey, signature::Signer},
    elliptic_curve::sec1::ToEncodedPoint,
};
use rand_core::{OsRng, RngCore};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use sha2::Sha256;

use super::provider::{
    MAX_RESPONSE_BODY, Push, PushSender, SendFailure, SetupError, read_body_capped, retry_after,
    transport_failure, within_timeout,
};
use crate::config::WebPushConfig;

const PROVIDER: &str = "web_push";

/// The record size written in the header: one record always holds the whole payload.
const RECORD_SIZE: u32 = 4096;
/// The largest plaintext JSON sent: push services take 4,096 bytes of body, of which the
/// header (86), the padding delimiter (1) and the tag (16) are not payload; kept lower so a
/// push service counting differently still takes it.
pub const MAX_PLAINTEXT: usize = 3800;
/// TTL when the push does not expire: a day.
const DEFAULT_TTL: u64 = 86_400;
/// The longest TTL push services keep a message: four weeks.
const MAX_TTL: u64 = 28 * 86_400;
/// VAPID tokens are valid this long (RFC 8292 allows up to 24 hours)…
const TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// …and reused for this long, so one still has hours left when sent.
const TOKEN_REUSE: Duration = Duration::from_secs(6 * 3600);
/// Audiences (push services' origins) whose token is kept; a handful exist in practice.
const TOKEN_CACHE_LIMIT: usize = 64;

/// Sends pushes to browsers' Web Push subscriptions.
pub struct WebPushSender {
    http: reqwest::Client,
    signing_key: SigningKey,
    /// The uncompressed public key, base64url: the `k=` of every request.
    public_key: String,
    subject: String,
    timeout: Duration,
    /// The VAPID token per audience, with when it was made.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
}

impl WebPushSender {
    /// Reads the VAPID key; fails when it is not a base64url 32-byte P-256 scalar, or the
    /// subject is neither `mailto:` nor `https:`.
    pub fn new(config: &WebPushConfig, timeout: Duration) -> Result<Self, SetupError> {
        let setup = |reason: &str| SetupError {
            provider: PROVIDER,
            reason: reason.to_owned(),
        };
        let scalar = decode_base64url(config.private_key.expose())
            .filter(|bytes| bytes.len() == 32)
            .ok_or_else(|| {
                setup("VAPID_PRIVATE_KEY is not a base64url 32-byte P-256 private key")
            })?;
        let secret = SecretKey::from_slice(&scalar)
            .map_err(|_| setup("VAPID_PRIVATE_KEY is not a valid P-256 private key"))?;
        let subject = config.subject.trim();
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            return Err(setup("VAPID_SUBJECT must be a mailto: or https:// URL"));
        }
        // A push service answers; it does not redirect a push elsewhere.
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| setup(&format!("HTTP client: {error}")))?;
        Ok(Self {
            http,
            public_key: URL_SAFE_NO_PAD.encode(secret.public_key().to_encoded_point(false)),
            signing_key: SigningKey::from(secret),
            subject: subject.to_owned(),
            timeout,
            tokens: Mutex::default(),
        })
    }

    /// The application server key browsers subscribe with (`applicationServerKey`): the
    /// uncompressed public key, base64url.
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// A VAPID token for `audience`, reused for a few hours.
    fn token(&self, audience: &str) -> String {
        let mut tokens = crate::sync::lock(&self.tokens);
        if let Some((token, made)) = tokens.get(audience)
            && made.elapsed() < TOKEN_REUSE
        {
            return token.clone();
        }
        if tokens.len() >= TOKEN_CACHE_LIMIT {
            tokens.retain(|_, (_, made)| made.elapsed() < TOKEN_REUSE);
            if tokens.len() >= TOKEN_CACHE_LIMIT {
                tokens.clear();
            }
        }
        let token = self.sign_token(audience);
        tokens.insert(audience.to_owned(), (token.clone(), Instant::now()));
        token
    }

    /// An ES256 JWT `{aud, exp, sub}` (RFC 8292 §2).
    fn sign_token(&self, audience: &str) -> String {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .saturating_add(TOKEN_LIFETIME)
            .as_secs();
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({ "aud": audience, "exp": exp, "sub": self.subject });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signing_input = format!("{header}.{claims}");
        let signature: Signature = self.signing_key.sign(signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    async fn post(
        &self,
        endpoint: Url,
        body: Vec<u8>,
        push: &Push,
        now: DateTime<Utc>,
    ) -> Result<(), SendFailure> {
        let audience = endpoint.origin().ascii_serialization();
        let authorization = format!("vapid t={}, k={}", self.token(&audience), self.public_key);
        let ttl = push.ttl_seconds(now).unwrap_or(DEFAULT_TTL).min(MAX_TTL);
        let response = self
            .http
            .post(endpoint)
            .header("Authorization", authorization)
            .header("Content-Encoding", "aes128gcm")
            .header("Content-Type", "application/octet-stream")
            .header("TTL", ttl.to_string())
            .header("Urgency", if push.urgent { "high" } else { "normal" })
            .header("Topic", push.collapse_or_idempotency().simple().to_string())
            .body(body)
            .send()
            .await
            .map_err(|error| transport_failure("web push", error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry_after(response.headers(), now);
        let body = read_body_capped(response, MAX_RESPONSE_BODY)
            .await
            .unwrap_or_default();
        let reason = format!(
            "web push: {status} {}",
            excerpt(&String::from_utf8_lossy(&body))
        );
        Err(match status {
            StatusCode::NOT_FOUND | StatusCode::GONE => SendFailure::DeadToken(reason),
            StatusCode::TOO_MANY_REQUESTS => SendFailure::Transient {
                reason,
                retry_after,
            },
            status if status.is_server_error() => SendFailure::Transient {
                reason,
                retry_after,
            },
            _ => SendFailure::Rejected(reason),
        })
    }
}

#[async_trait::async_trait]
impl PushSender for WebPushSender {
    async fn send(
        &self,
        device: &device::Model,
        push: &Push,
        now: DateTime<Utc>,
    ) -> Result<(), SendFailure> {
        let endpoint = endpoint(&device.token)?;
        let (Some(p256dh), Some(auth)) = (
            device.web_push_p256dh.as_deref().and_then(decode_base64url),
            device.web_push_auth.as_deref().and_then(decode_base64url),
        ) else {
            return Err(SendFailure::DeadToken(
                "web push: the subscription has no readable p256dh or auth key".into(),
            ));
        };
        let plaintext = payload(push)?;
        let mut salt = [0u8; 16];
        OsRng.fill_bytes(&mut salt);
        let ephemeral = SecretKey::random(&mut OsRng);
        let body =
            encrypt(&p256dh, &auth, &plaintext, &ephemeral, &salt).map_err(
                |error| match error {
                    EncryptError::TooLarge => SendFailure::Rejected(format!("web push: {error}")),
                    _ => SendFailure::DeadToken(format!("web push: {error}")),
                },
            )?;
        within_timeout(
            "web push",
            self.timeout,
            self.post(endpoint, body, push, now),
        )
        .await
    }
}

/// The subscription's endpoint: https, or http to a loopback address (local push services
/// and tests). Anything else cannot be sent to, ever.
fn endpoint(token: &str) -> Result<Url, SendFailure> {
    let url = Url::parse(token)
        .map_err(|_| SendFailure::DeadToken("web push: the endpoint is not a URL".into()))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err(SendFailure::DeadToken(
            "web push: the endpoint is not an https URL".into(),
        )),
    }
}

/// What the service worker receives, as JSON.
#[derive(Serialize)]
struct Payload<'a> {
    title: &'a str,
    body: &'a str,
    data: &'a BTreeMap<String, String>,
    badge: u32,
    tag: String,
}

/// The push as JSON of at most [`MAX_PLAINTEXT`] bytes: the body is cut (ending in "…")
/// when the whole would be longer.
fn payload(push: &Push) -> Result<Vec<u8>, SendFailure> {
    let tag = push.collapse_or_idempotency().to_string();
    let encode = |body: &str| {
        serde_json::to_vec(&Payload {
            title: &push.title,
            body,
            data: &push.data,
            badge: push.badge,
            tag: tag.clone(),
        })
        .map_err(|error| SendFailure::Rejected(format!("web push: payload: {error}")))
    };
    let mut json = encode(&push.body)?;
    let mut keep = push.body.len();
    let mut body = String::new();
    while json.len() > MAX_PLAINTEXT {
        if keep == 0 {
            return Err(SendFailure::Rejected(format!(
                "web push: the payload is over {MAX_PLAINTEXT} bytes without its body"
            )));
        }
        // Every byte cut shortens the JSON by at least one; "…" adds three.
        keep = push
            .body
            .floor_char_boundary(keep.saturating_sub(json.len() - MAX_PLAINTEXT + 3));
        body.clear();
        body.push_str(&push.body[..keep]);
        body.push('…');
        json = encode(&body)?;
    }
    Ok(json)
}

/// Why a payload could not be encrypted for a subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    #[error("the subscription's p256dh is not an uncompressed P-256 public key")]
    PublicKey,
    #[error("the subscription's auth secret is not 16 bytes")]
    AuthSecret,
    #[error("the payload does not fit one {RECORD_SIZE}-byte record")]
    TooLarge,
    #[error("AES-GCM encryption failed")]
    Cipher,
}

/// RFC 8291 `aes128gcm` encryption of `plaintext` for the subscription key `ua_public`
/// (65 bytes, uncompressed) and `auth_secret` (16 bytes), from the application server's
/// (ephemeral) key `as_secret` with `salt`: the header (salt, record size, key id = the
/// server's public key) followed by one record, padded with the last-record delimiter.
pub fn encrypt(
    ua_public: &[u8],
    auth_secret: &[u8],
    plaintext: &[u8],
    as_secret: &SecretKey,
    salt: &[u8; 16],
) -> Result<Vec<u8>, EncryptError> {
    if ua_public.len() != 65 {
        return Err(EncryptError::PublicKey);
    }
    let ua_key = PublicKey::from_sec1_bytes(ua_public).map_err(|_| EncryptError::PublicKey)?;
    if auth_secret.len() != 16 {
        return Err(EncryptError::AuthSecret);
    }
    if plaintext.len() + 1 + 16 > RECORD_SIZE as usize {
        return Err(EncryptError::TooLarge);
    }
    let as_public = as_secret.public_key().to_encoded_point(false);
    let shared = p256::ecdh::diffie_hellman(as_secret.to_nonzero_scalar(), ua_key.as_affine());

    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth_secret), &shared.raw_secret_bytes()[..])
        .expand_multi_info(
            &[b"WebPush: info\0", ua_public, as_public.as_bytes()],
            &mut ikm,
        )
        .map_err(|_| EncryptError::Cipher)?;
    let keys = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    keys.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .and_then(|()| keys.expand(b"Content-Encoding: nonce\0", &mut nonce))
        .map_err(|_| EncryptError::Cipher)?;

    let mut record = Vec::with_capacity(plaintext.len() + 1);
    record.extend_from_slice(plaintext);
    record.push(2);
    let cipher = Aes128Gcm::new_from_slice(&cek).map_err(|_| EncryptError::Cipher)?;
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), record.as_slice())
        .map_err(|_| EncryptError::Cipher)?;

    let mut body = Vec::with_capacity(16 + 4 + 1 + 65 + sealed.len());
    body.extend_from_slice(salt);
    body.extend_from_slice(&RECORD_SIZE.to_be_bytes());
    body.push(65);
    body.extend_from_slice(as_public.as_bytes());
    body.extend_from_slice(&sealed);
    Ok(body)
}

/// Base64url with or without padding; browsers and libraries differ, and some hand out
/// standard base64.
fn decode_base64url(text: &str) -> Option<Vec<u8>> {
    let text: String = text
        .trim()
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// The start of a response body, for a failure's reason.
fn excerpt(text: &str) -> &str {
    let text = text.trim();
    &text[..text.floor_char_boundary(200)]
}
