//! A measurement, not a test: how long after its limit each call's room is closed, on the
//! wall clock, over 20 calls that overlap, with a healthy fake Twilio and with one whose
//! close hangs for one call. Run it (add TEST_DATABASE_URL for PostgreSQL):
//!
//! ```sh
//! cargo test --release --test api video_overshoot -- --ignored --nocapture
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::video_call;
use sea_orm::EntityTrait;
use serde_json::json;

use crate::{
    fake_twilio::{Failure, FakeTwilio, Op},
    helpers::TestApp,
    video::config_with,
};

const CALLS: usize = 20;

struct Measured {
    /// From the limit to the call's `callEndedAt`.
    ended_ms: Vec<i64>,
    /// From the limit to the close request reaching Twilio.
    closed_ms: Vec<i64>,
    /// The close of the call whose first close hung, if any.
    hung_closed_ms: Option<i64>,
}

async fn run(hang_one: bool) -> Measured {
    let twilio = FakeTwilio::start().await;
    let config = config_with(&twilio).await;
    let app = TestApp::spawn_in_real_time(config).await;
    let caregiver = app.register("CAREGIVER", "Mauro").await;
    let mut recipients = Vec::new();
    for i in 0..CALLS {
        recipients.push(
            app.register("CARE_RECIPIENT", &format!("Recipient {i}"))
                .await,
        );
    }
    if hang_one {
        twilio.fail(Op::Complete, Failure::Hang, Some(1));
    }
    let mut ids = Vec::new();
    for recipient in &recipients {
        let id = app.request_call(recipient, &caregiver).await;
        app.act(&caregiver, "acceptVideoCall", &id).await;
        app.ok(
            recipient,
            "mutation($id: UUID!) { startVideoCall(id: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
        ids.push(id);
        // Limits a tenth of a second apart, so calls end while others are being closed.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The last limit, the 3 s Twilio timeout of a hung close, its backoff, and a margin.
    tokio::time::sleep(Duration::from_secs(15 + 3 + 3)).await;
    let requests = twilio.requests_of(Op::Complete);
    let hung_path = hang_one.then(|| requests[0].path.clone());
    let mut measured = Measured {
        ended_ms: Vec::new(),
        closed_ms: Vec::new(),
        hung_closed_ms: None,
    };
    for id in &ids {
        let call = video_call::Entity::find_by_id(id.parse::<uuid::Uuid>().unwrap())
            .one(app.db())
            .await
            .unwrap()
            .unwrap();
        let started = call.call_started_at.expect("started");
        let limit: DateTime<Utc> =
            started + chrono::Duration::seconds(i64::from(call.max_duration_s));
        let ended = call.call_ended_at.expect("ended by its limit");
        measured.ended_ms.push((ended - limit).num_milliseconds());
        let path = format!("/v1/Rooms/{}", call.provider_room_sid.expect("a room"));
        let closes: Vec<_> = requests.iter().filter(|r| r.path == path).collect();
        let last = closes.last().expect("a close was sent");
        let overshoot = (last.at - limit).num_milliseconds();
        if hung_path.as_deref() == Some(path.as_str()) {
            measured.hung_closed_ms = Some(overshoot);
        } else {
            measured.closed_ms.push(overshoot);
        }
    }
    measured
}

fn summary(label: &str, values: &mut [i64]) {
    values.sort_unstable();
    let median = values[values.len() / 2];
    println!(
        "{label:<48} n={:<3} min={:>5} ms  median={:>5} ms  max={:>5} ms",
        values.len(),
        values[0],
        median,
        values[values.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn video_overshoot() {
    let mut healthy = run(false).await;
    summary("healthy: limit to callEndedAt", &mut healthy.ended_ms);
    summary(
        "healthy: limit to the close at Twilio",
        &mut healthy.closed_ms,
    );
    let mut hanging = run(true).await;
    summary(
        "one close hangs: limit to callEndedAt",
        &mut hanging.ended_ms,
    );
    summary(
        "one close hangs: limit to the close, other calls",
        &mut hanging.closed_ms,
    );
    println!(
        "{:<48} {} ms (after a 3 s timeout and a retry)",
        "one close hangs: the hung call's close",
        hanging.hung_closed_ms.expect("the hung call")
    );
}
