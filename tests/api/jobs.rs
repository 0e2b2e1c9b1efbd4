//! The durable job queue on both databases: a claim is exclusive, a lapsed lease is taken
//! over, concurrent claimers never share a job, and a dedupe key admits one unfinished job.
//!
//! The jobs here are claimed through a writer whose clock stands a day ahead of the
//! server's, so the server's own workers (on the server's clock) never see them due.

use std::{collections::HashSet, sync::Arc, time::Duration};

use caregraph::{
    clock::ManualClock,
    db::{JobWake, Outbound, Writer},
    queue::{JobQueue, NewJob},
};
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::helpers::TestApp;

/// A writer on the app's database whose clock is a day ahead of the app's.
fn ahead(app: &TestApp) -> (Writer, ManualClock, DateTime<Utc>) {
    let state = &app.services().state;
    let start = state.clock.now() + chrono::Duration::days(1);
    let clock = ManualClock::new(start);
    let writer = Writer::new(
        state.db.clone(),
        state.write_queue.clone(),
        Arc::new(clock.clone()),
        state.bus.clone(),
        JobWake::default(),
        Outbound::default(),
    );
    (writer, clock, start)
}

fn job(at: DateTime<Utc>, key: Option<&str>) -> NewJob {
    NewJob {
        kind: "test",
        payload: json!({}),
        run_at: at,
        dedupe_key: key.map(str::to_owned),
    }
}

#[tokio::test]
async fn a_claim_is_exclusive_until_its_lease_lapses_then_taken_over() {
    let app = TestApp::spawn().await;
    let (writer, clock, start) = ahead(&app);
    let lease = Duration::from_secs(60);
    writer
        .run(async |write| JobQueue::enqueue(write, vec![job(start, None)]).await)
        .await
        .expect("enqueued");
    let first = writer
        .run(async |write| JobQueue::claim(write, 10, lease).await)
        .await
        .expect("claimed");
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].attempts, 1);
    let again = writer
        .run(async |write| JobQueue::claim(write, 10, lease).await)
        .await
        .expect("claimed");
    assert!(again.is_empty(), "a held claim is not handed out twice");
    // The worker holding it died: once its lease lapses, another takes the job over.
    clock.advance(chrono::Duration::seconds(61));
    let taken_over = writer
        .run(async |write| JobQueue::claim(write, 10, lease).await)
        .await
        .expect("claimed");
    assert_eq!(taken_over.len(), 1);
    assert_eq!(taken_over[0].id, first[0].id);
    assert_eq!(taken_over[0].attempts, 2);
    writer
        .run(async |write| JobQueue::finish(write, first[0].id).await)
        .await
        .expect("finished");
    clock.advance(chrono::Duration::seconds(3600));
    let after = writer
        .run(async |write| JobQueue::claim(write, 10, lease).await)
        .await
        .expect("claimed");
    assert!(after.is_empty(), "a finished job is gone");
}

#[tokio::test]
async fn concurrent_claimers_never_share_a_job() {
    let app = TestApp::spawn().await;
    let (writer, _clock, start) = ahead(&app);
    let jobs = (0..40).map(|_| job(start, None)).collect();
    writer
        .run(async |write| JobQueue::enqueue(write, jobs).await)
        .await
        .expect("enqueued");
    let claim = |writer: Writer| async move {
        writer
            .run(async |write| JobQueue::claim(write, 15, Duration::from_secs(60)).await)
            .await
            .expect("claimed")
    };
    let (a, b, c) = tokio::join!(
        claim(writer.clone()),
        claim(writer.clone()),
        claim(writer.clone())
    );
    let ids: Vec<_> = a.iter().chain(&b).chain(&c).map(|job| job.id).collect();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "no job was claimed twice");
    assert_eq!(ids.len(), 40, "every due job was claimed by someone");
}

#[tokio::test]
async fn a_dedupe_key_admits_one_unfinished_job_and_retries_wait_their_turn() {
    let app = TestApp::spawn().await;
    let (writer, clock, start) = ahead(&app);
    let added = writer
        .run(async |write| {
            Ok(
                JobQueue::enqueue(write, vec![job(start, Some("digest:1"))]).await?
                    + JobQueue::enqueue(write, vec![job(start, Some("digest:1"))]).await?,
            )
        })
        .await
        .expect("enqueued");
    assert_eq!(added, 1);
    let claimed = writer
        .run(async |write| JobQueue::claim(write, 10, Duration::from_secs(60)).await)
        .await
        .expect("claimed");
    let id = claimed[0].id;
    let retry_at = start + chrono::Duration::seconds(30);
    writer
        .run(async |write| JobQueue::retry_at(write, id, retry_at, "provider said 503").await)
        .await
        .expect("retried");
    let early = writer
        .run(async |write| JobQueue::claim(write, 10, Duration::from_secs(60)).await)
        .await
        .expect("claimed");
    assert!(early.is_empty(), "a retry waits for its time");
    clock.advance(chrono::Duration::seconds(30));
    let due = writer
        .run(async |write| JobQueue::claim(write, 10, Duration::from_secs(60)).await)
        .await
        .expect("claimed");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].last_error.as_deref(), Some("provider said 503"));
    writer
        .run(async |write| JobQueue::finish(write, id).await)
        .await
        .expect("finished");
    let again = writer
        .run(async |write| JobQueue::enqueue(write, vec![job(start, Some("digest:1"))]).await)
        .await
        .expect("enqueued");
    assert_eq!(again, 1, "the key is free once its job finished");
}
