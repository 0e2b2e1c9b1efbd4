//! The rules of video calls, over SeaORM. Every change is a conditional update on the
//! current status, so duplicated or out-of-order triggers (webhooks, scheduler, two
//! instances) change a call at most once.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use entity::{
    booking,
    enums::{Role, VideoCallStatus},
    video_call,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, Iterable, QueryFilter,
    QueryOrder, Set, sea_query::Expr,
};
use uuid::Uuid;

use super::notices;
use crate::db::Write;
use crate::db::parties::{either_party, find_for, party_table};
use crate::queue::{JobQueue, NewJob, kinds};
use crate::{
    bus::Event, chat::ChatService, error::AppError, notifications::NotificationService,
    users::UserService, viewer::Viewer,
};

/// Limits of calls, from the configuration.
#[derive(Debug, Clone)]
pub struct VideoSettings {
    /// The server ends a call this long after it starts (default 15 s).
    pub max_duration: Duration,
    /// An unanswered request expires after this (default 10 minutes).
    pub request_ttl: Duration,
    /// How long an access token is valid (default 5 minutes).
    pub token_ttl: Duration,
    /// An accepted call nobody joined expires after this (default 5 minutes).
    pub join_timeout: Duration,
}

/// How long a token outlives the most a call may still last.
pub const TOKEN_MARGIN: Duration = Duration::seconds(60);

/// What a video job is about: a call, and for an expiry, the status it expires from.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallJob {
    pub call_id: Uuid,
    /// The status an expiry expects the call still to have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// A room to close that the call never recorded (created for an accept that lost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_sid: Option<String>,
}

impl CallJob {
    fn job(
        kind: &'static str,
        call_id: Uuid,
        status: Option<VideoCallStatus>,
        run_at: DateTime<Utc>,
    ) -> NewJob {
        let suffix = status.map(|status| format!(":{}", status.as_str()));
        NewJob {
            kind,
            payload: serde_json::to_value(CallJob {
                call_id,
                status: status.map(|status| status.as_str().to_owned()),
                room_sid: None,
            })
            .unwrap_or_default(),
            run_at,
            dedupe_key: Some(format!("{kind}:{call_id}{}", suffix.unwrap_or_default())),
        }
    }

    /// Ends `call` at its limit.
    pub fn end_call(call_id: Uuid, at: DateTime<Utc>) -> NewJob {
        Self::job(kinds::VIDEO_END_CALL, call_id, None, at)
    }

    /// Expires `call` at `at` if it is still `status` then.
    pub fn expire(call_id: Uuid, status: VideoCallStatus, at: DateTime<Utc>) -> NewJob {
        Self::job(kinds::VIDEO_EXPIRE, call_id, Some(status), at)
    }

    /// Closes the provider room of `call`, now.
    pub fn close_room(call_id: Uuid, now: DateTime<Utc>) -> NewJob {
        Self::job(kinds::VIDEO_CLOSE_ROOM, call_id, None, now)
    }

    /// Closes room `room_sid`, created for `call` but never recorded on it, now.
    pub fn close_orphan(call_id: Uuid, room_sid: &str, now: DateTime<Utc>) -> NewJob {
        NewJob {
            kind: kinds::VIDEO_CLOSE_ROOM,
            payload: serde_json::to_value(CallJob {
                call_id,
                status: None,
                room_sid: Some(room_sid.to_owned()),
            })
            .unwrap_or_default(),
            run_at: now,
            dedupe_key: Some(format!("{}:{call_id}:{room_sid}", kinds::VIDEO_CLOSE_ROOM)),
        }
    }
}

/// What `requestVideoCall` asks for.
#[derive(Debug)]
pub struct NewCall {
    pub caregiver_id: Uuid,
    pub booking_id: Option<Uuid>,
}

/// The room name of a call, and back.
pub fn room_name(id: Uuid) -> String {
    format!("video-call-{id}")
}

