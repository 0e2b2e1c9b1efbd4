//! The Web Push sender and the SMTP mailer against local stand-ins that check what the real
//! services check: a push service that verifies VAPID and decrypts the payload as a browser
//! does, and an SMTP relay that records what it is given.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use caregraph::{
    config::{DeliveryConfig, EmailConfig, JobConfig, WebPushConfig},
    delivery::{
        Email, Mailer, Push, PushSender, SendFailure, email::SmtpMailer, providers, web_push,
        web_push::WebPushSender,
    },
};
use chrono::Utc;
use entity::{device, enums::DevicePlatform};
use p256::SecretKey;
use rand_core::OsRng;
use uuid::Uuid;

use crate::{
    fake_smtp::{self, FakeSmtp},
    fake_web_push::{self, Answer, FakeWebPush, Subscription},
};

const TIMEOUT: Duration = Duration::from_millis(800);

fn vapid_key() -> String {
    URL_SAFE_NO_PAD.encode(SecretKey::random(&mut OsRng).to_bytes())
}

fn sender_with(key: &str) -> WebPushSender {
    let config = WebPushConfig {
        private_key: key.into(),
        subject: "mailto:ops@caregraph.test".into(),
    };
    WebPushSender::new(&config, TIMEOUT).unwrap()
}

fn device_for(subscription: &Subscription) -> device::Model {
    device::Model {
        id: Uuid::now_v7(),
        user_id: Uuid::now_v7(),
        platform: DevicePlatform::WebPush,
        token: subscription.endpoint.clone(),
        apns_topic: None,
        apns_sandbox: None,
        web_push_p256dh: Some(subscription.p256dh.clone()),
        web_push_auth: Some(subscription.auth.clone()),
        label: None,
        created_at: Utc::now(),
        last_used_at: None,
    }
}

fn push() -> Push {
    Push {
        idempotency_key: Uuid::now_v7(),
        collapse: None,
        title: "New message".into(),
        body: "Ana: see you at 10 ☕".into(),
        data: BTreeMap::from([
            ("notificationId".into(), Uuid::now_v7().to_string()),
            ("type".into(), "CHAT_MESSAGE".into()),
        ]),
        badge: 3,
        urgent: false,
        expires_at: None,
    }
}

/// Starts a push service and a subscription made with a new sender's key.
async fn setup() -> (FakeWebPush, WebPushSender, Subscription) {
    let service = FakeWebPush::start().await;
    let sender = sender_with(&vapid_key());
    let subscription = service.subscribe(sender.public_key());
    (service, sender, subscription)
}

