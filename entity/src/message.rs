//! `messages`: chat messages, numbered 1, 2, 3… within their session.

use sea_orm::entity::prelude::*;

use crate::enums::MessageKind;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub chat_session_id: Uuid,
    pub seq: i64,
    pub sender_id: Uuid,
    pub body: String,
    /// Chosen by the sender's client; a retried send with the same id returns this message.
    pub client_message_id: String,
    pub created_at: DateTimeUtc,
    pub edited_at: Option<DateTimeUtc>,
    pub deleted_at: Option<DateTimeUtc>,
    /// A person's message, or a system line such as a video call's outcome.
    pub kind: MessageKind,
}

impl ActiveModelBehavior for ActiveModel {}
