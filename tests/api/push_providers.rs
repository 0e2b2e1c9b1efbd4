//! The FCM and APNs senders against local fakes that check what the real services check:
//! the exact requests they make, how they authenticate (and reuse their credentials), and
//! how every kind of answer maps to a `SendFailure`.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use caregraph::{
    config::{ApnsConfig, FcmConfig},
    delivery::{Push, PushSender, SendFailure, apns::ApnsSender, fcm::FcmSender, providers},
};
use chrono::{DateTime, TimeZone, Utc};
use entity::{device, enums::DevicePlatform};
use serde_json::json;
use uuid::Uuid;

use crate::{
    fake_apns::{self, FakeApns},
    fake_fcm::{self, FakeFcm, Reply},
    helpers::{TempFile, test_config},
};

const TIMEOUT: Duration = Duration::from_secs(5);
const APNS_TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 14, 9, 26, 53).unwrap()
}

fn device(platform: DevicePlatform, token: &str) -> device::Model {
    let apns = platform == DevicePlatform::Apns;
    device::Model {
        id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        platform,
        token: token.to_owned(),
        apns_topic: apns.then(|| fake_apns::TOPIC.to_owned()),
        apns_sandbox: apns.then_some(false),
        web_push_p256dh: None,
        web_push_auth: None,
        label: None,
        created_at: now(),
        last_used_at: None,
    }
}

/// A chat message: collapsed per chat, neither urgent nor expiring.
fn chat_push() -> Push {
    Push {
        idempotency_key: Uuid::new_v4(),
        collapse: None,
        title: "Ada Lovelace".to_owned(),
        body: "See you at nine".to_owned(),
        data: BTreeMap::from([
            ("type".to_owned(), "CHAT_MESSAGE".to_owned()),
            ("notificationId".to_owned(), Uuid::new_v4().to_string()),
        ]),
        badge: 2,
        urgent: false,
        expires_at: None,
    }
}

/// A call request: urgent, expiring in 45 seconds, collapsing on the call.
fn call_push() -> Push {
    Push {
        idempotency_key: Uuid::new_v4(),
        collapse: Some(Uuid::new_v4()),
        title: "Incoming video call".to_owned(),
        body: "Grace Hopper is calling".to_owned(),
        data: BTreeMap::from([
            ("type".to_owned(), "CALL_REQUESTED".to_owned()),
            ("callId".to_owned(), Uuid::new_v4().to_string()),
        ]),
        badge: 7,
        urgent: true,
        expires_at: Some(now() + chrono::Duration::seconds(45)),
    }
}

struct Fcm {
    fake: FakeFcm,
    sender: FcmSender,
    _file: TempFile,
}

async fn fcm_with(timeout: Duration) -> Fcm {
    let fake = FakeFcm::start().await;
    let file = TempFile::new("service-account.json", &fake.service_account_json());
    let sender = FcmSender::new(
        &FcmConfig {
            service_account_file: file.path(),
            api_base_url: fake.base_url.clone(),
        },
        timeout,
    )
    .unwrap();
    Fcm {
        fake,
        sender,
        _file: file,
    }
}

async fn fcm() -> Fcm {
    fcm_with(TIMEOUT).await
}

