//! The GraphQL face of video calls: lifecycle mutations, tokens, lists, `videoCallUpdated`.

use std::sync::Arc;

use async_graphql::{
    Context, InputObject, Object, SimpleObject, Subscription,
    connection::Connection,
    futures_util::{future::BoxFuture, stream::BoxStream},
};
use chrono::{DateTime, Utc};
use entity::{enums::VideoCallStatus, video_call};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{
    RoomAccess, Video, rooms,
    service::{NewCall, TOKEN_MARGIN, VideoService},
};
use crate::{
    bookings::Booking,
    bus::{
        Event, Topic,
        parking::resume_or,
        state::{Change, ChangedSince, Start, StateSource, live_state},
    },
    db::parties::find_for,
    error::AppError,
    paging::page_cost,
    state::{AppState, viewer_page, viewer_row, write_as_viewer},
    users::User,
    viewer::viewer,
};

/// A short video call between a care recipient and a caregiver.
pub struct VideoCall(Arc<video_call::Model>);

#[Object]
impl VideoCall {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    /// The booking the call is about, if any.
    async fn booking(&self, ctx: &Context<'_>) -> Result<Option<Booking>, AppError> {
        let Some(booking_id) = self.0.booking_id else {
            return Ok(None);
        };
        Booking::load(ctx, booking_id).await.map(Some)
    }

    async fn requester(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        User::load(ctx, self.0.requester_id).await
    }

    async fn caregiver(&self, ctx: &Context<'_>) -> Result<User, AppError> {
        User::load(ctx, self.0.caregiver_id).await
    }

    async fn status(&self) -> VideoCallStatus {
        self.0.status
    }

    /// The provider room both participants join: `video-call-{id}`.
    async fn room_name(&self) -> &str {
        &self.0.room_name
    }

    async fn provider(&self) -> &str {
        &self.0.provider
    }

    /// The server ends the call this many seconds after it starts.
    async fn max_duration_seconds(&self) -> i32 {
        self.0.max_duration_s
    }

    /// An unanswered request expires at this instant.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }

    async fn call_started_at(&self) -> Option<DateTime<Utc>> {
        self.0.call_started_at
    }

    async fn call_ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.call_ended_at
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

impl From<video_call::Model> for VideoCall {
    fn from(model: video_call::Model) -> Self {
        VideoCall(Arc::new(model))
    }
}

/// What a participant needs to join the call's room.
#[derive(SimpleObject)]
pub struct VideoCallToken {
    /// A provider access token (a Twilio Video access token with Twilio configured).
    token: String,
    room_name: String,
    /// Seconds until the token expires.
    expires_in: i64,
    /// `twilio` or `dev`.
    provider: String,
}

#[derive(InputObject)]
pub struct RequestVideoCallInput {
    caregiver_id: Uuid,
    /// The booking the call is about (optional; it must be with this caregiver).
    booking_id: Option<Uuid>,
}

#[derive(Default)]
pub struct VideoQuery;

#[Object]
impl VideoQuery {
    /// The viewer's video calls, on either side, newest first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn video_calls(
        &self,
        ctx: &Context<'_>,
        status: Option<VideoCallStatus>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, VideoCall>, AppError> {
        viewer_page::<video_call::Entity, _>(ctx, status, first, after, VideoCall::from).await
    }

    /// One call the viewer takes part in.
    async fn video_call(&self, ctx: &Context<'_>, id: Uuid) -> Result<VideoCall, AppError> {
        viewer_row::<video_call::Entity>(ctx, id)
            .await
            .map(VideoCall::from)
    }
}

#[derive(Default)]
pub struct VideoMutation;

#[Object]
impl VideoMutation {
    /// A care recipient asks a caregiver for a short call now; the caregiver is notified.
    async fn request_video_call(
        &self,
        ctx: &Context<'_>,
        input: RequestVideoCallInput,
    ) -> Result<VideoCall, AppError> {
        let video = ctx.data_unchecked::<Arc<Video>>();
        let new_call = NewCall {
            caregiver_id: input.caregiver_id,
            booking_id: input.booking_id,
        };
        let call = write_as_viewer(ctx, async |write, viewer| {
            let provider = video.provider.name();
            VideoService::request(write, viewer, new_call, provider, &video.settings).await
        })
        .await?;
        Ok(call.into())
    }

    /// The caregiver accepts a pending request: the provider room is created, then the call
    /// is accepted and both may join. If the provider does not answer in time or refuses,
    /// `PROVIDER_UNAVAILABLE` (retryable): the request is still pending, accept again.
    async fn accept_video_call(&self, ctx: &Context<'_>, id: Uuid) -> Result<VideoCall, AppError> {
        let viewer = viewer(ctx)?;
        let video = ctx.data_unchecked::<Arc<Video>>();
        let call = rooms::accept(AppState::of(ctx), video, viewer, id).await?;
        Ok(call.into())
    }

    /// The caregiver declines a pending request.
    async fn decline_video_call(&self, ctx: &Context<'_>, id: Uuid) -> Result<VideoCall, AppError> {
        let settings = &ctx.data_unchecked::<Arc<Video>>().settings;
        let call = write_as_viewer(ctx, async |write, viewer| {
            VideoService::answer(write, viewer, id, false, None, settings).await
        })
        .await?;
        Ok(call.into())
    }

    /// The requester withdraws a pending request.
    async fn cancel_video_call(&self, ctx: &Context<'_>, id: Uuid) -> Result<VideoCall, AppError> {
        let call = write_as_viewer(ctx, async |write, viewer| {
            VideoService::cancel(write, viewer, id).await
        })
        .await?;
        Ok(call.into())
    }

