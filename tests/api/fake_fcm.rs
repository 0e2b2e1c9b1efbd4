//! A stand-in for FCM on loopback: Google's OAuth token endpoint (the JWT bearer grant,
//! checked against the test service account's public key) and the HTTP v1
//! `messages:send` endpoint (checked for a token it issued, the project, and the message's
//! shape, unknown fields refused as FCM refuses them). Records what it accepted, and
//! answers from a script when told to.

use std::{
    collections::{HashSet, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
};

use axum::{
    Form, Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::post,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};
use serde::Deserialize;
use serde_json::{Value, json};

pub const PROJECT_ID: &str = "caregraph-test";
pub const CLIENT_EMAIL: &str = "push@caregraph-test.iam.gserviceaccount.com";
pub const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const PRIVATE_KEY: &str = include_str!("keys/fcm_service_account.pem");
const PUBLIC_KEY: &str = include_str!("keys/fcm_service_account.pub.pem");

/// One `messages:send` request that passed authentication and validation.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub authorization: String,
    pub content_type: Option<String>,
    /// The `message` object.
    pub message: Value,
}

/// A scripted answer to the next `messages:send`.
#[derive(Debug, Clone)]
pub enum Reply {
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Value,
    },
    /// Never answers.
    Hang,
}

impl Reply {
    pub fn status(status: u16, body: Value) -> Self {
        Reply::Status {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn with_header(self, name: &'static str, value: impl Into<String>) -> Self {
        match self {
            Reply::Status {
                status,
                mut headers,
                body,
            } => {
                headers.push((name, value.into()));
                Reply::Status {
                    status,
                    headers,
                    body,
                }
            }
            Reply::Hang => Reply::Hang,
        }
    }

    /// FCM's error body: `{"error": {code, message, status, details: [FcmError]}}`.
    pub fn fcm_error(status: u16, grpc_status: &str, error_code: Option<&str>) -> Self {
        let details = error_code
            .map(|code| {
                vec![json!({
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": code,
                })]
            })
            .unwrap_or_default();
        Reply::status(
            status,
            json!({ "error": {
                "code": status,
                "message": format!("scripted {grpc_status}"),
                "status": grpc_status,
                "details": details,
            }}),
        )
    }
}

#[derive(Default)]
struct Inner {
    token_uri: String,
    issued: Mutex<HashSet<String>>,
    token_requests: AtomicUsize,
    /// What the token endpoint says `expires_in` is.
    expires_in: AtomicU64,
    /// Why token requests were refused, in order.
    refused_grants: Mutex<Vec<String>>,
    messages: Mutex<Vec<Recorded>>,
    script: Mutex<VecDeque<Reply>>,
    /// Tokens answered 404 UNREGISTERED.
    unregistered: Mutex<HashSet<String>>,
}

pub struct FakeFcm {
    pub base_url: String,
    pub token_uri: String,
    inner: Arc<Inner>,
}

impl FakeFcm {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let token_uri = format!("{base_url}/token");
        let inner = Arc::new(Inner {
            token_uri: token_uri.clone(),
            expires_in: AtomicU64::new(3599),
            ..Inner::default()
        });
        let app = Router::new()
            .route("/token", post(token))
            .fallback(send)
            .with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            base_url,
            token_uri,
            inner,
        }
    }

    /// The service account's JSON key file, as the Firebase console downloads it.
    pub fn service_account_json(&self) -> String {
        json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": "0123456789abcdef",
            "private_key": PRIVATE_KEY,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
        })
        .to_string()
    }

    pub fn token_requests(&self) -> usize {
        self.inner.token_requests.load(Ordering::SeqCst)
    }

    pub fn refused_grants(&self) -> Vec<String> {
        self.inner.refused_grants.lock().unwrap().clone()
    }

    pub fn set_expires_in(&self, seconds: u64) {
        self.inner.expires_in.store(seconds, Ordering::SeqCst);
    }

    pub fn messages(&self) -> Vec<Recorded> {
        self.inner.messages.lock().unwrap().clone()
    }

    /// Answers the next sends with `replies`, in order, then 200 again.
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

#[derive(Deserialize)]
struct Grant {
    grant_type: String,
    assertion: String,
}