#[tokio::test]
async fn encryption_reproduces_the_rfc_8291_example_and_the_fake_reads_it() {
    let d = |text: &str| URL_SAFE_NO_PAD.decode(text).unwrap();
    let as_secret =
        SecretKey::from_slice(&d("yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw")).unwrap();
    let ua_secret =
        SecretKey::from_slice(&d("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).unwrap();
    let ua_public = d(
        "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
    );
    let auth = d("BTBZMqHH6r4Tts7J_aSIgg");
    let salt: [u8; 16] = d("DGv6ra1nlYgDCS1FRnbzlw").try_into().unwrap();
    let plaintext = b"When I grow up, I want to be a watermelon";

    let body = web_push::encrypt(&ua_public, &auth, plaintext, &as_secret, &salt).unwrap();

    assert_eq!(
        URL_SAFE_NO_PAD.encode(&body),
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml\
         mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT\
         pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"
    );
    assert_eq!(
        fake_web_push::decrypt(&ua_secret, &ua_public, &auth, &body).unwrap(),
        plaintext
    );
}

#[tokio::test]
async fn an_urgent_push_arrives_decrypted_with_vapid_ttl_urgency_and_topic() {
    let (service, sender, subscription) = setup().await;
    let now = Utc::now();
    let collapse = Uuid::now_v7();
    let push = Push {
        urgent: true,
        collapse: Some(collapse),
        expires_at: Some(now + chrono::Duration::seconds(45)),
        ..push()
    };

    sender
        .send(&device_for(&subscription), &push, now)
        .await
        .unwrap();

    assert_eq!(service.refused(&subscription), vec![]);
    let received = service.received(&subscription);
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.payload["title"], "New message");
    assert_eq!(got.payload["body"], "Ana: see you at 10 ☕");
    assert_eq!(got.payload["badge"], 3);
    assert_eq!(got.payload["data"]["type"], "CHAT_MESSAGE");
    assert_eq!(
        got.payload["data"]["notificationId"],
        push.data["notificationId"].as_str()
    );
    assert_eq!(got.payload["tag"], collapse.to_string());
    assert_eq!(got.urgency.as_deref(), Some("high"));
    assert_eq!(got.ttl, 45);
    assert_eq!(
        got.topic.as_deref(),
        Some(collapse.simple().to_string().as_str())
    );
    assert_eq!(
        got.content_type.as_deref(),
        Some("application/octet-stream")
    );
    // The token the fake verified with the k= key.
    assert_eq!(got.claims["aud"], service.origin);
    assert_eq!(got.claims["sub"], "mailto:ops@caregraph.test");
    let exp = got.claims["exp"].as_i64().unwrap();
    let hours = (exp - now.timestamp()) as f64 / 3600.0;
    assert!((11.9..=12.1).contains(&hours), "exp {hours} h out");
}

#[tokio::test]
async fn a_plain_push_is_normal_urgency_a_day_of_ttl_and_reuses_the_token() {
    let (service, sender, subscription) = setup().await;
    let first = push();
    let second = push();

    let device = device_for(&subscription);
    sender.send(&device, &first, Utc::now()).await.unwrap();
    sender.send(&device, &second, Utc::now()).await.unwrap();

    let received = service.received(&subscription);
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].urgency.as_deref(), Some("normal"));
    assert_eq!(received[0].ttl, 86_400);
    // Without a collapse key, the delivery's own key: a resend replaces the first.
    assert_eq!(
        received[0].topic.as_deref(),
        Some(first.idempotency_key.simple().to_string().as_str())
    );
    assert_eq!(
        received[0].payload["tag"],
        first.idempotency_key.to_string()
    );
    assert_eq!(
        received[1].payload["tag"],
        second.idempotency_key.to_string()
    );
    assert_eq!(
        received[0].token, received[1].token,
        "one token per audience"
    );
}

#[tokio::test]
async fn a_long_body_is_cut_to_fit_one_record() {
    let (service, sender, subscription) = setup().await;
    let body = "Ünïcode wörds ".repeat(400);
    let push = Push {
        body: body.clone(),
        ..push()
    };

    sender
        .send(&device_for(&subscription), &push, Utc::now())
        .await
        .unwrap();

    let received = service.received(&subscription);
    assert_eq!(received.len(), 1);
    assert!(received[0].plaintext_len <= web_push::MAX_PLAINTEXT);
    let sent = received[0].payload["body"].as_str().unwrap();
    assert!(sent.ends_with('…'), "{sent}");
    assert!(body.starts_with(sent.trim_end_matches('…')));
    assert!(sent.len() > 3000, "cut no more than needed: {}", sent.len());
    assert_eq!(received[0].payload["title"], "New message");
}

