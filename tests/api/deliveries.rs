//! Notifications reaching people whose app is closed, end to end: devices registered over
//! GraphQL, the server's own job workers, and the real FCM, Web Push and SMTP clients talking
//! to local fakes that check what Google, a browser's push service and a mail relay check.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use caregraph::{
    clock::ManualClock,
    config::{Config, EmailConfig, FcmConfig, WebPushConfig},
    delivery::web_push::WebPushSender,
};
use chrono::{SubsecRound, Utc};
use p256::SecretKey;
use rand_core::OsRng;
use serde_json::{Value, json};

use crate::{
    fake_fcm::{FakeFcm, Reply},
    fake_smtp::{self, FakeSmtp},
    fake_web_push::{FakeWebPush, Subscription},
    helpers::{TempFile, TestApp, TestUser, error_code, eventually, nodes, test_config},
};

const REGISTER: &str = "mutation($input: RegisterDeviceInput!) {
    registerDevice(input: $input) { id platform label tokenHint lastUsedAt } }";
const DEVICES: &str = "{ devices { id platform label tokenHint } }";
const DELIVERIES: &str = "query($types: [NotificationType!]) {
    notifications(types: $types, first: 10) { edges { node { id type
        deliveries { channel platform deviceId status attempts lastError deliveredAt } } } } }";
const SEND: &str = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { id seq } }";
const SETTINGS: &str = "mutation($input: DeliverySettingsInput!) {
    updateDeliverySettings(input: $input) { messagePreviews quietHours { start end } } }";
const FCM_TOKEN: &str = "fcm-device-token-0123456789:APA91bHPRgkFq2T9mXwZ3eVdQ7bZ8nLk4sR1tUyO0pCjA5vBn6mDcEfGhIjKlMnOpQrStUvWxYz";

/// A server with FCM, Web Push and email configured against local fakes.
struct Delivering {
    app: TestApp,
    fcm: FakeFcm,
    web: FakeWebPush,
    smtp: FakeSmtp,
    /// The key browsers subscribe with (`applicationServerKey`).
    application_server_key: String,
    _service_account: TempFile,
}

impl Delivering {
    async fn start() -> Self {
        Self::start_with(
            test_config().await,
            ManualClock::new(Utc::now().trunc_subsecs(0)),
        )
        .await
    }

    async fn start_with(mut config: Config, clock: ManualClock) -> Self {
        let fcm = FakeFcm::start().await;
        let web = FakeWebPush::start().await;
        let smtp = FakeSmtp::start().await;
        let service_account = TempFile::new("service-account.json", &fcm.service_account_json());
        let vapid = URL_SAFE_NO_PAD.encode(SecretKey::random(&mut OsRng).to_bytes());
        let web_push = WebPushConfig {
            private_key: vapid.into(),
            subject: "mailto:ops@caregraph.test".into(),
        };
        let application_server_key = WebPushSender::new(&web_push, Duration::from_secs(2))
            .expect("VAPID key")
            .public_key()
            .to_owned();
        config.delivery.fcm = Some(FcmConfig {
            service_account_file: service_account.path(),
            api_base_url: fcm.base_url.clone(),
        });
        config.delivery.web_push = Some(web_push);
        config.delivery.email = Some(EmailConfig {
            smtp_url: smtp.url().into(),
            from: "Caregraph <care@caregraph.test>".into(),
        });
        config.delivery.provider_timeout = Duration::from_secs(2);
        config.delivery.jobs.poll = Duration::from_millis(50);
        let app = TestApp::spawn_with_clock(config, clock).await;
        Delivering {
            app,
            fcm,
            web,
            smtp,
            application_server_key,
            _service_account: service_account,
        }
    }

    /// A Web Push subscription for `user`, registered as a browser's app would.
    async fn browser(&self, user: &TestUser) -> Subscription {
        let key = self.app.ok(user, "{ webPushPublicKey }", json!({})).await;
        assert_eq!(
            key["webPushPublicKey"],
            self.application_server_key.as_str()
        );
        let subscription = self.web.subscribe(&self.application_server_key);
        let registered = self
            .app
            .ok(
                user,
                REGISTER,
                json!({ "input": { "webPush": {
                    "endpoint": subscription.endpoint,
                    "expirationTime": null,
                    "keys": { "p256dh": subscription.p256dh, "auth": subscription.auth },
                    "label": "Firefox on the laptop",
                }}}),
            )
            .await;
        assert_eq!(registered["registerDevice"]["platform"], "WEB_PUSH");
        subscription
    }

