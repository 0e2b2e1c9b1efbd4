//! The HTTP surface: `/graphql` (POST, queries on GET, GraphiQL for a browser, graphql-ws
//! upgrade), GraphiQL's files under `/graphiql/`, `/health`, `/ready`, `/metrics`, and the
//! provider webhooks; every refusal at this layer is GraphQL-shaped JSON.

mod graphiql;
mod graphql;
mod ops;
mod rejection;
mod request;
mod serve;
mod unsubscribe;
mod webhooks;
mod ws;

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    http::{HeaderValue, Method},
    routing::{get, post},
};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::{
    cors::{AllowOrigin, Any, CorsLayer},
    trace::TraceLayer,
};

pub use serve::{Stop, serve};

pub use self::ws::OpenSockets;
use crate::{
    config::{HttpConfig, WebSocketConfig},
    graphql::CaregraphSchema,
    services::Services,
    shutdown::Shutdown,
};

/// What the handlers share.
#[derive(Clone)]
pub struct HttpState {
    pub services: Services,
    pub schema: CaregraphSchema,
    pub http: Arc<HttpConfig>,
    pub websocket: Arc<WebSocketConfig>,
    /// Whether `GET /graphql` serves the explorer, and `/graphiql/` its files.
    pub graphiql: bool,
    /// Sockets per user on this instance, for `WS_MAX_SOCKETS_PER_USER`.
    pub sockets: Arc<OpenSockets>,
    /// Set once the instance is stopping: websockets close with 1001, `/ready` answers 503.
    pub shutdown: Shutdown,
    /// What `GET /metrics` renders; `None` when `METRICS_ENABLED=false`, and the route is
    /// absent.
    pub metrics: Option<PrometheusHandle>,
}

/// The router of the whole service.
pub fn router(state: HttpState) -> Router {
    let cors = cors(state.http.cors_allowed_origins.as_deref());
    let mut router = Router::new();
    if state.metrics.is_some() {
        router = router.route("/metrics", get(ops::metrics));
    }
    if state.graphiql {
        router = router.route("/graphiql/{tag}/{file}", get(graphiql::asset));
    }
    router
        .route("/graphql", get(graphql::get).post(graphql::execute))
        .route("/health", get(graphql::health))
        .route("/ready", get(ops::ready))
        .route("/webhooks/twilio/video", post(webhooks::twilio_video))
        .route(
            "/unsubscribe",
            get(unsubscribe::confirm).post(unsubscribe::apply),
        )
        .fallback(rejection::not_found)
        .method_not_allowed_fallback(rejection::method_not_allowed)
        .layer(cors)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Browsers may call from the configured origins; with none configured (development
/// only: production refuses to start), from any. Tokens travel in the Authorization
/// header, never in cookies, so no credentials are allowed.
fn cors(origins: Option<&[String]>) -> CorsLayer {
    let allow_origin = match origins {
        None => AllowOrigin::any(),
        Some(origins) if origins.iter().any(|origin| origin == "*") => AllowOrigin::any(),
        Some(origins) => AllowOrigin::list(origins.iter().filter_map(|origin| {
            match HeaderValue::from_str(origin) {
                Ok(value) => Some(value),
                Err(_) => {
                    tracing::warn!(%origin, "ignoring an origin that is no header value");
                    None
                }
            }
        })),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
        .max_age(Duration::from_secs(3600))
}