#[derive(Deserialize)]
struct Assertion {
    iss: String,
    scope: String,
    aud: String,
    iat: u64,
    exp: u64,
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Google's checks on a JWT bearer grant.
fn check_grant(inner: &Inner, grant: &Grant) -> Result<(), String> {
    if grant.grant_type != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
        return Err(format!("unsupported grant_type {}", grant.grant_type));
    }
    let header = jsonwebtoken::decode_header(&grant.assertion).map_err(|e| e.to_string())?;
    if header.alg != Algorithm::RS256 {
        return Err(format!("alg {:?}", header.alg));
    }
    let key = DecodingKey::from_rsa_pem(PUBLIC_KEY.as_bytes()).unwrap();
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&inner.token_uri]);
    validation.set_issuer(&[CLIENT_EMAIL]);
    validation.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    validation.leeway = 0;
    let claims = decode::<Assertion>(&grant.assertion, &key, &validation)
        .map_err(|e| format!("invalid JWT: {e}"))?
        .claims;
    if claims.scope != SCOPE {
        return Err(format!("scope {}", claims.scope));
    }
    if claims.iss != CLIENT_EMAIL || claims.aud != inner.token_uri {
        return Err("iss or aud".to_owned());
    }
    let now = now_seconds();
    if claims.iat > now + 5 || claims.iat + 300 < now {
        return Err(format!("iat {} too far from now {now}", claims.iat));
    }
    if claims.exp <= claims.iat || claims.exp - claims.iat > 3600 {
        return Err(format!(
            "exp {} - iat {} over an hour",
            claims.exp, claims.iat
        ));
    }
    Ok(())
}

async fn token(State(inner): State<Arc<Inner>>, Form(grant): Form<Grant>) -> Response {
    inner.token_requests.fetch_add(1, Ordering::SeqCst);
    if let Err(reason) = check_grant(&inner, &grant) {
        inner.refused_grants.lock().unwrap().push(reason.clone());
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_grant", "error_description": reason })),
        )
            .into_response();
    }
    let access_token = format!("ya29.fake-{}", uuid::Uuid::new_v4().simple());
    inner.issued.lock().unwrap().insert(access_token.clone());
    axum::Json(json!({
        "access_token": access_token,
        "expires_in": inner.expires_in.load(Ordering::SeqCst),
        "token_type": "Bearer",
    }))
    .into_response()
}

fn invalid(reason: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": {
            "code": 400,
            "message": reason,
            "status": "INVALID_ARGUMENT",
            "details": [{
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "INVALID_ARGUMENT",
            }],
        }})),
    )
        .into_response()
}

/// Fields FCM knows, by object: anything else is "Invalid JSON payload received. Unknown
/// name".
fn only_known(object: &Value, at: &str, known: &[&str]) -> Result<(), String> {
    let map = object
        .as_object()
        .ok_or_else(|| format!("{at} is not an object"))?;
    match map.keys().find(|key| !known.contains(&key.as_str())) {
        Some(unknown) => Err(format!("Unknown name \"{unknown}\" at '{at}'")),
        None => Ok(()),
    }
}

fn string_map(object: &Value, at: &str) -> Result<(), String> {
    let map = object
        .as_object()
        .ok_or_else(|| format!("{at} is not a map"))?;
    match map.iter().find(|(_, value)| !value.is_string()) {
        Some((key, _)) => Err(format!("{at}.{key} is not a string")),
        None => Ok(()),
    }
}

