//! Video calls against a fake Twilio: the lifecycle and its notifications, genuine access
//! tokens, the server-enforced limit with exactly one REST call, signed webhooks, restarts.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use caregraph::{config::TwilioConfig, video::twilio_signature};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};

use crate::{
    fake_twilio::{FakeTwilio, Recorded},
    helpers::{
        Protocol, REQUEST_CALL, TestApp, TestUser, error_code, node_fields, nodes, test_config,
    },
};

pub(crate) const PUBLIC_URL: &str = "https://care.example.com";
pub(crate) const CALLBACK: &str = "https://care.example.com/webhooks/twilio/video";
pub(crate) const AUTH_TOKEN: &str = "twilio-auth-token";
pub(crate) const KEY_SECRET: &str = "twilio-api-key-secret";
pub(crate) const CALL: &str =
    "id status roomName provider maxDurationSeconds callStartedAt callEndedAt";

pub(crate) struct Calls {
    pub app: TestApp,
    pub twilio: FakeTwilio,
    pub recipient: TestUser,
    pub caregiver: TestUser,
    pub stranger: TestUser,
}

pub(crate) async fn config_with(twilio: &FakeTwilio) -> caregraph::config::Config {
    let mut config = test_config().await;
    config.video.twilio = Some(TwilioConfig {
        account_sid: "ACtest".to_owned(),
        auth_token: AUTH_TOKEN.into(),
        api_key_sid: "SKtest".to_owned(),
        api_key_secret: KEY_SECRET.into(),
        api_base_url: twilio.base_url.clone(),
    });
    config.public_url = Some(PUBLIC_URL.to_owned());
    config
}

pub(crate) async fn calls() -> Calls {
    calls_with(|_| {}).await
}

/// [`calls`] on a configuration `configure` changed first.
pub(crate) async fn calls_with(configure: impl FnOnce(&mut caregraph::config::Config)) -> Calls {
    let twilio = FakeTwilio::start().await;
    let mut config = config_with(&twilio).await;
    configure(&mut config);
    let app = TestApp::spawn_with(config).await;
    let recipient = app.register("CARE_RECIPIENT", "Quiteria").await;
    let caregiver = app.register("CAREGIVER", "Rafael").await;
    let stranger = app.register("CARE_RECIPIENT", "Simao").await;
    Calls {
        app,
        twilio,
        recipient,
        caregiver,
        stranger,
    }
}