    /// A token for one of the two participants of an accepted or active call, valid for the
    /// most the call may last plus a minute (and at most `VIDEO_TOKEN_TTL_SECONDS`).
    async fn video_call_token(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> Result<VideoCallToken, AppError> {
        let viewer = viewer(ctx)?;
        let state = AppState::of(ctx);
        let video = ctx.data_unchecked::<Arc<Video>>();
        let call = find_for::<video_call::Entity>(&state.db, viewer.id, id).await?;
        if !matches!(
            call.status,
            VideoCallStatus::Accepted | VideoCallStatus::Active
        ) {
            return Err(AppError::InvalidState(format!(
                "no token for a video call that is {}",
                call.status.as_str()
            )));
        }
        if video.provider.manages_rooms() && call.provider_room_sid.is_none() {
            return Err(AppError::InvalidState(
                "the video call has no room to join".to_owned(),
            ));
        }
        let call_length = chrono::Duration::seconds(i64::from(call.max_duration_s));
        let ttl = video.settings.token_ttl.min(call_length + TOKEN_MARGIN);
        let token = video.provider.access_token(&RoomAccess {
            identity: &viewer.id.to_string(),
            room: &call.room_name,
            now: state.clock.now(),
            ttl,
        })?;
        Ok(VideoCallToken {
            token,
            room_name: call.room_name.clone(),
            expires_in: ttl.num_seconds(),
            provider: video.provider.name().to_owned(),
        })
    }

    /// A participant says the call started, when no provider webhook reports it.
    async fn start_video_call(&self, ctx: &Context<'_>, id: Uuid) -> Result<VideoCall, AppError> {
        let call = write_as_viewer(ctx, async |write, viewer| {
            let call = find_for::<video_call::Entity>(write, viewer.id, id).await?;
            VideoService::start(write, &call).await
        })
        .await?;
        Ok(call.into())
    }

    /// A participant ends the call before its limit; the room is closed for both (by a job,
    /// retried while the provider is unavailable: the answer never waits for it).
    async fn complete_video_call(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> Result<VideoCall, AppError> {
        let call = write_as_viewer(ctx, async |write, viewer| {
            let call = find_for::<video_call::Entity>(write, viewer.id, id).await?;
            VideoService::complete(write, &call, false).await
        })
        .await?;
        Ok(call.into())
    }
}

/// The viewer's calls (or one of them) as a stream of state.
///
/// An event passes on the call it carries when the viewer takes part in it (and it is the
/// one asked for). After missed events, a resync yields the viewer's calls that are current
/// (pending, accepted or active) and those changed since the last call delivered (less a
/// margin for transactions that committed late), oldest change first: a caregiver whose
/// stream fell behind still receives a pending request, and an ended call its last status.
struct ViewerCalls {
    db: DatabaseConnection,
    viewer_id: Uuid,
    only: Option<Uuid>,
    since: ChangedSince,
}

impl StateSource for ViewerCalls {
    type Item = VideoCall;

    fn change(&mut self, event: &Event) -> Change<VideoCall> {
        match event {
            Event::VideoCallChanged(call)
                if call.is_party(self.viewer_id) && self.only.is_none_or(|id| id == call.id) =>
            {
                self.since.saw(call.updated_at);
                Change::Items(vec![VideoCall(call.clone())])
            }
            _ => Change::none(),
        }
    }

    fn current(&mut self) -> BoxFuture<'_, Result<Vec<VideoCall>, AppError>> {
        Box::pin(async move {
            let calls = VideoService::current_or_changed_since(
                &self.db,
                self.viewer_id,
                self.since.since(),
                self.only,
            )
            .await?;
            for call in &calls {
                self.since.saw(call.updated_at);
            }
            Ok(calls.into_iter().map(VideoCall::from).collect())
        })
    }
}

#[derive(Default)]
pub struct VideoSubscription;

#[Subscription]
impl VideoSubscription {
    /// Changes of one of the viewer's calls, or of all of them without `id` (how a caregiver
    /// hears of incoming requests).
    ///
    /// A subscriber that falls behind the bus re-reads the calls that are pending, accepted or
    /// active and those changed since the last call it was sent, so it may see a call twice
    /// but never misses a request or a call's latest status. If that re-read fails, the stream
    /// ends with the error (`SERVICE_UNAVAILABLE`, retryable, or `INTERNAL`): resubscribe,
    /// then query `videoCalls` for what changed meanwhile.
    async fn video_call_updated(
        &self,
        ctx: &Context<'_>,
        id: Option<Uuid>,
    ) -> Result<BoxStream<'static, Result<VideoCall, AppError>>, AppError> {
        resume_or(ctx, || async {
            let viewer = viewer(ctx)?;
            let state = AppState::of(ctx);
            let deliveries = state.bus.subscribe(Topic::User(viewer.id));
            if let Some(id) = id {
                // Boxed, so that the check's memory is freed once done rather than kept with the
                // subscription for its life (as `chat::subscription::member_session` explains).
                Box::pin(find_for::<video_call::Entity>(&state.db, viewer.id, id)).await?;
            }
            let source = ViewerCalls {
                db: state.db.clone(),
                viewer_id: viewer.id,
                only: id,
                since: ChangedSince::new(state.clock.now()),
            };
            Ok(live_state(source, deliveries, Start::Changes))
        })
        .await
    }
}
