//! graphql-ws: authentication in connection_init, close codes, bookingUpdated reaching
//! exactly the two parties, and the limits on what one socket or user may hold, on both
//! subprotocols.

use std::time::Duration;

use caregraph::config::WebSocketConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::{
    Protocol, TEST_JWT_SECRET, TestApp, TestUser, WsClient, WsEvent, error_code, test_config,
};

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
        let id = app.book(&recipient, &caregiver, 24).await;
        app.act(&caregiver, "acceptBooking", &id).await;

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
    let created = app
        .book_series(
            &recipient,
            &caregiver,
            24,
            json!({ "frequency": "DAILY", "count": 10 }),
        )
        .await;
    let mut missing: std::collections::HashSet<String> = created["series"]["occurrences"]
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
            ws.send_init(payload.clone()).await;
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
async fn a_token_under_headers_authenticates_and_a_bad_one_closes_with_4403() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Wren").await;
    let bearer = format!("Bearer {}", user.token);
    for protocol in Protocol::BOTH {
        for key in ["Authorization", "authorization", "AUTHORIZATION"] {
            let mut ws = app.ws(protocol).await;
            ws.init(json!({ "headers": { key: bearer } })).await;
        }
        for payload in [
            json!({ "headers": { "Authorization": "Bearer not-a-token" } }),
            json!({ "headers": { "authorization": "Basic abc" } }),
            json!({ "headers": {} }),
        ] {
            let mut ws = app.ws(protocol).await;
            ws.send_init(payload.clone()).await;
            let (code, reason) = ws.expect_close().await;
            assert_eq!(code, 4403, "{protocol:?} {payload}: {reason}");
        }
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

/// A server whose websocket settings `tune` changed from the test defaults.
async fn spawn_with_websocket(tune: impl FnOnce(&mut WebSocketConfig)) -> TestApp {
    let mut config = test_config().await;
    tune(&mut config.websocket);
    TestApp::spawn_with(config).await
}

/// Proves the server still serves `user`: over HTTP, and on a new socket.
async fn still_serves(app: &TestApp, protocol: Protocol, user: &TestUser) {
    let me = app.ok(user, "{ me { id } }", json!({})).await;
    assert_eq!(me["me"]["id"], user.id.as_str());
    app.ws_as(protocol, user).await;
}

/// Before `connection_init` (the first message) and after it, at the limit's edge and far
/// past it: the socket closes with 1009 and the server serves everyone else as before.
#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let app = TestApp::spawn().await;
    let user = app.register("CARE_RECIPIENT", "Abe").await;
    for protocol in Protocol::BOTH {
        for (initialised, size) in [(false, 65 * 1024), (false, 8 << 20), (true, 65 * 1024)] {
            let padding = " ".repeat(size);
            let mut ws = if initialised {
                let mut ws = app.ws_as(protocol, &user).await;
                ws.subscribe("b", &format!("{BOOKING_UPDATED}{padding}"), json!({}))
                    .await;
                ws
            } else {
                let mut ws = app.ws(protocol).await;
                let init = json!({ "type": "connection_init", "payload": { "token": padding } });
                ws.send_text(init.to_string()).await;
                ws
            };
            let (code, reason) = ws.expect_close().await;
            assert_eq!(code, 1009, "{protocol:?} {initialised} {size}: {reason}");
            still_serves(&app, protocol, &user).await;
        }
    }
}

#[tokio::test]
async fn a_message_at_the_limit_is_read() {
    let app = spawn_with_websocket(|ws| ws.max_message_bytes = 2048).await;
    let recipient = app.register("CARE_RECIPIENT", "Cai").await;
    let caregiver = app.register("CAREGIVER", "Dee").await;
    let mut ws = app.ws_as(Protocol::TransportWs, &caregiver).await;
    let message = |padding: usize| {
        json!({ "id": "b", "type": "subscribe",
            "payload": { "query": format!("{BOOKING_UPDATED}{}", " ".repeat(padding)) } })
        .to_string()
    };
    let exact = message(2048 - message(0).len());
    assert_eq!(exact.len(), 2048);
    ws.send_text(exact).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.book(&recipient, &caregiver, 48).await;
    assert_eq!(
        ws.next_data("b").await["bookingUpdated"]["status"],
        "PENDING"
    );
}

