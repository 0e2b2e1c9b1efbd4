//! Refusals at the HTTP layer, before GraphQL runs, answered in the shape GraphQL clients
//! already parse (`{"errors": [{"message", "extensions": {"code"}}]}`) with the status
//! that says what happened, so no client has to handle plain text or an HTML page.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::error::AppError;

/// Why a request was refused before it reached the schema.
#[derive(Debug, thiserror::Error)]
pub enum HttpRejection {
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body was not received within {seconds} s")]
    BodyTimeout { seconds: u64 },
    #[error("send GraphQL requests as application/json (this server accepts no uploads or forms)")]
    UnsupportedMediaType,
    #[error("the body is not a GraphQL request in JSON: {0}")]
    MalformedJson(String),
    #[error("batched requests are not supported: send one operation per request")]
    BatchNotSupported,
    #[error("the query string is longer than {limit} bytes: send this request with POST")]
    UriTooLong { limit: usize },
    #[error("the query string is not a GraphQL request: {0}")]
    MalformedQueryString(String),
    #[error("the body could not be read")]
    UnreadableBody,
    #[error("a websocket must offer the graphql-transport-ws or graphql-ws subprotocol")]
    NoSubprotocol,
    #[error(
        "GraphiQL is off on this server: send operations with POST, or queries with GET and Accept: application/json, or set GRAPHIQL=true"
    )]
    GraphiqlDisabled,
    /// The caller's allowance is spent (see [`crate::rate_limit::UsageLimits`]).
    #[error("{0}")]
    RateLimited(AppError),
    #[error("there is nothing at this path: GraphQL is served at /graphql")]
    NotFound,
    #[error("this method is not allowed here: use POST or GET /graphql, or a websocket")]
    MethodNotAllowed,
}

/// How long a quoted parser message may be: serde's messages can quote the input.
const MAX_DETAIL_CHARS: usize = 160;

impl HttpRejection {
    /// A JSON parse failure, with the parser's reason cut short.
    pub fn malformed(reason: &serde_json::Error) -> Self {
        Self::MalformedJson(reason.to_string().chars().take(MAX_DETAIL_CHARS).collect())
    }

    /// A query string that does not parse, with the reason cut short.
    pub fn malformed_query_string(reason: &impl std::fmt::Display) -> Self {
        Self::MalformedQueryString(reason.to_string().chars().take(MAX_DETAIL_CHARS).collect())
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            Self::BodyTimeout { .. } => (StatusCode::REQUEST_TIMEOUT, "REQUEST_TIMEOUT"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
            }
            Self::UriTooLong { .. } => (StatusCode::URI_TOO_LONG, "URI_TOO_LONG"),
            Self::MalformedJson(_)
            | Self::MalformedQueryString(_)
            | Self::BatchNotSupported
            | Self::UnreadableBody
            | Self::NoSubprotocol
            | Self::GraphiqlDisabled => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            Self::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
        }
    }
}

impl IntoResponse for HttpRejection {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let error = match &self {
            Self::RateLimited(refusal) => refusal.to_graphql_error(),
            other => json!({ "message": other.to_string(), "extensions": { "code": code } }),
        };
        (status, Json(json!({ "errors": [error] }))).into_response()
    }
}

/// The fallback of the router: unknown paths.
pub async fn not_found() -> HttpRejection {
    HttpRejection::NotFound
}

/// The fallback for known paths called with another method.
pub async fn method_not_allowed() -> HttpRejection {
    HttpRejection::MethodNotAllowed
}
