//! A stand-in for a Web Push service on loopback, for subscriptions it creates: it holds
//! each subscription's private key and auth secret, and checks each request as a push
//! service does (the VAPID token's signature, audience, expiry and subject, the key the
//! subscription was made for, the headers) before it decrypts the payload (RFC 8291) and
//! records it. Answers can be scripted per subscription.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aes_gcm::{Aes128Gcm, KeyInit, Nonce, aead::Aead};
use axum::{
    Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hkdf::Hkdf;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use p256::{PublicKey, SecretKey, elliptic_curve::sec1::ToEncodedPoint};
use rand_core::{OsRng, RngCore};
use sha2::Sha256;

/// What a browser hands the application after `pushManager.subscribe`.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub endpoint: String,
    pub p256dh: String,
    pub auth: String,
}

/// A scripted answer to the next request for a subscription (after the checks passed).
#[derive(Debug, Clone)]
pub enum Answer {
    Status(u16),
    /// A status with `Retry-After` set to this text.
    RetryAfter(u16, String),
    /// Never answers.
    Hang,
}

/// One push the service accepted, as it saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The decrypted payload.
    pub payload: serde_json::Value,
    pub plaintext_len: usize,
    pub ttl: u64,
    pub urgency: Option<String>,
    pub topic: Option<String>,
    pub content_type: Option<String>,
    /// The VAPID token as sent, and its verified claims.
    pub token: String,
    pub claims: serde_json::Value,
}

struct Sub {
    secret: SecretKey,
    public: Vec<u8>,
    auth: Vec<u8>,
    /// The application server key the subscription was made with: the only `k=` taken.
    server_key: String,
    script: VecDeque<Answer>,
    received: Vec<Received>,
    refused: Vec<(u16, String)>,
    attempts: usize,
}

#[derive(Clone)]
struct Shared {
    origin: String,
    subs: Arc<Mutex<HashMap<String, Sub>>>,
}

pub struct FakeWebPush {
    pub origin: String,
    shared: Shared,
}

impl FakeWebPush {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let shared = Shared {
            origin: origin.clone(),
            subs: Arc::default(),
        };
        let app = Router::new()
            .route("/push/{id}", post(receive))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { origin, shared }
    }

    /// A new subscription made with `application_server_key` (base64url, uncompressed).
    pub fn subscribe(&self, application_server_key: &str) -> Subscription {
        let secret = SecretKey::random(&mut OsRng);
        let public = secret
            .public_key()
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        let mut auth = vec![0u8; 16];
        OsRng.fill_bytes(&mut auth);
        let id = uuid::Uuid::new_v4().simple().to_string();
        let subscription = Subscription {
            id: id.clone(),
            endpoint: format!("{}/push/{id}", self.origin),
            p256dh: URL_SAFE_NO_PAD.encode(&public),
            auth: URL_SAFE_NO_PAD.encode(&auth),
        };
        self.shared.subs.lock().unwrap().insert(
            id,
            Sub {
                secret,
                public,
                auth,
                server_key: application_server_key.to_owned(),
                script: VecDeque::new(),
                received: Vec::new(),
                refused: Vec::new(),
                attempts: 0,
            },
        );
        subscription
    }

    /// The next answers for `subscription`, in order; 201 after them.
    pub fn script(&self, subscription: &Subscription, answers: impl IntoIterator<Item = Answer>) {
        self.with(subscription, |sub| sub.script.extend(answers));
    }

    pub fn received(&self, subscription: &Subscription) -> Vec<Received> {
        self.with(subscription, |sub| sub.received.clone())
    }

    /// Requests that failed a check: the status answered and why.
    pub fn refused(&self, subscription: &Subscription) -> Vec<(u16, String)> {
        self.with(subscription, |sub| sub.refused.clone())
    }

    pub fn attempts(&self, subscription: &Subscription) -> usize {
        self.with(subscription, |sub| sub.attempts)
    }

    fn with<T>(&self, subscription: &Subscription, f: impl FnOnce(&mut Sub) -> T) -> T {
        f(self
            .shared
            .subs
            .lock()
            .unwrap()
            .get_mut(&subscription.id)
            .unwrap())
    }
}

async fn receive(
    State(shared): State<Shared>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let answer = {
        let mut subs = shared.subs.lock().unwrap();
        let Some(sub) = subs.get_mut(&id) else {
            return (StatusCode::NOT_FOUND, "no such subscription").into_response();
        };
        sub.attempts += 1;
        match check(&shared.origin, sub, &headers, &body) {
            Err((status, reason)) => {
                sub.refused.push((status.as_u16(), reason.clone()));
                return (status, reason).into_response();
            }
            Ok(received) => {
                let answer = sub.script.pop_front().unwrap_or(Answer::Status(201));
                if matches!(answer, Answer::Status(200..=299)) {
                    sub.received.push(received);
                }
                answer
            }
        }
    };
    match answer {
        Answer::Status(status) => {
            let status = StatusCode::from_u16(status).unwrap();
            let location = format!("{}/message/{}", shared.origin, uuid::Uuid::new_v4());
            (status, [("location", location)]).into_response()
        }
        Answer::RetryAfter(status, after) => (
            StatusCode::from_u16(status).unwrap(),
            [("retry-after", after)],
            "slow down",
        )
            .into_response(),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::CREATED.into_response()
        }
    }
}

type Refusal = (StatusCode, String);

