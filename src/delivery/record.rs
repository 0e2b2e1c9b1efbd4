//! Recording what the providers answered, in one transaction with the job's fate: each
//! delivery sent, failed or pending again, dead devices removed, and the job finished,
//! retried with backoff, or failed once its attempts are spent.

use entity::{device, enums::DeliveryStatus, job, notification_delivery};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, Set};

use super::provider::SendFailure;
use crate::{
    db::Write,
    error::AppError,
    queue::{Backoff, JobQueue, later, truncate},
    state::AppState,
    telemetry,
};

/// One delivery and what its provider answered.
pub struct Outcome {
    pub delivery: notification_delivery::Model,
    pub result: Result<(), SendFailure>,
}

/// Records `outcomes` and settles `job`: finished when nothing is left to retry, retried
/// with backoff while a transient failure remains and attempts are left, failed after.
pub async fn finish_job(
    state: &AppState,
    backoff: &Backoff,
    job: &job::Model,
    outcomes: Vec<Outcome>,
) -> Result<(), AppError> {
    let attempt = job.attempts;
    let exhausted = backoff.exhausted(attempt);
    let transient: Vec<(&str, Option<std::time::Duration>)> = outcomes
        .iter()
        .filter_map(|outcome| match &outcome.result {
            Err(SendFailure::Transient {
                reason,
                retry_after,
            }) => Some((reason.as_str(), *retry_after)),
            _ => None,
        })
        .collect();
    let retry_after = transient.iter().filter_map(|(_, after)| *after).max();
    let reason = transient.first().map(|(reason, _)| (*reason).to_owned());
    state
        .writer
        .run(async |write| {
            let now = write.now();
            for outcome in &outcomes {
                let channel = match outcome.delivery.channel {
                    entity::enums::Channel::Email => "email",
                    _ => "push",
                };
                telemetry::delivery(
                    channel,
                    match &outcome.result {
                        Ok(()) => "sent",
                        Err(SendFailure::Transient { .. }) if !exhausted => "retry",
                        Err(SendFailure::DeadToken(_)) => "dead_token",
                        Err(_) => "failed",
                    },
                );
                let mut row = outcome.delivery.clone().into_active_model();
                row.attempts = Set(outcome.delivery.attempts + 1);
                row.updated_at = Set(now);
                match &outcome.result {
                    Ok(()) => {
                        row.status = Set(DeliveryStatus::Sent);
                        row.delivered_at = Set(Some(now));
                        row.last_error = Set(None);
                        if let Some(device_id) = outcome.delivery.device_id {
                            device::Entity::update_many()
                                .col_expr(
                                    device::Column::LastUsedAt,
                                    sea_orm::sea_query::Expr::value(Some(now)),
                                )
                                .filter(device::Column::Id.eq(device_id))
                                .exec(write)
                                .await?;
                        }
                    }
                    Err(SendFailure::Transient { reason, .. }) => {
                        if exhausted {
                            row.status = Set(DeliveryStatus::Failed);
                            row.last_error = Set(Some(truncate(&format!(
                                "gave up after {attempt} attempts: {reason}"
                            ))));
                        } else {
                            row.status = Set(DeliveryStatus::Pending);
                            row.last_error = Set(Some(truncate(reason)));
                        }
                    }
                    Err(SendFailure::Rejected(reason)) => {
                        row.status = Set(DeliveryStatus::Failed);
                        row.last_error = Set(Some(truncate(reason)));
                    }
                    Err(SendFailure::DeadToken(reason)) => {
                        row.status = Set(DeliveryStatus::Failed);
                        row.last_error = Set(Some(truncate(&format!(
                            "the device is no longer registered: {reason}"
                        ))));
                        if let Some(device_id) = outcome.delivery.device_id {
                            device::Entity::delete_by_id(device_id).exec(write).await?;
                        }
                    }
                }
                row.update(write).await?;
            }
            settle(write, backoff, job, reason.as_deref(), retry_after).await
        })
        .await
}

/// Settles a job that has no delivery rows (a digest) by its one failure: retried with
/// backoff while transient and attempts are left, failed otherwise.
pub async fn settle_failed(
    state: &AppState,
    backoff: &Backoff,
    job: &job::Model,
    failure: SendFailure,
) -> Result<(), AppError> {
    state
        .writer
        .run(async |write| match &failure {
            SendFailure::Transient {
                reason,
                retry_after,
            } => settle(write, backoff, job, Some(reason), *retry_after).await,
            SendFailure::Rejected(reason) | SendFailure::DeadToken(reason) => {
                JobQueue::fail(write, job.id, reason).await
            }
        })
        .await
}

/// Finishes the job, or retries it after `transient` (the reason of a failure worth
/// retrying) with backoff, or fails it when its attempts are spent.
async fn settle(
    write: &Write,
    backoff: &Backoff,
    job: &job::Model,
    transient: Option<&str>,
    retry_after: Option<std::time::Duration>,
) -> Result<(), AppError> {
    match transient {
        Some(reason) if !backoff.exhausted(job.attempts) => {
            let wait = backoff.wait(job.attempts, retry_after, Backoff::jitter());
            JobQueue::retry_at(write, job.id, later(write.now(), wait), reason).await
        }
        Some(reason) => JobQueue::fail(write, job.id, reason).await,
        None => JobQueue::finish(write, job.id).await,
    }
}
