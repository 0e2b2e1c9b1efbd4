//! `chat_sessions`: the private conversation of a booking's two parties.

use sea_orm::entity::prelude::*;

#[sea_orm::model]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chat_sessions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub booking_id: Uuid,
    pub care_recipient_id: Uuid,
    pub caregiver_id: Uuid,
    pub enabled_at: DateTimeUtc,
    /// The seq of the newest message; assigned under this row's lock, so commit order is seq order.
    pub last_seq: i64,
    /// When the last message was sent (or the chat was enabled): the order of the session list.
    pub last_activity_at: DateTimeUtc,
}

impl Model {
    /// Whether `user_id` is one of the two members; nobody else may learn the session exists.
    pub fn is_member(&self, user_id: Uuid) -> bool {
        self.care_recipient_id == user_id || self.caregiver_id == user_id
    }

    /// The member who is not `user_id`.
    pub fn other_member(&self, user_id: Uuid) -> Uuid {
        if self.care_recipient_id == user_id {
            self.caregiver_id
        } else {
            self.care_recipient_id
        }
    }
}

impl ActiveModelBehavior for ActiveModel {}
