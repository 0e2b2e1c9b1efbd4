//! Video calls when Twilio misbehaves: rooms it will not create, closes that hang, fail for a
//! while, or meet a room that is already over, a server that dies in the middle of a close,
//! accepted calls nobody joins, and the `PUBLIC_URL` rule.

use std::time::{Duration, Instant};

use caregraph::config::{Config, ConfigError, TwilioConfig};
use entity::{job, video_call};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::{
    fake_twilio::{Failure, FakeTwilio, Op},
    helpers::{REQUEST_CALL, TestApp, TestUser, error_code, eventually, test_config},
    video::{Calls, calls_with, config_with},
};

/// The Twilio timeout of these tests: a hang is noticed quickly.
const TIMEOUT: Duration = Duration::from_millis(500);

async fn failing_calls() -> Calls {
    calls_with(|config| config.video.twilio_timeout = TIMEOUT).await
}

impl Calls {
    /// A call of `recipient` with `caregiver`, accepted and started.
    async fn active_call(&self, recipient: &TestUser, caregiver: &TestUser) -> (String, String) {
        let id = self.app.request_call(recipient, caregiver).await;
        self.app.act(caregiver, "acceptVideoCall", &id).await;
        self.app
            .ok(
                recipient,
                "mutation($id: UUID!) { startVideoCall(id: $id) { status } }",
                json!({ "id": id }),
            )
            .await;
        let sid = self
            .twilio
            .sid_of(&format!("video-call-{id}"))
            .expect("the room was created");
        (id, sid)
    }

    async fn row(&self, id: &str) -> video_call::Model {
        video_call::Entity::find_by_id(id.parse::<uuid::Uuid>().unwrap())
            .one(self.app.db())
            .await
            .unwrap()
            .unwrap()
    }

    /// The video jobs still in the queue (waiting, running or failed).
    async fn video_jobs(&self, kind: &str) -> Vec<job::Model> {
        job::Entity::find()
            .filter(job::Column::Kind.eq(kind))
            .all(self.app.db())
            .await
            .unwrap()
    }

