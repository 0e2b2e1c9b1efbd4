//! A stand-in for an APNs gateway on loopback: HTTP/2 only, without TLS (h2c, as the
//! sender speaks it to an `http://` base URL). Checks the ES256 provider token against the
//! test key's public half, the device token in the path, the headers and the payload as
//! APNs does, answering with APNs' reasons; records what it accepted and answers from a
//! script when told to.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    convert::Infallible,
    sync::{Arc, Mutex},
};

use http_body_util::{BodyExt, Full};
use hyper::{
    Request, Response, StatusCode, Version,
    body::{Bytes, Incoming},
    server::conn::http2,
    service::service_fn,
};
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use serde_json::{Value, json};

pub const KEY_ID: &str = "ABC123DEFG";
pub const TEAM_ID: &str = "DEF123GHIJ";
pub const TOPIC: &str = "com.example.caregraph";
pub const AUTH_KEY: &str = include_str!("keys/apns_auth_key.p8");
const PUBLIC_KEY: &str = include_str!("keys/apns_auth_key.pub.pem");

/// One push that passed every check.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub version: Version,
    pub device_token: String,
    /// Header names lowercased.
    pub headers: HashMap<String, String>,
    pub payload: Value,
    pub payload_len: usize,
    /// The provider token's `iat`.
    pub iat: u64,
}

/// A scripted answer to the next push.
#[derive(Debug, Clone)]
pub enum Reply {
    Status {
        status: u16,
        reason: Option<&'static str>,
        retry_after: Option<String>,
    },
    Hang,
}

impl Reply {
    pub fn reason(status: u16, reason: &'static str) -> Self {
        Reply::Status {
            status,
            reason: Some(reason),
            retry_after: None,
        }
    }

    pub fn retry_after(status: u16, reason: &'static str, after: &str) -> Self {
        Reply::Status {
            status,
            reason: Some(reason),
            retry_after: Some(after.to_owned()),
        }
    }
}

#[derive(Default)]
struct Inner {
    pushes: Mutex<Vec<Recorded>>,
    /// Why requests were refused by the checks, in order.
    refused: Mutex<Vec<String>>,
    script: Mutex<VecDeque<Reply>>,
    unregistered: Mutex<HashSet<String>>,
}

pub struct FakeApns {
    pub base_url: String,
    inner: Arc<Inner>,
}

type Answer = Response<Full<Bytes>>;

impl FakeApns {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Inner::default());
        let state = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(&state, request).await) }
                    });
                    // HTTP/2 only: an HTTP/1.1 request fails the connection preface.
                    let _ = http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { base_url, inner }
    }

    pub fn pushes(&self) -> Vec<Recorded> {
        self.inner.pushes.lock().unwrap().clone()
    }

    pub fn refused(&self) -> Vec<String> {
        self.inner.refused.lock().unwrap().clone()
    }

    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.script.lock().unwrap().extend(replies);
    }

    pub fn unregister(&self, token: &str) {
        self.inner
            .unregistered
            .lock()
            .unwrap()
            .insert(token.to_owned());
    }
}

fn answer(status: u16, reason: Option<&str>, retry_after: Option<&str>) -> Answer {
    let body = match reason {
        Some(reason) => json!({ "reason": reason }).to_string(),
        None => String::new(),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    if let Some(after) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
    }
    response
}

