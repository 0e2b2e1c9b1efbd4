//! The `push` jobs: each notification to each of its user's devices, concurrently, each
//! device's outcome recorded as a delivery; transient failures retried with backoff, dead
//! tokens pruned, pushes held back during quiet hours.
//!
//! The jobs of one claim are settled together: what they need is read with one query per
//! table, their delivery rows are created in one transaction and their outcomes recorded in
//! another, so a push costs a share of a few statements rather than two commits of its own.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use entity::{
    delivery_settings, device,
    enums::{Channel, DeliveryStatus, NotificationType},
    job, notification, notification_delivery, notification_feed, user,
};
use futures_util::future::join_all;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, sea_query::OnConflict};
use uuid::Uuid;

use super::{
    Delivery, content,
    provider::SendFailure,
    record::{self, Outcome},
    settings::SettingsService,
};
use crate::{
    db::{Write, batch_shape::BatchShape},
    error::AppError,
    queue::JobQueue,
    state::AppState,
};

/// What one job of a batch will do, once everything it needs was read: push
/// `notification` to `devices`, or wait for the quiet hours to end. A job without one (its
/// notification or user is gone) has nothing to send.
struct Plan {
    notification: notification::Model,
    devices: Vec<device::Model>,
    previews: bool,
    badge: i64,
    /// A call request whose time is up: recorded as failed, not sent.
    expired: bool,
    /// The end of the user's quiet hours, when they are under way.
    wait: Option<DateTime<Utc>>,
}

impl Delivery {
    /// Runs claimed `push` jobs to their ends: sent, retried later, postponed, or failed.
    pub async fn push(&self, state: &AppState, jobs: &[job::Model]) -> Result<(), AppError> {
        let now = state.clock.now();
        let plans = self.plan(&state.db, jobs, now).await?;
        let deliveries = state
            .writer
            .run(async |write| {
                let rows = ensure_rows(write, &plans).await?;
                for (job, plan) in jobs.iter().zip(&plans) {
                    match plan {
                        None => JobQueue::finish(write, job.id).await?,
                        Some(Plan {
                            notification,
                            wait: Some(until),
                            ..
                        }) => {
                            let waiting = rows.get(&notification.id).map(Vec::as_slice);
                            mark_deferred(write, waiting.unwrap_or_default()).await?;
                            JobQueue::postpone(write, job.id, *until).await?;
                        }
                        Some(Plan { wait: None, .. }) => {}
                    }
                }
                Ok(rows)
            })
            .await?;
        let sends = jobs.iter().zip(&plans).filter_map(|(job, plan)| {
            let Some(Plan {
                notification,
                devices,
                previews,
                badge,
                expired,
                wait: None,
            }) = plan
            else {
                return None;
            };
            let rows = deliveries
                .get(&notification.id)
                .cloned()
                .unwrap_or_default();
            Some(async move {
                let outcomes = join_all(
                    rows.into_iter()
                        .filter(|row| {
                            matches!(
                                row.status,
                                DeliveryStatus::Pending | DeliveryStatus::Deferred
                            )
                        })
                        .map(|row| async move {
                            let device = devices
                                .iter()
                                .find(|device| Some(device.id) == row.device_id);
                            let push = content::push(notification, row.id, *previews, *badge);
                            let result = match (device, expired) {
                                (_, true) => Err(SendFailure::Rejected(
                                    "the call request expired before it could be sent".to_owned(),
                                )),
                                (None, false) => {
                                    Err(SendFailure::DeadToken("the device was removed".to_owned()))
                                }
                                (Some(device), false) => match self.providers.push(device.platform)
                                {
                                    Some(sender) => sender.send(device, &push, now).await,
                                    None => Err(SendFailure::Rejected(
                                        "this server no longer sends to this platform".to_owned(),
                                    )),
                                },
                            };
                            Outcome {
                                delivery: row,
                                result,
                            }
                        }),
                )
                .await;
                (job, outcomes)
            })
        });
        let settled = join_all(sends).await;
        record::finish_jobs(state, &self.backoff, settled).await
    }

