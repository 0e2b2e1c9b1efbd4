//! Users, caregiver profiles, booking series and bookings.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(uuid("id").primary_key())
                    .col(string_len_uniq("email", 320))
                    .col(string_len("display_name", 200))
                    .col(string_len("role", 16))
                    .col(text_null("password_hash"))
                    .col(string_len("timezone", 64))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("caregiver_profiles")
                    .col(uuid("user_id").primary_key())
                    .col(text("bio"))
                    .col(integer_null("hourly_rate_cents"))
                    .col(string_len("availability", 16))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("caregiver_profiles", "user_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_caregiver_profiles_availability")
                    .table("caregiver_profiles")
                    .col("availability")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("booking_series")
                    .col(uuid("id").primary_key())
                    .col(uuid("care_recipient_id"))
                    .col(uuid("caregiver_id"))
                    .col(string_len("frequency", 16))
                    .col(integer_null("count"))
                    .col(timestamp_with_time_zone_null("until"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("booking_series", "care_recipient_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("booking_series", "caregiver_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("bookings")
                    .col(uuid("id").primary_key())
                    .col(uuid("care_recipient_id"))
                    .col(uuid("caregiver_id"))
                    .col(timestamp_with_time_zone("starts_at"))
                    .col(timestamp_with_time_zone("ends_at"))
                    .col(text("notes"))
                    .col(string_len("status", 16))
                    .col(uuid_null("series_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("bookings", "care_recipient_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("bookings", "caregiver_id")
                            .to("users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("bookings", "series_id")
                            .to("booking_series", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, party) in [
            ("idx_bookings_care_recipient", "care_recipient_id"),
            ("idx_bookings_caregiver", "caregiver_id"),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("bookings")
                        .col(party)
                        .col("starts_at")
                        .col("id")
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_bookings_series")
                    .table("bookings")
                    .col("series_id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["bookings", "booking_series", "caregiver_profiles", "users"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
