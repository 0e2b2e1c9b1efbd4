//! Provider round-trips around call changes: creating a call's room before its accept
//! commits, applying the provider's room events, and the scheduler's safety net that
//! queues the video jobs ([`super::jobs`]) a call is missing.
//!
//! REST calls never run inside a database transaction, and every one is bounded by
//! `TWILIO_TIMEOUT_MS`.

use entity::{enums::VideoCallStatus, video_call};
use uuid::Uuid;

use super::{Video, VideoService, provider::RoomSpec, service::CallJob};
use crate::{error::AppError, queue::JobQueue, state::AppState, viewer::Viewer};

/// Accepts a pending call: checks it may be accepted, creates its provider room (outside any
/// transaction, bounded), then commits the accept with the room's sid. A room the provider
/// could not create leaves the call pending (`PROVIDER_UNAVAILABLE`: accept again); a room
/// created for a call that was cancelled or expired meanwhile is closed by a job.
pub async fn accept(
    state: &AppState,
    video: &Video,
    viewer: &Viewer,
    id: Uuid,
) -> Result<video_call::Model, AppError> {
    let call = VideoService::answerable(&state.db, viewer, id, state.clock.now(), true).await?;
    let spec = RoomSpec {
        name: &call.room_name,
        max_participant_duration: std::time::Duration::from_secs(
            u64::try_from(call.max_duration_s).unwrap_or(0),
        ),
        unused_timeout: video.settings.join_timeout.to_std().unwrap_or_default(),
    };
    let sid = match video.provider.create_room(&spec).await {
        Ok(sid) => sid,
        Err(err) => {
            if err.is_transient() {
                tracing::warn!(call = %call.id, error = %err, "creating a video room");
            } else {
                tracing::error!(call = %call.id, error = %err, "the provider refused to create a video room");
            }
            return Err(AppError::ProviderUnavailable(format!(
                "creating the room of video call {}: {err}",
                call.id
            )));
        }
    };
    let settings = &video.settings;
    let accepted = state
        .writer
        .run(async |write| {
            VideoService::answer(write, viewer, id, true, sid.as_deref(), settings).await
        })
        .await;
    if let (Err(_), Some(sid)) = (&accepted, &sid) {
        // The call changed meanwhile (cancelled, expired), or the commit failed: the new room
        // must not stay open. A call still pending may be accepted again and take the room
        // over (a create with its name finds it), so it keeps it; so does a call accepted
        // meanwhile by a concurrent accept that found this same room.
        let queued = state
            .writer
            .run(async |write| {
                let call = VideoService::find(write, id).await?;
                let answerable =
                    call.status == VideoCallStatus::Pending && call.expires_at > write.now();
                if answerable || call.provider_room_sid.as_deref() == Some(sid.as_str()) {
                    return Ok(0);
                }
                JobQueue::enqueue(write, vec![CallJob::close_orphan(id, sid, write.now())]).await
            })
            .await;
        if let Err(err) = queued {
            tracing::error!(call = %id, error = %err, "queueing the close of an unused room; the provider's unused-room timeout ends it");
        }
    }
    accepted
}

/// What the provider reported about a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomEvent {
    /// Someone joined: the call starts.
    ParticipantConnected,
    /// The room is over: the call completes.
    RoomEnded,
}

/// Applies a provider's (already authenticated) event about `room`. Unknown rooms, and
/// events that come late or twice, change nothing.
pub async fn apply_room_event(
    state: &AppState,
    event: RoomEvent,
    room: &str,
    room_sid: Option<&str>,
) -> Result<(), AppError> {
    state
        .writer
        .run(async |write| {
            let Some(call) = VideoService::find_by_room(write, room).await? else {
                return Ok(());
            };
            if let (Some(sid), None) = (room_sid, &call.provider_room_sid) {
                VideoService::set_room_sid(write, call.id, sid).await?;
            }
            let applied = match event {
                RoomEvent::ParticipantConnected => VideoService::start(write, &call).await,
                RoomEvent::RoomEnded => VideoService::complete(write, &call, true).await,
            };
            match applied {
                // Out of order or repeated (a call already over): nothing to change.
                Ok(_) | Err(AppError::InvalidState(_)) => Ok(()),
                Err(err) => Err(err),
            }
        })
        .await
}

/// One scheduler pass, a safety net under the video jobs: every call that should have ended,
/// expired or had its room closed by now gets its job queued (a job it still has is kept,
/// by its dedupe key). Calls changed before the jobs existed, and jobs lost to an operator's
/// hand, are caught here; the jobs do the work, concurrently.
pub async fn run_due(state: &AppState, video: &Video) -> Result<(), AppError> {
    let now = state.clock.now();
    let mut jobs = Vec::new();
    for call in VideoService::expired_requests(&state.db, now).await? {
        jobs.push(CallJob::expire(call.id, VideoCallStatus::Pending, now));
    }
    for call in VideoService::unjoined(&state.db, now, video.settings.join_timeout).await? {
        jobs.push(CallJob::expire(call.id, VideoCallStatus::Accepted, now));
    }
    for call in VideoService::over_limit(&state.db, now).await? {
        jobs.push(CallJob::end_call(call.id, now));
    }
    for call in VideoService::rooms_to_close(&state.db).await? {
        jobs.push(CallJob::close_room(call.id, now));
    }
    if jobs.is_empty() {
        return Ok(());
    }
    state
        .writer
        .run(async |write| JobQueue::enqueue(write, jobs.clone()).await)
        .await?;
    Ok(())
}
