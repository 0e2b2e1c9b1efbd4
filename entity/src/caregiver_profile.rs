//! `caregiver_profiles`: the public side of a caregiver, one row per caregiver user.

use sea_orm::entity::prelude::*;

use crate::enums::Availability;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "caregiver_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub bio: String,
    pub hourly_rate_cents: Option<i32>,
    pub availability: Availability,
    pub updated_at: DateTimeUtc,
}

impl ActiveModelBehavior for ActiveModel {}
