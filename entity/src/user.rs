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

impl ActiveModelBehavior for ActiveModel {}