#[tokio::test]
async fn a_duplicate_subscription_id_closes_with_4409() {
    let app = TestApp::spawn().await;
    let user = app.register("CAREGIVER", "Eli").await;
    let mut ws = app.ws_as(Protocol::TransportWs, &user).await;
    ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
    ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!(code, 4409);
    assert_eq!(reason, "Subscriber for b already exists");
}

#[tokio::test]
async fn an_id_is_free_again_once_completed() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Fay").await;
    let caregiver = app.register("CAREGIVER", "Gus").await;
    for protocol in Protocol::BOTH {
        let mut ws = app.ws_as(protocol, &caregiver).await;
        ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
        ws.complete("b").await;
        ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.book(&recipient, &caregiver, 48).await;
        let next = next_result(&mut ws).await;
        assert_eq!(next["id"], "b", "{protocol:?}");
        ws.expect_silence(Duration::from_millis(300)).await;
    }
}

/// The legacy protocol's clients never reuse an id; its reference server restarts the
/// operation under a reused id, and so does this one: one stream, not two, and no close.
#[tokio::test]
async fn a_reused_id_on_the_legacy_protocol_restarts_the_subscription() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Hal").await;
    let caregiver = app.register("CAREGIVER", "Ivy").await;
    let mut ws = app.ws_as(Protocol::LegacyWs, &caregiver).await;
    ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
    ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.book(&recipient, &caregiver, 48).await;
    assert_eq!(
        ws.next_data("b").await["bookingUpdated"]["status"],
        "PENDING"
    );
    ws.expect_silence(Duration::from_millis(300)).await;
}

/// The next `next` or `data` message, past the `complete` the server sends for a completed id.
async fn next_result(ws: &mut WsClient) -> Value {
    loop {
        match ws.next_event().await {
            WsEvent::Message(message) if message["type"] == "complete" => continue,
            WsEvent::Message(message) => return message,
            closed => panic!("expected a result, got {closed:?}"),
        }
    }
}

/// The ids of the next `count` results, sorted: subscriptions deliver in no set order.
async fn ids_of_results(ws: &mut WsClient, count: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(count);
    while ids.len() < count {
        let message = next_result(ws).await;
        ids.push(message["id"].as_str().unwrap_or_default().to_owned());
    }
    ids.sort();
    ids
}

#[tokio::test]
async fn subscriptions_past_the_cap_are_refused_and_the_others_deliver() {
    let app = spawn_with_websocket(|ws| ws.max_subscriptions_per_socket = 2).await;
    let recipient = app.register("CARE_RECIPIENT", "Jo").await;
    let caregiver = app.register("CAREGIVER", "Kai").await;
    for protocol in Protocol::BOTH {
        let mut ws = app.ws_as(protocol, &caregiver).await;
        ws.subscribe("a", BOOKING_UPDATED, json!({})).await;
        ws.subscribe("b", BOOKING_UPDATED, json!({})).await;
        ws.subscribe("c", BOOKING_UPDATED, json!({})).await;
        let refusal = match ws.next_event().await {
            WsEvent::Message(message) if message["type"] == "error" => message,
            other => panic!("{protocol:?}: expected an error for c, got {other:?}"),
        };
        assert_eq!(refusal["id"], "c");
        let error = match protocol {
            Protocol::TransportWs => &refusal["payload"][0],
            Protocol::LegacyWs => &refusal["payload"],
        };
        assert_eq!(error_code(error), "TOO_MANY_SUBSCRIPTIONS", "{refusal}");

        tokio::time::sleep(Duration::from_millis(100)).await;
        app.book(&recipient, &caregiver, 48).await;
        assert_eq!(ids_of_results(&mut ws, 2).await, ["a", "b"], "{protocol:?}");

        // Completing one makes room on the same socket.
        ws.complete("a").await;
        ws.subscribe("c", BOOKING_UPDATED, json!({})).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.book(&recipient, &caregiver, 48).await;
        assert_eq!(ids_of_results(&mut ws, 2).await, ["b", "c"], "{protocol:?}");
    }
}

