//! A fake FCM for the `delivery` scenario, run as its own process beside the server: a token
//! endpoint that grants any JWT bearer grant an access token, and `messages:send`, which
//! notes when each message arrived (by its `data.messageId`, else `data.notificationId`),
//! waits as long as FCM would take, then accepts it. The scenario reads what arrived over
//! HTTP (`/bench/stats`, `/bench/receipts`) and clears it (`/bench/reset`) before a run.
//!
//! The service account file it writes signs with a key made for this fake alone
//! (`bench/keys/fake_fcm_service_account.pem`): the server signs its grants with it, and
//! nothing checks them.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};

use crate::api::{Error, own_cpu_time};

const PRIVATE_KEY: &str = include_str!("../keys/fake_fcm_service_account.pem");
const PROJECT_ID: &str = "caregraph-bench";

/// When each push arrived, in nanoseconds since the Unix epoch: the server, the fake and the
/// load tool run on one machine and read the same wall clock.
#[derive(Default)]
struct Receipts {
    first: HashMap<String, u64>,
    total: u64,
    duplicates: u64,
    /// Sends without a `messageId` or `notificationId`.
    unnamed: u64,
}

#[derive(Clone)]
struct Fake {
    latency: Duration,
    receipts: Arc<Mutex<Receipts>>,
}

/// Nanoseconds since the Unix epoch.
pub fn wall_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// Writes a service account file whose `token_uri` is this fake's, then serves until killed.
pub async fn serve(
    addr: SocketAddr,
    latency: Duration,
    service_account: Option<&str>,
) -> Result<bool, Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    if let Some(path) = service_account {
        let account = json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": "bench",
            "private_key": PRIVATE_KEY,
            "client_email": format!("bench@{PROJECT_ID}.iam.gserviceaccount.com"),
            "token_uri": format!("http://{addr}/token"),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&account)?)?;
    }
    let fake = Fake {
        latency,
        receipts: Arc::default(),
    };
    let app = Router::new()
        .route("/token", post(token))
        .route("/bench/stats", get(stats))
        .route("/bench/receipts", get(receipts))
        .route("/bench/reset", post(reset))
        .fallback(send)
        .with_state(fake);
    println!(
        "fake FCM on http://{addr}: messages:send answers 200 after {} ms",
        latency.as_millis()
    );
    println!("  start the server with FCM_API_BASE_URL=http://{addr}");
    if let Some(path) = service_account {
        println!("  and FCM_SERVICE_ACCOUNT_FILE={path}");
    }
    axum::serve(listener, app).await?;
    Ok(true)
}

async fn token() -> Json<Value> {
    Json(
        json!({ "access_token": "bench-access-token", "token_type": "Bearer", "expires_in": 3600 }),
    )
}

/// `POST /v1/projects/{project}/messages:send`.
async fn send(State(fake): State<Fake>, uri: Uri, body: Bytes) -> Response {
    let arrived = wall_nanos();
    if !uri.path().ends_with("/messages:send") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let data = &message["message"]["data"];
    let key = data["messageId"]
        .as_str()
        .or_else(|| data["notificationId"].as_str())
        .map(str::to_owned);
    let serial = {
        let mut receipts = fake.receipts.lock().unwrap_or_else(|p| p.into_inner());
        receipts.total += 1;
        match key {
            Some(key) => {
                if receipts.first.insert(key, arrived).is_some() {
                    receipts.duplicates += 1;
                }
            }
            None => receipts.unnamed += 1,
        }
        receipts.total
    };
    tokio::time::sleep(fake.latency).await;
    Json(json!({ "name": format!("projects/{PROJECT_ID}/messages/{serial}") })).into_response()
}

async fn stats(State(fake): State<Fake>) -> Json<Value> {
    let receipts = fake.receipts.lock().unwrap_or_else(|p| p.into_inner());
    Json(json!({
        "unique": receipts.first.len(),
        "total": receipts.total,
        "duplicates": receipts.duplicates,
        "unnamed": receipts.unnamed,
        "cpuMicros": own_cpu_time().map_or(0, |cpu| cpu.as_micros() as u64),
    }))
}

async fn receipts(State(fake): State<Fake>) -> Json<Value> {
    let receipts = fake.receipts.lock().unwrap_or_else(|p| p.into_inner());
    Json(json!(receipts.first))
}

async fn reset(State(fake): State<Fake>) -> StatusCode {
    *fake.receipts.lock().unwrap_or_else(|p| p.into_inner()) = Receipts::default();
    StatusCode::NO_CONTENT
}
