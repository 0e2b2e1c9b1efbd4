//! The GraphQL face of the inbox: lists, counts, read state, preferences, live streams.

use std::sync::Arc;

use async_graphql::{
    Context, InputObject, Json, Object, SimpleObject, Subscription,
    connection::Connection,
    futures_util::{StreamExt, future::BoxFuture, stream::BoxStream},
};
use chrono::{DateTime, Utc};
use entity::{
    enums::{Channel, DeliveryStatus, DevicePlatform, NotificationType},
    notification, notification_delivery,
};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{
    preferences::{Preference, PreferenceService},
    service::NotificationService,
};
use crate::{
    bus::{
        Event, Topic,
        counter::{Count, CountSource, live_count},
        feed::{SequencedSource, resumable},
        parking::resume_or,
    },
    error::AppError,
    paging::{CursorKey, PageRequest, SeqCursor, page_cost},
    state::{AppState, write_as_viewer},
    viewer::viewer,
};

/// One entry of the viewer's inbox.
pub struct Notification(Arc<notification::Model>);

#[Object]
impl Notification {
    async fn id(&self) -> Uuid {
        self.0.id
    }

    #[graphql(name = "type")]
    async fn kind(&self) -> NotificationType {
        self.0.kind
    }

    async fn title(&self) -> &str {
        &self.0.title
    }

    async fn body(&self) -> &str {
        &self.0.body
    }

    /// The ids a client needs to navigate, e.g. `{"bookingId": "…"}`.
    async fn data(&self) -> Json<&serde_json::Value> {
        Json(&self.0.data)
    }

    async fn is_read(&self) -> bool {
        self.0.is_read
    }

    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    /// This notification's position: pass it as `after` to `notificationAdded` to resume
    /// after it, or to `notifications` to page past it.
    async fn cursor(&self) -> String {
        SeqCursor {
            scope: self.0.user_id,
            seq: self.0.seq,
        }
        .encode()
    }

    /// How it went out beyond the app: one entry per device it was pushed to, and one for
    /// email; empty when neither channel applied. Answers "why didn't I get a push".
    async fn deliveries(&self, ctx: &Context<'_>) -> Result<Vec<NotificationDelivery>, AppError> {
        let viewer = viewer(ctx)?;
        let rows =
            NotificationService::deliveries(&AppState::of(ctx).db, viewer.id, self.0.id).await?;
        Ok(rows.into_iter().map(NotificationDelivery).collect())
    }
}

/// One way a notification went out: to a device by push, or by email.
pub struct NotificationDelivery(notification_delivery::Model);

#[Object]
impl NotificationDelivery {
    async fn channel(&self) -> Channel {
        self.0.channel
    }

    /// Push only: the platform of the device.
    async fn platform(&self) -> Option<DevicePlatform> {
        self.0.platform
    }

    /// Push only: the device, while it is still registered.
    async fn device_id(&self) -> Option<Uuid> {
        self.0.device_id
    }

    async fn status(&self) -> DeliveryStatus {
        self.0.status
    }

    /// Attempts so far.
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }

    /// What the provider said the last time it failed.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }

    /// When the provider accepted it.
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.0.delivered_at
    }

    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
}

/// The effective setting for one type and channel.
#[derive(SimpleObject)]
pub struct NotificationPreference {
    #[graphql(name = "type")]
    kind: NotificationType,
    channel: Channel,
    enabled: bool,
    /// True when the user never changed it (or changed it back).
    is_default: bool,
    /// Cannot be switched off.
    locked: bool,
}

impl From<Preference> for NotificationPreference {
    fn from(preference: Preference) -> Self {
        Self {
            kind: preference.kind,
            channel: preference.channel,
            enabled: preference.enabled,
            is_default: preference.is_default,
            locked: preference.locked,
        }
    }
}

#[derive(InputObject)]
pub struct NotificationPreferenceInput {
    #[graphql(name = "type")]
    kind: NotificationType,
    channel: Channel,
    enabled: bool,
}

#[derive(InputObject)]
pub struct UpdateNotificationPreferencesInput {
    /// Only the settings to change; all are applied or none.
    preferences: Vec<NotificationPreferenceInput>,
}

#[derive(Default)]
pub struct NotificationQuery;

