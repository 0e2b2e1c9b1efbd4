//! `POST /graphql`, GraphiQL on `GET /graphql`, and `/health`.

use std::str::FromStr;

use async_graphql::http::{GraphiQLSource, WebSocketProtocols};
use async_graphql_axum::GraphQLResponse;
use axum::{
    body::Body,
    extract::{State, WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Response},
};

use super::{HttpState, rejection::HttpRejection, request, ws};

/// Runs a query or mutation as the viewer named by the `Authorization` header, once its
/// body has been read within the configured bounds.
pub async fn execute(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Body,
) -> Result<GraphQLResponse, HttpRejection> {
    let request = request::read(&state.http, &headers, body).await?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let credentials = state.app.authenticator.from_header(authorization).await;
    Ok(state.schema.execute(request.data(credentials)).await.into())
}

/// GraphiQL for a browser; a graphql-ws session for a websocket upgrade on the same URL.
pub async fn graphiql_or_websocket(
    State(state): State<HttpState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        if !state.graphiql {
            return HttpRejection::GraphiqlDisabled.into_response();
        }
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
        return HttpRejection::NoSubprotocol.into_response();
    };
    // tungstenite's default 128 KiB read and write buffers per socket dominate the memory of
    // an idle connection; GraphQL messages are small, and the buffers grow when one is not.
    upgrade
        .protocols([name])
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
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