    /// What each job will do, from one read per table for the whole batch.
    async fn plan(
        &self,
        conn: &impl ConnectionTrait,
        jobs: &[job::Model],
        now: DateTime<Utc>,
    ) -> Result<Vec<Option<Plan>>, AppError> {
        let shape = BatchShape::of(conn);
        let ids: BTreeSet<Uuid> = jobs.iter().filter_map(notification_id).collect();
        let notifications: HashMap<Uuid, notification::Model> = notification::Entity::find()
            .filter(shape.is_in(notification::Column::Id, ids))
            .all(conn)
            .await?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        let users: BTreeSet<Uuid> = notifications.values().map(|row| row.user_id).collect();
        let recipients: HashMap<Uuid, user::Model> = user::Entity::find()
            .filter(shape.is_in(user::Column::Id, users.iter().copied()))
            .all(conn)
            .await?
            .into_iter()
            .map(|row| (row.id, row))
            .collect();
        let settings: HashMap<Uuid, delivery_settings::Model> = delivery_settings::Entity::find()
            .filter(shape.is_in(delivery_settings::Column::UserId, users.iter().copied()))
            .all(conn)
            .await?
            .into_iter()
            .map(|row| (row.user_id, row))
            .collect();
        let mut devices: HashMap<Uuid, Vec<device::Model>> = HashMap::new();
        for device in device::Entity::find()
            .filter(shape.is_in(device::Column::UserId, users.iter().copied()))
            .all(conn)
            .await?
        {
            if self.providers.push(device.platform).is_some() {
                devices.entry(device.user_id).or_default().push(device);
            }
        }
        let badges: HashMap<Uuid, i64> = notification_feed::Entity::find()
            .filter(shape.is_in(notification_feed::Column::UserId, users.iter().copied()))
            .all(conn)
            .await?
            .into_iter()
            .map(|feed| (feed.user_id, feed.unread_count))
            .collect();
        Ok(jobs
            .iter()
            .map(|job| {
                let notification = notification_id(job).and_then(|id| notifications.get(&id))?;
                let recipient = recipients.get(&notification.user_id)?;
                let chosen = SettingsService::from_row(settings.get(&recipient.id));
                let urgent = notification.kind == NotificationType::VideoCallRequested;
                let quiet_until = chosen
                    .quiet_hours
                    .filter(|_| !urgent)
                    .and_then(|quiet| quiet.ends_after(now, recipient.time_zone()));
                Some(Plan {
                    wait: quiet_until,
                    notification: notification.clone(),
                    devices: devices.get(&recipient.id).cloned().unwrap_or_default(),
                    previews: chosen.message_previews,
                    badge: badges.get(&recipient.id).copied().unwrap_or(0),
                    expired: urgent
                        && content::expires_at(notification).is_some_and(|at| at <= now),
                })
            })
            .collect())
    }
}

/// The notification a `push` or `email` job names.
pub(super) fn notification_id(job: &job::Model) -> Option<Uuid> {
    job.payload
        .get("notificationId")
        .and_then(|id| id.as_str())
        .and_then(|id| Uuid::parse_str(id).ok())
}

/// The notification a `push` or `email` job names, if it still exists.
pub(super) async fn notification_of(
    conn: &impl ConnectionTrait,
    job: &job::Model,
) -> Result<Option<notification::Model>, AppError> {
    let Some(id) = notification_id(job) else {
        return Ok(None);
    };
    Ok(notification::Entity::find_by_id(id).one(conn).await?)
}

/// Each notification's push deliveries, one per device, created on the first run so every
/// retry (and a resend after a crash) reuses the same delivery id as its idempotency key;
/// returned by notification.
async fn ensure_rows(
    write: &Write,
    plans: &[Option<Plan>],
) -> Result<HashMap<Uuid, Vec<notification_delivery::Model>>, AppError> {
    let now = write.now();
    let mut rows = Vec::new();
    let mut notifications = BTreeSet::new();
    for Plan {
        notification,
        devices,
        ..
    } in plans.iter().flatten()
    {
        notifications.insert(notification.id);
        rows.extend(
            devices
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
                }),
        );
    }
    if !rows.is_empty() {
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
    let mut by_notification: HashMap<Uuid, Vec<notification_delivery::Model>> = HashMap::new();
    if notifications.is_empty() {
        return Ok(by_notification);
    }
    for row in notification_delivery::Entity::find()
        .filter(
            BatchShape::of(write)
                .is_in(notification_delivery::Column::NotificationId, notifications),
        )
        .filter(notification_delivery::Column::Channel.eq(Channel::Push))
        .all(write)
        .await?
    {
        by_notification
            .entry(row.notification_id)
            .or_default()
            .push(row);
    }
    Ok(by_notification)
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
    if waiting.is_empty() {
        return Ok(());
    }
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