    /// Moves the clock on by `seconds`, a second at a time, until `done` (at most `steps`).
    async fn advance_until(&self, steps: usize, seconds: i64, mut done: impl FnMut() -> bool) {
        for _ in 0..steps {
            if done() {
                return;
            }
            self.app.clock.advance(chrono::Duration::seconds(seconds));
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        assert!(done(), "not done after {steps} steps of {seconds} s");
    }
}

fn accept_query(id: &str) -> (String, Value) {
    (
        "mutation($id: UUID!) { acceptVideoCall(id: $id) { status } }".to_owned(),
        json!({ "id": id }),
    )
}

#[tokio::test]
async fn a_room_twilio_will_not_create_leaves_the_request_pending_and_no_token() {
    let c = failing_calls().await;
    let id = c.request().await;
    let (accept, vars) = accept_query(&id);
    for failure in [
        Failure::Status(500),
        Failure::Twilio {
            status: 401,
            code: 20003,
        },
        Failure::Status(429),
        Failure::Hang,
    ] {
        c.twilio.fail(Op::Create, failure, Some(1));
        let started = Instant::now();
        let refused = c
            .app
            .graphql(Some(&c.caregiver.token), &accept, vars.clone())
            .await;
        assert!(
            started.elapsed() < TIMEOUT + Duration::from_secs(1),
            "{failure:?}: answered within the timeout"
        );
        assert_eq!(error_code(&refused), "PROVIDER_UNAVAILABLE", "{failure:?}");
        assert_eq!(
            refused["errors"][0]["extensions"]["retryable"], true,
            "{failure:?}"
        );
        assert_eq!(c.call(&id).await["status"], "PENDING", "{failure:?}");
        for user in [&c.recipient, &c.caregiver] {
            assert_eq!(
                error_code(&c.token(user, &id).await),
                "INVALID_STATE",
                "{failure:?}: no token for a call without a room"
            );
        }
    }
    assert!(
        c.app.inbox_types(&c.recipient).await.is_empty(),
        "nobody was told of an accept that did not happen"
    );

    // Twilio answers again: the caregiver's retry accepts the call with a room.
    let accepted = c.app.ok(&c.caregiver, &accept, vars.clone()).await;
    assert_eq!(accepted["acceptVideoCall"]["status"], "ACCEPTED");
    let sid = c.twilio.sid_of(&format!("video-call-{id}")).unwrap();
    assert_eq!(
        c.row(&id).await.provider_room_sid.as_deref(),
        Some(sid.as_str())
    );
    let token = c.token(&c.recipient, &id).await;
    assert_eq!(token["data"]["videoCallToken"]["expiresIn"], 75, "{token}");
}

#[tokio::test]
async fn a_create_whose_answer_was_lost_is_taken_over_on_the_retry() {
    let c = failing_calls().await;
    let id = c.request().await;
    let (accept, vars) = accept_query(&id);
    c.twilio.fail(Op::Create, Failure::Lost, Some(1));
    let lost = c
        .app
        .graphql(Some(&c.caregiver.token), &accept, vars.clone())
        .await;
    assert_eq!(error_code(&lost), "PROVIDER_UNAVAILABLE");
    assert_eq!(c.call(&id).await["status"], "PENDING");
    let made = c
        .twilio
        .sid_of(&format!("video-call-{id}"))
        .expect("Twilio made the room");

    let accepted = c.app.ok(&c.caregiver, &accept, vars).await;
    assert_eq!(accepted["acceptVideoCall"]["status"], "ACCEPTED");
    assert_eq!(
        c.row(&id).await.provider_room_sid.as_deref(),
        Some(made.as_str()),
        "the room Twilio already made (53113, then a GET by its name)"
    );
    assert_eq!(c.twilio.requests_of(Op::Create).len(), 2);
    assert_eq!(c.twilio.requests_of(Op::Fetch).len(), 1);
}

#[tokio::test]
async fn a_room_made_for_an_accept_that_lost_is_closed() {
    let c = failing_calls().await;
    let id = c.request().await;
    // The room is made slowly; meanwhile the requester cancels: the accept loses.
    c.twilio.fail(Op::Create, Failure::Slow(300), Some(1));
    let (accept, vars) = accept_query(&id);
    let slow = c.app.graphql(Some(&c.caregiver.token), &accept, vars);
    let (lost, cancelled) = tokio::join!(slow, async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.act(&c.recipient, "cancel", &id).await
    });
    assert_eq!(cancelled["data"]["cancelVideoCall"]["status"], "CANCELLED");
    assert_eq!(error_code(&lost), "INVALID_STATE", "{lost}");
    let sid = c
        .twilio
        .sid_of(&format!("video-call-{id}"))
        .expect("Twilio made the room");
    eventually("the unused room closed", async || {
        c.twilio.is_completed(&sid).then_some(())
    })
    .await;
    assert_eq!(c.call(&id).await["status"], "CANCELLED");
    assert!(c.row(&id).await.provider_room_sid.is_none());
    eventually("the close job to finish", async || {
        c.video_jobs("video_close_room")
            .await
            .is_empty()
            .then_some(())
    })
    .await;

    // A call that can no longer be accepted gets no room at all.
    let id = c.request().await;
    c.act(&c.recipient, "cancel", &id).await;
    let (accept, vars) = accept_query(&id);
    let late = c.app.graphql(Some(&c.caregiver.token), &accept, vars).await;
    assert_eq!(error_code(&late), "INVALID_STATE", "{late}");
    assert!(c.twilio.sid_of(&format!("video-call-{id}")).is_none());
}

