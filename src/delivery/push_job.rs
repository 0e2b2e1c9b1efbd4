//! The `push` job: one notification to each of its user's devices, concurrently, each
//! device's outcome recorded as a delivery; transient failures retried together with
//! backoff, dead tokens pruned, pushes held back during quiet hours.

use std::collections::HashMap;

use entity::{
    device,
    enums::{Channel, DeliveryStatus, NotificationType},
    job, notification, notification_delivery, notification_feed, user,
};
use futures_util::future::join_all;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::OnConflict};
use uuid::Uuid;

use super::{
    Delivery, content,
    devices::DeviceService,
    provider::SendFailure,
    record::{self, Outcome},
    settings::SettingsService,
};
use crate::{db::Write, error::AppError, queue::JobQueue, state::AppState};

impl Delivery {
    /// Runs one claimed `push` job to its end: sent, retried later, postponed, or failed.
    pub async fn push(&self, state: &AppState, job: &job::Model) -> Result<(), AppError> {
        let now = state.clock.now();
        let Some(notification) = notification_of(&state.db, job).await? else {
            return state
                .writer
                .run(async |write| JobQueue::finish(write, job.id).await)
                .await;
        };
        let Some(recipient) = user::Entity::find_by_id(notification.user_id)
            .one(&state.db)
            .await?
        else {
            return state
                .writer
                .run(async |write| JobQueue::finish(write, job.id).await)
                .await;
        };
        let settings = SettingsService::get(&state.db, recipient.id).await?;
        let urgent = notification.kind == NotificationType::VideoCallRequested;
        let devices: Vec<device::Model> = DeviceService::list(&state.db, recipient.id)
            .await?
            .into_iter()
            .filter(|device| self.providers.push(device.platform).is_some())
            .collect();
        let quiet_until = (!urgent)
            .then(|| {
                settings
                    .quiet_hours
                    .and_then(|quiet| quiet.ends_after(now, recipient.time_zone()))
            })
            .flatten();
        let deliveries = state
            .writer
            .run(async |write| {
                let rows = ensure_rows(write, &notification, &devices).await?;
                if let Some(until) = quiet_until {
                    mark_deferred(write, &rows).await?;
                    JobQueue::postpone(write, job.id, until).await?;
                }
                Ok(rows)
            })
            .await?;
        if quiet_until.is_some() {
            return Ok(());
        }
        let expired = content::expires_at(&notification).is_some_and(|at| at <= now) && urgent;
        let badge = notification_feed::Entity::find_by_id(recipient.id)
            .one(&state.db)
            .await?
            .map_or(0, |feed| feed.unread_count);
        let by_id: HashMap<Uuid, &device::Model> =
            devices.iter().map(|device| (device.id, device)).collect();
        let sends = deliveries
            .iter()
            .filter(|delivery| {
                matches!(
                    delivery.status,
                    DeliveryStatus::Pending | DeliveryStatus::Deferred
                )
            })
            .map(|delivery| {
                let device = delivery.device_id.and_then(|id| by_id.get(&id).copied());
                let push =
                    content::push(&notification, delivery.id, settings.message_previews, badge);
                async move {
                    let result = match (device, expired) {
                        (_, true) => Err(SendFailure::Rejected(
                            "the call request expired before it could be sent".to_owned(),
                        )),
                        (None, false) => {
                            Err(SendFailure::DeadToken("the device was removed".to_owned()))
                        }
                        (Some(device), false) => match self.providers.push(device.platform) {
                            Some(sender) => sender.send(device, &push, now).await,
                            None => Err(SendFailure::Rejected(
                                "this server no longer sends to this platform".to_owned(),
                            )),
                        },
                    };
                    Outcome {
                        delivery: delivery.clone(),
                        result,
                    }
                }
            });
        let outcomes = join_all(sends).await;
        record::finish_job(state, &self.backoff, job, outcomes).await
    }
}

/// The notification a `push` or `email` job names, if it still exists.
pub(super) async fn notification_of(
    conn: &impl ConnectionTrait,
    job: &job::Model,
) -> Result<Option<notification::Model>, AppError> {
    let Some(id) = job
        .payload
        .get("notificationId")
        .and_then(|id| id.as_str())
        .and_then(|id| Uuid::parse_str(id).ok())
    else {
        return Ok(None);
    };
    Ok(notification::Entity::find_by_id(id).one(conn).await?)
}

/// The notification's push deliveries, one per device, created on the first run so every
/// retry (and a resend after a crash) reuses the same delivery id as its idempotency key.
async fn ensure_rows(
    write: &Write,
    notification: &notification::Model,
    devices: &[device::Model],
) -> Result<Vec<notification_delivery::Model>, AppError> {
    let now = write.now();
    let rows = devices
        .iter()
        .map(|device| notification_delivery::ActiveModel {
            id: Set(Uuid::now_v7()),
            notification_id: Set(notification.id),
            user_id: Set(notification.user_id),
            channel: Set(Channel::Push),
            device_id: Set(Some(device.id)),
            platform: Set(Some(device.platform)),
            status: Set(DeliveryStatus::Pending),
            attempts: Set(0),
            last_error: Set(None),
            delivered_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        });
    if !devices.is_empty() {
        notification_delivery::Entity::insert_many(rows)
            .on_conflict(
                OnConflict::columns([
                    notification_delivery::Column::NotificationId,
                    notification_delivery::Column::Channel,
                    notification_delivery::Column::DeviceId,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(write)
            .await?;
    }
    Ok(notification_delivery::Entity::find()
        .filter(notification_delivery::Column::NotificationId.eq(notification.id))
        .filter(notification_delivery::Column::Channel.eq(Channel::Push))
        .all(write)
        .await?)
}

/// Shows the recipient that these deliveries wait for their quiet hours to end.
async fn mark_deferred(
    write: &Write,
    rows: &[notification_delivery::Model],
) -> Result<(), AppError> {
    let waiting: Vec<Uuid> = rows
        .iter()
        .filter(|row| row.status == DeliveryStatus::Pending)
        .map(|row| row.id)
        .collect();
    notification_delivery::Entity::update_many()
        .col_expr(
            notification_delivery::Column::Status,
            sea_orm::sea_query::Expr::value(DeliveryStatus::Deferred),
        )
        .col_expr(
            notification_delivery::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(write.now()),
        )
        .filter(notification_delivery::Column::Id.is_in(waiting))
        .exec(write)
        .await?;
    Ok(())
}
