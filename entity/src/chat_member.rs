//! `chat_members`: each member's receipt horizons in a session.
//!
//! Receipts are horizons, as Twilio's read horizon and Matrix receipts: marking
//! read is one update, and unread is `last_seq - last_read_seq`.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "chat_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub session_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// Every message up to this seq reached one of the member's devices.
    pub last_delivered_seq: i64,
    /// Every message up to this seq was read by the member.
    pub last_read_seq: i64,
}

impl ActiveModelBehavior for ActiveModel {}
