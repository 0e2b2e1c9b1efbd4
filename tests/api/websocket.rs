//! graphql-ws: authentication in connection_init, close codes, and bookingUpdated reaching
//! exactly the two parties, on both subprotocols.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::helpers::{Protocol, TEST_JWT_SECRET, TestApp, WsEvent};

const BOOKING_UPDATED: &str =
    "subscription { bookingUpdated { id status caregiver { displayName } } }";

#[tokio::test]
async fn booking_updates_reach_both_parties_and_nobody_else() {
    for protocol in Protocol::BOTH {
        let app = TestApp::spawn().await;
        let recipient = app.register("CARE_RECIPIENT", "Sara").await;
        let caregiver = app.register("CAREGIVER", "Tiago").await;
        let stranger = app.register("CAREGIVER", "Uma").await;
        let mut sockets = Vec::new();
        for user in [&recipient, &caregiver, &stranger] {
            let mut ws = app.ws_as(protocol, user).await;
            ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
            sockets.push(ws);
        }
        // Give the subscriptions a moment to attach to the bus before the first change.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (starts, ends) = app.clock_after_hours(24);
        let created = app
            .ok(&recipient, "mutation($input: CreateBookingInput!) { createBooking(input: $input) { id } }",
                json!({ "input": { "caregiverId": caregiver.id, "startsAt": starts, "endsAt": ends } }))
            .await;
        let id = created["createBooking"]["id"].clone();
        app.ok(
            &caregiver,
            "mutation($id: UUID!) { acceptBooking(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;

        let [recipient_ws, caregiver_ws, stranger_ws] = &mut sockets[..] else {
            unreachable!()
        };
        for ws in [recipient_ws, caregiver_ws] {
            let first = ws.next_data("b").await;
            assert_eq!(first["bookingUpdated"]["id"], id, "{protocol:?}");
            assert_eq!(first["bookingUpdated"]["status"], "PENDING");
            assert_eq!(first["bookingUpdated"]["caregiver"]["displayName"], "Tiago");
            let second = ws.next_data("b").await;
            assert_eq!(second["bookingUpdated"]["status"], "ACCEPTED");
        }
        stranger_ws.expect_silence(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_catches_up_from_the_database() {
    let mut config = crate::helpers::test_config().await;
    config.bus_capacity = 2;
    let app = TestApp::spawn_with(config).await;
    let recipient = app.register("CARE_RECIPIENT", "Xavi").await;
    let caregiver = app.register("CAREGIVER", "Yara").await;
    let mut ws = app.ws_as(Protocol::TransportWs, &caregiver).await;
    ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Ten events published in one burst overflow a bus that keeps two.
    let (starts, ends) = app.clock_after_hours(24);
    let created = app
        .ok(
            &recipient,
            "mutation($input: CreateBookingInput!) { createBooking(input: $input) {
                series { occurrences { id } } } }",
            json!({ "input": { "caregiverId": caregiver.id, "startsAt": starts, "endsAt": ends,
                "recurrence": { "frequency": "DAILY", "count": 10 } } }),
        )
        .await;
    let mut missing: std::collections::HashSet<String> =
        created["createBooking"]["series"]["occurrences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|occurrence| occurrence["id"].as_str().unwrap().to_owned())
            .collect();
    while !missing.is_empty() {
        let update = ws.next_data("b").await;
        missing.remove(update["bookingUpdated"]["id"].as_str().unwrap());
    }
}

#[tokio::test]
async fn a_bad_or_missing_token_closes_with_4403() {
    let app = TestApp::spawn().await;
    for protocol in Protocol::BOTH {
        for payload in [
            json!({ "Authorization": "Bearer not-a-token" }),
            json!({}),
            json!({ "token": "x.y.z" }),
        ] {
            let mut ws = app.ws(protocol).await;
            ws.send(json!({ "type": "connection_init", "payload": payload }))
                .await;
            let (code, reason) = ws.expect_close().await;
            assert_eq!(code, 4403, "{protocol:?} {payload}: {reason}");
        }
    }
}

#[tokio::test]
async fn both_payload_shapes_authenticate() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Vera").await;
    for protocol in Protocol::BOTH {
        let mut ws = app.ws(protocol).await;
        ws.init(json!({ "token": user.token })).await;
        let mut ws = app.ws(protocol).await;
        ws.init(json!({ "Authorization": format!("Bearer {}", user.token) }))
            .await;
    }
}

#[tokio::test]
async fn a_silent_socket_is_closed_with_4408() {
    let app = TestApp::spawn().await;
    for protocol in Protocol::BOTH {
        let mut ws = app.ws(protocol).await;
        let (code, _) = ws.expect_close().await;
        assert_eq!(code, 4408, "{protocol:?}");
    }
}

#[tokio::test]
async fn subscribing_before_connection_init_closes_with_4401() {
    let app = TestApp::spawn().await;
    let mut ws = app.ws(Protocol::TransportWs).await;
    ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
    let (code, _) = ws.expect_close().await;
    assert_eq!(code, 4401);
}

#[tokio::test]
async fn the_socket_closes_when_its_token_expires() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Wes").await;
    let now = app.clock_now();
    let claims = json!({ "sub": user.id, "iat": now, "exp": now + 1, "iss": "caregraph", "aud": "caregraph" });
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes()),
    )
    .unwrap();
    for protocol in Protocol::BOTH {
        let mut ws = app.ws(protocol).await;
        ws.init(json!({ "token": token })).await;
        ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
        match ws.next_event_within(Duration::from_secs(3)).await {
            Some(WsEvent::Closed(code, reason)) => {
                assert_eq!(code, 4403, "{protocol:?}");
                assert!(reason.contains("expired"), "{reason}");
            }
            other => panic!("expected a close at expiry, got {other:?}"),
        }
    }
}