#[Object]
impl NotificationQuery {
    /// The viewer's notifications, newest first.
    #[graphql(complexity = "page_cost(first, child_complexity)")]
    async fn notifications(
        &self,
        ctx: &Context<'_>,
        unread_only: Option<bool>,
        types: Option<Vec<NotificationType>>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Notification>, AppError> {
        let viewer = viewer(ctx)?;
        let page = PageRequest::in_scope(first, after, viewer.id)?;
        let unread_only = unread_only.unwrap_or(false);
        let rows =
            NotificationService::list(&AppState::of(ctx).db, viewer.id, unread_only, types, &page)
                .await?;
        Ok(page.connection(
            rows,
            |row| SeqCursor {
                scope: row.user_id,
                seq: row.seq,
            },
            |row| Notification(Arc::new(row)),
        ))
    }

    /// How many of the viewer's notifications are unread (the badge).
    async fn unread_notification_count(&self, ctx: &Context<'_>) -> Result<i64, AppError> {
        NotificationService::unread_count(&AppState::of(ctx).db, viewer(ctx)?.id).await
    }

    /// Every notification type × channel, with its effective value, defaults included.
    #[graphql(complexity = "PreferenceService::count() * child_complexity")]
    async fn notification_preferences(
        &self,
        ctx: &Context<'_>,
    ) -> Result<Vec<NotificationPreference>, AppError> {
        let all = PreferenceService::all(&AppState::of(ctx).db, viewer(ctx)?.id).await?;
        Ok(all.into_iter().map(NotificationPreference::from).collect())
    }
}

#[derive(Default)]
pub struct NotificationMutation;

#[Object]
impl NotificationMutation {
    async fn mark_notification_read(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> Result<Notification, AppError> {
        set_read(ctx, id, true).await
    }

    async fn mark_notification_unread(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> Result<Notification, AppError> {
        set_read(ctx, id, false).await
    }

    /// Marks every notification read; returns how many were unread.
    async fn mark_all_notifications_read(&self, ctx: &Context<'_>) -> Result<u64, AppError> {
        write_as_viewer(ctx, async |write, viewer| {
            NotificationService::mark_all_read(write, viewer.id).await
        })
        .await
    }

    /// Deletes a notification; returns its id.
    async fn delete_notification(&self, ctx: &Context<'_>, id: Uuid) -> Result<Uuid, AppError> {
        let viewer = viewer(ctx)?;
        let state = AppState::of(ctx);
        state
            .writer
            .run(async |write| NotificationService::delete(write, viewer.id, id).await)
            .await?;
        Ok(id)
    }

    /// Switches types on or off per channel; returns every effective preference.
    async fn update_notification_preferences(
        &self,
        ctx: &Context<'_>,
        input: UpdateNotificationPreferencesInput,
    ) -> Result<Vec<NotificationPreference>, AppError> {
        let changes: Vec<_> = input
            .preferences
            .iter()
            .map(|preference| (preference.kind, preference.channel, preference.enabled))
            .collect();
        let all = write_as_viewer(ctx, async |write, viewer| {
            PreferenceService::update(write, viewer.id, &changes).await?;
            PreferenceService::all(write, viewer.id).await
        })
        .await?;
        Ok(all.into_iter().map(NotificationPreference::from).collect())
    }
}

async fn set_read(ctx: &Context<'_>, id: Uuid, read: bool) -> Result<Notification, AppError> {
    let updated = write_as_viewer(ctx, async |write, viewer| {
        NotificationService::set_read(write, viewer.id, id, read).await
    })
    .await?;
    Ok(Notification(Arc::new(updated)))
}

/// One user's inbox as a sequenced stream.
struct Inbox {
    db: DatabaseConnection,
    user_id: Uuid,
}

impl SequencedSource for Inbox {
    type Item = Arc<notification::Model>;

    fn seq(item: &Self::Item) -> i64 {
        item.seq
    }

    fn item_in(&self, event: &Event) -> Option<Self::Item> {
        match event {
            Event::NotificationAdded { notification, .. }
                if notification.user_id == self.user_id =>
            {
                Some(notification.clone())
            }
            _ => None,
        }
    }

    fn stored_after(
        &self,
        after: i64,
        limit: u64,
    ) -> BoxFuture<'_, Result<Vec<Self::Item>, AppError>> {
        Box::pin(async move {
            let stored =
                NotificationService::stored_after(&self.db, self.user_id, after, limit).await?;
            Ok(stored.into_iter().map(Arc::new).collect())
        })
    }

    fn head(&self) -> BoxFuture<'_, Result<i64, AppError>> {
        Box::pin(NotificationService::head(&self.db, self.user_id))
    }
}

impl CountSource for Inbox {
    fn concerns(&self, event: &Event) -> bool {
        match event {
            Event::NotificationAdded { notification, .. } => notification.user_id == self.user_id,
            Event::NotificationsChanged { user_id } => *user_id == self.user_id,
            _ => false,
        }
    }

    /// A new notification states the count, at its seq; only reading, unreading and deleting
    /// need a read.
    fn stated(&self, event: &Event) -> Option<Count> {
        match event {
            Event::NotificationAdded {
                notification,
                unread_count,
            } if notification.user_id == self.user_id => Some(Count {
                value: *unread_count,
                position: notification.seq,
            }),
            _ => None,
        }
    }

    fn current(&self) -> BoxFuture<'_, Result<Count, AppError>> {
        Box::pin(NotificationService::unread_at_head(&self.db, self.user_id))
    }
}

#[derive(Default)]
pub struct NotificationSubscription;

#[Subscription]
impl NotificationSubscription {
    /// The viewer's new notifications. With `after` (a notification's `cursor`), first
    /// everything stored after it, then live: no gap, no duplicate, in order.
    async fn notification_added(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> Result<BoxStream<'static, Result<Notification, AppError>>, AppError> {
        resume_or(ctx, || async {
            let user_id = viewer(ctx)?.id;
            let after = SeqCursor::seq_in(after, "after", user_id)?;
            let state = AppState::of(ctx);
            let deliveries = state.bus.subscribe(Topic::User(user_id));
            let inbox = Inbox {
                db: state.db.clone(),
                user_id,
            };
            Ok(resumable(inbox, deliveries, after).map(|item| item.map(Notification)))
        })
        .await
    }

    /// The viewer's unread count now, then every time it changes.
    ///
    /// A subscriber that falls behind the bus receives the current count. If that re-read
    /// fails, the stream ends with the error (`SERVICE_UNAVAILABLE`, retryable, or
    /// `INTERNAL`): resubscribe.
    async fn unread_notification_count(
        &self,
        ctx: &Context<'_>,
    ) -> Result<BoxStream<'static, Result<i64, AppError>>, AppError> {
        resume_or(ctx, || async {
            let user_id = viewer(ctx)?.id;
            let state = AppState::of(ctx);
            let deliveries = state.bus.subscribe(Topic::User(user_id));
            let inbox = Inbox {
                db: state.db.clone(),
                user_id,
            };
            Ok(live_count(inbox, deliveries))
        })
        .await
    }
}
