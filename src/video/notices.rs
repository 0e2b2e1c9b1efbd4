//! What video calls tell people: inbox notices and the chat line of an outcome.

use entity::{
    enums::{NotificationType, VideoCallStatus},
    user, video_call,
};
use serde_json::json;

use crate::notifications::Notice;

/// The notices for a call that just reached its current status.
pub fn for_status(
    call: &video_call::Model,
    previous: Option<VideoCallStatus>,
    requester: &user::Model,
    caregiver: &user::Model,
) -> Vec<Notice> {
    // A request's pushes expire with it; `expiresAt` tells the delivery when.
    let notice = |reader: &user::Model, kind, title: &str, body: String| Notice {
        user_id: reader.id,
        kind,
        title: title.to_owned(),
        body,
        data: json!({
            "videoCallId": call.id,
            "bookingId": call.booking_id,
            "expiresAt": call.expires_at,
        }),
        dedupe_key: Some(format!("video:{}:{}", call.id, call.status.as_str())),
    };
    let both = |kind, title: &str, to_requester: String, to_caregiver: String| {
        vec![
            notice(requester, kind, title, to_requester),
            notice(caregiver, kind, title, to_caregiver),
        ]
    };
    let (r, c) = (&requester.display_name, &caregiver.display_name);
    match call.status {
        VideoCallStatus::Pending => vec![notice(
            caregiver,
            NotificationType::VideoCallRequested,
            "Incoming video call",
            format!("{r} would like a short video call with you now."),
        )],
        VideoCallStatus::Accepted => both(
            NotificationType::VideoCallAccepted,
            "Video call accepted",
            format!("{c} accepted your video call. Join now."),
            format!("You accepted {r}'s video call. Join now."),
        ),
        VideoCallStatus::Declined => both(
            NotificationType::VideoCallDeclined,
            "Video call declined",
            format!("{c} declined your video call."),
            format!("You declined {r}'s video call."),
        ),
        VideoCallStatus::Cancelled => both(
            NotificationType::VideoCallUpdated,
            "Video call cancelled",
            "You cancelled your video call request.".to_owned(),
            format!("{r} cancelled their video call request."),
        ),
        VideoCallStatus::Expired if previous == Some(VideoCallStatus::Accepted) => both(
            NotificationType::VideoCallUpdated,
            "Video call not joined",
            format!("Your video call with {c} was not joined in time."),
            format!("Your video call with {r} was not joined in time."),
        ),
        VideoCallStatus::Expired => both(
            NotificationType::VideoCallUpdated,
            "Video call missed",
            format!("{c} did not answer your video call in time."),
            format!("You missed a video call from {r}."),
        ),
        VideoCallStatus::Active => both(
            NotificationType::VideoCallUpdated,
            "Video call started",
            format!("Your video call with {c} started."),
            format!("Your video call with {r} started."),
        ),
        VideoCallStatus::Completed => both(
            NotificationType::VideoCallUpdated,
            "Video call ended",
            format!("Your video call with {c} ended."),
            format!("Your video call with {r} ended."),
        ),
    }
}

/// The line a call's outcome leaves in the pair's chat, if the outcome is one.
pub fn chat_line(call: &video_call::Model, previous: Option<VideoCallStatus>) -> Option<String> {
    match call.status {
        VideoCallStatus::Expired if previous == Some(VideoCallStatus::Accepted) => {
            Some("Video call not joined".to_owned())
        }
        VideoCallStatus::Declined => Some("Video call declined".to_owned()),
        VideoCallStatus::Cancelled => Some("Video call cancelled".to_owned()),
        VideoCallStatus::Expired => Some("Video call not answered".to_owned()),
        VideoCallStatus::Completed => Some(match (call.call_started_at, call.call_ended_at) {
            (Some(started), Some(ended)) => {
                format!(
                    "Video call ended after {} s",
                    (ended - started).num_seconds().max(0)
                )
            }
            _ => "Video call ended".to_owned(),
        }),
        _ => None,
    }
}
