//! Reading a GraphQL request off an HTTP body within the configured bounds: its size is
//! checked before a byte is buffered past the limit, its arrival is timed, and only a
//! single JSON operation is accepted.

use async_graphql::Request;
use axum::{
    body::Body,
    http::{HeaderMap, header},
};
use futures_util::StreamExt;

use super::rejection::HttpRejection;
use crate::config::HttpConfig;

/// The GraphQL request in `body`, or why it was refused.
pub async fn read(
    config: &HttpConfig,
    headers: &HeaderMap,
    body: Body,
) -> Result<Request, HttpRejection> {
    if !is_json(headers) {
        return Err(HttpRejection::UnsupportedMediaType);
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let limit = config.max_body_bytes;
    if declared.is_some_and(|length| length > limit) {
        return Err(HttpRejection::PayloadTooLarge { limit });
    }
    let bytes = tokio::time::timeout(config.body_timeout, collect(body, limit, declared))
        .await
        .map_err(|_| HttpRejection::BodyTimeout {
            seconds: config.body_timeout.as_secs(),
        })??;
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'[') {
        return Err(HttpRejection::BatchNotSupported);
    }
    serde_json::from_slice(&bytes).map_err(|err| HttpRejection::malformed(&err))
}

/// A body with no content type is taken as JSON, as curl and some fetch wrappers send it;
/// anything else must say JSON.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return true;
    };
    let Ok(content_type) = content_type.to_str() else {
        return false;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

async fn collect(
    body: Body,
    limit: usize,
    declared: Option<usize>,
) -> Result<Vec<u8>, HttpRejection> {
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    let mut chunks = body.into_data_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|_| HttpRejection::UnreadableBody)?;
        if bytes.len() + chunk.len() > limit {
            return Err(HttpRejection::PayloadTooLarge { limit });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