#[tokio::test]
async fn a_user_opening_sockets_too_fast_is_asked_to_retry_later() {
    let mut config = test_config().await;
    config.usage.socket_opens = caregraph::config::RateConfig {
        burst: 2,
        period: Duration::from_secs(60),
    };
    let app = TestApp::spawn_with(config).await;
    let user = app.register("CAREGIVER", "Noa").await;
    let other = app.register("CAREGIVER", "Oli").await;
    drop(app.ws_as(Protocol::TransportWs, &user).await);
    drop(app.ws_as(Protocol::LegacyWs, &user).await);
    // Both sockets are closed: it is the rate of opening, not how many are open, that is spent.
    let mut third = app.ws(Protocol::TransportWs).await;
    third.send_init(json!({ "token": user.token })).await;
    let (code, reason) = third.expect_close().await;
    assert_eq!(code, 1013);
    assert!(reason.contains("new sockets"), "{reason}");
    app.ws_as(Protocol::TransportWs, &other).await;

    app.clock.advance(chrono::Duration::seconds(60));
    app.ws_as(Protocol::TransportWs, &user).await;
}

#[tokio::test]
async fn a_user_starting_operations_too_fast_is_refused_per_operation() {
    let mut config = test_config().await;
    config.usage.socket_operations = caregraph::config::RateConfig {
        burst: 3,
        period: Duration::from_secs(60),
    };
    let app = TestApp::spawn_with(config).await;
    let recipient = app.register("CARE_RECIPIENT", "Pia").await;
    let caregiver = app.register("CAREGIVER", "Quim").await;
    let mut first = app.ws_as(Protocol::TransportWs, &caregiver).await;
    first.subscribe("a", BOOKING_UPDATED, json!({})).await;
    first.subscribe("b", BOOKING_UPDATED, json!({})).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    app.book(&recipient, &caregiver, 48).await;
    assert_eq!(ids_of_results(&mut first, 2).await, ["a", "b"]);
    // The allowance is the user's, across sockets.
    let mut second = app.ws_as(Protocol::LegacyWs, &caregiver).await;
    second.subscribe("c", BOOKING_UPDATED, json!({})).await;
    second.subscribe("d", BOOKING_UPDATED, json!({})).await;
    let refusal = match second.next_event().await {
        WsEvent::Message(message) if message["type"] == "error" => message,
        other => panic!("expected an error for d, got {other:?}"),
    };
    assert_eq!(refusal["id"], "d");
    assert_eq!(error_code(&refusal["payload"]), "RATE_LIMITED");
    assert!(refusal["payload"]["extensions"]["retryAfterSeconds"].is_u64());

    tokio::time::sleep(Duration::from_millis(100)).await;
    app.book(&recipient, &caregiver, 48).await;
    assert_eq!(ids_of_results(&mut first, 2).await, ["a", "b"]);
    assert_eq!(ids_of_results(&mut second, 1).await, ["c"]);
}

