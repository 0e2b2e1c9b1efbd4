//! `POST /webhooks/twilio/video`: Twilio's room status callbacks, signature-checked here and
//! applied by the video domain.

use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
};

use super::HttpState;
use crate::video::rooms::{RoomEvent, apply_room_event};

/// Applies a signed status callback: `participant-connected` starts the call, `room-ended`
/// completes it. A bad or missing signature is refused with 403 and changes nothing;
/// repeated or late callbacks change nothing twice.
pub async fn twilio_video(
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
    if !state
        .services
        .video
        .provider
        .verify_callback(signature, &params)
    {
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
    let event = match event {
        "participant-connected" => RoomEvent::ParticipantConnected,
        "room-ended" => RoomEvent::RoomEnded,
        _ => return StatusCode::OK,
    };
    match apply_room_event(&state.services.state, event, room, param("RoomSid")).await {
        Ok(()) => StatusCode::OK,
        Err(err) => {
            tracing::error!(error = %err, ?event, room, "applying a Twilio status callback");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}
