//! What every domain shares: the pool, the writer, the bus, the clock and the usage limits.
//!
//! It sits below the domains, so it names none of them: what one domain alone needs (chat's
//! send queue, the video provider, the token service) is handed to its resolvers as its own
//! context data by `services`.

use std::sync::Arc;

use async_graphql::{Context, OutputType, connection::Connection};
use sea_orm::{DatabaseConnection, Value};
use uuid::Uuid;

use crate::{
    bus::EventBus,
    clock::Clock,
    config::ReminderConfig,
    db::{
        Write, WriteQueue, Writer,
        parties::{PartyTable, find_for, page_for},
    },
    error::AppError,
    paging::PageRequest,
    rate_limit::UsageLimits,
    viewer::{Viewer, viewer},
};

/// The state every domain shares, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    /// What each signed-in user may spend: query cost, new sockets, socket operations.
    pub usage: Arc<UsageLimits>,
    pub reminders: Arc<ReminderConfig>,
    pub write_queue: WriteQueue,
    /// Starts every write transaction: see `db::write`.
    pub writer: Writer,
}

impl AppState {
    /// The state a resolver runs with; the schema is always built with it.
    pub fn of<'a>(ctx: &Context<'a>) -> &'a AppState {
        ctx.data_unchecked::<AppState>()
    }
}

/// Runs `change` for the request's viewer in one write transaction, committed before it
/// answers: the whole of a mutation resolver but for turning the row into its GraphQL type.
pub async fn write_as_viewer<T>(
    ctx: &Context<'_>,
    change: impl AsyncFnOnce(&Write, &Viewer) -> Result<T, AppError>,
) -> Result<T, AppError> {
    let viewer = viewer(ctx)?;
    AppState::of(ctx)
        .writer
        .run(async |write| change(write, viewer).await)
        .await
}

/// One page of the viewer's rows of a two-party table (bookings, calls), as the connection a
/// list field answers with: `first` and `after` checked, `status` narrowing when given.
pub async fn viewer_page<T: PartyTable, N: OutputType>(
    ctx: &Context<'_>,
    status: Option<impl Into<Value>>,
    first: Option<i32>,
    after: Option<String>,
    node: impl FnMut(T::Model) -> N,
) -> Result<Connection<String, N>, AppError> {
    let page = PageRequest::new(first, after)?;
    let rows = page_for::<T>(&AppState::of(ctx).db, viewer(ctx)?.id, status, &page).await?;
    Ok(page.connection(rows, T::position, node))
}

/// One row of a two-party table that the viewer is a party to; `NOT_FOUND` for everyone else.
pub async fn viewer_row<T: PartyTable>(ctx: &Context<'_>, id: Uuid) -> Result<T::Model, AppError> {
    find_for::<T>(&AppState::of(ctx).db, viewer(ctx)?.id, id).await
}