#[tokio::test]
async fn sockets_past_the_cap_per_user_close_with_1013() {
    let app = spawn_with_websocket(|ws| ws.max_sockets_per_user = 2).await;
    let user = app.register("CAREGIVER", "Lou").await;
    let other = app.register("CAREGIVER", "Mo").await;
    for protocol in Protocol::BOTH {
        let first = app.ws_as(protocol, &user).await;
        let _second = app.ws_as(protocol, &user).await;
        let mut third = app.ws(protocol).await;
        third.send_init(json!({ "token": user.token })).await;
        let (code, reason) = third.expect_close().await;
        assert_eq!(code, 1013, "{protocol:?}");
        assert_eq!(reason, "Too many sockets for this user");
        app.ws_as(protocol, &other).await;

        // A closed socket gives its place back.
        drop(first);
        let mut reopened = false;
        for _ in 0..20 {
            let mut ws = app.ws(protocol).await;
            ws.send_init(json!({ "token": user.token })).await;
            if let WsEvent::Message(message) = ws.next_event().await {
                assert_eq!(message["type"], "connection_ack");
                reopened = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            reopened,
            "{protocol:?}: the closed socket's place never came back"
        );
    }
}

#[tokio::test]
async fn a_flood_of_messages_closes_with_1008() {
    let app = spawn_with_websocket(|ws| {
        ws.messages_per_second = 1;
        ws.message_burst = 5;
    })
    .await;
    let user = app.register("CAREGIVER", "Nia").await;
    for protocol in Protocol::BOTH {
        let mut ws = app.ws_as(protocol, &user).await;
        for _ in 0..5 {
            ws.complete("unknown").await;
        }
        ws.expect_silence(Duration::from_millis(200)).await;
        ws.complete("unknown").await;
        let (code, reason) = ws.expect_close().await;
        assert_eq!(code, 1008, "{protocol:?}");
        assert_eq!(reason, "Too many messages");
        still_serves(&app, protocol, &user).await;
    }
}

#[tokio::test]
async fn the_server_keeps_idle_sockets_alive() {
    let app = spawn_with_websocket(|ws| ws.keepalive = Duration::from_millis(100)).await;
    let user = app.register("CAREGIVER", "Oz").await;
    for (protocol, keepalive) in [(Protocol::TransportWs, "ping"), (Protocol::LegacyWs, "ka")] {
        let mut ws = app.ws_as(protocol, &user).await;
        for _ in 0..3 {
            match ws.next_raw_event_within(Duration::from_millis(500)).await {
                Some(WsEvent::Message(message)) => assert_eq!(message["type"], keepalive),
                other => panic!("{protocol:?}: expected a keep-alive, got {other:?}"),
            }
            if let Protocol::TransportWs = protocol {
                ws.send(json!({ "type": "pong" })).await;
            }
        }
        // A client that answers as graphql-ws clients do stays connected: legacy clients
        // have no answer to give.
        ws.expect_silence(Duration::from_millis(1000)).await;
    }
}

#[tokio::test]
async fn a_client_that_leaves_pings_unanswered_is_closed_with_3008() {
    let app = spawn_with_websocket(|ws| ws.keepalive = Duration::from_millis(100)).await;
    let user = app.register("CAREGIVER", "Pia").await;
    let mut ws = app.ws_as(Protocol::TransportWs, &user).await;
    let started = tokio::time::Instant::now();
    let mut pings = 0;
    let (code, reason) = loop {
        match ws.next_raw_event_within(Duration::from_secs(2)).await {
            Some(WsEvent::Message(message)) if message["type"] == "ping" => pings += 1,
            Some(WsEvent::Closed(code, reason)) => break (code, reason),
            other => panic!("expected pings then a close, got {other:?}"),
        }
    };
    assert_eq!(code, 3008, "{reason}");
    assert_eq!(pings, 3);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// The incident the limits answer: one socket that sent 5,000 subscribes took a minute of
/// server CPU and slowed every other user's requests to seconds.
#[tokio::test]
async fn a_socket_flooding_subscribes_is_cut_off_and_others_stay_fast() {
    let app = TestApp::spawn().await;
    let flooder = app.register("CAREGIVER", "Quin").await;
    let bystander = app.register("CARE_RECIPIENT", "Rae").await;
    let mut ws = app.ws_as(Protocol::TransportWs, &flooder).await;
    for id in 0..5_000 {
        let subscribe = json!({ "id": id.to_string(), "type": "subscribe",
            "payload": { "query": BOOKING_UPDATED } });
        ws.send_text(subscribe.to_string()).await;
    }
    let mut refused = 0;
    let code = loop {
        match ws.next_event().await {
            WsEvent::Message(message) if message["type"] == "error" => refused += 1,
            WsEvent::Message(message) => panic!("unexpected {message}"),
            WsEvent::Closed(code, _) => break code,
        }
    };
    assert_eq!(code, 1008);
    // The default burst admits 200 messages (and a few more as the bucket refills while the
    // client sends); the cap lets 100 of them live, and refuses the rest.
    assert!((100..1_000).contains(&refused), "{refused} refused");
    let started = std::time::Instant::now();
    app.ok(&bystander, "{ me { id } }", json!({})).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
