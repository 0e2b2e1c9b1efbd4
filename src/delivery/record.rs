//! Recording what the providers answered, in one transaction with the job's fate: each
//! delivery sent, failed or pending again, dead devices removed, and the job finished,
//! retried with backoff, or failed once its attempts are spent.

use std::time::Duration;

use entity::{
    device,
    enums::{Channel, DeliveryStatus},
    job, notification_delivery,
};
use sea_orm::{
    ActiveModelTrait, EntityTrait, IntoActiveModel, QueryFilter, Set,
    sea_query::{Expr, ExprTrait},
};

use super::provider::SendFailure;
use crate::{
    db::{Write, batch_shape::BatchShape},
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
    finish_jobs(state, backoff, vec![(job, outcomes)]).await
}

/// [`finish_job`] for the jobs of one batch, in one transaction: the deliveries that went
/// through, the devices they went to and the jobs that finished are each one statement;
/// only failures are recorded one by one.
pub async fn finish_jobs(
    state: &AppState,
    backoff: &Backoff,
    settled: Vec<(&job::Model, Vec<Outcome>)>,
) -> Result<(), AppError> {
    if settled.is_empty() {
        return Ok(());
    }
    state
        .writer
        .run(async |write| {
            let now = write.now();
            let mut sent = Vec::new();
            let mut used_devices = Vec::new();
            let mut finished = Vec::new();
            for (job, outcomes) in &settled {
                let exhausted = backoff.exhausted(job.attempts);
                let mut transient: Option<(&str, Option<Duration>)> = None;
                for outcome in outcomes {
                    count(outcome, exhausted);
                    match &outcome.result {
                        Ok(()) => {
                            sent.push(outcome.delivery.id);
                            used_devices.extend(outcome.delivery.device_id);
                        }
                        Err(failure) => {
                            if let SendFailure::Transient {
                                reason,
                                retry_after,
                            } = failure
                            {
                                let longest =
                                    transient.and_then(|(_, after)| after).max(*retry_after);
                                transient =
                                    Some((transient.map_or(reason, |(first, _)| first), longest));
                            }
                            record_failure(
                                write,
                                &outcome.delivery,
                                failure,
                                exhausted,
                                job.attempts,
                            )
                            .await?;
                        }
                    }
                }
                match transient {
                    Some((reason, retry_after)) => {
                        settle(write, backoff, job, Some(reason), retry_after).await?;
                    }
                    None => finished.push(job.id),
                }
            }
            if !sent.is_empty() {
                notification_delivery::Entity::update_many()
                    .col_expr(
                        notification_delivery::Column::Status,
                        Expr::value(DeliveryStatus::Sent),
                    )
                    .col_expr(
                        notification_delivery::Column::Attempts,
                        Expr::col(notification_delivery::Column::Attempts).add(1),
                    )
                    .col_expr(
                        notification_delivery::Column::DeliveredAt,
                        Expr::value(Some(now)),
                    )
                    .col_expr(
                        notification_delivery::Column::LastError,
                        Expr::value(Option::<String>::None),
                    )
                    .col_expr(notification_delivery::Column::UpdatedAt, Expr::value(now))
                    .filter(BatchShape::of(write).is_in(notification_delivery::Column::Id, sent))
                    .exec(write)
                    .await?;
            }
            if !used_devices.is_empty() {
                device::Entity::update_many()
                    .col_expr(device::Column::LastUsedAt, Expr::value(Some(now)))
                    .filter(BatchShape::of(write).is_in(device::Column::Id, used_devices))
                    .exec(write)
                    .await?;
            }
            JobQueue::finish_all(write, finished).await
        })
        .await
}

/// Counts one provider answer in `/metrics`.
fn count(outcome: &Outcome, exhausted: bool) {
    let channel = match outcome.delivery.channel {
        Channel::Email => "email",
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
}

/// Records one failed delivery: pending again while worth retrying, failed for good
/// otherwise; a dead token's device is removed.
async fn record_failure(
    write: &Write,
    delivery: &notification_delivery::Model,
    failure: &SendFailure,
    exhausted: bool,
    attempt: i32,
) -> Result<(), AppError> {
    let mut row = delivery.clone().into_active_model();
    row.attempts = Set(delivery.attempts + 1);
    row.updated_at = Set(write.now());
    let (status, error) = match failure {
        SendFailure::Transient { reason, .. } if exhausted => (
            DeliveryStatus::Failed,
            format!("gave up after {attempt} attempts: {reason}"),
        ),
        SendFailure::Transient { reason, .. } => (DeliveryStatus::Pending, reason.clone()),
        SendFailure::Rejected(reason) => (DeliveryStatus::Failed, reason.clone()),
        SendFailure::DeadToken(reason) => {
            if let Some(device_id) = delivery.device_id {
                device::Entity::delete_by_id(device_id).exec(write).await?;
            }
            (
                DeliveryStatus::Failed,
                format!("the device is no longer registered: {reason}"),
            )
        }
    };
    row.status = Set(status);
    row.last_error = Set(Some(truncate(&error)));
    row.update(write).await?;
    Ok(())
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
    retry_after: Option<Duration>,
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
