//! Video call requests, and a kind for chat messages so a call's outcome can be a system line.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("video_call_requests")
                    .col(uuid("id").primary_key())
                    .col(uuid_null("booking_id"))
                    .col(uuid("requester_id"))
                    .col(uuid("caregiver_id"))
                    .col(string_len("status", 16))
                    .col(string_len("room_name", 64))
                    .col(string_len("provider", 16))
                    .col(string_len_null("provider_room_sid", 64))
                    .col(integer("max_duration_s"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("call_started_at"))
                    .col(timestamp_with_time_zone_null("call_ended_at"))
                    .col(timestamp_with_time_zone_null("room_closed_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("video_call_requests", "booking_id")
                            .to("bookings", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("video_call_requests", "requester_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("video_call_requests", "caregiver_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_video_calls_requester", "requester_id"),
            ("idx_video_calls_caregiver", "caregiver_id"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("video_call_requests")
                        .col(column)
                        .col("created_at")
                        .to_owned(),
                )
                .await?;
        }
        // The scheduler's scans: pending requests to expire, active calls to end.
        manager
            .create_index(
                Index::create()
                    .name("idx_video_calls_status")
                    .table("video_call_requests")
                    .col("status")
                    .col("expires_at")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("messages")
                    .add_column(string_len("kind", 16).default("text"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("messages")
                    .drop_column("kind")
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table("video_call_requests").to_owned())
            .await
    }
}
