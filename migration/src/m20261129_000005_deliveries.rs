//! Push devices, the durable job queue, each notification's deliveries by push and email,
//! and the delivery settings (message previews, quiet hours) of each user.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("devices")
                    .col(uuid("id").primary_key())
                    .col(uuid("user_id"))
                    .col(string_len("platform", 16))
                    // The FCM registration token, the APNs device token (hex) or the Web Push
                    // endpoint: what a provider is asked to deliver to.
                    .col(string_len("token", 1024))
                    .col(string_len_null("apns_topic", 255))
                    .col(boolean_null("apns_sandbox"))
                    .col(string_len_null("web_push_p256dh", 100))
                    .col(string_len_null("web_push_auth", 32))
                    .col(string_len_null("label", 80))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("devices", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // A token belongs to one user at a time: registering it again moves it.
        manager
            .create_index(
                Index::create()
                    .name("ux_devices_platform_token")
                    .table("devices")
                    .col("platform")
                    .col("token")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_devices_user")
                    .table("devices")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("jobs")
                    .col(uuid("id").primary_key())
                    .col(string_len("kind", 32))
                    .col(json("payload"))
                    .col(string_len("status", 16))
                    .col(timestamp_with_time_zone("run_at"))
                    .col(integer("attempts").default(0))
                    // While running: the claim is the holder's until then, and anyone's after.
                    .col(timestamp_with_time_zone_null("lease_until"))
                    // At most one unfinished job per key (a user's pending digest, …).
                    .col(string_len_null("dedupe_key", 200))
                    .col(text_null("last_error"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_jobs_status_run_at")
                    .table("jobs")
                    .col("status")
                    .col("run_at")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_jobs_dedupe_key")
                    .table("jobs")
                    .col("dedupe_key")
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("notification_deliveries")
                    .col(uuid("id").primary_key())
                    .col(uuid("notification_id"))
                    .col(uuid("user_id"))
                    .col(string_len("channel", 16))
                    // The device it went to; kept as a copy when the device is removed.
                    .col(uuid_null("device_id"))
                    .col(string_len_null("platform", 16))
                    .col(string_len("status", 16))
                    .col(integer("attempts").default(0))
                    .col(text_null("last_error"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("notification_deliveries", "notification_id")
                            .to("notifications", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_deliveries_notification_channel_device")
                    .table("notification_deliveries")
                    .col("notification_id")
                    .col("channel")
                    .col("device_id")
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("delivery_settings")
                    .col(uuid("user_id").primary_key())
                    .col(boolean("message_previews").default(false))
                    // Minutes after midnight in the user's time zone; both set or neither.
                    .col(small_integer_null("quiet_hours_start"))
                    .col(small_integer_null("quiet_hours_end"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("delivery_settings", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // When a chat was last in a user's email digest: at most one digest per chat per hour.
        manager
            .create_table(
                Table::create()
                    .table("chat_digests")
                    .col(uuid("user_id"))
                    .col(uuid("session_id"))
                    .col(timestamp_with_time_zone("sent_at"))
                    .primary_key(Index::create().col("user_id").col("session_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("chat_digests", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }
}
