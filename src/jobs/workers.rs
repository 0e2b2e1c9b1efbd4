//! The job workers of one instance: claim due jobs from the durable queue (video jobs with
//! the short lease of bounded provider calls), run each with its handler (up to `JOB_CONCURRENCY` at once, so one slow provider never holds up the
//! others), and look again when a commit added jobs, a job falls due, the manual clock moves
//! (tests) or the poll interval passes.

use std::{sync::Arc, time::Duration};

use entity::job;
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    bookings::ReminderService,
    config::JobConfig,
    db::JobWake,
    delivery::Delivery,
    error::AppError,
    queue::{JobQueue, kinds, later},
    shutdown::Shutdown,
    state::AppState,
    video::Video,
};

/// How long a worker waits before looking again at a due job someone else holds.
const LOCKED_RETRY: Duration = Duration::from_millis(20);

/// The most jobs one claim takes.
const CLAIM_BATCH: usize = 64;

/// Runs the workers until `shutdown` begins, then waits for the jobs under way. Dropping it
/// (the grace period ran out, or the process ends) abandons them: their claims lapse with
/// their leases and another worker takes them over.
pub async fn run(
    state: AppState,
    delivery: Arc<Delivery>,
    video: Arc<Video>,
    config: JobConfig,
    wake: JobWake,
    shutdown: &Shutdown,
) {
    let slots = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut running = JoinSet::new();
    let mut clock_moves = state.clock.moves();
    while !shutdown.is_stopping() {
        while running.try_join_next().is_some() {}
        let free = slots.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            tokio::select! {
                permit = slots.clone().acquire_owned() => drop(permit),
                () = shutdown.stopping() => {}
            }
            continue;
        }
        let claimed = state
            .writer
            .run(async |write| {
                JobQueue::claim_with(
                    write,
                    free as u64,
                    config.lease,
                    &kinds::VIDEO,
                    video.job_lease(),
                )
                .await
            })
            .await;
        let claimed_none;
        match claimed {
            Ok(jobs) => {
                let full = jobs.len() == free;
                claimed_none = jobs.is_empty();
                // Pushes are settled together (a few statements for the whole claim);
                // every other job runs on its own.
                let (pushes, others): (Vec<_>, Vec<_>) =
                    jobs.into_iter().partition(|job| job.kind == kinds::PUSH);
                if !pushes.is_empty() {
                    let Ok(permits) = slots.clone().acquire_many_owned(pushes.len() as u32).await
                    else {
                        return;
                    };
                    let state = state.clone();
                    let delivery = delivery.clone();
                    running.spawn(async move {
                        let ran = delivery.push(&state, &pushes).await;
                        if let Err(err) = ran {
                            for job in &pushes {
                                retry_soon(&state, job, &err).await;
                            }
                        }
                        drop(permits);
                    });
                }
                for job in others {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let state = state.clone();
                    let delivery = delivery.clone();
                    let video = video.clone();
                    running.spawn(async move {
                        run_one(&state, &delivery, &video, &job).await;
                        drop(permit);
                    });
                }
                if full {
                    continue;
                }
            }
            Err(err) => {
                claimed_none = true;
                tracing::error!(error = %err, "claiming jobs");
            }
        }
        let mut wait = until_next_due(&state, config.poll).await;
        if claimed_none {
            // A due job that no claim returned is held by another transaction (its claim
            // or its settlement is committing), or the claim failed: look again shortly,
            // not in a tight loop.
            wait = wait.max(LOCKED_RETRY);
        }
        let moved = async {
            match clock_moves.as_mut() {
                Some(moves) => moves.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = wake.woken() => {}
            () = tokio::time::sleep(wait) => {}
            still = moved => if !still { clock_moves = None; },
            () = shutdown.stopping() => {}
        }
    }
    while running.join_next().await.is_some() {}
}

/// Runs one claimed job with its handler; a handler that failed on our side (the database)
/// has its job retried after a short wait.
async fn run_one(state: &AppState, delivery: &Delivery, video: &Video, job: &job::Model) {
    let ran = match job.kind.as_str() {
        kinds::BOOKING_REMINDER => ReminderService::run_job(state, job).await,
        kinds::EMAIL => delivery.email(state, job).await,
        kinds::CHAT_DIGEST => delivery.chat_digest(state, job).await,
        kinds::VIDEO_END_CALL => video.end_call(state, job).await,
        kinds::VIDEO_EXPIRE => video.expire(state, job).await,
        kinds::VIDEO_CLOSE_ROOM => video.close_room(state, job).await,
        other => {
            let reason = format!("no handler for jobs of kind {other:?}");
            state
                .writer
                .run(async |write| JobQueue::fail(write, job.id, &reason).await)
                .await
        }
    };
    if let Err(err) = ran {
        retry_soon(state, job, &err).await;
    }
}

/// A job whose handler failed on our side (the database) runs again after a short wait;
/// if even that cannot be recorded, its lease lapses and it is claimed again.
async fn retry_soon(state: &AppState, job: &job::Model, err: &AppError) {
    tracing::error!(error = %err, job = %job.id, kind = %job.kind, "running a job");
    let retry = later(state.clock.now(), Duration::from_secs(5));
    let reason = err.to_string();
    let recorded: Result<(), AppError> = state
        .writer
        .run(async |write| JobQueue::retry_at(write, job.id, retry, &reason).await)
        .await;
    if let Err(err) = recorded {
        tracing::error!(error = %err, job = %job.id, "recording a job's failure; its lease will lapse");
    }
}

/// How long an idle worker sleeps: until the next job falls due, at most `poll`.
async fn until_next_due(state: &AppState, poll: Duration) -> Duration {
    match JobQueue::next_due(&state.db).await {
        Ok(Some(at)) => (at - state.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(poll),
        Ok(None) => poll,
        Err(err) => {
            tracing::error!(error = %err, "looking for the next due job");
            poll
        }
    }
}
