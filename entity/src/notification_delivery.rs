//! `notification_deliveries`: a notification's way to one device by push, or to the user's
//! address by email, with its outcome, so "why didn't I get it" has an answer.

use sea_orm::entity::prelude::*;

use crate::enums::{Channel, DeliveryStatus, DevicePlatform};

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notification_deliveries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub notification_id: Uuid,
    pub user_id: Uuid,
    pub channel: Channel,
    /// Push only: the device, which may have been removed since.
    pub device_id: Option<Uuid>,
    pub platform: Option<DevicePlatform>,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
