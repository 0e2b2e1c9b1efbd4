//! `delivery_settings`: how a user's pushes read and when they may arrive; no row means the
//! defaults (no message text on the lock screen, no quiet hours).

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "delivery_settings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// Whether a message push shows what was written, not only who wrote.
    pub message_previews: bool,
    /// Minutes after midnight, in the user's time zone; both set or neither.
    pub quiet_hours_start: Option<i16>,
    pub quiet_hours_end: Option<i16>,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