fn check(origin: &str, sub: &Sub, headers: &HeaderMap, body: &[u8]) -> Result<Received, Refusal> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let unauthorized = |reason: &str| (StatusCode::UNAUTHORIZED, reason.to_owned());
    let forbidden = |reason: String| (StatusCode::FORBIDDEN, reason);
    let bad = |reason: String| (StatusCode::BAD_REQUEST, reason);

    // VAPID (RFC 8292): `Authorization: vapid t=<jwt>, k=<key>`.
    let authorization = header("authorization").ok_or_else(|| unauthorized("no Authorization"))?;
    let params = authorization
        .strip_prefix("vapid ")
        .ok_or_else(|| unauthorized("not the vapid scheme"))?;
    let mut token = None;
    let mut key = None;
    for param in params.split(',') {
        match param.trim().split_once('=') {
            Some(("t", value)) => token = Some(value.to_owned()),
            Some(("k", value)) => key = Some(value.to_owned()),
            _ => return Err(unauthorized("unknown vapid parameter")),
        }
    }
    let (token, key) = token
        .zip(key)
        .ok_or_else(|| unauthorized("vapid t= or k= missing"))?;
    if key != sub.server_key {
        return Err(forbidden(
            "k= is not the key the subscription was made with".into(),
        ));
    }
    let raw_key = URL_SAFE_NO_PAD
        .decode(&key)
        .map_err(|_| unauthorized("k= is not base64url"))?;
    if raw_key.len() != 65 || raw_key[0] != 4 {
        return Err(unauthorized("k= is not an uncompressed P-256 point"));
    }
    let decoding_key = DecodingKey::from_ec_components(
        &URL_SAFE_NO_PAD.encode(&raw_key[1..33]),
        &URL_SAFE_NO_PAD.encode(&raw_key[33..]),
    )
    .map_err(|error| unauthorized(&format!("k=: {error}")))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[origin]);
    validation.set_required_spec_claims(&["exp", "aud", "sub"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<serde_json::Value>(&token, &decoding_key, &validation)
        .map_err(|error| forbidden(format!("vapid token: {error}")))?
        .claims;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let exp = claims["exp"].as_u64().unwrap_or(0);
    if exp > now + 24 * 3600 {
        return Err(forbidden("vapid token expires more than 24 h out".into()));
    }
    let subject = claims["sub"].as_str().unwrap_or_default();
    if !(subject.starts_with("mailto:") || subject.starts_with("https:")) {
        return Err(forbidden(format!("vapid sub {subject:?}")));
    }

    // The headers RFC 8030 and RFC 8291 ask for.
    if header("content-encoding").as_deref() != Some("aes128gcm") {
        return Err(bad("Content-Encoding must be aes128gcm".into()));
    }
    let ttl = header("ttl")
        .and_then(|ttl| ttl.parse::<u64>().ok())
        .ok_or_else(|| bad("TTL missing or not a number".into()))?;
    let urgency = header("urgency");
    if let Some(urgency) = &urgency
        && !["very-low", "low", "normal", "high"].contains(&urgency.as_str())
    {
        return Err(bad(format!("Urgency {urgency:?}")));
    }
    let topic = header("topic");
    if let Some(topic) = &topic
        && (topic.len() > 32
            || !topic
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    {
        return Err(bad(format!("Topic {topic:?}")));
    }
    if body.len() > 4096 {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "over 4096 bytes".to_owned()));
    }
    let plaintext = decrypt(&sub.secret, &sub.public, &sub.auth, body).map_err(bad)?;
    let payload = serde_json::from_slice(&plaintext)
        .map_err(|error| bad(format!("payload is not JSON: {error}")))?;
    Ok(Received {
        payload,
        plaintext_len: plaintext.len(),
        ttl,
        urgency,
        topic,
        content_type: header("content-type"),
        token,
        claims,
    })
}

/// RFC 8291 decryption, as the browser does it: the header's key id is the application
/// server's ephemeral public key; one record, ending in the 0x02 delimiter and padding.
pub fn decrypt(
    ua_secret: &SecretKey,
    ua_public: &[u8],
    auth: &[u8],
    body: &[u8],
) -> Result<Vec<u8>, String> {
    if body.len() < 21 {
        return Err("shorter than the header".into());
    }
    let salt = &body[..16];
    let record_size = u32::from_be_bytes(body[16..20].try_into().unwrap()) as usize;
    let id_len = body[20] as usize;
    if id_len != 65 || body.len() < 21 + id_len {
        return Err(format!("key id of {id_len} bytes"));
    }
    let as_public = &body[21..21 + id_len];
    let ciphertext = &body[21 + id_len..];
    if record_size < 18 || ciphertext.len() > record_size || ciphertext.len() < 17 {
        return Err(format!(
            "{} bytes of record for record size {record_size}",
            ciphertext.len()
        ));
    }
    let as_key = PublicKey::from_sec1_bytes(as_public).map_err(|_| "key id is not a point")?;
    let shared = p256::ecdh::diffie_hellman(ua_secret.to_nonzero_scalar(), as_key.as_affine());
    let mut ikm = [0u8; 32];
    Hkdf::<Sha256>::new(Some(auth), &shared.raw_secret_bytes()[..])
        .expand_multi_info(&[b"WebPush: info\0", ua_public, as_public], &mut ikm)
        .unwrap();
    let keys = Hkdf::<Sha256>::new(Some(salt), &ikm);
    let mut cek = [0u8; 16];
    let mut nonce = [0u8; 12];
    keys.expand(b"Content-Encoding: aes128gcm\0", &mut cek)
        .unwrap();
    keys.expand(b"Content-Encoding: nonce\0", &mut nonce)
        .unwrap();
    let mut record = Aes128Gcm::new_from_slice(&cek)
        .unwrap()
        .decrypt(&Nonce::from(nonce), ciphertext)
        .map_err(|_| "the record does not decrypt".to_owned())?;
    // Strip the padding: zeros, then the last record's delimiter 0x02.
    while record.last() == Some(&0) {
        record.pop();
    }
    if record.pop() != Some(2) {
        return Err("no last-record delimiter".into());
    }
    Ok(record)
}
