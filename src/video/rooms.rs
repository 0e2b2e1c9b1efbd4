//! Provider round-trips around committed call changes: opening rooms, closing them once,
//! applying the provider's room events, and the scheduler's pass over expired requests and
//! calls past their limit.
//!
//! REST calls never run inside a database transaction: the change commits first, then
//! the provider is called, and a claim column makes each room close happen once.

use entity::{enums::VideoCallStatus, video_call};

use super::{Video, VideoService};
use crate::{error::AppError, state::AppState};

/// Creates the provider room of an accepted call, if it has none yet. A failure is logged
/// and retried when a token is asked for.
pub async fn open_room(state: &AppState, video: &Video, call: &video_call::Model) {
    if call.provider_room_sid.is_some() {
        return;
    }
    match video.provider.create_room(&call.room_name).await {
        Ok(Some(sid)) => {
            let recorded = state
                .writer
                .run(async |write| VideoService::set_room_sid(write, call.id, &sid).await)
                .await;
            if let Err(err) = recorded {
                tracing::error!(call = %call.id, error = %err, "recording a room sid");
            }
        }
        Ok(None) => {}
        Err(err) => tracing::error!(call = %call.id, error = %err, "creating a video room"),
    }
}

/// Ends the provider room of a completed call, exactly once across instances and retries.
pub async fn close_room(
    state: &AppState,
    video: &Video,
    call: &video_call::Model,
) -> Result<(), AppError> {
    let Some(sid) = &call.provider_room_sid else {
        return Ok(());
    };
    let claimed = state
        .writer
        .run(async |write| VideoService::mark_room_closed(write, call.id).await)
        .await?;
    if !claimed {
        return Ok(());
    }
    if let Err(err) = video.provider.complete_room(sid).await {
        tracing::error!(call = %call.id, error = %err, "ending a video room; will retry");
        state
            .writer
            .run(async |write| VideoService::reopen_room_claim(write, call.id).await)
            .await?;
    }
    Ok(())
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

/// One scheduler pass: expire unanswered requests, end calls that reached their limit, and
/// close the rooms of ended calls.
pub async fn run_due(state: &AppState, video: &Video) -> Result<(), AppError> {
    let now = state.clock.now();
    for call in VideoService::expired_requests(&state.db, now).await? {
        state
            .writer
            .run(async |write| VideoService::expire(write, &call).await)
            .await?;
    }
    for call in VideoService::over_limit(&state.db, now).await? {
        state
            .writer
            .run(
                async |write| match VideoService::complete(write, &call, false).await {
                    Ok(_) | Err(AppError::InvalidState(_)) => Ok(()),
                    Err(err) => Err(err),
                },
            )
            .await?;
    }
    for call in VideoService::rooms_to_close(&state.db).await? {
        if call.status == VideoCallStatus::Completed {
            close_room(state, video, &call).await?;
        }
    }
    Ok(())
}
