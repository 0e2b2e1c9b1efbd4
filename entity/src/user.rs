//! `users`: everyone who signs in, whatever their role.

use sea_orm::entity::prelude::*;

use crate::enums::Role;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub email: String,
    pub display_name: String,
    pub role: Role,
    /// None for accounts provisioned from an external identity provider (Supabase Auth).
    pub password_hash: Option<String>,
    /// IANA name, e.g. `Europe/Lisbon`; notification text is written in it.
    pub timezone: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

impl Model {
    /// The user's timezone, for their notification text and their recurring bookings. Names are
    /// checked when stored; one that stops parsing (an IANA zone withdrawn) falls back to UTC
    /// rather than failing every message to them.
    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.timezone.parse().unwrap_or(chrono_tz::UTC)
    }
}

impl ActiveModelBehavior for ActiveModel {}