#[tokio::test]
async fn two_accepts_at_once_share_one_room_and_never_close_it() {
    let c = failing_calls().await;
    let id = c.request().await;
    // The first create answers late; the second makes the room first, so the first finds
    // the name in use and takes the same room over.
    c.twilio.fail(Op::Create, Failure::Slow(300), Some(1));
    let (accept, vars) = accept_query(&id);
    let first = c
        .app
        .graphql(Some(&c.caregiver.token), &accept, vars.clone());
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.app
            .graphql(Some(&c.caregiver.token), &accept, vars.clone())
            .await
    };
    let (first, second) = tokio::join!(first, second);
    let codes: Vec<Option<String>> = [&first, &second]
        .iter()
        .map(|answer| {
            answer["errors"][0]["extensions"]["code"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert!(codes.contains(&None), "one accept wins: {first} {second}");
    assert!(
        codes.contains(&Some("INVALID_STATE".to_owned())),
        "{first} {second}"
    );
    let sid = c.twilio.sid_of(&format!("video-call-{id}")).unwrap();
    assert_eq!(
        c.row(&id).await.provider_room_sid.as_deref(),
        Some(sid.as_str())
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !c.twilio.is_completed(&sid),
        "the call's own room stays open"
    );
    assert!(c.video_jobs("video_close_room").await.is_empty());
    assert_eq!(c.call(&id).await["status"], "ACCEPTED");
}

#[tokio::test]
async fn a_hanging_close_delays_neither_the_answer_nor_another_calls_limit() {
    let c = failing_calls().await;
    let other_recipient = c.app.register("CARE_RECIPIENT", "Dora").await;
    let other_caregiver = c.app.register("CAREGIVER", "Elias").await;
    let (first, first_sid) = c.active_call(&c.recipient, &c.caregiver).await;
    c.app.clock.advance(chrono::Duration::seconds(5));
    let (second, second_sid) = c.active_call(&other_recipient, &other_caregiver).await;

    // The first call's close hangs (once): ending it still answers at once.
    c.twilio.fail(Op::Complete, Failure::Hang, Some(1));
    let started = Instant::now();
    let ended = c
        .app
        .ok(
            &c.caregiver,
            "mutation($id: UUID!) { completeVideoCall(id: $id) { status } }",
            json!({ "id": first }),
        )
        .await;
    assert_eq!(ended["completeVideoCall"]["status"], "COMPLETED");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "completeVideoCall waited {:?} for Twilio",
        started.elapsed()
    );
    eventually("the first close to reach Twilio", async || {
        (c.twilio.requests_of(Op::Complete).len() == 1).then_some(())
    })
    .await;

    // While it hangs, the second call reaches its limit: it ends and its room closes at once.
    c.app.clock.advance(chrono::Duration::seconds(15));
    let started = Instant::now();
    eventually("the second call to end", async || {
        (c.row(&second).await.status == entity::enums::VideoCallStatus::Completed).then_some(())
    })
    .await;
    eventually("the second room closed", async || {
        c.twilio.is_completed(&second_sid).then_some(())
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the second room closed {:?} after its limit",
        started.elapsed()
    );

    // The hang times out and the close is retried after its backoff: closed once.
    tokio::time::sleep(TIMEOUT + Duration::from_millis(200)).await;
    c.advance_until(10, 2, || c.twilio.is_completed(&first_sid))
        .await;
    assert_eq!(c.twilio.completions(&first_sid), 1);
    eventually("the close job to finish", async || {
        c.video_jobs("video_close_room")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(c.row(&first).await.room_closed_at.is_some());
}

#[tokio::test]
async fn a_close_failing_for_a_while_is_retried_until_it_lands_once() {
    let c = failing_calls().await;
    let (id, sid) = c.active_call(&c.recipient, &c.caregiver).await;
    c.twilio.fail(Op::Complete, Failure::Status(503), Some(2));
    c.twilio.fail(Op::Complete, Failure::Hang, Some(1));
    c.twilio.fail(Op::Complete, Failure::Status(429), Some(1));
    c.app.clock.advance(chrono::Duration::seconds(15));
    c.until_status(&id, "COMPLETED").await;
    c.advance_until(40, 5, || c.twilio.is_completed(&sid)).await;
    assert_eq!(
        c.twilio.requests_of(Op::Complete).len(),
        5,
        "4 failures, then the close"
    );
    assert_eq!(c.twilio.completions(&sid), 1);
    eventually("the close job to finish", async || {
        c.video_jobs("video_close_room")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert!(c.row(&id).await.room_closed_at.is_some());
    c.app.clock.advance(chrono::Duration::seconds(120));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.twilio.requests_of(Op::Complete).len(), 5, "nothing after");
}

#[tokio::test]
async fn a_room_twilio_says_is_over_is_confirmed_once_and_not_retried() {
    let c = failing_calls().await;
    // 53112: Twilio ended the room itself (its own ceiling) and no callback came.
    let (ended, ended_sid) = c.active_call(&c.recipient, &c.caregiver).await;
    c.twilio.end_room(&ended_sid);
    c.act(&c.caregiver, "complete", &ended).await;
    eventually("the close to be confirmed", async || {
        c.row(&ended).await.room_closed_at.map(|_| ())
    })
    .await;
    let completes = c.twilio.requests_of(Op::Complete);
    assert_eq!(completes.len(), 1);
    let fetches = c.twilio.requests_of(Op::Fetch);
    assert_eq!(fetches.len(), 1, "one GET confirms the room is over");
    assert_eq!(fetches[0].path, format!("/v1/Rooms/{ended_sid}"));

    // 404: Twilio no longer knows the room.
    let other_recipient = c.app.register("CARE_RECIPIENT", "Fausto").await;
    let (gone, gone_sid) = c.active_call(&other_recipient, &c.caregiver).await;
    c.twilio.forget_room(&gone_sid);
    c.act(&c.caregiver, "complete", &gone).await;
    eventually("the close to be confirmed", async || {
        c.row(&gone).await.room_closed_at.map(|_| ())
    })
    .await;
    eventually("no close job left", async || {
        c.video_jobs("video_close_room")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    c.app.clock.advance(chrono::Duration::seconds(120));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.twilio.requests_of(Op::Complete).len(), 2, "never retried");
    assert_eq!(c.twilio.requests_of(Op::Fetch).len(), 2);

    // A refusal that does not say the room is over (bad credentials): the job fails for
    // good, once, and is kept for the operator.
    let third_recipient = c.app.register("CARE_RECIPIENT", "Gil").await;
    let (refused, _) = c.active_call(&third_recipient, &c.caregiver).await;
    c.twilio.fail(
        Op::Complete,
        Failure::Twilio {
            status: 401,
            code: 20003,
        },
        None,
    );
    c.act(&c.caregiver, "complete", &refused).await;
    let failed = eventually("the close job to fail", async || {
        c.video_jobs("video_close_room")
            .await
            .into_iter()
            .find(|job| job.status == entity::enums::JobStatus::Failed)
    })
    .await;
    assert!(failed.last_error.unwrap().contains("20003"));
    c.app.clock.advance(chrono::Duration::seconds(120));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.twilio.requests_of(Op::Complete).len(), 3);
    c.twilio.heal();
    c.app.clock.advance(chrono::Duration::seconds(120));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.twilio.requests_of(Op::Complete).len(),
        3,
        "a failed job stays failed (the scheduler's safety net does not queue it again)"
    );
}

#[tokio::test]
async fn a_close_in_flight_when_the_server_dies_is_taken_over_after_restart() {
    let twilio = FakeTwilio::start().await;
    let mut config = config_with(&twilio).await;
    config.video.twilio_timeout = Duration::from_secs(5);
    let first = TestApp::spawn_with(config.clone()).await;
    let clock = first.clock.clone();
    let recipient = first.register("CARE_RECIPIENT", "Helena").await;
    let caregiver = first.register("CAREGIVER", "Ivo").await;
    let c = Calls {
        app: first,
        twilio,
        recipient: recipient.clone(),
        caregiver: caregiver.clone(),
        stranger: caregiver.clone(),
    };
    let (id, sid) = c.active_call(&recipient, &caregiver).await;
    c.twilio.fail(Op::Complete, Failure::Hang, Some(1));
    c.app.clock.advance(chrono::Duration::seconds(15));
    c.until_status(&id, "COMPLETED").await;
    eventually("the close to be in flight", async || {
        (c.twilio.requests_of(Op::Complete).len() == 1).then_some(())
    })
    .await;
    c.app.kill();
    let Calls { twilio, .. } = c;

    let second = TestApp::spawn_with_clock(config, clock.clone()).await;
    let c = Calls {
        app: second,
        twilio,
        recipient,
        caregiver: caregiver.clone(),
        stranger: caregiver,
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !c.twilio.is_completed(&sid),
        "the claim holds until its lease lapses"
    );
    // The lease of video jobs: two provider timeouts and 10 s.
    clock.advance(chrono::Duration::seconds(21));
    eventually("the room closed by the new instance", async || {
        c.twilio.is_completed(&sid).then_some(())
    })
    .await;
    assert_eq!(c.twilio.completions(&sid), 1);
    eventually("the close recorded", async || {
        c.row(&id).await.room_closed_at.map(|_| ())
    })
    .await;
    // The scheduler's safety net may have queued a close as the job finished; it finds the
    // room closed and leaves at once.
    eventually("no close job left", async || {
        c.video_jobs("video_close_room")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_accepted_call_nobody_joins_expires_and_frees_the_pair() {
    let c = failing_calls().await;
    let id = c.request().await;
    c.app.act(&c.caregiver, "acceptVideoCall", &id).await;
    let sid = c.twilio.sid_of(&format!("video-call-{id}")).unwrap();
    c.app.clock.advance(chrono::Duration::seconds(299));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.call(&id).await["status"],
        "ACCEPTED",
        "not before the timeout"
    );
    c.app.clock.advance(chrono::Duration::seconds(1));
    c.until_status(&id, "EXPIRED").await;
    eventually("the unused room closed", async || {
        c.twilio.is_completed(&sid).then_some(())
    })
    .await;
    let inbox = c.app.inbox(&c.recipient).await;
    let last = inbox.first().unwrap();
    assert_eq!(last["type"], "VIDEO_CALL_UPDATED", "{inbox:?}");
    assert_eq!(last["title"], "Video call not joined", "{inbox:?}");
    assert_eq!(
        error_code(&c.token(&c.recipient, &id).await),
        "INVALID_STATE"
    );
    let again = c
        .app
        .graphql(
            Some(&c.recipient.token),
            REQUEST_CALL,
            json!({ "c": c.caregiver.id }),
        )
        .await;
    assert!(again["errors"].is_null(), "the pair may ask again: {again}");
}

#[tokio::test]
async fn the_scheduler_queues_the_jobs_a_call_is_missing() {
    let c = failing_calls().await;
    let (id, sid) = c.active_call(&c.recipient, &c.caregiver).await;
    // A call from before the jobs existed, or whose jobs an operator removed.
    job::Entity::delete_many().exec(c.app.db()).await.unwrap();
    c.app.clock.advance(chrono::Duration::seconds(15));
    c.until_status(&id, "COMPLETED").await;
    eventually("the room closed", async || {
        c.twilio.is_completed(&sid).then_some(())
    })
    .await;
    assert_eq!(c.twilio.completions(&sid), 1);
}

fn twilio_env(name: &str, production: bool, public_url: bool) -> Option<String> {
    let value = match name {
        "CAREGRAPH_ENV" if production => "production",
        "CORS_ALLOWED_ORIGINS" => "https://app.example.com",
        "JWT_SECRET" => "a-production-secret-of-at-least-32-bytes",
        "TWILIO_ACCOUNT_SID" => "ACx",
        "TWILIO_AUTH_TOKEN" => "token",
        "TWILIO_API_KEY_SID" => "SKx",
        "TWILIO_API_KEY_SECRET" => "secret",
        "PUBLIC_URL" if public_url => "https://care.example.com",
        _ => return None,
    };
    Some(value.to_owned())
}

#[test]
fn twilio_without_a_public_url_refuses_production_and_only_warns_in_development() {
    let check = |production, public_url| {
        Config::from_lookup(|name| twilio_env(name, production, public_url))
            .unwrap()
            .check()
    };
    assert!(matches!(
        check(true, false),
        Err(ConfigError::PublicUrlUnsetWithTwilio)
    ));
    assert!(check(true, true).is_ok());
    assert!(check(false, false).is_ok());
    let without_twilio = Config::from_lookup(|name| {
        twilio_env(name, true, false).filter(|_| !name.starts_with("TWILIO"))
    })
    .unwrap();
    assert!(
        without_twilio.check().is_ok(),
        "no Twilio, no callbacks to reach"
    );
}

#[tokio::test]
async fn without_a_public_url_the_callback_uses_the_address_actually_bound() {
    let twilio = FakeTwilio::start().await;
    let mut config = test_config().await;
    config.video.twilio = Some(TwilioConfig {
        account_sid: "ACtest".to_owned(),
        auth_token: "token".into(),
        api_key_sid: "SKtest".to_owned(),
        api_key_secret: "secret".into(),
        api_base_url: twilio.base_url.clone(),
    });
    assert!(config.public_url.is_none());
    let app = TestApp::spawn_with(config).await;
    let recipient = app.register("CARE_RECIPIENT", "Jacinta").await;
    let caregiver = app.register("CAREGIVER", "Lauro").await;
    let id = app.request_call(&recipient, &caregiver).await;
    app.act(&caregiver, "acceptVideoCall", &id).await;
    let created = &twilio.requests_of(Op::Create)[0];
    let callback = created
        .form
        .iter()
        .find(|(key, _)| key == "StatusCallback")
        .map(|(_, value)| value.clone());
    assert_ne!(app.addr.port(), 0);
    assert_eq!(
        callback,
        Some(format!("http://{}/webhooks/twilio/video", app.addr))
    );
}

#[tokio::test]
async fn a_token_needs_the_room_when_twilio_manages_rooms() {
    let c = failing_calls().await;
    let id = c.request().await;
    c.app.act(&c.caregiver, "acceptVideoCall", &id).await;
    // A call accepted before rooms were created up front, without one.
    video_call::Entity::update_many()
        .col_expr(
            video_call::Column::ProviderRoomSid,
            sea_orm::sea_query::Expr::value(Option::<String>::None),
        )
        .filter(video_call::Column::Id.eq(id.parse::<uuid::Uuid>().unwrap()))
        .exec(c.app.db())
        .await
        .unwrap();
    assert_eq!(
        error_code(&c.token(&c.recipient, &id).await),
        "INVALID_STATE"
    );
}