pub fn call_id_of_room(room: &str) -> Option<Uuid> {
    Uuid::parse_str(room.strip_prefix("video-call-")?).ok()
}

/// Video call rules.
pub struct VideoService;

impl VideoService {
    /// A care recipient asks a caregiver for a call now, optionally about a booking of theirs.
    pub async fn request(
        write: &Write,
        viewer: &Viewer,
        input: NewCall,
        provider: &str,
        settings: &VideoSettings,
    ) -> Result<video_call::Model, AppError> {
        let now = write.now();
        if viewer.role != Role::CareRecipient {
            return Err(AppError::Forbidden(
                "only care recipients can request a video call".to_owned(),
            ));
        }
        let caregiver = UserService::find(write, input.caregiver_id).await?;
        if !caregiver.is_some_and(|caregiver| caregiver.role == Role::Caregiver) {
            return Err(AppError::bad_input(
                "caregiverId",
                "no caregiver has this id",
            ));
        }
        if let Some(booking_id) = input.booking_id {
            let booking = find_for::<booking::Entity>(write, viewer.id, booking_id).await?;
            if booking.caregiver_id != input.caregiver_id {
                return Err(AppError::bad_input(
                    "bookingId",
                    "the booking is with another caregiver",
                ));
            }
        }
        let open = video_call::Entity::find()
            .filter(video_call::Column::RequesterId.eq(viewer.id))
            .filter(video_call::Column::CaregiverId.eq(input.caregiver_id))
            .filter(
                video_call::Column::Status
                    .is_in(VideoCallStatus::iter().filter(|status| !status.is_final())),
            )
            .one(write)
            .await?;
        if let Some(open) = open {
            return Err(AppError::Conflict(format!(
                "video call {} with this caregiver is still {}",
                open.id,
                open.status.as_str()
            )));
        }
        let id = Uuid::now_v7();
        let call = video_call::ActiveModel {
            id: Set(id),
            booking_id: Set(input.booking_id),
            requester_id: Set(viewer.id),
            caregiver_id: Set(input.caregiver_id),
            status: Set(VideoCallStatus::Pending),
            room_name: Set(room_name(id)),
            provider: Set(provider.to_owned()),
            provider_room_sid: Set(None),
            max_duration_s: Set(settings.max_duration.num_seconds() as i32),
            expires_at: Set(now + settings.request_ttl),
            call_started_at: Set(None),
            call_ended_at: Set(None),
            room_closed_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(write)
        .await?;
        Self::announce(write, &call, None).await?;
        JobQueue::enqueue(
            write,
            vec![CallJob::expire(
                id,
                VideoCallStatus::Pending,
                call.expires_at,
            )],
        )
        .await?;
        Ok(call)
    }

    /// The call `viewer` may accept or decline now (a pending request of theirs that has not
    /// expired): read before the provider room is created, outside any transaction.
    pub async fn answerable(
        conn: &impl ConnectionTrait,
        viewer: &Viewer,
        id: Uuid,
        now: DateTime<Utc>,
        accept: bool,
    ) -> Result<video_call::Model, AppError> {
        let call = find_for::<video_call::Entity>(conn, viewer.id, id).await?;
        let verb = if accept { "accept" } else { "decline" };
        Self::check_answer(&call, viewer, now, verb)?;
        Ok(call)
    }

    fn check_answer(
        call: &video_call::Model,
        viewer: &Viewer,
        now: DateTime<Utc>,
        verb: &str,
    ) -> Result<(), AppError> {
        if call.caregiver_id != viewer.id {
            return Err(AppError::Forbidden(format!(
                "only the caregiver can {verb} a video call"
            )));
        }
        if call.status == VideoCallStatus::Pending && call.expires_at <= now {
            return Err(AppError::InvalidState(format!(
                "cannot {verb} a video call request that expired"
            )));
        }
        if !call.status.can_become(VideoCallStatus::Accepted) {
            return Err(AppError::InvalidState(format!(
                "cannot {verb} a video call that is {}",
                call.status.as_str()
            )));
        }
        Ok(())
    }

    /// The caregiver accepts (with the provider room already created, `room_sid`) or
    /// declines a pending request that has not expired. An accepted call nobody joins
    /// expires after the join timeout.
    pub async fn answer(
        write: &Write,
        viewer: &Viewer,
        id: Uuid,
        accept: bool,
        room_sid: Option<&str>,
        settings: &VideoSettings,
    ) -> Result<video_call::Model, AppError> {
        let now = write.now();
        let call = find_for::<video_call::Entity>(write, viewer.id, id).await?;
        let verb = if accept { "accept" } else { "decline" };
        Self::check_answer(&call, viewer, now, verb)?;
        if !accept {
            return Self::move_to(write, &call, VideoCallStatus::Declined, verb).await;
        }
        if let Some(sid) = room_sid {
            video_call::Entity::update_many()
                .col_expr(video_call::Column::ProviderRoomSid, Expr::value(sid))
                .filter(video_call::Column::Id.eq(call.id))
                .filter(video_call::Column::Status.eq(VideoCallStatus::Pending))
                .exec(write)
                .await?;
        }
        let accepted = Self::move_to(write, &call, VideoCallStatus::Accepted, verb).await?;
        JobQueue::enqueue(
            write,
            vec![CallJob::expire(
                id,
                VideoCallStatus::Accepted,
                now + settings.join_timeout,
            )],
        )
        .await?;
        Ok(accepted)
    }

    /// The requester withdraws a pending request.
    pub async fn cancel(
        write: &Write,
        viewer: &Viewer,
        id: Uuid,
    ) -> Result<video_call::Model, AppError> {
        let call = find_for::<video_call::Entity>(write, viewer.id, id).await?;
        if call.requester_id != viewer.id {
            return Err(AppError::Forbidden(
                "only the requester can cancel a video call".to_owned(),
            ));
        }
        Self::move_to(write, &call, VideoCallStatus::Cancelled, "cancel").await
    }

    /// The call starts (first participant joined, or a client says so): the limit runs from
    /// here. Starting an active call changes nothing.
    pub async fn start(
        write: &Write,
        call: &video_call::Model,
    ) -> Result<video_call::Model, AppError> {
        if call.status == VideoCallStatus::Active {
            return Ok(call.clone());
        }
        let started = Self::move_to(write, call, VideoCallStatus::Active, "start").await?;
        let limit = started.call_started_at.unwrap_or(write.now())
            + Duration::seconds(i64::from(started.max_duration_s));
        JobQueue::enqueue(write, vec![CallJob::end_call(started.id, limit)]).await?;
        Ok(started)
    }

    /// The call ends (limit reached, a participant ended it, or the room ended). Completing a
    /// completed call changes nothing; `room_closed` records that the room is already gone,
    /// otherwise a job to close it is queued in the same transaction.
    pub async fn complete(
        write: &Write,
        call: &video_call::Model,
        room_closed: bool,
    ) -> Result<video_call::Model, AppError> {
        if room_closed && call.room_closed_at.is_none() {
            Self::set_room_closed(write, call.id).await?;
        }
        if call.status == VideoCallStatus::Completed {
            return Self::find(write, call.id).await;
        }
        let completed = Self::move_to(write, call, VideoCallStatus::Completed, "complete").await?;
        if !room_closed {
            Self::close_later(write, &completed).await?;
        }
        Ok(completed)
    }

    /// Expires a pending request, or an accepted call nobody joined (its room is closed);
    /// a call that changed meanwhile stays as it is.
    pub async fn expire(write: &Write, call: &video_call::Model) -> Result<(), AppError> {
        match Self::move_to(write, call, VideoCallStatus::Expired, "expire").await {
            Ok(expired) => Self::close_later(write, &expired).await,
            Err(AppError::InvalidState(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Queues the closing of the call's provider room, if it has one still open.
    pub async fn close_later(write: &Write, call: &video_call::Model) -> Result<(), AppError> {
        if call.provider_room_sid.is_some() && call.room_closed_at.is_none() {
            JobQueue::enqueue(write, vec![CallJob::close_room(call.id, write.now())]).await?;
        }
        Ok(())
    }

    /// Moves `call` to `next` if its lifecycle allows it and nobody changed it meanwhile; sets the
    /// call's times, notifies both parties, and leaves the outcome in their chat.
    async fn move_to(
        write: &Write,
        call: &video_call::Model,
        next: VideoCallStatus,
        verb: &str,
    ) -> Result<video_call::Model, AppError> {
        let now = write.now();
        if !call.status.can_become(next) {
            return Err(AppError::InvalidState(format!(
                "cannot {verb} a video call that is {}",
                call.status.as_str()
            )));
        }
        let mut update = video_call::Entity::update_many()
            .col_expr(video_call::Column::Status, Expr::value(next))
            .col_expr(video_call::Column::UpdatedAt, Expr::value(now))
            .filter(video_call::Column::Id.eq(call.id))
            .filter(video_call::Column::Status.eq(call.status));
        match next {
            VideoCallStatus::Active => {
                update = update.col_expr(video_call::Column::CallStartedAt, Expr::value(now));
            }
            VideoCallStatus::Completed => {
                update = update.col_expr(video_call::Column::CallEndedAt, Expr::value(now));
            }
            _ => {}
        }
        if update.exec(write).await?.rows_affected != 1 {
            let current = Self::find(write, call.id).await?;
            return Err(AppError::InvalidState(format!(
                "the video call became {} meanwhile",
                current.status.as_str()
            )));
        }
        let changed = Self::find(write, call.id).await?;
        Self::announce(write, &changed, Some(call.status)).await?;
        Ok(changed)
    }

    /// Notifies both parties of the call's current status (reached from `previous`), posts
    /// its outcome in their chat, and publishes the change.
    async fn announce(
        write: &Write,
        call: &video_call::Model,
        previous: Option<VideoCallStatus>,
    ) -> Result<(), AppError> {
        let (requester, caregiver) =
            UserService::pair(write, call.requester_id, call.caregiver_id).await?;
        for notice in notices::for_status(call, previous, &requester, &caregiver) {
            NotificationService::notify(write, notice).await?;
        }
        if let Some(line) = notices::chat_line(call, previous) {
            ChatService::post_system(
                write,
                [call.requester_id, call.caregiver_id],
                call.booking_id,
                call.requester_id,
                line,
            )
            .await?;
        }
        write.publish(Event::VideoCallChanged(Arc::new(call.clone())));
        Ok(())
    }

    pub async fn find(
        conn: &impl ConnectionTrait,
        id: Uuid,
    ) -> Result<video_call::Model, AppError> {
        video_call::Entity::find_by_id(id)
            .one(conn)
            .await?
            .ok_or(AppError::NotFound("video call"))
    }

    /// The call of a provider room, whoever asks (the webhook).
    pub async fn find_by_room(
        conn: &impl ConnectionTrait,
        room: &str,
    ) -> Result<Option<video_call::Model>, AppError> {
        let Some(id) = call_id_of_room(room) else {
            return Ok(None);
        };
        Ok(video_call::Entity::find_by_id(id).one(conn).await?)
    }

    /// Pending requests whose answer time is up.
    pub async fn expired_requests(
        conn: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<Vec<video_call::Model>, AppError> {
        Ok(video_call::Entity::find()
            .filter(video_call::Column::Status.eq(VideoCallStatus::Pending))
            .filter(video_call::Column::ExpiresAt.lte(now))
            .all(conn)
            .await?)
    }

    /// Active calls that have run for their whole allowed duration.
    pub async fn over_limit(
        conn: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<Vec<video_call::Model>, AppError> {
        let active = video_call::Entity::find()
            .filter(video_call::Column::Status.eq(VideoCallStatus::Active))
            .all(conn)
            .await?;
        Ok(active
            .into_iter()
            .filter(|call| {
                call.call_started_at.is_some_and(|started| {
                    started + Duration::seconds(i64::from(call.max_duration_s)) <= now
                })
            })
            .collect())
    }

    /// Accepted calls nobody joined within `join_timeout` (their `updated_at` is the accept).
    pub async fn unjoined(
        conn: &impl ConnectionTrait,
        now: DateTime<Utc>,
        join_timeout: Duration,
    ) -> Result<Vec<video_call::Model>, AppError> {
        Ok(video_call::Entity::find()
            .filter(video_call::Column::Status.eq(VideoCallStatus::Accepted))
            .filter(video_call::Column::UpdatedAt.lte(now - join_timeout))
            .all(conn)
            .await?)
    }

    /// Ended calls whose provider room may still be open.
    pub async fn rooms_to_close(
        conn: &impl ConnectionTrait,
    ) -> Result<Vec<video_call::Model>, AppError> {
        Ok(video_call::Entity::find()
            .filter(
                video_call::Column::Status
                    .is_in([VideoCallStatus::Completed, VideoCallStatus::Expired]),
            )
            .filter(video_call::Column::ProviderRoomSid.is_not_null())
            .filter(video_call::Column::RoomClosedAt.is_null())
            .all(conn)
            .await?)
    }

    /// Records that the call's room is closed (or was found over).
    pub async fn set_room_closed(write: &Write, id: Uuid) -> Result<(), AppError> {
        video_call::Entity::update_many()
            .col_expr(video_call::Column::RoomClosedAt, Expr::value(write.now()))
            .filter(video_call::Column::Id.eq(id))
            .filter(video_call::Column::RoomClosedAt.is_null())
            .exec(write)
            .await?;
        Ok(())
    }

    /// Records the provider's id for the call's room.
    pub async fn set_room_sid(write: &Write, id: Uuid, sid: &str) -> Result<(), AppError> {
        video_call::Entity::update_many()
            .col_expr(video_call::Column::ProviderRoomSid, Expr::value(sid))
            .filter(video_call::Column::Id.eq(id))
            .filter(video_call::Column::ProviderRoomSid.is_null())
            .exec(write)
            .await?;
        Ok(())
    }

    /// The calls of `user_id` (either side) that are still current (pending, accepted or
    /// active) or changed at or after `since`, only call `only` when given, oldest change
    /// first: what a `videoCallUpdated` subscriber that fell behind the bus re-reads.
    pub async fn current_or_changed_since(
        conn: &impl ConnectionTrait,
        user_id: Uuid,
        since: DateTime<Utc>,
        only: Option<Uuid>,
    ) -> Result<Vec<video_call::Model>, AppError> {
        use video_call::Column;
        let current = VideoCallStatus::iter().filter(|status| !status.is_final());
        let mut query = video_call::Entity::find()
            .filter(either_party(
                Column::RequesterId,
                Column::CaregiverId,
                user_id,
            ))
            .filter(
                Condition::any()
                    .add(Column::Status.is_in(current))
                    .add(Column::UpdatedAt.gte(since)),
            )
            .order_by_asc(Column::UpdatedAt)
            .order_by_asc(Column::Id);
        if let Some(id) = only {
            query = query.filter(video_call::Column::Id.eq(id));
        }
        Ok(query.all(conn).await?)
    }
}

// The viewer's calls, on either side, newest first.
party_table!(video_call {
    parties: [RequesterId, CaregiverId],
    status: Status,
    listed_by: (CreatedAt, created_at, Desc),
    noun: "video call",
});
