//! Schema migrations, applied in order at start-up; a landed migration is never edited.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_accounts_and_bookings;
mod m20261124_000002_notifications;
mod m20261124_000003_chat;
mod m20261124_000004_video_calls;
mod m20261129_000005_deliveries;

/// Every migration of caregraph, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_accounts_and_bookings::Migration),
            Box::new(m20261124_000002_notifications::Migration),
            Box::new(m20261124_000003_chat::Migration),
            Box::new(m20261124_000004_video_calls::Migration),
            Box::new(m20261129_000005_deliveries::Migration),
        ]
    }
}
