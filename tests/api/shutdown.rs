//! Stopping gracefully: the listener closes, websockets are told to reconnect elsewhere
//! (1001), a request in flight still gets its answer, and the server finishes within its
//! grace period.

use std::{sync::Arc, time::Duration};

use axum::{body::Body, http::Request};
use caregraph::{
    http::{HttpState, router},
    shutdown::Shutdown,
};
use tower::ServiceExt;

use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Protocol, TestApp, WsEvent, test_config};

/// The grace period of these servers; the stop must finish well within it.
const GRACE: Duration = Duration::from_secs(5);

/// Reads the socket until the server closes it, passing over any message before.
async fn close_code(ws: &mut crate::helpers::WsClient) -> u16 {
    loop {
        match ws.next_event().await {
            WsEvent::Closed(code, _) => return code,
            WsEvent::Message(_) => continue,
        }
    }
}

#[tokio::test]
async fn a_stop_drains_requests_and_sends_websockets_away() {
    let mut config = test_config().await;
    config.shutdown_grace = GRACE;
    let mut app = TestApp::spawn_with(config).await;
    let ready = reqwest::get(format!("http://{}/ready", app.addr))
        .await
        .expect("ready answers");
    assert_eq!(ready.status().as_u16(), 200);
    let ready: serde_json::Value = ready.json().await.expect("ready JSON");
    assert_eq!(ready["status"], "ready");
    let user = app.register("CARE_RECIPIENT", "Ada").await;
    let mut sockets = Vec::new();
    for protocol in Protocol::BOTH {
        let mut ws = app.ws_as(protocol, &user).await;
        ws.subscribe("1", "subscription { bookingUpdated { id } }", json!({}))
            .await;
        sockets.push(ws);
    }

    // A request in flight: its headers are read (the server asked for the body with
    // `100 Continue`), its body not yet sent.
    let body = json!({ "query": "{ __typename }" }).to_string();
    let mut request = TcpStream::connect(app.addr).await.expect("connects");
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        app.addr,
        body.len()
    );
    request
        .write_all(head.as_bytes())
        .await
        .expect("headers sent");
    let mut interim = [0u8; 25];
    request
        .read_exact(&mut interim)
        .await
        .expect("100 Continue");
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n"),
        "{:?}",
        String::from_utf8_lossy(&interim)
    );

    app.begin_shutdown();
    for ws in &mut sockets {
        assert_eq!(close_code(ws).await, 1001);
    }
    // The listener closed before the sockets were told.
    assert!(TcpStream::connect(app.addr).await.is_err());

    request.write_all(body.as_bytes()).await.expect("body sent");
    let mut response = Vec::new();
    tokio::time::timeout(GRACE, request.read_to_end(&mut response))
        .await
        .expect("the response within the grace period")
        .expect("the response read");
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"__typename\":\"Query\""), "{response}");

    assert!(app.finished_within(GRACE).await);
}

/// `/ready` on a router whose shutdown began: the listener is closed by then, so only a
/// request already in flight sees this answer; the router is driven directly to ask it.
#[tokio::test]
async fn ready_answers_shutting_down_once_a_stop_began() {
    let config = test_config().await;
    let app = TestApp::spawn_with(config.clone()).await;
    let shutdown = Shutdown::default();
    let routes = router(HttpState {
        services: app.services().clone(),
        schema: caregraph::graphql::build(app.services(), &config.graphql),
        http: Arc::new(config.http.clone()),
        websocket: Arc::new(config.websocket.clone()),
        graphiql: false,
        sockets: Arc::default(),
        shutdown: shutdown.clone(),
        metrics: None,
    });
    let ready = async |routes: &axum::Router| {
        let request = Request::get("/ready")
            .body(Body::empty())
            .expect("a request");
        let response = routes.clone().oneshot(request).await.expect("an answer");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("a body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        (status, body["status"].clone())
    };
    assert_eq!(ready(&routes).await, (200, json!("ready")));
    shutdown.begin();
    assert_eq!(ready(&routes).await, (503, json!("shutting_down")));
}
