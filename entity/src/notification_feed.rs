//! `notification_feeds`: per user, the last notification `seq` handed out and the unread count.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_feeds")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub last_seq: i64,
    /// Kept in step with the notifications in the same transactions, so the badge is one
    /// primary-key read however long the inbox grows.
    pub unread_count: i64,
}

impl ActiveModelBehavior for ActiveModel {}
