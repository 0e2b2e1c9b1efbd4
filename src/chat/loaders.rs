//! Batched look-ups: a page of bookings naming their chats reads them in one query instead of
//! one per row.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::Loader;
use entity::chat_session;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::service::ChatService;
use crate::error::AppError;

/// Chat sessions by the id of their booking (a booking has at most one). It does not check
/// who may see them: its callers do.
pub struct SessionByBookingLoader(pub DatabaseConnection);

impl Loader<Uuid> for SessionByBookingLoader {
    type Value = chat_session::Model;
    type Error = Arc<AppError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        ChatService::of_bookings(&self.0, ids)
            .await
            .map_err(Arc::new)
    }
}
