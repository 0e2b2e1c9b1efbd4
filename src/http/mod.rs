//! The HTTP surface: `/graphql` (POST, GraphiQL on GET, graphql-ws upgrade), `/health`,
//! and the provider webhooks.

mod graphql;
mod ws;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    routing::{get, post},
};
use tower_http::{cors::CorsLayer, trace::TraceLayer};

pub use self::ws::OpenSockets;
use crate::{config::WebSocketConfig, graphql::CaregraphSchema, state::AppState};

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub app: AppState,
    pub schema: CaregraphSchema,
    pub websocket: Arc<WebSocketConfig>,
    /// Sockets per user on this instance, for `WS_MAX_SOCKETS_PER_USER`.
    pub sockets: Arc<OpenSockets>,
}

/// The router of the whole service.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route(
            "/graphql",
            get(graphql::graphiql_or_websocket).post(graphql::execute),
        )
        .route("/health", get(graphql::health))
        .route(
            "/webhooks/twilio/video",
            post(crate::video::webhook::twilio_status),
        )
        // Tokens travel in the Authorization header, never in cookies, so any origin may call.
        .layer(CorsLayer::permissive().max_age(Duration::from_secs(3600)))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