impl Calls {
    pub(crate) async fn request(&self) -> String {
        let requested = self
            .app
            .ok(&self.recipient, &format!("mutation($c: UUID!) {{ requestVideoCall(input: {{caregiverId: $c}}) {{ {CALL} }} }}"),
                json!({ "c": self.caregiver.id }))
            .await;
        requested["requestVideoCall"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    pub(crate) async fn act(&self, who: &TestUser, verb: &str, id: &str) -> Value {
        self.app
            .graphql(
                Some(&who.token),
                &format!("mutation($id: UUID!) {{ {verb}VideoCall(id: $id) {{ {CALL} }} }}"),
                json!({ "id": id }),
            )
            .await
    }

    pub(crate) async fn call(&self, id: &str) -> Value {
        self.app
            .ok(
                &self.recipient,
                &format!("query($id: UUID!) {{ videoCall(id: $id) {{ {CALL} }} }}"),
                json!({ "id": id }),
            )
            .await["videoCall"]
            .clone()
    }

    pub(crate) async fn token(&self, who: &TestUser, id: &str) -> Value {
        self.app.graphql(Some(&who.token), "mutation($id: UUID!) { videoCallToken(id: $id) { token roomName expiresIn provider } }", json!({ "id": id })).await
    }

    /// Posts a status callback signed as Twilio would, or with `signature` instead.
    pub(crate) async fn callback(&self, params: &[(&str, &str)], signature: Option<&str>) -> u16 {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut request = reqwest::Client::new()
            .post(format!("http://{}/webhooks/twilio/video", self.app.addr))
            .form(&params);
        let good = twilio_signature(AUTH_TOKEN, CALLBACK, &params);
        if let Some(signature) = signature
            .map(str::to_owned)
            .or(Some(good))
            .filter(|s| s != "none")
        {
            request = request.header("X-Twilio-Signature", signature);
        }
        request.send().await.unwrap().status().as_u16()
    }

    pub(crate) fn rest(&self, path_prefix: &str) -> Vec<Recorded> {
        self.twilio
            .requests()
            .into_iter()
            .filter(|r| r.path.starts_with(path_prefix))
            .collect()
    }

    pub(crate) async fn until_status(&self, id: &str, status: &str) -> Value {
        for _ in 0..100 {
            let call = self.call(id).await;
            if call["status"] == status {
                return call;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("call {id} never became {status}: {}", self.call(id).await);
    }
}

fn basic_auth() -> String {
    format!("Basic {}", STANDARD.encode(format!("SKtest:{KEY_SECRET}")))
}

#[tokio::test]
async fn the_call_lifecycle_creates_a_room_and_notifies_both() {
    let c = calls().await;
    let mut caregiver_ws = c.app.ws_as(Protocol::TransportWs, &c.caregiver).await;
    caregiver_ws
        .subscribe(
            "v",
            "subscription { videoCallUpdated { id status } }",
            json!({}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    let id = c.request().await;
    let call = c.call(&id).await;
    assert_eq!(call["status"], "PENDING");
    assert_eq!(call["roomName"], format!("video-call-{id}"));
    assert_eq!(call["provider"], "twilio");
    assert_eq!(call["maxDurationSeconds"], 15);
    assert_eq!(
        caregiver_ws.next_data("v").await["videoCallUpdated"]["status"],
        "PENDING"
    );
    assert_eq!(
        c.app.inbox_types(&c.caregiver).await,
        ["VIDEO_CALL_REQUESTED"]
    );
    assert!(c.app.inbox_types(&c.recipient).await.is_empty());
    assert!(
        c.twilio.requests().is_empty(),
        "no room before the caregiver accepts"
    );

    let accepted = c.act(&c.caregiver, "accept", &id).await;
    assert_eq!(
        accepted["data"]["acceptVideoCall"]["status"], "ACCEPTED",
        "{accepted}"
    );
    assert_eq!(
        caregiver_ws.next_data("v").await["videoCallUpdated"]["status"],
        "ACCEPTED"
    );
    assert_eq!(
        c.app.inbox_types(&c.recipient).await,
        ["VIDEO_CALL_ACCEPTED"]
    );
    assert_eq!(
        c.app.inbox_types(&c.caregiver).await,
        ["VIDEO_CALL_REQUESTED", "VIDEO_CALL_ACCEPTED"]
    );
    let rooms = c.twilio.requests();
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0].method, "POST");
    assert_eq!(rooms[0].path, "/v1/Rooms");
    assert_eq!(
        rooms[0].authorization.as_deref(),
        Some(basic_auth().as_str())
    );
    let room_name = format!("video-call-{id}");
    assert_eq!(
        rooms[0].form,
        vec![
            ("UniqueName".to_owned(), room_name.clone()),
            ("StatusCallback".to_owned(), CALLBACK.to_owned()),
            ("StatusCallbackMethod".to_owned(), "POST".to_owned()),
            // Twilio's own ceilings, a backstop to the server's limit: its minimum
            // participant duration, and rooms that end a minute after the last one leaves or
            // when nobody joins within the join timeout.
            ("MaxParticipantDuration".to_owned(), "600".to_owned()),
            ("EmptyRoomTimeout".to_owned(), "1".to_owned()),
            ("UnusedRoomTimeout".to_owned(), "5".to_owned()),
        ]
    );

    // Only one open request per pair.
    c.act(&c.caregiver, "complete", &id).await;
    let again = c.request().await;
    assert_ne!(again, id);
    let duplicate = c
        .app
        .code(&c.recipient, REQUEST_CALL, json!({ "c": c.caregiver.id }))
        .await;
    assert_eq!(duplicate, "CONFLICT");

    let declined = c.act(&c.caregiver, "decline", &again).await;
    assert_eq!(declined["data"]["declineVideoCall"]["status"], "DECLINED");
    assert_eq!(
        c.app.inbox_types(&c.recipient).await.last().unwrap(),
        "VIDEO_CALL_DECLINED"
    );

    let cancelled = c.request().await;
    let by_caregiver = c.act(&c.caregiver, "cancel", &cancelled).await;
    assert_eq!(error_code(&by_caregiver), "FORBIDDEN");
    let by_recipient = c.act(&c.recipient, "accept", &cancelled).await;
    assert_eq!(error_code(&by_recipient), "FORBIDDEN");
    assert_eq!(
        c.act(&c.recipient, "cancel", &cancelled).await["data"]["cancelVideoCall"]["status"],
        "CANCELLED"
    );
    assert_eq!(
        c.app.inbox_types(&c.caregiver).await.last().unwrap(),
        "VIDEO_CALL_UPDATED"
    );
    let again = c.act(&c.recipient, "cancel", &cancelled).await;
    assert_eq!(error_code(&again), "INVALID_STATE");

    let listed = c
        .app
        .ok(
            &c.caregiver,
            "{ videoCalls { edges { node { id status } } } }",
            json!({}),
        )
        .await;
    let statuses = node_fields(&listed["videoCalls"], "status");
    assert_eq!(
        statuses,
        [&json!("CANCELLED"), &json!("DECLINED"), &json!("COMPLETED")],
        "newest first"
    );
}

#[tokio::test]
async fn an_unanswered_request_expires_and_both_are_told() {
    let c = calls().await;
    let id = c.request().await;
    c.app.clock.advance(chrono::Duration::minutes(11));
    c.until_status(&id, "EXPIRED").await;
    assert_eq!(
        c.app.inbox_types(&c.recipient).await,
        ["VIDEO_CALL_UPDATED"]
    );
    assert_eq!(
        c.app.inbox_types(&c.caregiver).await,
        ["VIDEO_CALL_REQUESTED", "VIDEO_CALL_UPDATED"]
    );
    let late = c.act(&c.caregiver, "accept", &id).await;
    assert_eq!(error_code(&late), "INVALID_STATE");
}

#[tokio::test]
async fn tokens_are_genuine_twilio_tokens_for_the_two_participants_only() {
    let c = calls().await;
    let id = c.request().await;
    let pending = c.token(&c.recipient, &id).await;
    assert_eq!(error_code(&pending), "INVALID_STATE");
    c.act(&c.caregiver, "accept", &id).await;
    for user in [&c.recipient, &c.caregiver] {
        let issued = c.token(user, &id).await;
        let issued = &issued["data"]["videoCallToken"];
        assert_eq!(issued["provider"], "twilio");
        assert_eq!(issued["roomName"], format!("video-call-{id}"));
        // The 15 s call plus a minute, under VIDEO_TOKEN_TTL_SECONDS (300).
        assert_eq!(issued["expiresIn"], 75);
        let token = issued["token"].as_str().unwrap();
        let header = decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        assert_eq!(header.cty.as_deref(), Some("twilio-fpa;v=1"));
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = decode::<Value>(
            token,
            &DecodingKey::from_secret(KEY_SECRET.as_bytes()),
            &validation,
        )
        .unwrap()
        .claims;
        let iat = claims["iat"].as_i64().unwrap();
        assert_eq!(claims["jti"], format!("SKtest-{iat}"));
        assert_eq!(claims["iss"], "SKtest");
        assert_eq!(claims["sub"], "ACtest");
        assert_eq!(claims["nbf"], iat);
        assert_eq!(claims["exp"].as_i64().unwrap() - iat, 75);
        assert_eq!(claims["grants"]["identity"], user.id.as_str());
        assert_eq!(
            claims["grants"]["video"]["room"],
            format!("video-call-{id}")
        );
        assert!(
            decode::<Value>(
                token,
                &DecodingKey::from_secret(b"another secret"),
                &validation
            )
            .is_err()
        );
    }
    let outsider = c.token(&c.stranger, &id).await;
    assert_eq!(error_code(&outsider), "NOT_FOUND");
    c.act(&c.caregiver, "complete", &id).await;
    let completed = c.token(&c.recipient, &id).await;
    assert_eq!(error_code(&completed), "INVALID_STATE");

    let declined = c.request().await;
    c.act(&c.caregiver, "decline", &declined).await;
    assert_eq!(
        error_code(&c.token(&c.recipient, &declined).await),
        "INVALID_STATE"
    );
    let expired = c.request().await;
    c.app.clock.advance(chrono::Duration::minutes(11));
    c.until_status(&expired, "EXPIRED").await;
    assert_eq!(
        error_code(&c.token(&c.recipient, &expired).await),
        "INVALID_STATE"
    );
}

#[tokio::test]
async fn the_server_ends_the_call_at_its_limit_with_one_rest_call() {
    let c = calls().await;
    let id = c.request().await;
    c.act(&c.caregiver, "accept", &id).await;
    let room = format!("video-call-{id}");
    let sid = c.rest("/v1/Rooms")[0].clone();
    assert_eq!(sid.path, "/v1/Rooms");
    let status = c
        .callback(
            &[
                ("RoomName", &room),
                ("RoomSid", "RMsid"),
                ("StatusCallbackEvent", "participant-connected"),
            ],
            None,
        )
        .await;
    assert_eq!(status, 200);
    let active = c.call(&id).await;
    assert_eq!(active["status"], "ACTIVE");
    c.app.clock.advance(chrono::Duration::seconds(14));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.call(&id).await["status"],
        "ACTIVE",
        "not before the limit"
    );
    c.app.clock.advance(chrono::Duration::seconds(1));
    let ended = c.until_status(&id, "COMPLETED").await;
    assert!(ended["callEndedAt"].is_string());
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.app.clock.advance(chrono::Duration::seconds(30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let completions: Vec<Recorded> = c
        .twilio
        .requests()
        .into_iter()
        .filter(|r| r.path != "/v1/Rooms")
        .collect();
    assert_eq!(completions.len(), 1, "{completions:?}");
    let room_sid = completions[0].path.strip_prefix("/v1/Rooms/").unwrap();
    assert!(room_sid.starts_with("RM"));
    assert_eq!(completions[0].method, "POST");
    assert_eq!(
        completions[0].authorization.as_deref(),
        Some(basic_auth().as_str())
    );
    assert_eq!(
        completions[0].form,
        vec![("Status".to_owned(), "completed".to_owned())]
    );
    assert_eq!(
        c.app.inbox_types(&c.recipient).await,
        [
            "VIDEO_CALL_ACCEPTED",
            "VIDEO_CALL_UPDATED",
            "VIDEO_CALL_UPDATED"
        ]
    );
}

#[tokio::test]
async fn webhooks_need_a_valid_signature_and_never_apply_twice() {
    let c = calls().await;
    let id = c.request().await;
    c.act(&c.caregiver, "accept", &id).await;
    let room = format!("video-call-{id}");
    let connected = [
        ("RoomName", room.as_str()),
        ("RoomSid", "RMx"),
        ("StatusCallbackEvent", "participant-connected"),
    ];
    let forged = twilio_signature(
        "not-the-auth-token",
        CALLBACK,
        &connected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(c.callback(&connected, Some(&forged)).await, 403);
    let wrong_url = twilio_signature(
        AUTH_TOKEN,
        "http://127.0.0.1/webhooks/twilio/video",
        &connected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>(),
    );
    assert_eq!(
        c.callback(&connected, Some(&wrong_url)).await,
        403,
        "signed for another URL"
    );
    assert_eq!(
        c.callback(&connected, Some("none")).await,
        403,
        "missing signature"
    );
    assert_eq!(
        c.call(&id).await["status"],
        "ACCEPTED",
        "refused callbacks change nothing"
    );

    assert_eq!(c.callback(&connected, None).await, 200);
    let started = c.call(&id).await;
    assert_eq!(started["status"], "ACTIVE");
    c.app.clock.advance(chrono::Duration::seconds(3));
    assert_eq!(c.callback(&connected, None).await, 200);
    assert_eq!(
        c.call(&id).await["callStartedAt"],
        started["callStartedAt"],
        "a duplicate changes nothing"
    );

    let ended = [
        ("RoomName", room.as_str()),
        ("RoomSid", "RMx"),
        ("StatusCallbackEvent", "room-ended"),
    ];
    assert_eq!(c.callback(&ended, None).await, 200);
    let completed = c.call(&id).await;
    assert_eq!(completed["status"], "COMPLETED");
    assert_eq!(c.callback(&ended, None).await, 200);
    assert_eq!(
        c.callback(&connected, None).await,
        200,
        "late and out of order"
    );
    assert_eq!(c.call(&id).await, completed);
    c.app.clock.advance(chrono::Duration::seconds(30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.twilio.requests().len(),
        1,
        "Twilio ended the room itself: no REST call to end it"
    );
    let unknown = [
        ("RoomName", "video-call-not-ours"),
        ("StatusCallbackEvent", "room-ended"),
    ];
    assert_eq!(c.callback(&unknown, None).await, 200);
}

#[tokio::test]
async fn a_call_whose_limit_passed_during_downtime_ends_at_startup() {
    let twilio = FakeTwilio::start().await;
    let config = config_with(&twilio).await;
    let first = TestApp::spawn_with(config.clone()).await;
    let clock = first.clock.clone();
    let recipient = first.register("CARE_RECIPIENT", "Tania").await;
    let caregiver = first.register("CAREGIVER", "Ulisses").await;
    let id = first.request_call(&recipient, &caregiver).await;
    first.act(&caregiver, "acceptVideoCall", &id).await;
    first
        .ok(
            &recipient,
            "mutation($id: UUID!) { startVideoCall(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    first.stop().await;

    clock.advance(chrono::Duration::seconds(60));
    let second = TestApp::spawn_with_clock(config, clock).await;
    let c = Calls {
        app: second,
        twilio,
        recipient,
        caregiver: caregiver.clone(),
        stranger: caregiver,
    };
    c.until_status(&id, "COMPLETED").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        c.twilio
            .requests()
            .iter()
            .filter(|r| r.path != "/v1/Rooms")
            .count(),
        1
    );
}

#[tokio::test]
async fn outsiders_see_and_touch_no_call() {
    let c = calls().await;
    let id = c.request().await;
    for verb in ["accept", "decline", "cancel", "start", "complete"] {
        let response = c.act(&c.stranger, verb, &id).await;
        assert_eq!(error_code(&response), "NOT_FOUND", "{verb}");
    }
    let seen = c
        .app
        .code(
            &c.stranger,
            "query($id: UUID!) { videoCall(id: $id) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(seen, "NOT_FOUND");
    let listed = c
        .app
        .ok(
            &c.stranger,
            "{ videoCalls { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(nodes(&listed["videoCalls"]).is_empty(), "{listed}");
    let mut ws = c.app.ws_as(Protocol::TransportWs, &c.stranger).await;
    ws.subscribe(
        "one",
        "subscription($id: UUID) { videoCallUpdated(id: $id) { id } }",
        json!({ "id": id }),
    )
    .await;
    assert_eq!(error_code(&ws.next_payload("one").await), "NOT_FOUND");
    ws.subscribe("all", "subscription { videoCallUpdated { id } }", json!({}))
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    c.act(&c.caregiver, "accept", &id).await;
    let _complete = ws.next_event().await;
    ws.expect_silence(Duration::from_millis(300)).await;
    let not_a_caregiver = c
        .app
        .graphql(
            Some(&c.recipient.token),
            REQUEST_CALL,
            json!({ "c": c.stranger.id }),
        )
        .await;
    assert_eq!(
        not_a_caregiver["errors"][0]["extensions"]["field"],
        "caregiverId"
    );
}

#[tokio::test]
async fn without_twilio_the_dev_provider_runs_the_whole_flow_and_the_chat_hears_of_it() {
    let app = TestApp::spawn().await;
    let recipient = app.register("CARE_RECIPIENT", "Vitoria").await;
    let caregiver = app.register("CAREGIVER", "Xavier").await;
    let booking = app.book(&recipient, &caregiver, 24).await;
    let session = app.enable_chat(&recipient, &booking).await;
    let requested = app.ok(&recipient, "mutation($c: UUID!, $b: UUID) { requestVideoCall(input: {caregiverId: $c, bookingId: $b}) { id } }",
        json!({ "c": caregiver.id, "b": booking })).await;
    let id = requested["requestVideoCall"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.act(&caregiver, "acceptVideoCall", &id).await;
    let token = app
        .ok(
            &caregiver,
            "mutation($id: UUID!) { videoCallToken(id: $id) { token provider roomName } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(token["videoCallToken"]["provider"], "dev");
    let header = decode_header(token["videoCallToken"]["token"].as_str().unwrap()).unwrap();
    assert_eq!(header.cty.as_deref(), Some("twilio-fpa;v=1"));
    let started = app
        .ok(
            &recipient,
            "mutation($id: UUID!) { startVideoCall(id: $id) { status callStartedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(started["startVideoCall"]["status"], "ACTIVE");
    app.clock.advance(chrono::Duration::seconds(9));
    let done = app
        .ok(
            &caregiver,
            "mutation($id: UUID!) { completeVideoCall(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(done["completeVideoCall"]["status"], "COMPLETED");
    let again = app
        .ok(
            &recipient,
            "mutation($id: UUID!) { completeVideoCall(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        again["completeVideoCall"]["status"], "COMPLETED",
        "completing twice is harmless"
    );
    let chat = app.ok(&caregiver, "query($id: UUID!) { chatSession(id: $id) { messages(last: 5) { edges { node { body kind } } } } }", json!({ "id": session })).await;
    let lines = nodes(&chat["chatSession"]["messages"]);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["kind"], "SYSTEM");
    assert_eq!(lines[0]["body"], "Video call ended after 9 s");
    let webhook = reqwest::Client::new()
        .post(format!("http://{}/webhooks/twilio/video", app.addr))
        .header("X-Twilio-Signature", "anything")
        .form(&[("RoomName", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(webhook.status().as_u16(), 403);
}
