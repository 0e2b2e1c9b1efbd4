//! What every resolver and handler shares: the pool, the bus, the clock and the token service.

use std::sync::Arc;

use async_graphql::Context;
use sea_orm::DatabaseConnection;

use crate::{
    auth::{Authenticator, SignInLimits, TokenService},
    bus::EventBus,
    chat::{SendQueue, TypingGate},
    clock::Clock,
    config::ReminderConfig,
    db::{Write, WriteQueue, Writer},
    error::AppError,
    rate_limit::UsageLimits,
    video::Video,
    viewer::{Viewer, viewer},
};

/// The application's shared services, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub tokens: Arc<TokenService>,
    pub authenticator: Authenticator,
    /// Rate limits on `login` and `register`.
    pub sign_in: Arc<SignInLimits>,
    /// What each signed-in user may spend: query cost, new sockets, socket operations.
    pub usage: Arc<UsageLimits>,
    pub reminders: Arc<ReminderConfig>,
    pub typing: Arc<TypingGate>,
    pub video: Arc<Video>,
    pub write_queue: WriteQueue,
    /// Starts every write transaction: see `db::write`.
    pub writer: Writer,
    /// Where `sendMessage` joins a batch (group commit).
    pub sends: SendQueue,
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