fn transient_after(result: Result<(), SendFailure>) -> Option<Duration> {
    match result {
        Err(SendFailure::Transient { retry_after, .. }) => retry_after,
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

#[tokio::test]
async fn fcm_sends_the_v1_message_with_each_platforms_priority_ttl_and_collapse() {
    let fcm = fcm().await;
    let phone = device(DevicePlatform::Fcm, "fcm-registration-token-1");
    let call = call_push();
    let chat = chat_push();
    fcm.sender.send(&phone, &call, now()).await.unwrap();
    fcm.sender.send(&phone, &chat, now()).await.unwrap();

    let messages = fcm.fake.messages();
    assert_eq!(messages.len(), 2);
    assert!(messages[0].authorization.starts_with("Bearer ya29.fake-"));
    assert_eq!(
        messages[0].content_type.as_deref(),
        Some("application/json")
    );

    let collapse = call.collapse.unwrap().simple().to_string();
    let expires = (now() + chrono::Duration::seconds(45))
        .timestamp()
        .to_string();
    assert_eq!(
        messages[0].message,
        json!({
            "token": "fcm-registration-token-1",
            "notification": { "title": "Incoming video call", "body": "Grace Hopper is calling" },
            "data": {
                "type": "CALL_REQUESTED",
                "callId": call.data["callId"],
                "deliveryId": call.idempotency_key.to_string(),
            },
            "android": {
                "priority": "high",
                "ttl": "45s",
                "collapse_key": collapse,
                "notification": { "tag": collapse, "notification_count": 7 },
            },
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-collapse-id": collapse,
                    "apns-expiration": expires,
                },
                "payload": { "aps": { "badge": 7, "sound": "default" } },
            },
            "webpush": { "headers": { "Urgency": "high", "TTL": "45", "Topic": collapse } },
        })
    );

    // Without a collapse key the delivery's own key collapses resends of it; nothing
    // expires, so no TTL is set and each platform keeps its default.
    let own = chat.idempotency_key.simple().to_string();
    assert_eq!(own.len(), 32);
    assert_eq!(
        messages[1].message,
        json!({
            "token": "fcm-registration-token-1",
            "notification": { "title": "Ada Lovelace", "body": "See you at nine" },
            "data": {
                "type": "CHAT_MESSAGE",
                "notificationId": chat.data["notificationId"],
                "deliveryId": chat.idempotency_key.to_string(),
            },
            "android": {
                "priority": "normal",
                "notification": { "tag": own, "notification_count": 2 },
            },
            "apns": {
                "headers": { "apns-priority": "5", "apns-collapse-id": own },
                "payload": { "aps": { "badge": 2, "sound": "default" } },
            },
            "webpush": { "headers": { "Urgency": "normal", "Topic": own } },
        })
    );
}

#[tokio::test]
async fn fcm_gets_one_access_token_for_many_sends_even_concurrent_ones() {
    let fcm = fcm().await;
    let phone = device(DevicePlatform::Fcm, "token-a");
    let push = chat_push();
    let sends = (0..5).map(|_| fcm.sender.send(&phone, &push, now()));
    for result in futures_util::future::join_all(sends).await {
        result.unwrap();
    }
    fcm.sender.send(&phone, &push, now()).await.unwrap();

    assert_eq!(fcm.fake.token_requests(), 1);
    assert!(fcm.fake.refused_grants().is_empty());
    let messages = fcm.fake.messages();
    assert_eq!(messages.len(), 6);
    assert!(
        messages
            .iter()
            .all(|m| m.authorization == messages[0].authorization)
    );
}

#[tokio::test]
async fn fcm_replaces_an_access_token_a_minute_before_it_expires() {
    let fcm = fcm().await;
    // Valid for 60 s: already within the minute's margin when it arrives.
    fcm.fake.set_expires_in(60);
    let phone = device(DevicePlatform::Fcm, "token-a");
    fcm.sender.send(&phone, &chat_push(), now()).await.unwrap();
    fcm.sender.send(&phone, &chat_push(), now()).await.unwrap();
    assert_eq!(fcm.fake.token_requests(), 2);
    assert!(fcm.fake.refused_grants().is_empty());
    let messages = fcm.fake.messages();
    assert_ne!(messages[0].authorization, messages[1].authorization);
}

#[tokio::test]
async fn fcm_drops_a_refused_access_token_and_the_retry_gets_a_new_one() {
    let fcm = fcm().await;
    let phone = device(DevicePlatform::Fcm, "token-a");
    fcm.sender.send(&phone, &chat_push(), now()).await.unwrap();
    fcm.fake.script([Reply::status(
        401,
        json!({ "error": { "code": 401, "status": "UNAUTHENTICATED", "message": "expired" } }),
    )]);
    assert_eq!(
        transient_after(fcm.sender.send(&phone, &chat_push(), now()).await),
        None
    );
    fcm.sender.send(&phone, &chat_push(), now()).await.unwrap();
    assert_eq!(fcm.fake.token_requests(), 2);
}

