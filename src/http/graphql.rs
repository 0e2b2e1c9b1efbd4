//! `/graphql` over HTTP: `POST` runs any operation and `GET` runs queries, answering as the
//! request's `Accept` prefers; a browser's `GET` gets GraphiQL, and a websocket upgrade on
//! the same URL a graphql-ws session. And `/health`.
//!
//! `application/json` (the default) answers 200 with any errors in the body, as clients
//! written before the GraphQL-over-HTTP spec expect. `application/graphql-response+json`
//! answers with the spec's statuses: 200 once execution has started (a resolver's error,
//! `UNAUTHENTICATED` among them, is reported beside the data), and for a request error
//! (one that stopped the operation before it ran) no `data` and a 4xx status, or 5xx where
//! the server is at fault. `PERSISTED_QUERY_NOT_FOUND` stays 200 either way: it asks the
//! client to send the query, and Apollo's client turns persisted queries off on a 400.

use std::{net::SocketAddr, str::FromStr};

use async_graphql::{Request, Variables, http::WebSocketProtocols};
use async_graphql_axum::GraphQLResponse;
use axum::{
    body::Body,
    extract::{
        ConnectInfo, Query, State, WebSocketUpgrade, ws::rejection::WebSocketUpgradeRejection,
    },
    http::{HeaderMap, HeaderValue, StatusCode, Uri, header},
    response::{IntoResponse, Json, Response},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use super::{HttpState, graphiql, rejection::HttpRejection, request, ws};
use crate::{config::HttpConfig, error::AppError, graphql::ReadOnlyRequest, viewer::Credentials};

/// The media type of responses to clients that do not ask for the spec's.
const JSON: &str = "application/json";
/// The media type of the spec's responses.
const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";

/// Runs a query or mutation as the viewer named by the `Authorization` header, once its
/// body has been read within the configured bounds, telling resolvers the client's address
/// (sign-in limits count by it).
pub async fn execute(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpRejection> {
    let credentials = credentials(&state, &headers).await;
    let read = request::read(&state.http, &headers, body).await;
    let request = charged(&state, &credentials, read)?;
    Ok(run(&state, peer, &headers, credentials, request).await)
}

/// A query in the URL for a client that asks for JSON (urql sends queries this way when
/// they fit); GraphiQL for a browser; a graphql-ws session for a websocket upgrade.
pub async fn get(
    State(state): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Ok(upgrade) = upgrade {
        return websocket(state, peer, headers, upgrade);
    }
    let accepts = Accepts::of(&headers);
    let in_url = uri.query().is_some_and(|query| !query.is_empty());
    if accepts.prefers_html() || (!in_url && !accepts.names_json()) {
        return explorer(&state, &headers);
    }
    let credentials = credentials(&state, &headers).await;
    let request = match charged(&state, &credentials, from_url(&state.http, &uri)) {
        Ok(request) => request,
        Err(rejection) => return rejection.into_response(),
    };
    let read_only = ReadOnlyRequest {
        operation_name: request.operation_name.clone(),
    };
    run(&state, peer, &headers, credentials, request.data(read_only)).await
}

/// The viewer the `Authorization` header names, if any.
async fn credentials(state: &HttpState, headers: &HeaderMap) -> Credentials {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    state
        .services
        .auth
        .authenticator
        .from_header(authorization)
        .await
}

/// A refused request still costs its sender; one who keeps sending them is told to wait.
fn charged(
    state: &HttpState,
    credentials: &Credentials,
    read: Result<Request, HttpRejection>,
) -> Result<Request, HttpRejection> {
    if read.is_err()
        && let Credentials::Authenticated(viewer) = credentials
    {
        let usage = &state.services.state.usage;
        usage
            .spend(viewer.id, 0)
            .map_err(HttpRejection::RateLimited)?;
    }
    read
}

/// A request as a URL's query string spells it (the values of `variables` and `extensions`
/// are JSON).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UrlRequest {
    #[serde(default)]
    query: String,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// The request in `uri`'s query string, no longer than a body may be.
fn from_url(config: &HttpConfig, uri: &Uri) -> Result<Request, HttpRejection> {
    let limit = config.max_body_bytes;
    if uri.query().unwrap_or_default().len() > limit {
        return Err(HttpRejection::UriTooLong { limit });
    }
    let Query(spelled) = Query::<UrlRequest>::try_from_uri(uri)
        .map_err(|reason| HttpRejection::malformed_query_string(&reason.body_text()))?;
    let variables: Option<Variables> = from_json("variables", spelled.variables.as_deref())?;
    let mut request = Request::new(spelled.query).variables(variables.unwrap_or_default());
    request.operation_name = spelled.operation_name;
    request.extensions =
        from_json("extensions", spelled.extensions.as_deref())?.unwrap_or_default();
    Ok(request)
}

/// URL parameter `name`'s JSON value, where it is given.
fn from_json<T: DeserializeOwned>(
    name: &str,
    value: Option<&str>,
) -> Result<Option<T>, HttpRejection> {
    value
        .map(serde_json::from_str)
        .transpose()
        .map_err(|reason| {
            HttpRejection::malformed_query_string(&format!("{name} is not JSON: {reason}"))
        })
}

/// Runs `request` as `credentials` from `peer`, and answers as `headers` ask.
async fn run(
    state: &HttpState,
    peer: SocketAddr,
    headers: &HeaderMap,
    credentials: Credentials,
    request: Request,
) -> Response {
    let client = state.services.auth.sign_in.client_addr(peer, headers);
    let response = state
        .schema
        .execute(request.data(credentials).data(client))
        .await;
    let refused_method = response.errors.iter().any(|error| {
        matches!(
            error.source::<AppError>(),
            Some(AppError::MethodNotAllowed(_))
        )
    });
    let mut answer = if Accepts::of(headers).prefers_graphql_response() {
        graphql_response(response)
    } else {
        let mut answer = GraphQLResponse::from(response).into_response();
        answer
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON));
        answer
    };
    if refused_method {
        *answer.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        answer
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    answer
}

/// A response body as `application/graphql-response+json` has it: no `data` for a request
/// error.
#[derive(Serialize)]
struct SpecBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a async_graphql::Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [async_graphql::ServerError],
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    extensions: &'a std::collections::BTreeMap<String, async_graphql::Value>,
}

