//! A stand-in for Twilio's Video REST API on loopback that records every request exactly.

use std::sync::{Arc, Mutex};

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// One request as Twilio would have received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub form: Vec<(String, String)>,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

pub struct FakeTwilio {
    pub base_url: String,
    log: Log,
}

impl FakeTwilio {
    pub async fn start() -> Self {
        let log: Log = Arc::default();
        let app = Router::new().fallback(record).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base_url, log }
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }
}

async fn record(
    State(log): State<Log>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = uri.path().to_owned();
    log.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        authorization: headers
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        form: form.clone(),
    });
    match path.strip_prefix("/v1/Rooms") {
        Some("") if method == Method::POST => {
            let sid = format!("RM{}", uuid::Uuid::new_v4().simple());
            (
                StatusCode::CREATED,
                Json(json!({ "sid": sid, "status": "in-progress" })),
            )
                .into_response()
        }
        Some(sid) if method == Method::POST && sid.starts_with("/RM") => {
            Json(json!({ "sid": &sid[1..], "status": "completed" })).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}
