//! Chat over HTTP and graphql-ws: a whole conversation with receipts and typing, idempotent
//! sends, gap-free resume while the other side keeps sending, limits, read-only chats,
//! unread counts, and an outsider on every operation.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{
    ENABLE_CHAT, Protocol, TestApp, TestUser, WsClient, data, error_code, node_fields, nodes,
    test_config,
};

const SEND: &str = "mutation($input: SendMessageInput!) {
    sendMessage(input: $input) { id seq body status cursor clientMessageId sender { id } } }";
const SESSION: &str =
    "query($id: UUID!, $first: Int, $after: String, $last: Int, $before: String) {
    chatSession(id: $id) { id readOnly unreadCount lastSeq
        members { user { id } lastDeliveredSeq lastReadSeq }
        messages(first: $first, after: $after, last: $last, before: $before) {
            edges { cursor node { id seq body status sender { id } } }
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }";
const SET_TYPING: &str =
    "mutation($id: UUID!, $typing: Boolean!) { setTyping(sessionId: $id, typing: $typing) }";
const MESSAGE_ADDED: &str = "subscription($id: UUID!, $after: String) {
    messageAdded(sessionId: $id, after: $after) { id seq body cursor sender { id } } }";

/// A booking between a care recipient and a caregiver, its chat, and a stranger.
struct Chat {
    app: TestApp,
    recipient: TestUser,
    caregiver: TestUser,
    stranger: TestUser,
    booking: String,
    session: String,
}

async fn chat() -> Chat {
    chat_on(TestApp::spawn().await).await
}

async fn chat_on(app: TestApp) -> Chat {
    let recipient = app.register("CARE_RECIPIENT", "Luisa").await;
    let caregiver = app.register("CAREGIVER", "Mateus").await;
    let stranger = app.register("CAREGIVER", "Nadia").await;
    let (booking, session) = app.booking_chat(&recipient, &caregiver).await;
    Chat {
        app,
        recipient,
        caregiver,
        stranger,
        booking,
        session,
    }
}

impl Chat {
    async fn send(&self, from: &TestUser, body: &str, client_id: &str) -> Value {
        self.app
            .graphql(
                Some(&from.token),
                SEND,
                json!({ "input": {
                "sessionId": self.session, "body": body, "clientMessageId": client_id } }),
            )
            .await
    }

    async fn sent(&self, from: &TestUser, body: &str) -> Value {
        let response = self
            .send(from, body, &uuid::Uuid::now_v7().to_string())
            .await;
        data(response)["sendMessage"].clone()
    }

    /// Sets `who`'s typing state; returns the whole response.
    async fn try_typing(&self, who: &TestUser, typing: bool) -> Value {
        self.app
            .graphql(
                Some(&who.token),
                SET_TYPING,
                json!({ "id": self.session, "typing": typing }),
            )
            .await
    }

    /// Sets `who`'s typing state, which must succeed; returns whether it was passed on.
    async fn typing(&self, who: &TestUser, typing: bool) -> Value {
        data(self.try_typing(who, typing).await)["setTyping"].clone()
    }

    async fn mark(&self, who: &TestUser, horizon: &str, up_to: i64) -> Value {
        let mutation = format!(
            "mutation($id: UUID!, $seq: Int!) {{ markMessages{horizon}(sessionId: $id, upToSeq: $seq) {{ lastDeliveredSeq lastReadSeq }} }}"
        );
        self.app
            .ok(who, &mutation, json!({ "id": self.session, "seq": up_to }))
            .await[format!("markMessages{horizon}")]
        .clone()
    }

    async fn session_view(&self, who: &TestUser, page: Value) -> Value {
        let mut variables = page;
        variables["id"] = json!(self.session);
        self.app.ok(who, SESSION, variables).await["chatSession"].clone()
    }

    async fn subscribed(
        &self,
        who: &TestUser,
        protocol: Protocol,
        subscriptions: &[(&str, &str)],
    ) -> WsClient {
        let mut ws = self.app.ws_as(protocol, who).await;
        for (id, query) in subscriptions {
            ws.subscribe(id, query, json!({ "id": self.session })).await;
        }
        ws
    }
}

/// The next data of any of the socket's subscriptions, as (subscription id, data).
async fn next_any(ws: &mut WsClient) -> (String, Value) {
    match ws.next_event().await {
        crate::helpers::WsEvent::Message(message)
            if message["type"] == "next" || message["type"] == "data" =>
        {
            assert!(message["payload"].get("errors").is_none(), "{message}");
            (
                message["id"].as_str().unwrap().to_owned(),
                message["payload"]["data"].clone(),
            )
        }
        other => panic!("expected data, got {other:?}"),
    }
}

