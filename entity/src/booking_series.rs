//! `booking_series`: the rule a recurring booking was created from; its occurrences are bookings.

use sea_orm::entity::prelude::*;

use crate::enums::Frequency;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "booking_series")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub care_recipient_id: Uuid,
    pub caregiver_id: Uuid,
    pub frequency: Frequency,
    /// Set when the series was created with a count of occurrences.
    pub count: Option<i32>,
    /// Set when the series was created with an end date.
    pub until: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
