//! `jobs`: the durable queue of background work (deliveries, digests); a job is claimed,
//! done and deleted, retried later, or kept as failed.

use sea_orm::entity::prelude::*;

use crate::enums::JobStatus;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "jobs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Which handler runs it.
    pub kind: String,
    pub payload: Json,
    pub status: JobStatus,
    /// Not claimed before this instant.
    pub run_at: DateTimeUtc,
    /// Claims so far, the current one included.
    pub attempts: i32,
    /// While running: the claim lapses then, and another worker may take the job over.
    pub lease_until: Option<DateTimeUtc>,
    /// At most one unfinished job per key.
    pub dedupe_key: Option<String>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
