//! The video jobs of the durable queue: a call's end at its limit and the expiry of a request
//! or an unjoined call, each a timer of its own kept in the database (so it runs on time and
//! survives restarts), and the closing of a room, sent with a timeout, retried with backoff
//! while the provider is unavailable, and never lost across a crash (the claim's lease lapses
//! and another worker takes it over).

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{enums::VideoCallStatus, job, video_call};
use sea_orm::EntityTrait;

use super::{
    Video, VideoService,
    provider::{ProviderError, RoomState},
    service::CallJob,
};
use crate::{
    error::AppError,
    queue::{Backoff, JobQueue, later, payload_of},
    state::AppState,
    telemetry,
};

/// Room closes are retried quickly (the promise is to end the call within seconds) and for
/// minutes of provider outage: about 8 minutes over 20 attempts at most.
pub const CLOSE_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_secs(30),
    max_attempts: 20,
};

impl Video {
    /// How long a video job's claim holds: room closes make at most two provider calls, each
    /// bounded by `TWILIO_TIMEOUT_MS`, so a worker that died is replaced soon.
    pub fn job_lease(&self) -> Duration {
        self.provider_timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(10))
    }

    /// `video_end_call`: the call ends at its limit (and its room gets a close job).
    pub async fn end_call(&self, state: &AppState, job: &job::Model) -> Result<(), AppError> {
        let Some(order) = payload_of::<CallJob>(job) else {
            return JobQueue::finish_alone(&state.writer, job.id).await;
        };
        state
            .writer
            .run(async |write| {
                let now = write.now();
                let call = video_call::Entity::find_by_id(order.call_id)
                    .one(write)
                    .await?;
                if let Some(call) = call.filter(|call| call.status == VideoCallStatus::Active) {
                    let limit = limit_of(&call);
                    if limit > now {
                        return JobQueue::postpone(write, job.id, limit).await;
                    }
                    match VideoService::complete(write, &call, false).await {
                        Ok(_) => {
                            let overshoot = (now - limit).num_milliseconds().max(0);
                            tracing::info!(call = %call.id, overshoot_ms = overshoot, "video call ended at its limit");
                        }
                        Err(AppError::InvalidState(_)) => {}
                        Err(err) => return Err(err),
                    }
                }
                JobQueue::finish(write, job.id).await
            })
            .await
    }

    /// `video_expire`: a request nobody answered, or an accepted call nobody joined, expires
    /// if it is still in the status the job was queued for.
    pub async fn expire(&self, state: &AppState, job: &job::Model) -> Result<(), AppError> {
        let Some(order) = payload_of::<CallJob>(job) else {
            return JobQueue::finish_alone(&state.writer, job.id).await;
        };
        let join_timeout = self.settings.join_timeout;
        state
            .writer
            .run(async |write| {
                let now = write.now();
                let call = video_call::Entity::find_by_id(order.call_id)
                    .one(write)
                    .await?;
                let expected = order.status.as_deref();
                if let Some(call) = call.filter(|call| Some(call.status.as_str()) == expected) {
                    let due = match call.status {
                        VideoCallStatus::Pending => Some(call.expires_at),
                        VideoCallStatus::Accepted => Some(call.updated_at + join_timeout),
                        _ => None,
                    };
                    if let Some(due) = due {
                        if due > now {
                            return JobQueue::postpone(write, job.id, due).await;
                        }
                        VideoService::expire(write, &call).await?;
                    }
                }
                JobQueue::finish(write, job.id).await
            })
            .await
    }

    /// `video_close_room`: ends the call's provider room. Done (the room closed, or a `GET`
    /// confirms it is over or unknown): the call records it and the job leaves the queue.
    /// The provider unavailable: retried with backoff. Refused otherwise: the job fails,
    /// kept for the operator, and the provider's own ceilings end the room.
    pub async fn close_room(&self, state: &AppState, job: &job::Model) -> Result<(), AppError> {
        let Some(order) = payload_of::<CallJob>(job) else {
            return JobQueue::finish_alone(&state.writer, job.id).await;
        };
        // A room created for an accept that lost is not the call's: the call is left alone.
        let orphan = order.room_sid.is_some();
        let sid = match order.room_sid.clone() {
            Some(sid) => sid,
            None => {
                let call = video_call::Entity::find_by_id(order.call_id)
                    .one(&state.db)
                    .await?;
                match call {
                    Some(video_call::Model {
                        provider_room_sid: Some(sid),
                        room_closed_at: None,
                        ..
                    }) => sid,
                    _ => return JobQueue::finish_alone(&state.writer, job.id).await,
                }
            }
        };
        let outcome = match self.provider.complete_room(&sid).await {
            Ok(()) => Ok("closed"),
            Err(err) if err.room_is_gone() => match self.provider.room_status(&sid).await {
                Ok(RoomState::Over | RoomState::Missing) => Ok("already_over"),
                Ok(RoomState::InProgress) => Err(ProviderError::Unavailable(format!(
                    "the room is still in progress after: {err}"
                ))),
                Err(status_err) => Err(status_err),
            },
            Err(err) => Err(err),
        };
        let call_id = order.call_id;
        match outcome {
            Ok(how) => {
                telemetry::video_room_close(how);
                state
                    .writer
                    .run(async |write| {
                        if !orphan {
                            VideoService::set_room_closed(write, call_id).await?;
                        }
                        JobQueue::finish(write, job.id).await
                    })
                    .await
            }
            Err(err) if err.is_transient() && !CLOSE_BACKOFF.exhausted(job.attempts) => {
                telemetry::video_room_close("retry");
                tracing::warn!(call = %call_id, attempt = job.attempts, error = %err, "closing a video room; will retry");
                let wait = CLOSE_BACKOFF.wait(job.attempts, None, Backoff::jitter());
                let reason = err.to_string();
                state
                    .writer
                    .run(async |write| {
                        JobQueue::retry_at(write, job.id, later(write.now(), wait), &reason).await
                    })
                    .await
            }
            Err(err) => {
                telemetry::video_room_close("failed");
                tracing::error!(call = %call_id, attempt = job.attempts, error = %err, "closing a video room failed for good; the provider's room ceilings end it");
                let reason = format!("after {} attempts: {err}", job.attempts);
                state
                    .writer
                    .run(async |write| JobQueue::fail(write, job.id, &reason).await)
                    .await
            }
        }
    }
}

/// When `call` reaches its limit.
fn limit_of(call: &video_call::Model) -> DateTime<Utc> {
    call.call_started_at.unwrap_or(call.updated_at)
        + chrono::Duration::seconds(i64::from(call.max_duration_s))
}
