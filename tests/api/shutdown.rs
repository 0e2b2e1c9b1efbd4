//! Stopping gracefully: the listener closes, websockets are told to reconnect elsewhere
//! (1001), a request in flight still gets its answer, and the server finishes within its
//! grace period.

use std::time::Duration;

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