#[derive(Deserialize)]
struct ProviderClaims {
    iss: String,
    iat: u64,
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// APNs' checks of the provider token: `bearer <jwt>`, ES256 with our `kid`, signed by the
/// key, our team as `iss`, `iat` within the last hour.
fn check_token(authorization: Option<&str>) -> Result<u64, (u16, &'static str, String)> {
    let jwt = authorization
        .and_then(|value| value.strip_prefix("bearer "))
        .ok_or((403, "MissingProviderToken", "no bearer token".to_owned()))?;
    let header = jsonwebtoken::decode_header(jwt)
        .map_err(|e| (403, "InvalidProviderToken", e.to_string()))?;
    if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(KEY_ID) {
        return Err((
            403,
            "InvalidProviderToken",
            format!("alg {:?} kid {:?}", header.alg, header.kid),
        ));
    }
    let key = DecodingKey::from_ec_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_required_spec_claims(&["iss"]);
    validation.set_issuer(&[TEAM_ID]);
    validation.validate_exp = false;
    let claims = decode::<ProviderClaims>(jwt, &key, &validation)
        .map_err(|e| (403, "InvalidProviderToken", e.to_string()))?
        .claims;
    if claims.iss != TEAM_ID {
        return Err((403, "InvalidProviderToken", "iss".to_owned()));
    }
    let now = now_seconds();
    if claims.iat > now + 5 {
        return Err((403, "InvalidProviderToken", "iat in the future".to_owned()));
    }
    if claims.iat + 3600 < now {
        return Err((403, "ExpiredProviderToken", "older than an hour".to_owned()));
    }
    Ok(claims.iat)
}

async fn handle(inner: &Inner, request: Request<Incoming>) -> Answer {
    match check(inner, request).await {
        Ok(answer) => answer,
        Err((status, reason, why)) => {
            inner
                .refused
                .lock()
                .unwrap()
                .push(format!("{reason}: {why}"));
            answer(status, Some(reason), None)
        }
    }
}

type Refusal = (u16, &'static str, String);

async fn check(inner: &Inner, request: Request<Incoming>) -> Result<Answer, Refusal> {
    let (parts, body) = request.into_parts();
    if parts.method != hyper::Method::POST {
        return Err((405, "MethodNotAllowed", parts.method.to_string()));
    }
    let device_token = parts
        .uri
        .path()
        .strip_prefix("/3/device/")
        .ok_or((404, "BadPath", parts.uri.path().to_owned()))?
        .to_owned();
    let headers: HashMap<String, String> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let iat = check_token(headers.get("authorization").map(String::as_str))?;
    if device_token.is_empty() || !device_token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err((400, "BadDeviceToken", device_token));
    }
    match headers.get("apns-topic") {
        None => return Err((400, "MissingTopic", String::new())),
        Some(topic) if topic != TOPIC => {
            return Err((400, "DeviceTokenNotForTopic", topic.clone()));
        }
        Some(_) => {}
    }
    if headers.get("apns-push-type").map(String::as_str) != Some("alert") {
        return Err((
            400,
            "InvalidPushType",
            format!("{:?}", headers.get("apns-push-type")),
        ));
    }
    if let Some(priority) = headers.get("apns-priority")
        && !matches!(priority.as_str(), "10" | "5" | "1")
    {
        return Err((400, "BadPriority", priority.clone()));
    }
    if let Some(id) = headers.get("apns-id") {
        let canonical = uuid::Uuid::parse_str(id)
            .is_ok_and(|uuid| uuid.hyphenated().to_string() == id.to_lowercase());
        if !canonical {
            return Err((400, "BadMessageId", id.clone()));
        }
    }
    if let Some(collapse) = headers.get("apns-collapse-id")
        && collapse.len() > 64
    {
        return Err((400, "BadCollapseId", collapse.clone()));
    }
    if let Some(expiration) = headers.get("apns-expiration")
        && expiration.parse::<u64>().is_err()
    {
        return Err((400, "BadExpirationDate", expiration.clone()));
    }
    let bytes = body
        .collect()
        .await
        .map_err(|e| (400, "BadPayload", e.to_string()))?
        .to_bytes();
    if bytes.is_empty() {
        return Err((400, "PayloadEmpty", String::new()));
    }
    if bytes.len() > 4096 {
        return Err((413, "PayloadTooLarge", bytes.len().to_string()));
    }
    let payload: Value =
        serde_json::from_slice(&bytes).map_err(|e| (400, "BadPayload", e.to_string()))?;
    if !payload["aps"].is_object() {
        return Err((400, "BadPayload", "no aps dictionary".to_owned()));
    }
    inner.pushes.lock().unwrap().push(Recorded {
        version: parts.version,
        device_token: device_token.clone(),
        headers: headers.clone(),
        payload,
        payload_len: bytes.len(),
        iat,
    });
    if inner.unregistered.lock().unwrap().contains(&device_token) {
        return Ok(answer(410, Some("Unregistered"), None));
    }
    let scripted = inner.script.lock().unwrap().pop_front();
    match scripted {
        None => {
            let mut ok = answer(200, None, None);
            if let Some(id) = headers.get("apns-id") {
                ok.headers_mut().insert("apns-id", id.parse().unwrap());
            }
            Ok(ok)
        }
        Some(Reply::Status {
            status,
            reason,
            retry_after,
        }) => Ok(answer(status, reason, retry_after.as_deref())),
        Some(Reply::Hang) => std::future::pending().await,
    }
}
