//! Every subscription falls behind a bus that keeps one event per topic, and still ends at
//! the right state: stored items resume from their cursor, state is re-read from the
//! database, typing waits for its next event; a re-read that fails ends the stream with a
//! coded error instead of a silent gap.
//!
//! The subscribers run beside the server ([`Subscriber`]) and take nothing from the bus
//! between two reads, so the changes a test makes while it does not read overflow the bus
//! for certain: after the change it must not lose, each test makes at least one more on the
//! subscriber's topic, which the bus keeps instead.

use std::{collections::HashMap, time::Duration};

use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::helpers::{Subscriber, TestApp, TestUser, error_code, test_config};

const BOOKING_UPDATED: &str = "subscription { bookingUpdated { id status } }";
const MEMBER: &str = "user { id } lastDeliveredSeq lastReadSeq";

/// A server whose bus keeps a single event per topic for a subscriber that is not reading.
async fn lagging_app() -> TestApp {
    let mut config = test_config().await;
    config.bus_capacity = 1;
    TestApp::spawn_with(config).await
}

/// A care recipient and a caregiver of `app`.
async fn pair(app: &TestApp) -> (TestUser, TestUser) {
    (
        app.register("CARE_RECIPIENT", "Lena").await,
        app.register("CAREGIVER", "Marco").await,
    )
}

/// The id and status of the object under `field` of a subscription's data.
fn id_and_status(data: &Value, field: &str) -> (String, String) {
    let object = &data[field];
    (
        object["id"].as_str().unwrap().to_owned(),
        object["status"].as_str().unwrap().to_owned(),
    )
}

/// Reads `field` updates until the last status seen of each object is the one `expected`
/// gives it.
async fn until_statuses(subscriber: &mut Subscriber, field: &str, expected: &[(&str, &str)]) {
    let expected: HashMap<String, String> = expected
        .iter()
        .map(|(id, status)| (id.to_string(), status.to_string()))
        .collect();
    let mut last = HashMap::new();
    subscriber
        .read_until(|data| {
            let (id, status) = id_and_status(data, field);
            last.insert(id, status);
            expected
                .iter()
                .all(|(id, status)| last.get(id) == Some(status))
        })
        .await;
}

/// A lagging server, its care recipient and caregiver, the recipient's `bookingUpdated`
/// subscriber, and the id of a first booking, which that subscriber has seen pending.
async fn following_a_booking() -> (TestApp, TestUser, TestUser, Subscriber, String) {
    let app = lagging_app().await;
    let (recipient, caregiver) = pair(&app).await;
    let mut updates = app.subscriber(&recipient, BOOKING_UPDATED, json!({})).await;
    let first = app.book(&recipient, &caregiver, 24).await;
    until_statuses(&mut updates, "bookingUpdated", &[(&first, "PENDING")]).await;
    (app, recipient, caregiver, updates, first)
}

