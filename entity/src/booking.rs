//! `bookings`: one appointment between a care recipient and a caregiver.

use sea_orm::entity::prelude::*;

use crate::enums::BookingStatus;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "bookings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub care_recipient_id: Uuid,
    pub caregiver_id: Uuid,
    pub starts_at: DateTimeUtc,
    pub ends_at: DateTimeUtc,
    pub notes: String,
    pub status: BookingStatus,
    /// The recurring series this booking is an occurrence of, if any.
    pub series_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl Model {
    /// Whether `user_id` takes part in this booking; everyone else must not learn it exists.
    pub fn is_party(&self, user_id: Uuid) -> bool {
        self.care_recipient_id == user_id || self.caregiver_id == user_id
    }
}

impl ActiveModelBehavior for ActiveModel {}