#[tokio::test]
async fn messages_are_sent_on_an_in_memory_sqlite_database() {
    let mut config = test_config().await;
    config.database_url = "sqlite::memory:".into();
    let c = chat_on(TestApp::spawn_with(config).await).await;
    c.sent(&c.recipient, "first").await;
    c.sent(&c.caregiver, "second").await;
    let view = c.session_view(&c.caregiver, json!({ "first": 10 })).await;
    let bodies = node_fields(&view["messages"], "body");
    assert_eq!(bodies, [&json!("first"), &json!("second")]);
}

#[tokio::test]
async fn a_whole_conversation_with_receipts_and_typing() {
    for protocol in Protocol::BOTH {
        let mut config = test_config().await;
        config.typing_ttl = Duration::from_millis(300);
        let c = chat_on(TestApp::spawn_with(config).await).await;
        assert_eq!(
            c.app.enable_chat(&c.caregiver, &c.booking).await,
            c.session,
            "enabling twice returns the same chat"
        );
        for user in [&c.recipient, &c.caregiver] {
            let enabled = c
                .app
                .ok(
                    user,
                    "{ notifications(types: [CHAT_ENABLED]) { edges { node { data } } } }",
                    json!({}),
                )
                .await;
            let notices = nodes(&enabled["notifications"]);
            assert_eq!(notices.len(), 1, "each party told once");
            assert_eq!(notices[0]["data"]["sessionId"], c.session.as_str());
        }

        let subscriptions = [
            ("m", MESSAGE_ADDED),
            (
                "r",
                "subscription($id: UUID!) { messagesRead(sessionId: $id) { user { id } lastReadSeq } }",
            ),
            (
                "d",
                "subscription($id: UUID!) { messagesDelivered(sessionId: $id) { user { id } lastDeliveredSeq } }",
            ),
            (
                "t",
                "subscription($id: UUID!) { typing(sessionId: $id) { user { id } typing } }",
            ),
        ];
        let mut luisa = c.subscribed(&c.recipient, protocol, &subscriptions).await;
        let mut mateus = c.subscribed(&c.caregiver, protocol, &subscriptions).await;
        tokio::time::sleep(Duration::from_millis(100)).await;

        // Luisa types, then sends.
        assert_eq!(c.typing(&c.recipient, true).await, true);
        let (id, data) = next_any(&mut mateus).await;
        assert_eq!(
            (id.as_str(), &data["typing"]["typing"]),
            ("t", &json!(true))
        );
        assert_eq!(data["typing"]["user"]["id"], c.recipient.id.as_str());
        let sent = c.sent(&c.recipient, "  Can you come at nine?  ").await;
        assert_eq!(sent["seq"], 1);
        assert_eq!(sent["body"], "Can you come at nine?");
        assert_eq!(sent["status"], "SENT");
        let (id, data) = next_any(&mut mateus).await;
        assert_eq!(id, "m");
        assert_eq!(data["messageAdded"]["id"], sent["id"]);
        // Nobody refreshed the indicator: it ends by itself.
        let (id, data) = next_any(&mut mateus).await;
        assert_eq!(
            (id.as_str(), &data["typing"]["typing"]),
            ("t", &json!(false))
        );
        let (id, data) = next_any(&mut luisa).await;
        assert_eq!(
            (id.as_str(), &data["messageAdded"]["seq"]),
            ("m", &json!(1)),
            "the sender's other screens see it too"
        );

        // Mateus's phone acknowledges, then he reads: Luisa's ticks follow.
        let delivered = c.mark(&c.caregiver, "Delivered", 1).await;
        assert_eq!(delivered["lastDeliveredSeq"], 1);
        assert_eq!(delivered["lastReadSeq"], 0);
        let (id, data) = next_any(&mut luisa).await;
        assert_eq!(
            (id.as_str(), &data["messagesDelivered"]["lastDeliveredSeq"]),
            ("d", &json!(1))
        );
        assert_eq!(
            data["messagesDelivered"]["user"]["id"],
            c.caregiver.id.as_str()
        );
        let view = c.session_view(&c.recipient, json!({})).await;
        assert_eq!(nodes(&view["messages"])[0]["status"], "DELIVERED");
        c.mark(&c.caregiver, "Read", 1).await;
        let mut seen = Vec::new();
        for _ in 0..2 {
            let (id, data) = next_any(&mut luisa).await;
            seen.push((id, data));
        }
        seen.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(seen[0].0, "d", "reading implies delivery: {seen:?}");
        assert_eq!(seen[1].1["messagesRead"]["lastReadSeq"], 1);
        let view = c.session_view(&c.recipient, json!({})).await;
        assert_eq!(nodes(&view["messages"])[0]["status"], "READ");

        // Mateus answers; Luisa has one unread until she reads it.
        let reply = c.sent(&c.caregiver, "Nine is fine.").await;
        assert_eq!(reply["seq"], 2);
        let (id, data) = next_any(&mut luisa).await;
        assert_eq!(
            (id.as_str(), &data["messageAdded"]["body"]),
            ("m", &json!("Nine is fine."))
        );
        assert_eq!(
            c.session_view(&c.recipient, json!({})).await["unreadCount"],
            1
        );
        assert_eq!(
            c.session_view(&c.caregiver, json!({})).await["unreadCount"],
            0,
            "own messages are never unread"
        );
        let notices = c
            .app
            .ok(
                &c.recipient,
                "{ notifications(types: [MESSAGE_RECEIVED]) { edges { node { isRead body } } } }",
                json!({}),
            )
            .await;
        assert_eq!(nodes(&notices["notifications"])[0]["body"], "Nine is fine.");
        assert_eq!(nodes(&notices["notifications"])[0]["isRead"], false);
        c.mark(&c.recipient, "Read", 2).await;
        let notices = c
            .app
            .ok(
                &c.recipient,
                "{ notifications(types: [MESSAGE_RECEIVED]) { edges { node { isRead } } } }",
                json!({}),
            )
            .await;
        assert_eq!(
            nodes(&notices["notifications"])[0]["isRead"],
            true,
            "reading the chat reads its notices"
        );
        assert_eq!(
            c.session_view(&c.recipient, json!({})).await["unreadCount"],
            0
        );

        // The stranger saw nothing of any of it.
        let mut outsider = c.app.ws_as(protocol, &c.stranger).await;
        outsider
            .subscribe("m", MESSAGE_ADDED, json!({ "id": c.session }))
            .await;
        let refused = outsider.next_payload("m").await;
        assert_eq!(error_code(&refused), "NOT_FOUND", "{refused}");
    }
}

