//! Batched look-ups for fields that every row of a page resolves: a page of bookings
//! naming their series, or of chats and calls naming their booking, reads each relation
//! in one query instead of one per row.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use entity::{booking, booking_series};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::service::BookingService;
use crate::error::AppError;

/// Bookings by id. It does not check who may see them: its callers do.
pub struct BookingLoader(pub DatabaseConnection);

impl Loader<Uuid> for BookingLoader {
    type Value = booking::Model;
    type Error = Arc<AppError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        BookingService::find_many(&self.0, ids)
            .await
            .map_err(Arc::new)
    }
}

/// Series with their occurrences, by series id. It does not check who may see them: its
/// callers do.
pub struct SeriesLoader(pub DatabaseConnection);

impl Loader<Uuid> for SeriesLoader {
    type Value = (booking_series::Model, Arc<[booking::Model]>);
    type Error = Arc<AppError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let found = BookingService::series_many(&self.0, ids)
            .await
            .map_err(Arc::new)?;
        Ok(found
            .into_iter()
            .map(|(id, (series, occurrences))| (id, (series, occurrences.into())))
            .collect())
    }
}
