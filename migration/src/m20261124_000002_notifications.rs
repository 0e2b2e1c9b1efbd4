//! The in-app inbox, its per-user sequence, preferences, and booking reminders.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("notification_feeds")
                    .col(uuid("user_id").primary_key())
                    .col(big_integer("last_seq"))
                    .col(big_integer("unread_count").default(0))
                    .foreign_key(
                        ForeignKey::create()
                            .from("notification_feeds", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("notifications")
                    .col(uuid("id").primary_key())
                    .col(uuid("user_id"))
                    .col(big_integer("seq"))
                    .col(string_len("type", 40))
                    .col(text("title"))
                    .col(text("body"))
                    .col(json("data"))
                    .col(boolean("is_read"))
                    .col(timestamp_with_time_zone_null("read_at"))
                    .col(string_len_null("dedupe_key", 200))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("notifications", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Listing (newest first), resuming after a cursor, and the seq's uniqueness.
        manager
            .create_index(
                Index::create()
                    .name("ux_notifications_user_seq")
                    .table("notifications")
                    .col("user_id")
                    .col("seq")
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Counting and listing unread, and mark-all-read.
        manager
            .create_index(
                Index::create()
                    .name("idx_notifications_user_unread")
                    .table("notifications")
                    .col("user_id")
                    .col("is_read")
                    .col("seq")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_notifications_user_dedupe")
                    .table("notifications")
                    .col("user_id")
                    .col("dedupe_key")
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("notification_preferences")
                    .col(uuid("user_id"))
                    .col(string_len("type", 40))
                    .col(string_len("channel", 16))
                    .col(boolean("enabled"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("user_id").col("type").col("channel"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("notification_preferences", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("booking_reminders")
                    .col(uuid("id").primary_key())
                    .col(uuid("booking_id"))
                    .col(integer("offset_minutes"))
                    .col(timestamp_with_time_zone("due_at"))
                    .col(timestamp_with_time_zone_null("settled_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("booking_reminders", "booking_id")
                            .to("bookings", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_booking_reminders_booking_offset")
                    .table("booking_reminders")
                    .col("booking_id")
                    .col("offset_minutes")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_booking_reminders_due")
                    .table("booking_reminders")
                    .col("settled_at")
                    .col("due_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "booking_reminders",
            "notification_preferences",
            "notifications",
            "notification_feeds",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