#[tokio::test]
async fn fcm_maps_each_error_to_dead_token_rejected_or_transient() {
    let fcm = fcm().await;
    let phone = device(DevicePlatform::Fcm, "token-a");
    let push = chat_push();

    // A token FCM no longer knows: 404 NOT_FOUND with errorCode UNREGISTERED.
    let gone = device(DevicePlatform::Fcm, "token-uninstalled");
    fcm.fake.unregister("token-uninstalled");
    let result = fcm.sender.send(&gone, &push, now()).await;
    assert!(
        matches!(&result, Err(SendFailure::DeadToken(r)) if r.contains("UNREGISTERED")),
        "{result:?}"
    );

    // UNREGISTERED under 400 too; INVALID_ARGUMENT alone is the message's fault.
    fcm.fake.script([
        Reply::fcm_error(400, "INVALID_ARGUMENT", Some("UNREGISTERED")),
        Reply::fcm_error(400, "INVALID_ARGUMENT", Some("INVALID_ARGUMENT")),
        Reply::fcm_error(403, "PERMISSION_DENIED", Some("SENDER_ID_MISMATCH")),
        // A 404 that is not FCM's answer about the token (a wrong base URL).
        Reply::status(404, json!("Not Found")),
    ]);
    assert!(matches!(
        fcm.sender.send(&phone, &push, now()).await,
        Err(SendFailure::DeadToken(_))
    ));
    for _ in 0..3 {
        let result = fcm.sender.send(&phone, &push, now()).await;
        assert!(
            matches!(result, Err(SendFailure::Rejected(_))),
            "{result:?}"
        );
    }

    // 429 and 5xx are transient, with the wait Retry-After asks for, in seconds or as an
    // HTTP date (taken against the clock passed in).
    let date = (now() + chrono::Duration::seconds(120))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    fcm.fake.script([
        Reply::fcm_error(429, "RESOURCE_EXHAUSTED", Some("QUOTA_EXCEEDED"))
            .with_header("retry-after", "7"),
        Reply::fcm_error(503, "UNAVAILABLE", Some("UNAVAILABLE")).with_header("retry-after", date),
        Reply::fcm_error(500, "INTERNAL", Some("INTERNAL")),
        Reply::fcm_error(500, "INTERNAL", Some("INTERNAL")),
    ]);
    let results = [
        fcm.sender.send(&phone, &push, now()).await,
        fcm.sender.send(&phone, &push, now()).await,
        fcm.sender.send(&phone, &push, now()).await,
        fcm.sender.send(&phone, &push, now()).await,
    ];
    assert_eq!(
        results.map(transient_after),
        [
            Some(Duration::from_secs(7)),
            Some(Duration::from_secs(120)),
            None,
            None
        ]
    );
    // The script is spent: the same push goes through.
    fcm.sender.send(&phone, &push, now()).await.unwrap();
    assert_eq!(fcm.fake.token_requests(), 1);
}