/// The checks FCM makes on a message, for the fields caregraph sends.
fn check_message(body: &Value) -> Result<&Value, String> {
    only_known(body, "", &["message", "validate_only"])?;
    let message = &body["message"];
    only_known(
        message,
        "message",
        &[
            "token",
            "topic",
            "condition",
            "notification",
            "data",
            "android",
            "apns",
            "webpush",
            "fcm_options",
            "name",
        ],
    )?;
    if message["token"].as_str().is_none_or(str::is_empty) {
        return Err("message.token is required".to_owned());
    }
    only_known(
        &message["notification"],
        "message.notification",
        &["title", "body", "image"],
    )?;
    if !message["notification"]["title"].is_string() || !message["notification"]["body"].is_string()
    {
        return Err("notification title and body must be strings".to_owned());
    }
    string_map(&message["data"], "message.data")?;

    let android = &message["android"];
    only_known(
        android,
        "message.android",
        &[
            "collapse_key",
            "priority",
            "ttl",
            "restricted_package_name",
            "data",
            "notification",
            "fcm_options",
            "direct_boot_ok",
        ],
    )?;
    if !matches!(android["priority"].as_str(), Some("high" | "normal")) {
        return Err(format!("android.priority {}", android["priority"]));
    }
    if let Some(ttl) = android.get("ttl") {
        let ttl = ttl.as_str().unwrap_or("");
        let digits = ttl.strip_suffix('s').unwrap_or("x");
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(format!("android.ttl {ttl} is not a duration"));
        }
    }
    if android.get("collapse_key").is_some() && !android["collapse_key"].is_string() {
        return Err("android.collapse_key".to_owned());
    }
    only_known(
        &android["notification"],
        "message.android.notification",
        &[
            "title",
            "body",
            "icon",
            "color",
            "sound",
            "tag",
            "click_action",
            "channel_id",
            "notification_count",
            "notification_priority",
            "default_sound",
            "visibility",
        ],
    )?;
    if !android["notification"]["tag"].is_string()
        || !android["notification"]["notification_count"].is_u64()
    {
        return Err("android.notification tag or notification_count".to_owned());
    }

    let apns = &message["apns"];
    only_known(
        apns,
        "message.apns",
        &["headers", "payload", "fcm_options", "live_activity_token"],
    )?;
    string_map(&apns["headers"], "message.apns.headers")?;
    if !matches!(apns["headers"]["apns-priority"].as_str(), Some("10" | "5")) {
        return Err("apns-priority".to_owned());
    }
    if !apns["payload"]["aps"].is_object() {
        return Err("apns.payload.aps".to_owned());
    }

    let webpush = &message["webpush"];
    only_known(
        webpush,
        "message.webpush",
        &["headers", "data", "notification", "fcm_options"],
    )?;
    string_map(&webpush["headers"], "message.webpush.headers")?;
    if !matches!(
        webpush["headers"]["Urgency"].as_str(),
        Some("high" | "normal")
    ) {
        return Err("webpush Urgency".to_owned());
    }
    Ok(message)
}

fn status_reply(reply: Reply) -> Option<Response> {
    match reply {
        Reply::Hang => None,
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut response =
                (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            Some(response)
        }
    }
}

async fn send(
    State(inner): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(project) = uri
        .path()
        .strip_prefix("/v1/projects/")
        .and_then(|rest| rest.strip_suffix("/messages:send"))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let known = authorization
        .strip_prefix("Bearer ")
        .is_some_and(|token| inner.issued.lock().unwrap().contains(token));
    if !known {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": {
                "code": 401,
                "message": "Request had invalid authentication credentials.",
                "status": "UNAUTHENTICATED",
            }})),
        )
            .into_response();
    }
    if project != PROJECT_ID {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({ "error": {
                "code": 403,
                "message": "Permission denied on the project.",
                "status": "PERMISSION_DENIED",
            }})),
        )
            .into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return invalid("Invalid JSON payload received.".to_owned());
    };
    let message = match check_message(&body) {
        Ok(message) => message.clone(),
        Err(reason) => return invalid(reason),
    };
    let token = message["token"].as_str().unwrap_or("").to_owned();
    inner.messages.lock().unwrap().push(Recorded {
        authorization,
        content_type: headers
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        message,
    });
    if inner.unregistered.lock().unwrap().contains(&token) {
        return status_reply(Reply::fcm_error(404, "NOT_FOUND", Some("UNREGISTERED"))).unwrap();
    }
    let scripted = inner.script.lock().unwrap().pop_front();
    match scripted {
        None => axum::Json(json!({
            "name": format!("projects/{PROJECT_ID}/messages/0:{}", uuid::Uuid::new_v4().simple()),
        }))
        .into_response(),
        Some(reply) => match status_reply(reply) {
            Some(response) => response,
            None => std::future::pending().await,
        },
    }
}
