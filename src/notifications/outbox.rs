//! The deliveries a stored notification calls for, queued in the transaction that stored it:
//! a `push` job when its user wants the type by push and has a device, an `email` job when
//! they want it by email, and for messages a digest instead of one email each.

use std::collections::{BTreeSet, HashSet};

use entity::{
    device,
    enums::{Channel, NotificationType},
    notification,
};
use sea_orm::{EntityTrait, QueryFilter, QuerySelect};
use serde_json::json;
use uuid::Uuid;

use super::preferences::PreferenceService;
use crate::{
    db::{Write, batch_shape::BatchShape},
    error::AppError,
    queue::{JobQueue, NewJob, kinds, later},
};

/// Queues the push and email deliveries of `stored`, by its users' preferences, in at most
/// three queries and one insert however many there are.
pub async fn enqueue_deliveries(
    write: &Write,
    stored: &[&notification::Model],
) -> Result<(), AppError> {
    let outbound = write.outbound();
    if stored.is_empty() || !(outbound.push || outbound.email) {
        return Ok(());
    }
    let now = write.now();
    let wanted: Vec<(Uuid, NotificationType)> =
        stored.iter().map(|row| (row.user_id, row.kind)).collect();
    let mut jobs = Vec::new();
    if outbound.push {
        let users: BTreeSet<Uuid> = wanted.iter().map(|(user, _)| *user).collect();
        let with_devices: HashSet<Uuid> = device::Entity::find()
            .select_only()
            .column(device::Column::UserId)
            .distinct()
            .filter(BatchShape::of(write).is_in(device::Column::UserId, users))
            .into_tuple::<Uuid>()
            .all(write)
            .await?
            .into_iter()
            .collect();
        if !with_devices.is_empty() {
            let enabled = PreferenceService::enabled_all(write, &wanted, Channel::Push).await?;
            jobs.extend(
                stored
                    .iter()
                    .zip(enabled)
                    .filter(|(row, enabled)| *enabled && with_devices.contains(&row.user_id))
                    .map(|(row, _)| NewJob {
                        kind: kinds::PUSH,
                        payload: json!({ "notificationId": row.id }),
                        run_at: now,
                        dedupe_key: None,
                    }),
            );
        }
    }
    if outbound.email {
        let enabled = PreferenceService::enabled_all(write, &wanted, Channel::Email).await?;
        jobs.extend(
            stored
                .iter()
                .zip(enabled)
                .filter(|(_, enabled)| *enabled)
                .map(|(row, _)| match row.kind {
                    // Messages go in a digest of the chats still unread a while later, one
                    // pending digest per user.
                    NotificationType::MessageReceived => NewJob {
                        kind: kinds::CHAT_DIGEST,
                        payload: json!({ "userId": row.user_id }),
                        run_at: later(now, outbound.digest_delay),
                        dedupe_key: Some(format!("chat_digest:{}", row.user_id)),
                    },
                    _ => NewJob {
                        kind: kinds::EMAIL,
                        payload: json!({ "notificationId": row.id }),
                        run_at: now,
                        dedupe_key: None,
                    },
                }),
        );
    }
    JobQueue::enqueue(write, jobs).await?;
    Ok(())
}
