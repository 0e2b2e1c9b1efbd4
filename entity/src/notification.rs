//! `notifications`: a user's in-app inbox, in the order of their per-user `seq`.

use sea_orm::entity::prelude::*;

use crate::enums::NotificationType;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    /// 1, 2, 3… per user, assigned under the user's feed row lock, so commit order is seq order.
    pub seq: i64,
    #[sea_orm(column_name = "type")]
    pub kind: NotificationType,
    pub title: String,
    pub body: String,
    /// The ids a client needs to navigate (booking id, …).
    pub data: Json,
    pub is_read: bool,
    pub read_at: Option<DateTimeUtc>,
    /// One event never notifies the same user twice: unique per user when set.
    pub dedupe_key: Option<String>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
