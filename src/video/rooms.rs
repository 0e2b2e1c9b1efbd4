//! Provider round-trips around committed call changes: opening rooms, closing them once,
//! and the scheduler's pass over expired requests and calls past their limit.
//!
//! REST calls never run inside a database transaction: the change commits first, then
//! the provider is called, and a claim column makes each room close happen once.

use entity::{enums::VideoCallStatus, video_call};

use super::VideoService;
use crate::{error::AppError, state::AppState};

/// Creates the provider room of an accepted call, if it has none yet. A failure is logged
/// and retried when a token is asked for.
pub async fn open_room(state: &AppState, call: &video_call::Model) {
    if call.provider_room_sid.is_some() {
        return;
    }
    match state.video.provider.create_room(&call.room_name).await {
        Ok(Some(sid)) => {
            if let Err(err) = VideoService::set_room_sid(&state.db, call.id, &sid).await {
                tracing::error!(call = %call.id, error = %err, "recording a room sid");
            }
        }
        Ok(None) => {}
        Err(err) => tracing::error!(call = %call.id, error = %err, "creating a video room"),
    }
}

/// Ends the provider room of a completed call, exactly once across instances and retries.
pub async fn close_room(state: &AppState, call: &video_call::Model) -> Result<(), AppError> {
    let Some(sid) = &call.provider_room_sid else {
        return Ok(());
    };
    if !VideoService::mark_room_closed(&state.db, call.id, state.clock.now()).await? {
        return Ok(());
    }
    if let Err(err) = state.video.provider.complete_room(sid).await {
        tracing::error!(call = %call.id, error = %err, "ending a video room; will retry");
        VideoService::reopen_room_claim(&state.db, call.id).await?;
    }
    Ok(())
}

/// One scheduler pass: expire unanswered requests, end calls that reached their limit, and
/// close the rooms of ended calls.
pub async fn run_due(state: &AppState) -> Result<(), AppError> {
    let now = state.clock.now();
    for call in VideoService::expired_requests(&state.db, now).await? {
        let mut uow = state.unit_of_work().await?;
        let (txn, events) = uow.parts();
        VideoService::expire(txn, &call, now, events).await?;
        uow.commit().await?;
    }
    for call in VideoService::over_limit(&state.db, now).await? {
        let mut uow = state.unit_of_work().await?;
        let (txn, events) = uow.parts();
        match VideoService::complete(txn, &call, false, now, events).await {
            Ok(_) | Err(AppError::InvalidState(_)) => uow.commit().await?,
            Err(err) => return Err(err),
        }
    }
    for call in VideoService::rooms_to_close(&state.db).await? {
        if call.status == VideoCallStatus::Completed {
            close_room(state, &call).await?;
        }
    }
    Ok(())
}
