//! `POST /graphql`, GraphiQL on `GET /graphql`, and `/health`.

use std::str::FromStr;

use async_graphql::http::{GraphiQLSource, WebSocketProtocols};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{
    extract::{State, WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use super::{HttpState, ws};

/// Runs a query or mutation as the viewer named by the `Authorization` header.
pub async fn execute(
    State(state): State<HttpState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let credentials = state.app.authenticator.from_header(authorization).await;
    state
        .schema
        .execute(request.into_inner().data(credentials))
        .await
        .into()
}

/// GraphiQL for a browser; a graphql-ws session for a websocket upgrade on the same URL.
pub async fn graphiql_or_websocket(
    State(state): State<HttpState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .title("caregraph")
                .finish(),
        )
        .into_response();
    };
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let Some((name, protocol)) = offered.split(',').map(str::trim).find_map(|name| {
        WebSocketProtocols::from_str(name)
            .ok()
            .map(|protocol| (name.to_owned(), protocol))
    }) else {
        return (
            StatusCode::BAD_REQUEST,
            "offer the graphql-transport-ws or graphql-ws subprotocol",
        )
            .into_response();
    };
    // tungstenite's default 128 KiB read and write buffers per socket dominate the memory of
    // an idle connection; GraphQL messages are small, and the buffers grow when one is not.
    // The size limits hold from the first frame's header, before anything is buffered or parsed.
    upgrade
        .protocols([name])
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(state.websocket.max_message_bytes)
        .max_frame_size(state.websocket.max_message_bytes)
        .on_upgrade(move |socket| ws::serve(socket, protocol, state))
}

/// Liveness and database reachability, for load balancers.
pub async fn health(State(state): State<HttpState>) -> Response {
    match state.app.db.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(err) => {
            tracing::error!(error = %err, "health check: database unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unreachable").into_response()
        }
    }
}
