//! `booking_reminders`: the reminders an accepted booking is owed, each sent at most once.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "booking_reminders")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub booking_id: Uuid,
    /// Minutes before the booking starts.
    pub offset_minutes: i32,
    pub due_at: DateTimeUtc,
    /// Set once the reminder was sent or found moot; a claimed row is never sent again.
    pub settled_at: Option<DateTimeUtc>,
}

impl ActiveModelBehavior for ActiveModel {}
