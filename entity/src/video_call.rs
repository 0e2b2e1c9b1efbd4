//! `video_call_requests`: a short face-to-face call a care recipient asks a caregiver for.

use sea_orm::entity::prelude::*;

use crate::enums::VideoCallStatus;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "video_call_requests")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub booking_id: Option<Uuid>,
    pub requester_id: Uuid,
    pub caregiver_id: Uuid,
    pub status: VideoCallStatus,
    /// `video-call-{id}`: the provider room both participants join.
    pub room_name: String,
    /// `twilio` or `dev`: which provider issued the room and tokens.
    pub provider: String,
    pub provider_room_sid: Option<String>,
    /// The server ends the call this many seconds after it starts.
    pub max_duration_s: i32,
    /// An unanswered request expires at this instant.
    pub expires_at: DateTimeUtc,
    pub call_started_at: Option<DateTimeUtc>,
    pub call_ended_at: Option<DateTimeUtc>,
    /// When the provider room was closed (by us through its API, or reported ended).
    pub room_closed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl Model {
    /// Whether `user_id` is one of the two participants.
    pub fn is_party(&self, user_id: Uuid) -> bool {
        self.requester_id == user_id || self.caregiver_id == user_id
    }
}

impl ActiveModelBehavior for ActiveModel {}