#[tokio::test]
async fn fcm_gives_up_on_a_provider_that_never_answers_within_the_timeout() {
    let fcm = fcm_with(Duration::from_millis(300)).await;
    let phone = device(DevicePlatform::Fcm, "token-a");
    fcm.fake.script([fake_fcm::Reply::Hang]);
    let started = Instant::now();
    let result = fcm.sender.send(&phone, &chat_push(), now()).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(result, Err(SendFailure::Transient { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn fcm_setup_refuses_a_missing_or_malformed_service_account() {
    let config = |path: String| FcmConfig {
        service_account_file: path,
        api_base_url: "http://127.0.0.1:9".to_owned(),
    };
    let missing = FcmSender::new(&config("/nonexistent/sa.json".to_owned()), TIMEOUT);
    assert_eq!(missing.err().map(|e| e.provider), Some("fcm"));
    let not_a_key = TempFile::new("sa.json", r#"{"project_id": "p"}"#);
    assert!(FcmSender::new(&config(not_a_key.path()), TIMEOUT).is_err());
    let ec_key = TempFile::new(
        "sa.json",
        &json!({
            "project_id": "p", "client_email": "e", "token_uri": "http://127.0.0.1:9/token",
            "private_key": fake_apns::AUTH_KEY,
        })
        .to_string(),
    );
    assert!(FcmSender::new(&config(ec_key.path()), TIMEOUT).is_err());
}

struct Apns {
    production: FakeApns,
    sandbox: FakeApns,
    sender: ApnsSender,
    _key: TempFile,
}

async fn apns_with(timeout: Duration) -> Apns {
    let production = FakeApns::start().await;
    let sandbox = FakeApns::start().await;
    let key = TempFile::new("AuthKey.p8", fake_apns::AUTH_KEY);
    let sender = ApnsSender::new(
        &ApnsConfig {
            key_file: key.path(),
            key_id: fake_apns::KEY_ID.to_owned(),
            team_id: fake_apns::TEAM_ID.to_owned(),
            base_url: production.base_url.clone(),
            sandbox_base_url: sandbox.base_url.clone(),
        },
        timeout,
    )
    .unwrap();
    Apns {
        production,
        sandbox,
        sender,
        _key: key,
    }
}

async fn apns() -> Apns {
    apns_with(TIMEOUT).await
}

#[tokio::test]
async fn apns_sends_over_http2_with_the_headers_and_payload_apns_expects() {
    let apns = apns().await;
    let phone = device(DevicePlatform::Apns, APNS_TOKEN);
    let call = call_push();
    let chat = chat_push();
    apns.sender.send(&phone, &call, now()).await.unwrap();
    apns.sender.send(&phone, &chat, now()).await.unwrap();

    let pushes = apns.production.pushes();
    assert!(apns.production.refused().is_empty());
    assert_eq!(pushes.len(), 2);
    let collapse = call.collapse.unwrap().simple().to_string();
    let first = &pushes[0];
    assert_eq!(first.version, hyper::Version::HTTP_2);
    assert_eq!(first.device_token, APNS_TOKEN);
    assert!(first.headers["authorization"].starts_with("bearer ey"));
    assert_eq!(first.headers["apns-topic"], fake_apns::TOPIC);
    assert_eq!(first.headers["apns-push-type"], "alert");
    assert_eq!(first.headers["apns-priority"], "10");
    assert_eq!(
        first.headers["apns-id"],
        call.idempotency_key.hyphenated().to_string()
    );
    assert_eq!(first.headers["apns-collapse-id"], collapse);
    assert_eq!(
        first.headers["apns-expiration"],
        (now() + chrono::Duration::seconds(45))
            .timestamp()
            .to_string()
    );
    assert_eq!(
        first.payload,
        json!({
            "aps": {
                "alert": { "title": "Incoming video call", "body": "Grace Hopper is calling" },
                "badge": 7,
                "sound": "default",
                "thread-id": collapse,
            },
            "type": "CALL_REQUESTED",
            "callId": call.data["callId"],
            "deliveryId": call.idempotency_key.to_string(),
        })
    );

    let second = &pushes[1];
    assert_eq!(second.headers["apns-priority"], "5");
    assert!(!second.headers.contains_key("apns-collapse-id"));
    assert!(!second.headers.contains_key("apns-expiration"));
    assert_eq!(
        second.payload,
        json!({
            "aps": {
                "alert": { "title": "Ada Lovelace", "body": "See you at nine" },
                "badge": 2,
                "sound": "default",
            },
            "type": "CHAT_MESSAGE",
            "notificationId": chat.data["notificationId"],
            "deliveryId": chat.idempotency_key.to_string(),
        })
    );
    assert!(apns.sandbox.pushes().is_empty());
}

#[tokio::test]
async fn apns_sends_sandbox_tokens_to_the_sandbox_gateway() {
    let apns = apns().await;
    let mut phone = device(DevicePlatform::Apns, APNS_TOKEN);
    phone.apns_sandbox = Some(true);
    apns.sender.send(&phone, &chat_push(), now()).await.unwrap();
    assert_eq!(apns.sandbox.pushes().len(), 1);
    assert!(apns.production.pushes().is_empty());
}

#[tokio::test]
async fn apns_reuses_its_provider_token_and_signs_a_new_one_when_refused() {
    let apns = apns().await;
    let phone = device(DevicePlatform::Apns, APNS_TOKEN);
    for _ in 0..3 {
        apns.sender.send(&phone, &chat_push(), now()).await.unwrap();
    }
    apns.production
        .script([fake_apns::Reply::reason(403, "ExpiredProviderToken")]);
    assert_eq!(
        transient_after(apns.sender.send(&phone, &chat_push(), now()).await),
        None
    );
    // Tokens are signed to the second: wait for the next one, so a new token differs.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    apns.sender.send(&phone, &chat_push(), now()).await.unwrap();

    let pushes = apns.production.pushes();
    assert_eq!(pushes.len(), 5);
    let auth = |i: usize| pushes[i].headers["authorization"].clone();
    assert!((1..4).all(|i| auth(i) == auth(0)));
    assert_ne!(auth(4), auth(0));
    assert!(pushes[4].iat > pushes[0].iat);
}

#[tokio::test]
async fn apns_maps_each_reason_to_dead_token_rejected_or_transient() {
    let apns = apns().await;
    let phone = device(DevicePlatform::Apns, APNS_TOKEN);
    let push = chat_push();

    let gone_token = "ffff".repeat(16);
    apns.production.unregister(&gone_token);
    let result = apns
        .sender
        .send(&device(DevicePlatform::Apns, &gone_token), &push, now())
        .await;
    assert!(
        matches!(&result, Err(SendFailure::DeadToken(r)) if r.contains("Unregistered")),
        "{result:?}"
    );
    // Another app's topic: the fake, as APNs, says the token is not for it.
    let mut other_app = device(DevicePlatform::Apns, APNS_TOKEN);
    other_app.apns_topic = Some("com.example.other".to_owned());
    assert!(matches!(
        apns.sender.send(&other_app, &push, now()).await,
        Err(SendFailure::DeadToken(r)) if r.contains("DeviceTokenNotForTopic")
    ));
    // Not hex: never put in a URL.
    assert!(matches!(
        apns.sender
            .send(&device(DevicePlatform::Apns, "../3/x"), &push, now())
            .await,
        Err(SendFailure::DeadToken(_))
    ));

    apns.production.script([
        fake_apns::Reply::reason(400, "BadDeviceToken"),
        fake_apns::Reply::reason(400, "BadCollapseId"),
        fake_apns::Reply::reason(413, "PayloadTooLarge"),
        fake_apns::Reply::reason(403, "TopicDisallowed"),
    ]);
    assert!(matches!(
        apns.sender.send(&phone, &push, now()).await,
        Err(SendFailure::DeadToken(r)) if r.contains("BadDeviceToken")
    ));
    for reason in ["BadCollapseId", "PayloadTooLarge", "TopicDisallowed"] {
        let result = apns.sender.send(&phone, &push, now()).await;
        assert!(
            matches!(&result, Err(SendFailure::Rejected(r)) if r.contains(reason)),
            "{result:?}"
        );
    }

    apns.production.script([
        fake_apns::Reply::retry_after(429, "TooManyRequests", "3"),
        fake_apns::Reply::reason(500, "InternalServerError"),
        fake_apns::Reply::reason(503, "ServiceUnavailable"),
    ]);
    let results = [
        apns.sender.send(&phone, &push, now()).await,
        apns.sender.send(&phone, &push, now()).await,
        apns.sender.send(&phone, &push, now()).await,
    ];
    assert_eq!(
        results.map(transient_after),
        [Some(Duration::from_secs(3)), None, None]
    );
    apns.sender.send(&phone, &push, now()).await.unwrap();
    // The one request its checks refused is the other app's.
    assert_eq!(
        apns.production.refused(),
        ["DeviceTokenNotForTopic: com.example.other"]
    );
}

#[tokio::test]
async fn apns_shortens_a_long_body_to_fit_in_four_kilobytes() {
    let apns = apns().await;
    let phone = device(DevicePlatform::Apns, APNS_TOKEN);
    let mut push = chat_push();
    push.body = "é\"".repeat(3000);
    apns.sender.send(&phone, &push, now()).await.unwrap();
    let pushes = apns.production.pushes();
    assert!(pushes[0].payload_len <= 4096);
    assert!(pushes[0].payload_len > 3500, "{}", pushes[0].payload_len);
    let body = pushes[0].payload["aps"]["alert"]["body"].as_str().unwrap();
    assert!(body.ends_with('…'));
    assert!(push.body.starts_with(body.trim_end_matches('…')));
}

#[tokio::test]
async fn apns_gives_up_on_a_gateway_that_never_answers_within_the_timeout() {
    let apns = apns_with(Duration::from_millis(300)).await;
    let phone = device(DevicePlatform::Apns, APNS_TOKEN);
    apns.production.script([fake_apns::Reply::Hang]);
    let started = Instant::now();
    let result = apns.sender.send(&phone, &chat_push(), now()).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(result, Err(SendFailure::Transient { .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn providers_builds_the_configured_push_senders_and_refuses_a_bad_key() {
    let mut config = test_config().await.delivery;
    let fake = FakeFcm::start().await;
    let file = TempFile::new("sa.json", &fake.service_account_json());
    assert!(!providers(&config).unwrap().any_push());

    config.fcm = Some(FcmConfig {
        service_account_file: file.path(),
        api_base_url: fake.base_url.clone(),
    });
    let built = providers(&config).unwrap();
    assert!(built.fcm.is_some() && built.apns.is_none());
    built
        .push(DevicePlatform::Fcm)
        .unwrap()
        .send(&device(DevicePlatform::Fcm, "t"), &chat_push(), now())
        .await
        .unwrap();

    // An RSA key where the .p8 should be.
    let wrong = TempFile::new("AuthKey.p8", include_str!("keys/fcm_service_account.pem"));
    config.apns = Some(ApnsConfig {
        key_file: wrong.path(),
        key_id: fake_apns::KEY_ID.to_owned(),
        team_id: fake_apns::TEAM_ID.to_owned(),
        base_url: "http://127.0.0.1:9".to_owned(),
        sandbox_base_url: "http://127.0.0.1:9".to_owned(),
    });
    assert_eq!(providers(&config).err().map(|e| e.provider), Some("apns"));
}

#[tokio::test]
async fn the_fakes_refuse_credentials_the_real_services_would() {
    // A grant signed for another account: the token endpoint refuses it, and the send is
    // transient (a credentials problem of this server, not of the push).
    let fake = FakeFcm::start().await;
    let account = fake
        .service_account_json()
        .replace(fake_fcm::CLIENT_EMAIL, "someone-else@example.com");
    let file = TempFile::new("sa.json", &account);
    let sender = FcmSender::new(
        &FcmConfig {
            service_account_file: file.path(),
            api_base_url: fake.base_url.clone(),
        },
        TIMEOUT,
    )
    .unwrap();
    let result = sender
        .send(&device(DevicePlatform::Fcm, "t"), &chat_push(), now())
        .await;
    assert_eq!(transient_after(result), None);
    assert_eq!(
        fake.refused_grants().len(),
        1,
        "{:?}",
        fake.refused_grants()
    );
    assert!(fake.messages().is_empty());

    // A provider token under another key id: APNs answers InvalidProviderToken.
    let gateway = FakeApns::start().await;
    let key = TempFile::new("AuthKey.p8", fake_apns::AUTH_KEY);
    let sender = ApnsSender::new(
        &ApnsConfig {
            key_file: key.path(),
            key_id: "ZZZZZZZZZZ".to_owned(),
            team_id: fake_apns::TEAM_ID.to_owned(),
            base_url: gateway.base_url.clone(),
            sandbox_base_url: gateway.base_url.clone(),
        },
        TIMEOUT,
    )
    .unwrap();
    let result = sender
        .send(
            &device(DevicePlatform::Apns, APNS_TOKEN),
            &chat_push(),
            now(),
        )
        .await;
    assert_eq!(transient_after(result), None);
    assert!(gateway.refused()[0].starts_with("InvalidProviderToken"));
    assert!(gateway.pushes().is_empty());
}