#[tokio::test]
async fn gone_unknown_and_unusable_subscriptions_are_dead_tokens() {
    let (service, sender, subscription) = setup().await;
    service.script(&subscription, [Answer::Status(410)]);
    let outcome = sender
        .send(&device_for(&subscription), &push(), Utc::now())
        .await;
    assert!(
        matches!(outcome, Err(SendFailure::DeadToken(_))),
        "{outcome:?}"
    );

    let mut unknown = device_for(&subscription);
    unknown.token = format!("{}/push/nobody", service.origin);
    let outcome = sender.send(&unknown, &push(), Utc::now()).await;
    assert!(
        matches!(outcome, Err(SendFailure::DeadToken(_))),
        "{outcome:?}"
    );

    let mut keyless = device_for(&subscription);
    keyless.web_push_auth = None;
    let outcome = sender.send(&keyless, &push(), Utc::now()).await;
    assert!(
        matches!(outcome, Err(SendFailure::DeadToken(_))),
        "{outcome:?}"
    );

    let mut plain_http = device_for(&subscription);
    plain_http.token = "http://push.example.com/push/1".into();
    let outcome = sender.send(&plain_http, &push(), Utc::now()).await;
    assert!(
        matches!(outcome, Err(SendFailure::DeadToken(_))),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn server_errors_are_transient_until_the_service_takes_the_push() {
    let (service, sender, subscription) = setup().await;
    service.script(&subscription, [Answer::Status(500), Answer::Status(503)]);
    let device = device_for(&subscription);
    let push = push();

    for _ in 0..2 {
        let outcome = sender.send(&device, &push, Utc::now()).await;
        assert!(
            matches!(
                outcome,
                Err(SendFailure::Transient {
                    retry_after: None,
                    ..
                })
            ),
            "{outcome:?}"
        );
    }
    sender.send(&device, &push, Utc::now()).await.unwrap();

    assert_eq!(service.attempts(&subscription), 3);
    assert_eq!(service.received(&subscription).len(), 1);
}

#[tokio::test]
async fn retry_after_is_honoured_in_seconds_and_as_a_date() {
    let (service, sender, subscription) = setup().await;
    let now = Utc::now();
    let later = (now + chrono::Duration::seconds(90))
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    service.script(
        &subscription,
        [
            Answer::RetryAfter(429, "120".into()),
            Answer::RetryAfter(503, later),
        ],
    );
    let device = device_for(&subscription);

    let outcome = sender.send(&device, &push(), now).await;
    assert!(
        matches!(&outcome, Err(SendFailure::Transient { retry_after: Some(wait), .. }) if *wait == Duration::from_secs(120)),
        "{outcome:?}"
    );
    let outcome = sender.send(&device, &push(), now).await;
    let Err(SendFailure::Transient {
        retry_after: Some(wait),
        ..
    }) = outcome
    else {
        panic!("{outcome:?}");
    };
    assert!((89..=90).contains(&wait.as_secs()), "{wait:?}");
}

#[tokio::test]
async fn a_hanging_push_service_is_transient_within_the_timeout() {
    let (service, sender, subscription) = setup().await;
    service.script(&subscription, [Answer::Hang]);

    let started = Instant::now();
    let outcome = sender
        .send(&device_for(&subscription), &push(), Utc::now())
        .await;

    assert!(
        matches!(outcome, Err(SendFailure::Transient { .. })),
        "{outcome:?}"
    );
    assert!(started.elapsed() < TIMEOUT + Duration::from_secs(2));
}

#[tokio::test]
async fn another_servers_key_is_refused_by_the_push_service() {
    let (service, _, subscription) = setup().await;
    let stranger = sender_with(&vapid_key());

    let outcome = stranger
        .send(&device_for(&subscription), &push(), Utc::now())
        .await;

    assert!(
        matches!(outcome, Err(SendFailure::Rejected(_))),
        "{outcome:?}"
    );
    assert_eq!(service.refused(&subscription)[0].0, 403);
    assert_eq!(service.received(&subscription).len(), 0);
}

#[tokio::test]
async fn web_push_setup_refuses_bad_keys_and_subjects() {
    for (key, subject) in [
        ("not base64!", "mailto:ops@caregraph.test"),
        (
            URL_SAFE_NO_PAD.encode([7u8; 16]).as_str(),
            "mailto:ops@caregraph.test",
        ),
        (
            URL_SAFE_NO_PAD.encode([0u8; 32]).as_str(),
            "mailto:ops@caregraph.test",
        ),
        (vapid_key().as_str(), "ops@caregraph.test"),
    ] {
        let config = WebPushConfig {
            private_key: key.into(),
            subject: subject.into(),
        };
        assert!(
            WebPushSender::new(&config, TIMEOUT).is_err(),
            "{key} {subject}"
        );
    }
}

fn email() -> Email {
    Email {
        idempotency_key: Uuid::now_v7(),
        to: "ana@example.org".into(),
        to_name: "Ana Silva".into(),
        subject: "Your booking is confirmed".into(),
        text: "Hi Ana,\n\nYour booking with Grégoire on Friday is confirmed — see you then.\n.\n..leading dots survive\n".into(),
        html: "<p>Hi Ana,</p><p>Your booking with <b>Grégoire</b> on Friday is confirmed — see you then.</p>".into(),
        unsubscribe_url: "https://app.caregraph.test/unsubscribe?token=abc123".into(),
    }
}

fn mailer(url: &str) -> Result<SmtpMailer, caregraph::delivery::SetupError> {
    let config = EmailConfig {
        smtp_url: url.into(),
        from: "Caregraph <notifications@caregraph.test>".into(),
    };
    SmtpMailer::new(&config, TIMEOUT)
}

#[tokio::test]
async fn an_email_arrives_with_both_parts_and_its_headers() {
    let relay = FakeSmtp::start().await;
    let mailer = mailer(&relay.url()).unwrap();
    let email = email();

    mailer.send(&email).await.unwrap();

    let messages = relay.messages();
    assert_eq!(messages.len(), 1);
    let mail = &messages[0];
    assert_eq!(mail.mail_from, "notifications@caregraph.test");
    assert_eq!(mail.rcpt_to, vec!["ana@example.org".to_owned()]);
    let parsed = fake_smtp::parse(&mail.data);
    assert_eq!(
        parsed.header("From"),
        Some("Caregraph <notifications@caregraph.test>")
    );
    assert_eq!(parsed.header("To"), Some("\"Ana Silva\" <ana@example.org>"));
    assert_eq!(parsed.header("Subject"), Some("Your booking is confirmed"));
    assert_eq!(
        parsed.header("Message-ID"),
        Some(format!("<{}@caregraph>", email.idempotency_key).as_str())
    );
    assert_eq!(
        parsed.header("List-Unsubscribe"),
        Some("<https://app.caregraph.test/unsubscribe?token=abc123>")
    );
    assert_eq!(
        parsed.header("List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(parsed.text.replace("\r\n", "\n"), email.text);
    assert_eq!(parsed.html.replace("\r\n", "\n"), email.html);
}

#[tokio::test]
async fn a_451_is_transient_and_the_next_attempt_goes_through() {
    let relay = FakeSmtp::start().await;
    relay.fail_data(1);
    let mailer = mailer(&relay.url()).unwrap();
    let email = email();

    let outcome = mailer.send(&email).await;
    assert!(
        matches!(outcome, Err(SendFailure::Transient { .. })),
        "{outcome:?}"
    );
    assert!(relay.messages().is_empty());

    mailer.send(&email).await.unwrap();
    assert_eq!(relay.messages().len(), 1);
}

#[tokio::test]
async fn an_unknown_mailbox_is_rejected_not_a_dead_token() {
    let relay = FakeSmtp::start().await;
    relay.unknown_mailbox("ana@example.org");
    let mailer = mailer(&relay.url()).unwrap();

    let outcome = mailer.send(&email()).await;

    assert!(
        matches!(outcome, Err(SendFailure::Rejected(_))),
        "{outcome:?}"
    );
    assert!(relay.messages().is_empty());
}

#[tokio::test]
async fn an_unreachable_or_silent_relay_is_transient_within_the_timeout() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mailer_closed = mailer(&format!("smtp://127.0.0.1:{closed}?tls=none")).unwrap();
    let outcome = mailer_closed.send(&email()).await;
    assert!(
        matches!(outcome, Err(SendFailure::Transient { .. })),
        "{outcome:?}"
    );

    let relay = FakeSmtp::start().await;
    relay.go_silent();
    let silent = mailer(&relay.url()).unwrap();
    let started = Instant::now();
    let outcome = silent.send(&email()).await;
    assert!(
        matches!(outcome, Err(SendFailure::Transient { .. })),
        "{outcome:?}"
    );
    assert!(started.elapsed() < TIMEOUT + Duration::from_secs(2));
}

#[tokio::test]
async fn smtp_setup_takes_tls_urls_and_refuses_plaintext_beyond_loopback() {
    for accepted in [
        "smtp://user:p%40ss@mail.example.com:587",
        "smtp://mail.example.com?tls=required",
        "smtps://user:pass@mail.example.com",
        "smtp://localhost:2525?tls=none",
        "smtp://[::1]:25?tls=none",
    ] {
        assert!(mailer(accepted).is_ok(), "{accepted}");
    }
    for refused in [
        "smtp://mail.example.com:25?tls=none",
        "smtp://10.0.0.5?tls=none",
        "smtp://mail.example.com?tls=opportunistic",
        "http://mail.example.com",
        "not a url",
    ] {
        assert!(mailer(refused).is_err(), "{refused}");
    }
    let config = EmailConfig {
        smtp_url: "smtp://mail.example.com".into(),
        from: "not an address".into(),
    };
    assert!(SmtpMailer::new(&config, TIMEOUT).is_err());
}

#[tokio::test]
async fn providers_builds_the_configured_channels_and_names_the_one_that_fails() {
    let config = |web_push: Option<WebPushConfig>, email: Option<EmailConfig>| DeliveryConfig {
        fcm: None,
        apns: None,
        web_push,
        email,
        incomplete: Vec::new(),
        provider_timeout: TIMEOUT,
        digest_delay: Duration::from_secs(600),
        jobs: JobConfig {
            concurrency: 1,
            lease: Duration::from_secs(30),
            poll: Duration::from_secs(1),
        },
    };
    let web_push = WebPushConfig {
        private_key: vapid_key().as_str().into(),
        subject: "https://caregraph.test/contact".into(),
    };
    let email = EmailConfig {
        smtp_url: "smtps://user:pass@smtp.example.com".into(),
        from: "notifications@caregraph.test".into(),
    };

    let none = providers(&config(None, None)).unwrap();
    assert!(!none.any_push() && none.email.is_none());

    let both = providers(&config(Some(web_push.clone()), Some(email))).unwrap();
    assert!(both.push(DevicePlatform::WebPush).is_some());
    assert!(both.push(DevicePlatform::Fcm).is_none());
    assert!(both.email.is_some());

    let plaintext_abroad = EmailConfig {
        smtp_url: "smtp://smtp.example.com?tls=none".into(),
        from: "notifications@caregraph.test".into(),
    };
    let Err(error) = providers(&config(Some(web_push), Some(plaintext_abroad))) else {
        panic!("tls=none to a remote relay was accepted");
    };
    assert_eq!(error.provider, "email");
}

#[tokio::test]
async fn malformed_or_too_large_answers_are_rejected_not_retried() {
    let (service, sender, subscription) = setup().await;
    service.script(&subscription, [Answer::Status(400), Answer::Status(413)]);
    let device = device_for(&subscription);

    for _ in 0..2 {
        let outcome = sender.send(&device, &push(), Utc::now()).await;
        assert!(
            matches!(outcome, Err(SendFailure::Rejected(_))),
            "{outcome:?}"
        );
    }
    assert_eq!(service.received(&subscription).len(), 0);
}
