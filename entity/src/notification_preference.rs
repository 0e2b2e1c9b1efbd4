//! `notification_preferences`: a user's choices that differ from the defaults.

use sea_orm::entity::prelude::*;

use crate::enums::{Channel, NotificationType};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_preferences")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false, column_name = "type")]
    pub kind: NotificationType,
    #[sea_orm(primary_key, auto_increment = false)]
    pub channel: Channel,
    pub enabled: bool,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