#[tokio::test]
async fn a_retried_send_returns_the_original_and_notifies_once() {
    let c = chat().await;
    let first = c.send(&c.recipient, "Running late", "client-1").await;
    let retry = c.send(&c.recipient, "Running late", "client-1").await;
    assert_eq!(
        first["data"]["sendMessage"]["id"],
        retry["data"]["sendMessage"]["id"]
    );
    assert_eq!(retry["data"]["sendMessage"]["seq"], 1);
    let view = c.session_view(&c.caregiver, json!({})).await;
    assert_eq!(view["lastSeq"], 1);
    assert_eq!(nodes(&view["messages"]).len(), 1);
    let notices = c
        .app
        .ok(
            &c.caregiver,
            "{ notifications(types: [MESSAGE_RECEIVED]) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(nodes(&notices["notifications"]).len(), 1);

    // The same client id in another chat is a client bug, not a retry.
    let other_caregiver = c.app.register("CAREGIVER", "Otto").await;
    let (_, other) = c.app.booking_chat(&c.recipient, &other_caregiver).await;
    let clash = c
        .app
        .code(
            &c.recipient,
            SEND,
            json!({ "input": {
        "sessionId": other, "body": "hi", "clientMessageId": "client-1" } }),
        )
        .await;
    assert_eq!(clash, "CONFLICT");
}

#[tokio::test]
async fn sends_that_arrive_together_are_each_answered_on_their_own() {
    let c = chat().await;
    let mut calls = Vec::new();
    for index in 0..10 {
        calls.push((
            &c.recipient,
            format!("from Luisa {index}"),
            format!("r-{index}"),
        ));
        calls.push((
            &c.caregiver,
            format!("from Mateus {index}"),
            format!("g-{index}"),
        ));
    }
    for _ in 0..3 {
        calls.push((
            &c.recipient,
            "sent three times".to_owned(),
            "retried".to_owned(),
        ));
    }
    calls.push((&c.stranger, "let me in".to_owned(), "s-1".to_owned()));
    calls.push((&c.caregiver, "   ".to_owned(), "g-empty".to_owned()));
    let answers = futures_util::future::join_all(
        calls
            .iter()
            .map(|(from, body, client_id)| c.send(from, body, client_id)),
    )
    .await;

    let (ok, refused): (Vec<&Value>, Vec<&Value>) = answers
        .iter()
        .partition(|answer| answer.get("errors").is_none());
    let codes: Vec<String> = refused.iter().map(|answer| error_code(answer)).collect();
    assert_eq!(codes, ["NOT_FOUND", "BAD_USER_INPUT"]);
    assert_eq!(ok.len(), 23);
    let retried: Vec<&Value> = ok[20..].iter().map(|a| &a["data"]["sendMessage"]).collect();
    assert!(retried.iter().all(|sent| sent["id"] == retried[0]["id"]));
    let mut seqs: Vec<i64> = ok[..21]
        .iter()
        .map(|answer| answer["data"]["sendMessage"]["seq"].as_i64().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=21).collect::<Vec<_>>(),
        "one seq per message, no gaps"
    );

    let view = c.session_view(&c.caregiver, json!({ "first": 50 })).await;
    let stored: Vec<i64> = node_fields(&view["messages"], "seq")
        .into_iter()
        .map(|seq| seq.as_i64().unwrap())
        .collect();
    assert_eq!(stored, (1..=21).collect::<Vec<_>>());
    let members = view["members"].as_array().unwrap();
    for member in members {
        let own_last = ok[..21]
            .iter()
            .map(|answer| &answer["data"]["sendMessage"])
            .filter(|sent| sent["sender"]["id"] == member["user"]["id"])
            .map(|sent| sent["seq"].as_i64().unwrap())
            .max()
            .unwrap();
        assert!(
            member["lastReadSeq"].as_i64().unwrap() >= own_last,
            "{member}"
        );
    }
    let received =
        "{ notifications(types: [MESSAGE_RECEIVED], first: 50) { edges { node { title } } } }";
    for (reader, expected, sender) in [(&c.caregiver, 11, "Luisa"), (&c.recipient, 10, "Mateus")] {
        let notices = c.app.ok(reader, received, json!({})).await;
        let titles = node_fields(&notices["notifications"], "title");
        assert_eq!(titles.len(), expected);
        let from_sender = json!(format!("New message from {sender}"));
        assert!(
            titles.iter().all(|title| **title == from_sender),
            "{titles:?}"
        );
    }
}

