//! `GET /metrics`: the families exist and move with the traffic. The recorder is shared by
//! every server of the test process, so values are compared before and after, or bounded
//! below, never matched exactly.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;

use crate::helpers::{Protocol, TestApp, data};

/// A scrape of `app`, as text.
async fn scrape(app: &TestApp) -> String {
    let response = reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .expect("metrics answer");
    assert_eq!(response.status().as_u16(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("metrics text")
}

/// The value of the sample named `series` (name and labels as rendered), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Scrapes until `reached` holds for the text, for at most five seconds.
async fn scrape_until(app: &TestApp, what: &str, reached: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = scrape(app).await;
        if reached(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} never held:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_families_move_with_queries_sends_errors_and_sockets() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Ada").await;
    let caregiver = app.register("CAREGIVER", "Grace").await;
    let (_, session) = app.booking_chat(&recipient, &caregiver).await;
    let before = scrape(&app).await;

    data(
        app.graphql(Some(&recipient.token), "{ me { id } }", json!({}))
            .await,
    );
    data(
        app.graphql(
            Some(&recipient.token),
            "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id } }",
            json!({ "input": { "sessionId": session, "body": "hello",
                               "clientMessageId": uuid::Uuid::now_v7().to_string() } }),
        )
        .await,
    );
    let refused = app
        .graphql(Some(&recipient.token), "{ noSuchField }", json!({}))
        .await;
    assert!(refused.get("errors").is_some(), "{refused}");
    let mut ws = app.ws_as(Protocol::TransportWs, &recipient).await;
    ws.subscribe("1", "subscription { bookingUpdated { id } }", json!({}))
        .await;

    let live = r#"caregraph_subscriptions_live{field="bookingUpdated"}"#;
    let after = scrape_until(&app, "a live bookingUpdated", |text| {
        sample(text, live) >= 1.0
    })
    .await;
    assert!(
        sample(&after, "caregraph_websockets_open") >= 1.0,
        "{after}"
    );
    for series in [
        r#"caregraph_graphql_operations_total{type="query"}"#,
        r#"caregraph_graphql_operations_total{type="mutation"}"#,
        r#"caregraph_graphql_operations_total{type="subscription"}"#,
        r#"caregraph_graphql_errors_total{code="BAD_USER_INPUT"}"#,
        "caregraph_send_message_seconds_count",
    ] {
        assert!(
            sample(&after, series) > sample(&before, series),
            "{series} did not move:\n{after}"
        );
    }
    assert!(
        after.contains(r#"caregraph_send_message_seconds_bucket{le="0.001"}"#),
        "{after}"
    );
    assert!(
        after.contains(r#"caregraph_db_pool_connections{state="idle"}"#),
        "{after}"
    );
    assert!(
        after.contains(r#"caregraph_db_pool_connections{state="in_use"}"#),
        "{after}"
    );
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let mut config = crate::helpers::test_config().await;
    config.metrics_enabled = false;
    let app = TestApp::spawn_with(config).await;
    let response = reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 404);
}