/// `response` as `application/graphql-response+json`, with the spec's status.
fn graphql_response(response: async_graphql::Response) -> Response {
    let request_error = request_error_status(&response);
    let body = SpecBody {
        data: request_error.is_none().then_some(&response.data),
        errors: &response.errors,
        extensions: &response.extensions,
    };
    let bytes = match serde_json::to_vec(&body) {
        Ok(bytes) => bytes,
        Err(err) => {
            let failure = AppError::Internal(format!("serialising a response: {err}"));
            tracing::error!(%failure, "response not sent");
            let errors = serde_json::json!({ "errors": [failure.to_graphql_error()] });
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(errors)).into_response();
        }
    };
    let mut answer = (
        request_error.unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, GRAPHQL_RESPONSE_JSON)],
        bytes,
    )
        .into_response();
    answer.headers_mut().extend(response.http_headers);
    answer
}

/// The status of a request error: one that stopped the operation before any field ran, so
/// the response has errors and no data, none of them at a field's path. `None` when the
/// operation ran.
fn request_error_status(response: &async_graphql::Response) -> Option<StatusCode> {
    let ran = !matches!(response.data, async_graphql::Value::Null)
        || response.errors.is_empty()
        || response.errors.iter().any(|error| !error.path.is_empty());
    if ran {
        return None;
    }
    let status = match response.errors.first()?.source::<AppError>() {
        Some(AppError::PersistedQueryNotFound) => StatusCode::OK,
        Some(AppError::MethodNotAllowed(_)) => StatusCode::METHOD_NOT_ALLOWED,
        Some(AppError::RateLimited { .. }) => StatusCode::TOO_MANY_REQUESTS,
        Some(AppError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        Some(AppError::TimedOut { .. }) => StatusCode::GATEWAY_TIMEOUT,
        Some(AppError::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    };
    Some(status)
}

/// What a request's `Accept` header asks for: the weight of each media type this endpoint
/// answers with, where the header names it.
struct Accepts {
    html: Option<f32>,
    json: Option<f32>,
    graphql_response: Option<f32>,
}

impl Accepts {
    fn of(headers: &HeaderMap) -> Self {
        let mut accepts = Self {
            html: None,
            json: None,
            graphql_response: None,
        };
        let header = headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        for range in header.split(',') {
            let mut parts = range.split(';');
            let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let weight = parts
                .find_map(|parameter| parameter.trim().strip_prefix("q="))
                .and_then(|weight| weight.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot = match essence.as_str() {
                "text/html" => &mut accepts.html,
                "application/json" => &mut accepts.json,
                "application/graphql-response+json" => &mut accepts.graphql_response,
                _ => continue,
            };
            *slot = Some(weight);
        }
        accepts
    }

    /// A browser navigating to the URL: HTML weighs more than either JSON type.
    fn prefers_html(&self) -> bool {
        let html = self.html.unwrap_or(0.0);
        html > 0.0 && html > self.json.unwrap_or(0.0) && html > self.graphql_response.unwrap_or(0.0)
    }

    /// Whether the client named a JSON type it takes (a GraphQL client does, curl does not).
    fn names_json(&self) -> bool {
        self.json.is_some_and(|weight| weight > 0.0)
            || self.graphql_response.is_some_and(|weight| weight > 0.0)
    }

    /// Whether to answer with the spec's media type: the client takes it at least as gladly
    /// as plain JSON.
    fn prefers_graphql_response(&self) -> bool {
        self.graphql_response
            .is_some_and(|weight| weight > 0.0 && weight >= self.json.unwrap_or(0.0))
    }
}

/// The explorer, where it is on.
fn explorer(state: &HttpState, headers: &HeaderMap) -> Response {
    if !state.graphiql {
        return HttpRejection::GraphiqlDisabled.into_response();
    }
    graphiql::page(headers)
}

/// A graphql-ws session on the subprotocol the client offers first among those we speak.
fn websocket(
    state: HttpState,
    peer: SocketAddr,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
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
    // tungstenite's default 128 KiB read and write buffers per socket would dominate the memory
    // of an idle connection, and its read buffer is filled with zeros, so every byte of it is
    // resident. What clients send is small (subscribes, pings); a larger message reserves room
    // for itself from its header on. The size limits hold from the first frame's header,
    // before anything is buffered or parsed.
    upgrade
        .protocols([name])
        .read_buffer_size(WS_READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(state.websocket.max_message_bytes)
        .max_frame_size(state.websocket.max_message_bytes)
        .on_upgrade(move |socket| {
            let client = state.services.auth.sign_in.client_addr(peer, &headers);
            ws::serve(socket, protocol, state, client)
        })
}

/// Each socket's read buffer: one read of this many bytes takes in several client messages.
const WS_READ_BUFFER_BYTES: usize = 512;

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