#[tokio::test]
async fn message_bodies_are_trimmed_and_limited() {
    let c = chat().await;
    let bodies = [
        ("", "a"),
        ("   \n ", "b"),
        (&*"x".repeat(4001), "c"),
        ("nul \0 inside", "d"),
    ];
    for (body, client_id) in bodies {
        let response = c.send(&c.recipient, body, client_id).await;
        assert_eq!(error_code(&response), "BAD_USER_INPUT");
        assert_eq!(response["errors"][0]["extensions"]["field"], "body");
    }
    let longest = "é".repeat(4000);
    let sent = c.sent(&c.recipient, &format!("  {longest}  ")).await;
    assert_eq!(
        sent["body"].as_str().unwrap().chars().count(),
        4000,
        "characters, not bytes"
    );
    for client_id in ["", "nul\0"] {
        let response = c.send(&c.recipient, "hi", client_id).await;
        assert_eq!(
            response["errors"][0]["extensions"]["field"],
            "clientMessageId"
        );
    }
    assert_eq!(
        c.session_view(&c.recipient, json!({})).await["lastSeq"],
        1,
        "refused sends left nothing"
    );
}

#[tokio::test]
async fn a_chat_becomes_read_only_when_its_booking_ends() {
    let c = chat().await;
    c.sent(&c.recipient, "See you Tuesday").await;
    c.app.act(&c.caregiver, "cancelBooking", &c.booking).await;
    let view = c.session_view(&c.caregiver, json!({})).await;
    assert_eq!(view["readOnly"], true);
    assert_eq!(
        nodes(&view["messages"])[0]["body"],
        "See you Tuesday",
        "history stays readable"
    );
    let refused = c.send(&c.caregiver, "Sorry!", "late").await;
    assert_eq!(error_code(&refused), "INVALID_STATE");
    assert!(
        refused["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("cancelled")
    );
    assert_eq!(c.app.enable_chat(&c.recipient, &c.booking).await, c.session);

    let declined = c.app.book(&c.recipient, &c.caregiver, 48).await;
    c.app.act(&c.caregiver, "declineBooking", &declined).await;
    assert_eq!(
        c.app
            .code(&c.recipient, ENABLE_CHAT, json!({ "id": declined }))
            .await,
        "INVALID_STATE"
    );
}

#[tokio::test]
async fn receipts_only_move_forward_and_stop_at_the_last_message() {
    let c = chat().await;
    for index in 0..5 {
        c.sent(&c.recipient, &format!("message {index}")).await;
    }
    assert_eq!(c.mark(&c.caregiver, "Read", 4).await["lastReadSeq"], 4);
    assert_eq!(
        c.mark(&c.caregiver, "Read", 2).await["lastReadSeq"],
        4,
        "never back"
    );
    let delivered = c.mark(&c.caregiver, "Delivered", 1).await;
    assert_eq!(
        (
            delivered["lastDeliveredSeq"].clone(),
            delivered["lastReadSeq"].clone()
        ),
        (json!(4), json!(4))
    );
    assert_eq!(
        c.mark(&c.caregiver, "Read", 99).await["lastReadSeq"],
        5,
        "not past the last message"
    );
    let negative = c
        .app
        .code(
            &c.caregiver,
            "mutation($id: UUID!) { markMessagesRead(sessionId: $id, upToSeq: -1) { lastReadSeq } }",
            json!({ "id": c.session }),
        )
        .await;
    assert_eq!(negative, "BAD_USER_INPUT");
    let view = c.session_view(&c.recipient, json!({})).await;
    let statuses: Vec<Value> = node_fields(&view["messages"], "status")
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(statuses, vec![json!("READ"); 5]);
}

#[tokio::test]
async fn messages_page_forward_and_back_in_chronological_order() {
    let c = chat().await;
    for index in 1..=25 {
        c.sent(
            if index % 2 == 0 {
                &c.caregiver
            } else {
                &c.recipient
            },
            &format!("m{index}"),
        )
        .await;
    }
    let seqs = |view: &Value| -> Vec<i64> {
        node_fields(&view["messages"], "seq")
            .into_iter()
            .map(|seq| seq.as_i64().unwrap())
            .collect()
    };
    let newest = c.session_view(&c.recipient, json!({ "last": 10 })).await;
    assert_eq!(seqs(&newest), (16..=25).collect::<Vec<_>>());
    assert_eq!(newest["messages"]["pageInfo"]["hasPreviousPage"], true);
    let before = newest["messages"]["pageInfo"]["startCursor"].clone();
    let older = c
        .session_view(&c.recipient, json!({ "last": 10, "before": before }))
        .await;
    assert_eq!(seqs(&older), (6..=15).collect::<Vec<_>>());
    let oldest = c
        .session_view(
            &c.recipient,
            json!({ "last": 10, "before": older["messages"]["pageInfo"]["startCursor"] }),
        )
        .await;
    assert_eq!(seqs(&oldest), (1..=5).collect::<Vec<_>>());
    assert_eq!(oldest["messages"]["pageInfo"]["hasPreviousPage"], false);
    let first = c.session_view(&c.recipient, json!({ "first": 10 })).await;
    assert_eq!(seqs(&first), (1..=10).collect::<Vec<_>>());
    let next = c
        .session_view(
            &c.recipient,
            json!({ "first": 10, "after": first["messages"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(seqs(&next), (11..=20).collect::<Vec<_>>());
    let both = c
        .app
        .graphql(
            Some(&c.recipient.token),
            SESSION,
            json!({ "id": c.session, "first": 5, "last": 5 }),
        )
        .await;
    assert_eq!(error_code(&both), "BAD_USER_INPUT");
}

#[tokio::test]
async fn resume_after_a_disconnect_loses_and_repeats_nothing_while_the_other_side_sends() {
    let c = chat().await;
    let opening = c.sent(&c.recipient, "opening").await;
    const TOTAL: usize = 60;
    let writer = {
        let addr = c.app.addr;
        let token = c.caregiver.token.clone();
        let session = c.session.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut workers = Vec::new();
            for worker in 0..4 {
                let (client, token, session) = (client.clone(), token.clone(), session.clone());
                workers.push(tokio::spawn(async move {
                    for index in 0..TOTAL / 4 {
                        let body = json!({ "query": SEND, "variables": { "input": {
                            "sessionId": session, "body": format!("w{worker}-{index}"),
                            "clientMessageId": format!("w{worker}-{index}") } } });
                        let response: Value = client
                            .post(format!("http://{addr}/graphql"))
                            .bearer_auth(&token)
                            .json(&body)
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        assert!(response.get("errors").is_none(), "{response}");
                    }
                }));
            }
            for worker in workers {
                worker.await.unwrap();
            }
        })
    };
    let mut received: Vec<Value> = Vec::new();
    let mut first = c.app.ws_as(Protocol::TransportWs, &c.recipient).await;
    first
        .subscribe(
            "m",
            MESSAGE_ADDED,
            json!({ "id": c.session, "after": opening["cursor"] }),
        )
        .await;
    for _ in 0..15 {
        received.push(first.next_data("m").await["messageAdded"].clone());
    }
    drop(first);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut second = c.app.ws_as(Protocol::LegacyWs, &c.recipient).await;
    second
        .subscribe(
            "m",
            MESSAGE_ADDED,
            json!({ "id": c.session, "after": received.last().unwrap()["cursor"] }),
        )
        .await;
    while received.len() < TOTAL {
        received.push(second.next_data("m").await["messageAdded"].clone());
    }
    writer.await.unwrap();
    second.expect_silence(Duration::from_millis(200)).await;
    let seqs: Vec<i64> = received
        .iter()
        .map(|message| message["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (2..=TOTAL as i64 + 1).collect::<Vec<_>>(),
        "every message once, in order"
    );
    let bodies: std::collections::HashSet<&str> = received
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), TOTAL);
}

#[tokio::test]
async fn unread_counts_per_session_and_in_total() {
    let c = chat().await;
    let second_caregiver = c.app.register("CAREGIVER", "Pedro").await;
    let second_booking = c.app.book(&c.recipient, &second_caregiver, 48).await;
    let second_session = c.app.enable_chat(&second_caregiver, &second_booking).await;

    let mut ws = c.app.ws_as(Protocol::TransportWs, &c.recipient).await;
    ws.subscribe("total", "subscription { unreadMessageCount }", json!({}))
        .await;
    ws.subscribe(
        "one",
        "subscription($id: UUID) { unreadMessageCount(sessionId: $id) }",
        json!({ "id": c.session }),
    )
    .await;
    let mut initial = [next_any(&mut ws).await, next_any(&mut ws).await];
    initial.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(initial[0].1["unreadMessageCount"], 0);
    assert_eq!(initial[1].1["unreadMessageCount"], 0);

    async fn expect(ws: &mut WsClient, mut wanted: Vec<(&str, i64)>) {
        let mut got = Vec::new();
        for _ in 0..wanted.len() {
            let (id, data) = next_any(ws).await;
            got.push((id, data["unreadMessageCount"].as_i64().unwrap()));
        }
        got.sort();
        wanted.sort();
        let wanted: Vec<(String, i64)> = wanted
            .into_iter()
            .map(|(id, n)| (id.to_owned(), n))
            .collect();
        assert_eq!(got, wanted);
    }
    c.sent(&c.caregiver, "one").await;
    expect(&mut ws, vec![("total", 1), ("one", 1)]).await;
    c.sent(&c.caregiver, "two").await;
    expect(&mut ws, vec![("total", 2), ("one", 2)]).await;
    c.app.ok(&second_caregiver, SEND, json!({ "input": { "sessionId": second_session, "body": "hello", "clientMessageId": "p1" } })).await;
    expect(&mut ws, vec![("total", 3)]).await;
    c.app.clock.advance(chrono::Duration::seconds(1));
    c.sent(&c.recipient, "my reply reads what came before")
        .await;
    expect(&mut ws, vec![("total", 1), ("one", 0)]).await;
    ws.expect_silence(Duration::from_millis(200)).await;

    let list = c
        .app
        .ok(
            &c.recipient,
            "{ chatSessions { edges { node { id unreadCount lastMessage { body } } } } }",
            json!({}),
        )
        .await;
    let sessions = nodes(&list["chatSessions"]);
    assert_eq!(sessions.len(), 2);
    assert_eq!(
        sessions[0]["id"],
        c.session.as_str(),
        "most recently active first"
    );
    assert_eq!(
        sessions[0]["lastMessage"]["body"],
        "my reply reads what came before"
    );
    assert_eq!(sessions[1]["unreadCount"], 1);
    let unseen = c
        .app
        .ok(
            &c.stranger,
            "{ chatSessions { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(nodes(&unseen["chatSessions"]).is_empty(), "{unseen}");
}

#[tokio::test]
async fn an_outsider_can_do_nothing_with_a_chat() {
    let c = chat().await;
    c.sent(&c.recipient, "private").await;
    let session = json!({ "id": c.session });
    for (operation, variables) in [
        (
            "query($id: UUID!) { chatSession(id: $id) { id } }",
            session.clone(),
        ),
        (
            "mutation($id: UUID!) { enableChat(bookingId: $id) { id } }",
            json!({ "id": c.booking }),
        ),
        (
            "mutation($id: UUID!) { markMessagesRead(sessionId: $id, upToSeq: 1) { lastReadSeq } }",
            session.clone(),
        ),
        (
            "mutation($id: UUID!) { markMessagesDelivered(sessionId: $id, upToSeq: 1) { lastReadSeq } }",
            session.clone(),
        ),
        (
            "mutation($id: UUID!) { setTyping(sessionId: $id, typing: true) }",
            session.clone(),
        ),
        (
            SEND,
            json!({ "input": { "sessionId": c.session, "body": "hi", "clientMessageId": "x" } }),
        ),
    ] {
        let response = c
            .app
            .graphql(Some(&c.stranger.token), operation, variables)
            .await;
        assert_eq!(
            error_code(&response),
            "NOT_FOUND",
            "{operation}: {response}"
        );
    }
    let missing = c
        .app
        .graphql(
            Some(&c.stranger.token),
            "query($id: UUID!) { chatSession(id: $id) { id } }",
            json!({ "id": uuid::Uuid::now_v7() }),
        )
        .await;
    let hidden = c
        .app
        .graphql(
            Some(&c.stranger.token),
            "query($id: UUID!) { chatSession(id: $id) { id } }",
            session.clone(),
        )
        .await;
    assert_eq!(
        missing["errors"][0]["message"],
        hidden["errors"][0]["message"]
    );

    let mut ws = c.app.ws_as(Protocol::TransportWs, &c.stranger).await;
    let subscriptions = [
        MESSAGE_ADDED,
        "subscription($id: UUID!) { messagesRead(sessionId: $id) { lastReadSeq } }",
        "subscription($id: UUID!) { messagesDelivered(sessionId: $id) { lastReadSeq } }",
        "subscription($id: UUID!) { typing(sessionId: $id) { typing } }",
        "subscription($id: UUID) { unreadMessageCount(sessionId: $id) }",
    ];
    for (index, query) in subscriptions.iter().enumerate() {
        let id = format!("s{index}");
        ws.subscribe(&id, query, session.clone()).await;
        let refused = ws.next_payload(&id).await;
        assert_eq!(error_code(&refused), "NOT_FOUND", "{query}: {refused}");
        match ws.next_event().await {
            crate::helpers::WsEvent::Message(message) => assert_eq!(message["type"], "complete"),
            other => panic!("expected complete, got {other:?}"),
        }
    }
    ws.subscribe("total", "subscription { unreadMessageCount }", json!({}))
        .await;
    assert_eq!(ws.next_data("total").await["unreadMessageCount"], 0);
    c.sent(&c.caregiver, "still private").await;
    c.typing(&c.recipient, true).await;
    ws.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn typing_is_rate_limited_and_refreshes_are_absorbed() {
    let c = chat().await;
    assert_eq!(c.typing(&c.recipient, true).await, true);
    assert_eq!(
        c.typing(&c.recipient, true).await,
        false,
        "an unchanged state within a second is not passed on"
    );
    assert_eq!(c.typing(&c.recipient, false).await, true);
    let mut limited = None;
    for _ in 0..30 {
        let response = c.try_typing(&c.recipient, true).await;
        if response.get("errors").is_some() {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("setTyping is rate-limited");
    assert_eq!(error_code(&limited), "RATE_LIMITED");
}

#[tokio::test]
async fn a_booking_leads_to_its_chat_for_its_parties_only() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Olivia").await;
    let caregiver = app.register("CAREGIVER", "Pedro").await;
    let stranger = app.register("CAREGIVER", "Quinn").await;
    let booking_chat =
        "query($id: UUID!) { booking(id: $id) { chatSession { id booking { id } } } }";
    let without = app.book(&recipient, &caregiver, 24).await;
    let (with, session) = app.booking_chat(&recipient, &caregiver).await;

    let closed = app
        .ok(&recipient, booking_chat, json!({ "id": without }))
        .await;
    assert_eq!(
        closed["booking"]["chatSession"],
        Value::Null,
        "null until enabled"
    );
    for party in [&recipient, &caregiver] {
        let open = app.ok(party, booking_chat, json!({ "id": with })).await;
        assert_eq!(open["booking"]["chatSession"]["id"], session.as_str());
        assert_eq!(
            open["booking"]["chatSession"]["booking"]["id"],
            with.as_str()
        );
        let page = app
            .ok(
                party,
                "{ bookings { edges { node { id chatSession { id } } } } }",
                json!({}),
            )
            .await;
        let chats: Vec<(&Value, &Value)> = nodes(&page["bookings"])
            .into_iter()
            .map(|node| (&node["id"], &node["chatSession"]["id"]))
            .collect();
        assert_eq!(chats.len(), 2, "{page}");
        for (booking, chat) in chats {
            let expected = if *booking == with {
                json!(session)
            } else {
                Value::Null
            };
            assert_eq!(*chat, expected, "{page}");
        }
    }

    let refused = app
        .graphql(Some(&stranger.token), booking_chat, json!({ "id": with }))
        .await;
    assert_eq!(error_code(&refused), "NOT_FOUND", "{refused}");
    assert_eq!(refused["data"], Value::Null, "{refused}");
    let theirs = app
        .ok(
            &stranger,
            "{ bookings { edges { node { chatSession { id } } } } }",
            json!({}),
        )
        .await;
    assert!(nodes(&theirs["bookings"]).is_empty(), "{theirs}");
}

#[tokio::test]
async fn a_message_notification_carries_the_seq_and_cursor_to_page_to_it() {
    let c = chat().await;
    let mut sent = Vec::new();
    for body in ["one", "two", "three"] {
        sent.push(c.sent(&c.recipient, body).await);
    }
    let notices: Vec<Value> = c
        .app
        .inbox(&c.caregiver)
        .await
        .into_iter()
        .filter(|node| node["type"] == "MESSAGE_RECEIVED")
        .collect();
    assert_eq!(notices.len(), 3);
    let second = notices
        .iter()
        .map(|node| &node["data"])
        .find(|data| data["messageId"] == sent[1]["id"])
        .expect("the second message's notification");
    assert_eq!(second["sessionId"], c.session.as_str());
    assert_eq!(second["seq"], 2);
    assert_eq!(
        second["cursor"], sent[1]["cursor"],
        "the message's own cursor"
    );

    let cursor = &second["cursor"];
    let after = c
        .session_view(&c.caregiver, json!({ "first": 10, "after": cursor }))
        .await;
    assert_eq!(node_fields(&after["messages"], "body"), ["three"]);
    let before = c
        .session_view(&c.caregiver, json!({ "last": 10, "before": cursor }))
        .await;
    assert_eq!(node_fields(&before["messages"], "body"), ["one"]);
    let mut ws = c.app.ws_as(Protocol::TransportWs, &c.caregiver).await;
    ws.subscribe(
        "m",
        MESSAGE_ADDED,
        json!({ "id": c.session, "after": cursor }),
    )
    .await;
    assert_eq!(ws.next_data("m").await["messageAdded"]["body"], "three");
}

#[tokio::test]
async fn a_cursor_of_another_list_is_refused_on_its_argument() {
    let c = chat().await;
    let other_booking = c.app.book(&c.recipient, &c.caregiver, 96).await;
    let other_session = c.app.enable_chat(&c.recipient, &other_booking).await;
    c.sent(&c.recipient, "here").await;
    let elsewhere = c
        .app
        .ok(
            &c.recipient,
            SEND,
            json!({ "input": { "sessionId": other_session, "body": "elsewhere",
                "clientMessageId": "other-1" } }),
        )
        .await["sendMessage"]["cursor"]
        .clone();
    let notification = c.app.inbox(&c.caregiver).await[0]["cursor"].clone();

    for foreign in [&elsewhere, &notification] {
        for (argument, page) in [
            ("after", json!({ "first": 10, "after": foreign })),
            ("before", json!({ "last": 10, "before": foreign })),
        ] {
            let mut variables = page;
            variables["id"] = json!(c.session);
            let refused = c
                .app
                .graphql(Some(&c.caregiver.token), SESSION, variables)
                .await;
            assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
            assert_eq!(
                refused["errors"][0]["extensions"]["field"], argument,
                "{refused}"
            );
        }
        for protocol in Protocol::BOTH {
            let mut ws = c.app.ws_as(protocol, &c.caregiver).await;
            ws.subscribe(
                "m",
                MESSAGE_ADDED,
                json!({ "id": c.session, "after": foreign }),
            )
            .await;
            let refused = ws.next_payload("m").await;
            assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
            assert_eq!(refused["errors"][0]["extensions"]["field"], "after");
        }
    }
}

/// A socket's idle subscription gives up its execution after two keep-alive ticks and is
/// executed again for its next item (docs/architecture.md, "Idle subscriptions"). The client
/// sees one subscription: every message, in order, and a resumption is not charged again to
/// the viewer's query-cost allowance, counted again or authorised again.
#[tokio::test]
async fn an_idle_subscription_resumes_for_each_message_without_being_charged_again() {
    let mut config = test_config().await;
    config.websocket.keepalive = Duration::from_millis(50);
    // Setup and 31 sends fit in 2,400; the subscription below costs over 80 each time it is
    // charged, so charging each of its 30 resumptions would exhaust the recipient's allowance.
    config.usage.cost = caregraph::config::RateConfig {
        burst: 2_400,
        period: Duration::from_secs(3_600),
    };
    config.graphql.max_complexity = 500;
    config.graphql.max_aliases = 100;
    let chat = chat_on(TestApp::spawn_with(config).await).await;
    let opening = chat.sent(&chat.caregiver, "opening").await;
    let fields: String = (0..80).map(|n| format!("b{n}: body ")).collect();
    let costly = format!(
        "subscription($id: UUID!, $after: String) {{
            messageAdded(sessionId: $id, after: $after) {{ seq {fields} }} }}"
    );
    let mut ws = chat.app.ws_as(Protocol::TransportWs, &chat.recipient).await;
    ws.subscribe(
        "m",
        &costly,
        json!({ "id": chat.session, "after": opening["cursor"] }),
    )
    .await;
    let first = opening["seq"].as_i64().expect("a seq");
    for n in 1..=30 {
        // Four ticks of waiting: the subscription parks before each message.
        ws.expect_silence(Duration::from_millis(200)).await;
        chat.sent(&chat.caregiver, &format!("message {n}")).await;
        let (id, data) = next_any(&mut ws).await;
        assert_eq!(id, "m");
        assert_eq!(data["messageAdded"]["seq"], first + n);
        assert_eq!(data["messageAdded"]["b79"], format!("message {n}"));
    }
    ws.expect_silence(Duration::from_millis(200)).await;
    chat.app
        .ok(&chat.recipient, "{ me { id } }", json!({}))
        .await;
}

/// A subscription of two root fields keeps both streams on one execution, which never parks
/// (one slot cannot tell two streams apart, and one field's resolver may still be reading the
/// database while the other's stream waits): each field's items arrive, as they would
/// unparked.
#[tokio::test]
async fn a_subscription_of_two_root_fields_delivers_both() {
    let chat = chat().await;
    let first = chat.sent(&chat.caregiver, "first").await;
    chat.sent(&chat.caregiver, "second").await;
    let mut ws = chat.app.ws_as(Protocol::TransportWs, &chat.recipient).await;
    ws.subscribe(
        "both",
        "subscription($id: UUID!, $after: String) { typing(sessionId: $id) { typing }
            messageAdded(sessionId: $id, after: $after) { body } }",
        json!({ "id": chat.session, "after": first["cursor"] }),
    )
    .await;
    // The replayed message shows both fields' streams are listening.
    let (_, data) = next_any(&mut ws).await;
    assert_eq!(data, json!({ "messageAdded": { "body": "second" } }));
    assert_eq!(chat.typing(&chat.caregiver, true).await, true);
    let (_, data) = next_any(&mut ws).await;
    assert_eq!(data, json!({ "typing": { "typing": true } }));
    for body in ["third", "fourth"] {
        chat.sent(&chat.caregiver, body).await;
        let (id, data) = next_any(&mut ws).await;
        assert_eq!(id, "both");
        assert_eq!(data, json!({ "messageAdded": { "body": body } }));
    }
}
