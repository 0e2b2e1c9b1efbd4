//! Chat sessions, their members' receipt horizons, and messages.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("chat_sessions")
                    .col(uuid("id").primary_key())
                    .col(uuid_uniq("booking_id"))
                    .col(uuid("care_recipient_id"))
                    .col(uuid("caregiver_id"))
                    .col(timestamp_with_time_zone("enabled_at"))
                    .col(big_integer("last_seq").default(0))
                    .col(timestamp_with_time_zone("last_activity_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("chat_sessions", "booking_id")
                            .to("bookings", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("chat_members")
                    .col(uuid("session_id"))
                    .col(uuid("user_id"))
                    .col(big_integer("last_delivered_seq").default(0))
                    .col(big_integer("last_read_seq").default(0))
                    .primary_key(Index::create().col("session_id").col("user_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("chat_members", "session_id")
                            .to("chat_sessions", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("chat_members", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A user's sessions, for the session list and the total unread count.
        manager
            .create_index(
                Index::create()
                    .name("idx_chat_members_user")
                    .table("chat_members")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("messages")
                    .col(uuid("id").primary_key())
                    .col(uuid("chat_session_id"))
                    .col(big_integer("seq"))
                    .col(uuid("sender_id"))
                    .col(text("body"))
                    .col(string_len("client_message_id", 100))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("edited_at"))
                    .col(timestamp_with_time_zone_null("deleted_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("messages", "chat_session_id")
                            .to("chat_sessions", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("messages", "sender_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_messages_session_seq")
                    .table("messages")
                    .col("chat_session_id")
                    .col("seq")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_messages_sender_client_id")
                    .table("messages")
                    .col("sender_id")
                    .col("client_message_id")
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["messages", "chat_members", "chat_sessions"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