    async fn phone(&self, user: &TestUser, token: &str) -> String {
        let registered = self
            .app
            .ok(
                user,
                REGISTER,
                json!({ "input": { "fcm": { "token": token, "label": "Pixel" } } }),
            )
            .await;
        registered["registerDevice"]["id"]
            .as_str()
            .expect("device id")
            .to_owned()
    }

    /// The user's notifications of `kind` with their deliveries, newest first.
    async fn deliveries(&self, user: &TestUser, kind: &str) -> Vec<Value> {
        let response = self
            .app
            .ok(user, DELIVERIES, json!({ "types": [kind] }))
            .await;
        nodes(&response["notifications"])
            .into_iter()
            .cloned()
            .collect()
    }

    /// FCM messages received for `token`.
    fn fcm_messages(&self, token: &str) -> Vec<Value> {
        self.fcm
            .messages()
            .into_iter()
            .filter(|recorded| recorded.message["token"] == token)
            .map(|recorded| recorded.message)
            .collect()
    }
}

/// The first delivery of the newest notification of `kind` once it has `status`.
async fn delivery_with_status(
    delivering: &Delivering,
    user: &TestUser,
    kind: &str,
    channel: &str,
    status: &str,
) -> Value {
    eventually(
        &format!("a {channel} delivery of {kind} to be {status}"),
        async || {
            let notifications = delivering.deliveries(user, kind).await;
            notifications.first().and_then(|notification| {
                notification["deliveries"]
                    .as_array()
                    .and_then(|deliveries| {
                        deliveries
                            .iter()
                            .find(|delivery| {
                                delivery["channel"] == channel && delivery["status"] == status
                            })
                            .cloned()
                    })
            })
        },
    )
    .await
}

/// The push delivery of the user's newest booking request, once it exists.
async fn push_delivery(delivering: &Delivering, user: &TestUser) -> Option<Value> {
    let notifications = delivering.deliveries(user, "BOOKING_CREATED").await;
    notifications
        .first()?
        .get("deliveries")?
        .as_array()?
        .iter()
        .find(|delivery| delivery["channel"] == "PUSH")
        .cloned()
}

