//! `POST /graphql`, GraphiQL on `GET /graphql`, and `/health`.

use std::{net::SocketAddr, str::FromStr};

use async_graphql::http::{GraphiQLSource, WebSocketProtocols};
use async_graphql_axum::GraphQLResponse;
use axum::{
    body::Body,
    extract::{ConnectInfo, State, WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Json, Response},
};

use super::{HttpState, rejection::HttpRejection, request, ws};
use crate::viewer::Credentials;

/// Runs a query or mutation as the viewer named by the `Authorization` header, once its
/// body has been read within the configured bounds, telling resolvers the client's address
/// (sign-in limits count by it).
pub async fn execute(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<GraphQLResponse, HttpRejection> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let credentials = state
        .services
        .auth
        .authenticator
        .from_header(authorization)
        .await;
    let request = match request::read(&state.http, &headers, body).await {
        Ok(request) => request,
        // A refused body still costs its sender; one who keeps sending them is told to wait.
        Err(rejection) => {
            if let Credentials::Authenticated(viewer) = &credentials {
                let usage = &state.services.state.usage;
                usage
                    .spend(viewer.id, 0)
                    .map_err(HttpRejection::RateLimited)?;
            }
            return Err(rejection);
        }
    };
    let client = state.services.auth.sign_in.client_addr(peer, &headers);
    Ok(state
        .schema
        .execute(request.data(credentials).data(client))
        .await
        .into())
}

/// GraphiQL for a browser; a graphql-ws session for a websocket upgrade on the same URL.
pub async fn graphiql_or_websocket(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
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
    // The size limits hold from the first frame's header, before anything is buffered or parsed.
    upgrade
        .protocols([name])
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(state.websocket.max_message_bytes)
        .max_frame_size(state.websocket.max_message_bytes)
        .on_upgrade(move |socket| {
            let client = state.services.auth.sign_in.client_addr(peer, &headers);
            ws::serve(socket, protocol, state, client)
        })
}

/// Liveness and database reachability, for load balancers: 503 within [`HEALTH_DEADLINE`]
/// when the database does not answer, so a balancer never waits on a hung check.
pub async fn health(State(state): State<HttpState>) -> Response {
    let unavailable = |reason: String| {
        tracing::error!(%reason, "health check: database unreachable");
        let body = serde_json::json!({ "status": "unavailable", "database": "unreachable" });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    };
    match tokio::time::timeout(HEALTH_DEADLINE, state.services.state.db.ping()).await {
        Ok(Ok(())) => Json(serde_json::json!({ "status": "ok" })).into_response(),
        Ok(Err(err)) => unavailable(err.to_string()),
        Err(_) => unavailable(format!("no answer within {HEALTH_DEADLINE:?}")),
    }
}

/// How long `/health` waits for the database; the pool's own acquire timeout is usually shorter.
const HEALTH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);