#[tokio::test]
async fn booking_updated_ends_at_each_bookings_last_status() {
    let (app, recipient, caregiver, mut updates, first) = following_a_booking().await;

    let second = app.book(&recipient, &caregiver, 48).await;
    app.act(&caregiver, "acceptBooking", &first).await;
    app.act(&recipient, "cancelBooking", &second).await;
    let third = app.book(&recipient, &caregiver, 72).await;

    until_statuses(
        &mut updates,
        "bookingUpdated",
        &[
            (&first, "ACCEPTED"),
            (&second, "CANCELLED"),
            (&third, "PENDING"),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_booking_resync_that_fails_ends_the_stream_with_a_coded_error() {
    let (app, recipient, caregiver, mut updates, first) = following_a_booking().await;

    app.act(&caregiver, "acceptBooking", &first).await;
    app.book(&recipient, &caregiver, 48).await;
    app.db()
        .execute_unprepared("ALTER TABLE bookings RENAME TO bookings_gone")
        .await
        .expect("rename the bookings table");

    let failed = updates
        .next_response()
        .await
        .expect("an error, not the end");
    assert_eq!(error_code(&failed), "INTERNAL", "{failed}");
    assert_eq!(failed["errors"][0]["message"], "internal error", "{failed}");
    assert!(
        updates.next_response().await.is_none(),
        "the stream ends after its error"
    );
}

/// The request's own event is overwritten while the caregiver does not read: only a re-read
/// brings it back (a stream that passed over the "missed" signal never delivered it).
#[tokio::test]
async fn a_caregiver_who_fell_behind_still_receives_the_pending_call_request() {
    let app = lagging_app().await;
    let (recipient, caregiver) = pair(&app).await;
    let mut calls = app
        .subscriber(
            &caregiver,
            "subscription { videoCallUpdated { id status } }",
            json!({}),
        )
        .await;
    let first = app.request_call(&recipient, &caregiver).await;
    until_statuses(&mut calls, "videoCallUpdated", &[(&first, "PENDING")]).await;

    app.act(&recipient, "cancelVideoCall", &first).await;
    let second = app.request_call(&recipient, &caregiver).await;
    app.book(&recipient, &caregiver, 24).await;

    until_statuses(
        &mut calls,
        "videoCallUpdated",
        &[(&first, "CANCELLED"), (&second, "PENDING")],
    )
    .await;
}

#[tokio::test]
async fn a_participant_who_fell_behind_receives_the_calls_last_status() {
    let app = lagging_app().await;
    let (recipient, caregiver) = pair(&app).await;
    let call = app.request_call(&recipient, &caregiver).await;
    let mut updates = app
        .subscriber(
            &recipient,
            "subscription($id: UUID!) { videoCallUpdated(id: $id) { id status } }",
            json!({ "id": call }),
        )
        .await;
    app.act(&caregiver, "acceptVideoCall", &call).await;
    until_statuses(&mut updates, "videoCallUpdated", &[(&call, "ACCEPTED")]).await;

    app.act(&recipient, "startVideoCall", &call).await;
    app.act(&caregiver, "completeVideoCall", &call).await;
    app.book(&recipient, &caregiver, 24).await;

    until_statuses(&mut updates, "videoCallUpdated", &[(&call, "COMPLETED")]).await;
}

/// A booking's chat between a care recipient and a caregiver.
struct Chat {
    app: TestApp,
    recipient: TestUser,
    caregiver: TestUser,
    session: String,
}

impl Chat {
    async fn open(app: TestApp) -> Chat {
        let (recipient, caregiver) = pair(&app).await;
        let (_, session) = app.booking_chat(&recipient, &caregiver).await;
        Chat {
            app,
            recipient,
            caregiver,
            session,
        }
    }

    /// Sends a message; returns its cursor.
    async fn send(&self, from: &TestUser, body: &str) -> Value {
        let sent = self
            .app
            .ok(
                from,
                "mutation($input: SendMessageInput!) { sendMessage(input: $input) { cursor } }",
                json!({ "input": { "sessionId": self.session, "body": body,
                    "clientMessageId": uuid::Uuid::now_v7().to_string() } }),
            )
            .await;
        sent["sendMessage"]["cursor"].clone()
    }

    /// Moves `who`'s `horizon` (`Read` or `Delivered`) to `seq`.
    async fn mark(&self, who: &TestUser, horizon: &str, seq: i64) {
        self.app
            .ok(
                who,
                &format!(
                    "mutation($id: UUID!, $seq: Int!) {{
                        markMessages{horizon}(sessionId: $id, upToSeq: $seq) {{ lastReadSeq }} }}"
                ),
                json!({ "id": self.session, "seq": seq }),
            )
            .await;
    }

    async fn set_typing(&self, who: &TestUser, typing: bool) {
        self.app
            .ok(
                who,
                "mutation($id: UUID!, $typing: Boolean!) { setTyping(sessionId: $id, typing: $typing) }",
                json!({ "id": self.session, "typing": typing }),
            )
            .await;
    }

    /// A subscriber of `who` to `query`, whose `$id` is this chat.
    async fn subscriber(&self, who: &TestUser, query: &str) -> Subscriber {
        self.subscriber_with(who, query, json!({})).await
    }

    /// A subscriber of `who` to `query` with `variables`, and `$id` this chat.
    async fn subscriber_with(&self, who: &TestUser, query: &str, variables: Value) -> Subscriber {
        let mut variables = variables;
        variables["id"] = json!(self.session);
        self.app.subscriber(who, query, variables).await
    }
}

/// Reads receipts under `field` until `member`'s `horizon` (`lastReadSeq`, …) is `seq`.
async fn until_horizon(
    subscriber: &mut Subscriber,
    field: &str,
    member: &TestUser,
    horizon: &str,
    seq: i64,
) {
    subscriber
        .read_until(|data| {
            data[field]["user"]["id"] == member.id.as_str() && data[field][horizon] == seq
        })
        .await;
}

/// Reads `read` and `delivered` receipts until `member`'s read horizon is `read_seq` and
/// their delivered horizon is `delivered_seq`.
async fn until_receipts(
    read: &mut Subscriber,
    delivered: &mut Subscriber,
    member: &TestUser,
    read_seq: i64,
    delivered_seq: i64,
) {
    until_horizon(read, "messagesRead", member, "lastReadSeq", read_seq).await;
    until_horizon(
        delivered,
        "messagesDelivered",
        member,
        "lastDeliveredSeq",
        delivered_seq,
    )
    .await;
}

#[tokio::test]
async fn receipts_end_at_the_members_latest_horizons() {
    let chat = Chat::open(lagging_app().await).await;
    let (recipient, caregiver) = (&chat.recipient, &chat.caregiver);
    let mut read = chat
        .subscriber(
            recipient,
            &format!("subscription($id: UUID!) {{ messagesRead(sessionId: $id) {{ {MEMBER} }} }}"),
        )
        .await;
    let mut delivered = chat
        .subscriber(
            recipient,
            &format!(
                "subscription($id: UUID!) {{ messagesDelivered(sessionId: $id) {{ {MEMBER} }} }}"
            ),
        )
        .await;
    chat.send(recipient, "one").await;
    chat.mark(caregiver, "Read", 1).await;
    until_receipts(&mut read, &mut delivered, caregiver, 1, 1).await;

    for body in ["two", "three", "four"] {
        chat.send(recipient, body).await;
    }
    chat.mark(caregiver, "Delivered", 3).await;
    chat.mark(caregiver, "Read", 2).await;
    chat.send(recipient, "five").await;
    chat.send(recipient, "six").await;

    until_receipts(&mut read, &mut delivered, caregiver, 2, 3).await;
}

#[tokio::test]
async fn typing_after_falling_behind_ends_by_itself_and_takes_the_next_event() {
    let mut config = test_config().await;
    config.bus_capacity = 1;
    config.typing_ttl = Duration::from_secs(1);
    let chat = Chat::open(TestApp::spawn_with(config).await).await;
    let (recipient, caregiver) = (&chat.recipient, &chat.caregiver);
    let mut typing = chat
        .subscriber(
            recipient,
            "subscription($id: UUID!) { typing(sessionId: $id) { typing user { id } } }",
        )
        .await;
    chat.set_typing(caregiver, true).await;
    typing
        .read_until(|data| data["typing"]["typing"] == true)
        .await;

    // The stop is overwritten: nothing can be re-read, so "typing" ends at its expiry.
    chat.set_typing(caregiver, false).await;
    chat.send(recipient, "one").await;
    chat.send(recipient, "two").await;
    let stopped = typing.read_until(|_| true).await;
    assert_eq!(stopped[0]["typing"]["typing"], false);
    assert_eq!(stopped[0]["typing"]["user"]["id"], caregiver.id.as_str());

    chat.set_typing(caregiver, true).await;
    let started = typing.read_until(|_| true).await;
    assert_eq!(started[0]["typing"]["typing"], true);
}

#[tokio::test]
async fn unread_message_counts_end_at_the_current_count() {
    let chat = Chat::open(lagging_app().await).await;
    let (recipient, caregiver) = (&chat.recipient, &chat.caregiver);
    let mut total = chat
        .subscriber(recipient, "subscription { unreadMessageCount }")
        .await;
    let mut in_chat = chat
        .subscriber(
            recipient,
            "subscription($id: UUID) { unreadMessageCount(sessionId: $id) }",
        )
        .await;
    total
        .read_until(|data| data["unreadMessageCount"] == 0)
        .await;
    in_chat
        .read_until(|data| data["unreadMessageCount"] == 0)
        .await;

    chat.send(caregiver, "one").await;
    chat.mark(recipient, "Read", 1).await;
    chat.send(caregiver, "two").await;
    chat.send(caregiver, "three").await;

    for subscriber in [&mut total, &mut in_chat] {
        let read = subscriber
            .read_until(|data| data["unreadMessageCount"] == 2)
            .await;
        assert_eq!(read.len(), 1, "only the current count: {read:?}");
    }
}

#[tokio::test]
async fn unread_notification_count_ends_at_the_current_count() {
    let chat = Chat::open(lagging_app().await).await;
    let (app, recipient, caregiver) = (&chat.app, &chat.recipient, &chat.caregiver);
    let query = "{ unreadNotificationCount }";
    let mut count = chat
        .subscriber(caregiver, "subscription { unreadNotificationCount }")
        .await;
    let before = app.ok(caregiver, query, json!({})).await["unreadNotificationCount"].clone();
    count
        .read_until(|data| data["unreadNotificationCount"] == before)
        .await;

    app.ok(
        caregiver,
        "mutation { markAllNotificationsRead }",
        json!({}),
    )
    .await;
    chat.send(recipient, "one").await;
    // Last, a change on the caregiver's topic that says nothing of their count.
    chat.mark(caregiver, "Delivered", 1).await;

    let after = app.ok(caregiver, query, json!({})).await["unreadNotificationCount"].clone();
    assert_ne!(after, before);
    assert_ne!(after, 0);
    let read = count
        .read_until(|data| data["unreadNotificationCount"] == after)
        .await;
    assert_eq!(read.len(), 1, "only the current count: {read:?}");
}

#[tokio::test]
async fn message_added_resumes_after_falling_behind_without_gap_or_repeat() {
    let chat = Chat::open(lagging_app().await).await;
    let (recipient, caregiver) = (&chat.recipient, &chat.caregiver);
    let zero = chat.send(caregiver, "0").await;
    let mut messages = chat
        .subscriber_with(
            recipient,
            "subscription($id: UUID!, $after: String) {
                messageAdded(sessionId: $id, after: $after) { seq body } }",
            json!({ "after": zero }),
        )
        .await;
    chat.send(caregiver, "1").await;
    messages
        .read_until(|data| data["messageAdded"]["seq"] == 2)
        .await;

    for body in ["2", "3", "4", "5", "6"] {
        chat.send(caregiver, body).await;
    }

    let read = messages
        .read_until(|data| data["messageAdded"]["seq"] == 7)
        .await;
    let bodies: Vec<&Value> = read
        .iter()
        .map(|data| &data["messageAdded"]["body"])
        .collect();
    assert_eq!(bodies, ["2", "3", "4", "5", "6"]);
}

#[tokio::test]
async fn notification_added_resumes_after_falling_behind_without_gap_or_repeat() {
    let app = lagging_app().await;
    let (recipient, caregiver) = pair(&app).await;
    app.book(&recipient, &caregiver, 24).await;
    let first = app.inbox(&caregiver).await[0].clone();
    let mut added = app
        .subscriber(
            &caregiver,
            "subscription($after: String) { notificationAdded(after: $after) { id } }",
            json!({ "after": first["cursor"] }),
        )
        .await;
    app.book(&recipient, &caregiver, 48).await;
    added.read_until(|_| true).await;

    for hours in [72, 96, 120, 144] {
        app.book(&recipient, &caregiver, hours).await;
    }

    let mut expected: Vec<Value> = app
        .inbox(&caregiver)
        .await
        .iter()
        .take(4)
        .map(|notification| notification["id"].clone())
        .collect();
    expected.reverse();
    let last = expected.last().cloned().unwrap();
    let read = added
        .read_until(|data| data["notificationAdded"]["id"] == last)
        .await;
    let ids: Vec<Value> = read
        .iter()
        .map(|data| data["notificationAdded"]["id"].clone())
        .collect();
    assert_eq!(ids, expected);
}
