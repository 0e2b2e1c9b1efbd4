//! `POST /webhooks/twilio/video`: Twilio's room status callbacks, signature-checked.

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
};

use super::VideoService;
use crate::{error::AppError, http::HttpState, state::AppState};

/// Applies a signed status callback: `participant-connected` starts the call, `room-ended`
/// completes it. A bad or missing signature is refused with 403 and changes nothing;
/// repeated or late callbacks change nothing twice.
pub async fn twilio_status(
    State(state): State<HttpState>,
    headers: HeaderMap,
    Form(params): Form<Vec<(String, String)>>,
) -> StatusCode {
    let signature = headers
        .get("x-twilio-signature")
        .and_then(|value| value.to_str().ok());
    let Some(signature) = signature else {
        return StatusCode::FORBIDDEN;
    };
    if !state.app.video.provider.verify_callback(signature, &params) {
        return StatusCode::FORBIDDEN;
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let (Some(event), Some(room)) = (param("StatusCallbackEvent"), param("RoomName")) else {
        return StatusCode::OK;
    };
    match apply(&state.app, event, room, param("RoomSid")).await {
        Ok(()) => StatusCode::OK,
        Err(err) => {
            tracing::error!(error = %err, event, room, "applying a Twilio status callback");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

async fn apply(
    state: &AppState,
    event: &str,
    room: &str,
    room_sid: Option<&str>,
) -> Result<(), AppError> {
    let Some(call) = VideoService::find_by_room(&state.db, room).await? else {
        return Ok(());
    };
    if let (Some(sid), None) = (room_sid, &call.provider_room_sid) {
        VideoService::set_room_sid(&state.db, call.id, sid).await?;
    }
    let now = state.clock.now();
    let mut uow = state.unit_of_work().await?;
    let (txn, events) = uow.parts();
    let applied = match event {
        "participant-connected" => VideoService::start(txn, &call, now, events).await,
        "room-ended" => VideoService::complete(txn, &call, true, now, events).await,
        _ => return Ok(()),
    };
    match applied {
        // Out of order or repeated (a call already over): nothing to change.
        Ok(_) | Err(AppError::InvalidState(_)) => uow.commit().await,
        Err(err) => Err(err),
    }
}