#[tokio::test]
async fn a_booking_request_reaches_the_caregivers_browser_and_phone_with_the_badge() {
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let rita = app.register("CARE_RECIPIENT", "Rita").await;
    let carol = app.register("CAREGIVER", "Carol").await;
    let browser = delivering.browser(&carol).await;
    delivering.phone(&carol, FCM_TOKEN).await;
    let booking = app.book(&rita, &carol, 48).await;

    let received = eventually("the browser's push", async || {
        delivering.web.received(&browser).into_iter().next()
    })
    .await;
    assert_eq!(received.payload["title"], "New booking request");
    assert_eq!(received.payload["data"]["bookingId"], booking);
    assert_eq!(received.payload["data"]["type"], "BOOKING_CREATED");
    assert_eq!(
        received.payload["badge"], 1,
        "the badge is the unread count"
    );
    assert_eq!(received.urgency.as_deref(), Some("normal"));
    let message = eventually("the phone's push", async || {
        delivering.fcm_messages(FCM_TOKEN).into_iter().next()
    })
    .await;
    assert_eq!(message["data"]["bookingId"], booking);
    assert_eq!(message["android"]["priority"], "normal");

    let notification =
        delivery_with_status(&delivering, &carol, "BOOKING_CREATED", "PUSH", "SENT").await;
    assert_eq!(notification["attempts"], 1);
    let all = delivering.deliveries(&carol, "BOOKING_CREATED").await;
    let channels: Vec<(&Value, &Value)> = all[0]["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|delivery| (&delivery["channel"], &delivery["platform"]))
        .collect();
    assert!(
        channels.contains(&(&json!("PUSH"), &json!("WEB_PUSH"))),
        "{channels:?}"
    );
    assert!(
        channels.contains(&(&json!("PUSH"), &json!("FCM"))),
        "{channels:?}"
    );
    // Rita has no device: her own notifications were not pushed anywhere.
    assert!(delivering.web.refused(&browser).is_empty());
}

#[tokio::test]
async fn a_message_push_says_who_wrote_but_not_what_unless_previews_are_on_and_collapses_per_chat()
{
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let rita = app.register("CARE_RECIPIENT", "Rita").await;
    let carol = app.register("CAREGIVER", "Carol").await;
    let (_, session) = app.booking_chat(&rita, &carol).await;
    let browser = delivering.browser(&carol).await;
    let send = async |body: &str| {
        app.ok(
            &rita,
            SEND,
            json!({ "input": { "sessionId": session, "body": body,
                "clientMessageId": uuid::Uuid::now_v7().to_string() } }),
        )
        .await
    };
    send("Her insulin is in the fridge").await;
    let first = eventually("the first message push", async || {
        delivering
            .web
            .received(&browser)
            .into_iter()
            .find(|push| push.payload["data"]["type"] == "MESSAGE_RECEIVED")
    })
    .await;
    assert_eq!(first.payload["title"], "New message from Rita");
    assert_eq!(first.payload["body"], "Open the app to read it.");
    assert!(
        !first.payload.to_string().contains("insulin"),
        "no text on the lock screen"
    );
    let chat_topic = uuid::Uuid::parse_str(&session)
        .expect("uuid")
        .simple()
        .to_string();
    assert_eq!(
        first.topic.as_deref(),
        Some(chat_topic.as_str()),
        "collapses per chat"
    );
    assert_eq!(first.payload["data"]["sessionId"], session);
    assert!(first.payload["data"]["seq"].is_string());

    let settings = app
        .ok(
            &carol,
            SETTINGS,
            json!({ "input": { "messagePreviews": true } }),
        )
        .await;
    assert_eq!(settings["updateDeliverySettings"]["messagePreviews"], true);
    send("She had lunch at noon").await;
    let second = eventually("the second message push", async || {
        delivering
            .web
            .received(&browser)
            .into_iter()
            .find(|push| push.payload["body"] == "She had lunch at noon")
    })
    .await;
    assert_eq!(second.topic.as_deref(), Some(chat_topic.as_str()));
}

#[tokio::test]
async fn devices_are_private_and_a_token_moves_to_whoever_registers_it_last() {
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let ann = app.register("CARE_RECIPIENT", "Ann").await;
    let ben = app.register("CARE_RECIPIENT", "Ben").await;
    let id = delivering.phone(&ann, FCM_TOKEN).await;
    let anns = app.ok(&ann, DEVICES, json!({})).await;
    assert_eq!(anns["devices"][0]["label"], "Pixel");
    assert_eq!(anns["devices"][0]["tokenHint"], "…UvWxYz");
    assert!(
        !anns.to_string().contains(FCM_TOKEN),
        "the token never comes back whole"
    );
    let bens = app.ok(&ben, DEVICES, json!({})).await;
    assert_eq!(bens["devices"], json!([]));
    let taken = app
        .code(
            &ben,
            "mutation($id: UUID!) { unregisterDevice(id: $id) }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(taken, "NOT_FOUND");
    assert_eq!(
        app.ok(&ann, DEVICES, json!({})).await["devices"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // The phone changed hands: Ben signs in on it and registers the same token.
    delivering.phone(&ben, FCM_TOKEN).await;
    assert_eq!(app.ok(&ann, DEVICES, json!({})).await["devices"], json!([]));
    assert_eq!(
        app.ok(&ben, DEVICES, json!({})).await["devices"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Signing out on it removes it.
    let bens_id = app.ok(&ben, DEVICES, json!({})).await["devices"][0]["id"].clone();
    app.ok(
        &ben,
        "mutation($id: UUID!) { unregisterDevice(id: $id) }",
        json!({ "id": bens_id }),
    )
    .await;
    assert_eq!(app.ok(&ben, DEVICES, json!({})).await["devices"], json!([]));
}

#[tokio::test]
async fn bad_devices_are_refused_with_bad_user_input_and_nothing_is_stored() {
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let ann = app.register("CARE_RECIPIENT", "Ann").await;
    let good = delivering.web.subscribe(&delivering.application_server_key);
    let not_a_point = URL_SAFE_NO_PAD.encode([4u8; 65]);
    let cases = [
        ("a short FCM token", json!({ "fcm": { "token": "abc" } })),
        (
            "an FCM token with spaces",
            json!({ "fcm": { "token": format!("{} x", "a".repeat(150)) } }),
        ),
        (
            "APNs, which this server does not send",
            json!({ "apns": { "token": "ab".repeat(32), "bundleId": "com.example.care", "environment": "PRODUCTION" } }),
        ),
        (
            "an endpoint that is not https",
            json!({ "webPush": { "endpoint": "http://push.example.com/x", "keys": { "p256dh": good.p256dh, "auth": good.auth } } }),
        ),
        (
            "an endpoint on a private address",
            json!({ "webPush": { "endpoint": "https://10.1.2.3/push", "keys": { "p256dh": good.p256dh, "auth": good.auth } } }),
        ),
        (
            "a key that is not a P-256 point",
            json!({ "webPush": { "endpoint": good.endpoint, "keys": { "p256dh": not_a_point, "auth": good.auth } } }),
        ),
        (
            "an auth secret of the wrong length",
            json!({ "webPush": { "endpoint": good.endpoint, "keys": { "p256dh": good.p256dh, "auth": "c2hvcnQ" } } }),
        ),
        (
            "a label over 80 characters",
            json!({ "fcm": { "token": FCM_TOKEN, "label": "x".repeat(81) } }),
        ),
    ];
    for (what, input) in cases {
        let response = app
            .graphql(Some(&ann.token), REGISTER, json!({ "input": input }))
            .await;
        assert_eq!(
            error_code(&response),
            "BAD_USER_INPUT",
            "{what}: {response}"
        );
    }
    assert_eq!(app.ok(&ann, DEVICES, json!({})).await["devices"], json!([]));
}

#[tokio::test]
async fn a_provider_failing_for_a_while_delivers_once_when_it_recovers() {
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let rita = app.register("CARE_RECIPIENT", "Rita").await;
    let carol = app.register("CAREGIVER", "Carol").await;
    delivering.phone(&carol, FCM_TOKEN).await;
    delivering.fcm.script([
        Reply::status(500, json!({})),
        Reply::status(503, json!({})),
        Reply::status(500, json!({})),
    ]);
    app.book(&rita, &carol, 48).await;
    let pending = eventually("the first failed attempt", async || {
        let delivery = push_delivery(&delivering, &carol).await?;
        (delivery["attempts"] == 1).then_some(delivery)
    })
    .await;
    assert_eq!(pending["status"], "PENDING");
    assert!(
        pending["lastError"]
            .as_str()
            .is_some_and(|error| error.contains("500")),
        "{pending}"
    );
    // Each retry waits its backoff: move the clock past each one until the provider recovers.
    let sent = eventually("the delivery to be sent after the outage", async || {
        app.clock.advance(chrono::Duration::minutes(5));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let delivery = push_delivery(&delivering, &carol).await?;
        (delivery["status"] == "SENT").then_some(delivery)
    })
    .await;
    assert_eq!(sent["attempts"], 4);
    assert_eq!(sent["lastError"], Value::Null);
    let messages = delivering.fcm_messages(FCM_TOKEN);
    assert_eq!(messages.len(), 4, "three refused, one accepted");
    let tags: Vec<&Value> = messages
        .iter()
        .map(|m| &m["android"]["notification"]["tag"])
        .collect();
    assert!(
        tags.windows(2).all(|pair| pair[0] == pair[1]),
        "every attempt carries the same key"
    );
    // Nothing more is sent once it went through.
    app.clock.advance(chrono::Duration::hours(2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(delivering.fcm_messages(FCM_TOKEN).len(), 4);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let rita = app.register("CARE_RECIPIENT", "Rita").await;
    let carol = app.register("CAREGIVER", "Carol").await;
    delivering.phone(&carol, FCM_TOKEN).await;
    delivering
        .fcm
        .script([Reply::status(429, json!({})).with_header("retry-after", "600")]);
    app.book(&rita, &carol, 48).await;
    eventually("the throttled attempt", async || {
        (delivering.fcm_messages(FCM_TOKEN).len() == 1).then_some(())
    })
    .await;
    // The clock moves only once the retry is recorded, or it would be due 600 s after the
    // moved clock instead.
    eventually("the throttled attempt's record", async || {
        let notifications = delivering.deliveries(&carol, "BOOKING_CREATED").await;
        let recorded = notifications.first().is_some_and(|notification| {
            notification["deliveries"]
                .as_array()
                .is_some_and(|deliveries| {
                    deliveries.iter().any(|delivery| {
                        delivery["channel"] == "PUSH" && delivery["lastError"].is_string()
                    })
                })
        });
        recorded.then_some(())
    })
    .await;
    app.clock.advance(chrono::Duration::seconds(590));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        delivering.fcm_messages(FCM_TOKEN).len(),
        1,
        "not before Retry-After"
    );
    app.clock.advance(chrono::Duration::seconds(11));
    delivery_with_status(&delivering, &carol, "BOOKING_CREATED", "PUSH", "SENT").await;
    assert_eq!(delivering.fcm_messages(FCM_TOKEN).len(), 2);
}

#[tokio::test]
async fn a_dead_token_is_pruned_and_never_sent_to_again() {
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let rita = app.register("CARE_RECIPIENT", "Rita").await;
    let carol = app.register("CAREGIVER", "Carol").await;
    delivering.phone(&carol, FCM_TOKEN).await;
    delivering.fcm.unregister(FCM_TOKEN);
    app.book(&rita, &carol, 48).await;
    let failed =
        delivery_with_status(&delivering, &carol, "BOOKING_CREATED", "PUSH", "FAILED").await;
    assert!(
        failed["lastError"]
            .as_str()
            .is_some_and(|error| error.contains("no longer registered")),
        "{failed}"
    );
    assert_eq!(
        app.ok(&carol, DEVICES, json!({})).await["devices"],
        json!([])
    );
    app.book(&rita, &carol, 72).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        delivering.fcm_messages(FCM_TOKEN).len(),
        1,
        "one attempt, then pruned"
    );
}

#[tokio::test]
async fn a_server_killed_between_send_and_record_resends_with_the_same_key() {
    let config = test_config().await;
    let clock = ManualClock::new(Utc::now().trunc_subsecs(0));
    let first = Delivering::start_with(config.clone(), clock.clone()).await;
    let rita = first.app.register("CARE_RECIPIENT", "Rita").await;
    let carol = first.app.register("CAREGIVER", "Carol").await;
    first.phone(&carol, FCM_TOKEN).await;
    // FCM takes the message and the answer never comes back: the server dies waiting.
    first.fcm.script([Reply::Hang]);
    first.app.book(&rita, &carol, 48).await;
    eventually("the send that never returns", async || {
        (first.fcm_messages(FCM_TOKEN).len() == 1).then_some(())
    })
    .await;
    let sent_first = first.fcm_messages(FCM_TOKEN)[0].clone();
    first.app.kill();

    // A new instance on the same database, with FCM answering again.
    let second = Delivering::start_with(config, clock.clone()).await;
    clock.advance(chrono::Duration::seconds(121));
    let resent = eventually("the resend after the lease lapsed", async || {
        second.fcm_messages(FCM_TOKEN).into_iter().next()
    })
    .await;
    assert_eq!(
        resent["android"]["notification"]["tag"],
        sent_first["android"]["notification"]["tag"]
    );
    assert_eq!(
        resent["data"]["deliveryId"],
        sent_first["data"]["deliveryId"]
    );
    assert_eq!(
        resent["apns"]["headers"]["apns-collapse-id"],
        sent_first["apns"]["headers"]["apns-collapse-id"]
    );
    delivery_with_status(&second, &carol, "BOOKING_CREATED", "PUSH", "SENT").await;
}

#[tokio::test]
async fn quiet_hours_hold_pushes_back_but_not_a_video_call_request() {
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let rita = app.register("CARE_RECIPIENT", "Rita").await;
    let carol = app.register("CAREGIVER", "Carol").await;
    delivering.phone(&carol, FCM_TOKEN).await;
    let now = app.services().state.clock.now();
    let hhmm = |at: chrono::DateTime<Utc>| at.format("%H:%M").to_string();
    let quiet = json!({ "start": hhmm(now - chrono::Duration::minutes(30)), "end": hhmm(now + chrono::Duration::minutes(60)) });
    app.ok(
        &carol,
        SETTINGS,
        json!({ "input": { "quietHours": quiet } }),
    )
    .await;
    app.book(&rita, &carol, 48).await;
    delivery_with_status(&delivering, &carol, "BOOKING_CREATED", "PUSH", "DEFERRED").await;
    app.request_call(&rita, &carol).await;
    let call = eventually("the call request's push", async || {
        delivering
            .fcm_messages(FCM_TOKEN)
            .into_iter()
            .find(|message| message["data"]["type"] == "VIDEO_CALL_REQUESTED")
    })
    .await;
    assert_eq!(call["android"]["priority"], "high");
    assert_eq!(call["apns"]["headers"]["apns-priority"], "10");
    assert!(
        call["android"]["ttl"]
            .as_str()
            .is_some_and(|ttl| ttl.ends_with('s')),
        "{call}"
    );
    assert_eq!(
        delivering.fcm_messages(FCM_TOKEN).len(),
        1,
        "the booking waits"
    );
    app.clock.advance(chrono::Duration::minutes(61));
    delivery_with_status(&delivering, &carol, "BOOKING_CREATED", "PUSH", "SENT").await;
}

#[tokio::test]
async fn an_email_has_both_parts_and_its_link_unsubscribes_without_signing_in() {
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let rita = app.register("CARE_RECIPIENT", "Rita").await;
    let carol = app.register("CAREGIVER", "Carol").await;
    app.book(&rita, &carol, 48).await;
    let mail = eventually("the booking email", async || {
        delivering.smtp.messages().into_iter().next()
    })
    .await;
    let parsed = fake_smtp::parse(&mail.data);
    assert_eq!(parsed.header("Subject"), Some("New booking request"));
    assert!(
        parsed.text.contains("New booking request"),
        "{}",
        parsed.text
    );
    assert!(
        parsed.html.contains("<h1>New booking request</h1>"),
        "{}",
        parsed.html
    );
    let link = parsed
        .header("List-Unsubscribe")
        .expect("List-Unsubscribe")
        .trim_matches(|c| c == '<' || c == '>')
        .to_owned();
    // The link names PUBLIC_URL, which a test server listening on a random port leaves at its
    // default: reach the same path on the test server.
    let path = link
        .split_once("/unsubscribe")
        .map(|(_, rest)| rest)
        .expect("unsubscribe path");
    let reachable = format!("http://{}/unsubscribe{path}", app.addr);
    assert!(parsed.text.contains(&link) && parsed.html.contains(&link.replace('&', "&amp;")));
    delivery_with_status(&delivering, &carol, "BOOKING_CREATED", "EMAIL", "SENT").await;

    // A mail scanner following the link changes nothing; the page's button (or a one-click
    // POST from the mail client) does.
    let http = reqwest::Client::new();
    let page = http.get(&reachable).send().await.expect("GET");
    assert_eq!(page.status(), 200);
    app.book(&rita, &carol, 72).await;
    eventually("the second booking email", async || {
        (delivering.smtp.messages().len() == 2).then_some(())
    })
    .await;
    let done = http
        .post(&reachable)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("POST");
    assert_eq!(done.status(), 200);
    let forged = http
        .post(format!("{reachable}x"))
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), 400);
    app.book(&rita, &carol, 96).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        delivering.smtp.messages().len(),
        2,
        "unsubscribed from booking requests"
    );
    let preferences = app
        .ok(
            &carol,
            "{ notificationPreferences { type channel enabled } }",
            json!({}),
        )
        .await;
    let email_off = preferences["notificationPreferences"]
        .as_array()
        .expect("preferences")
        .iter()
        .any(|p| {
            p["type"] == "BOOKING_CREATED" && p["channel"] == "EMAIL" && p["enabled"] == false
        });
    assert!(email_off);
}

#[tokio::test]
async fn unread_chats_are_emailed_in_one_digest_at_most_once_an_hour() {
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let rita = app.register("CARE_RECIPIENT", "Rita").await;
    let carol = app.register("CAREGIVER", "Carol").await;
    let (_, session) = app.booking_chat(&rita, &carol).await;
    let before = delivering.smtp.messages().len();
    for body in ["Are you free Tuesday?", "Or Wednesday?"] {
        app.ok(
            &rita,
            SEND,
            json!({ "input": { "sessionId": session, "body": body,
                "clientMessageId": uuid::Uuid::now_v7().to_string() } }),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let to_carol = |messages: Vec<crate::fake_smtp::Mail>| {
        messages
            .into_iter()
            .filter(|mail| {
                fake_smtp::parse(&mail.data).header("Subject") == Some("You have unread messages")
            })
            .count()
    };
    assert_eq!(
        to_carol(delivering.smtp.messages()),
        0,
        "no email per message"
    );
    app.clock.advance(chrono::Duration::minutes(15));
    let digest = eventually("the digest", async || {
        delivering
            .smtp
            .messages()
            .into_iter()
            .skip(before)
            .find(|mail| {
                fake_smtp::parse(&mail.data).header("Subject") == Some("You have unread messages")
            })
    })
    .await;
    let parsed = fake_smtp::parse(&digest.data);
    assert!(
        parsed.text.contains("Rita: 2 unread messages"),
        "{}",
        parsed.text
    );
    // Another message within the hour: no second digest for the same chat.
    app.ok(
        &rita,
        SEND,
        json!({ "input": { "sessionId": session, "body": "Hello?",
            "clientMessageId": uuid::Uuid::now_v7().to_string() } }),
    )
    .await;
    app.clock.advance(chrono::Duration::minutes(16));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(to_carol(delivering.smtp.messages()), 1);
}

#[tokio::test]
async fn a_user_keeps_twenty_devices_and_bad_quiet_hours_are_refused() {
    let delivering = Delivering::start().await;
    let app = &delivering.app;
    let ann = app.register("CARE_RECIPIENT", "Ann").await;
    let token = |n: usize| format!("{FCM_TOKEN}{n:03}");
    let first = delivering.phone(&ann, &token(0)).await;
    for n in 1..=20 {
        app.clock.advance(chrono::Duration::seconds(1));
        delivering.phone(&ann, &token(n)).await;
    }
    let devices = app.ok(&ann, DEVICES, json!({})).await;
    let ids: Vec<&Value> = devices["devices"]
        .as_array()
        .expect("devices")
        .iter()
        .map(|d| &d["id"])
        .collect();
    assert_eq!(ids.len(), 20, "the 21st registration removed one");
    assert!(
        !ids.contains(&&json!(first)),
        "the one used longest ago went"
    );

    for (what, quiet) in [
        (
            "an hour past 23",
            json!({ "start": "25:00", "end": "07:00" }),
        ),
        ("no minutes", json!({ "start": "22", "end": "07:00" })),
        (
            "the same start and end",
            json!({ "start": "07:00", "end": "07:00" }),
        ),
    ] {
        let response = app
            .graphql(
                Some(&ann.token),
                SETTINGS,
                json!({ "input": { "quietHours": quiet } }),
            )
            .await;
        assert_eq!(
            error_code(&response),
            "BAD_USER_INPUT",
            "{what}: {response}"
        );
    }
    let settings = app
        .ok(
            &ann,
            "{ deliverySettings { messagePreviews quietHours { start } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        settings["deliverySettings"],
        json!({ "messagePreviews": false, "quietHours": null })
    );
}

#[tokio::test]
async fn an_iphone_registered_with_apns_gets_its_push_through_the_sandbox_when_its_build_is() {
    use crate::fake_apns::{self, FakeApns};
    let production = FakeApns::start().await;
    let sandbox = FakeApns::start().await;
    let key = TempFile::new("AuthKey.p8", fake_apns::AUTH_KEY);
    let mut config = test_config().await;
    config.delivery.apns = Some(caregraph::config::ApnsConfig {
        key_file: key.path(),
        key_id: fake_apns::KEY_ID.to_owned(),
        team_id: fake_apns::TEAM_ID.to_owned(),
        base_url: production.base_url.clone(),
        sandbox_base_url: sandbox.base_url.clone(),
    });
    config.delivery.jobs.poll = Duration::from_millis(50);
    let app = TestApp::spawn_with(config).await;
    let rita = app.register("CARE_RECIPIENT", "Rita").await;
    let carol = app.register("CAREGIVER", "Carol").await;
    let token = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let registered = app
        .ok(
            &carol,
            REGISTER,
            json!({ "input": { "apns": { "token": token.to_uppercase(), "bundleId": fake_apns::TOPIC,
                "environment": "SANDBOX", "label": "Carol's iPhone" } } }),
        )
        .await;
    assert_eq!(registered["registerDevice"]["platform"], "APNS");
    app.request_call(&rita, &carol).await;
    let push = eventually("the call request on the sandbox gateway", async || {
        sandbox.pushes().into_iter().next()
    })
    .await;
    assert_eq!(
        push.device_token, token,
        "stored and sent as lower-case hex"
    );
    assert_eq!(push.headers["apns-topic"], fake_apns::TOPIC);
    assert_eq!(push.headers["apns-priority"], "10");
    assert_eq!(push.payload["type"], "VIDEO_CALL_REQUESTED");
    assert!(
        production.pushes().is_empty(),
        "a sandbox token never goes to production"
    );
}
