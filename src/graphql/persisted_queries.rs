//! Automatic persisted queries, as Apollo's and urql's clients speak them: a request may
//! name its query by `extensions.persistedQuery.sha256Hash` instead of sending the text, so a
//! client's steady operations travel as a hash and fit in a `GET` URL.
//!
//! A hash this instance has not seen answers `PersistedQueryNotFound` (code
//! `PERSISTED_QUERY_NOT_FOUND`, the exact message and code the clients check), and the client
//! sends the query again with its hash; the hash is checked against the text (a mismatch is a
//! `BAD_USER_INPUT` error, "provided sha does not match query", as Apollo Server words it) and
//! the text kept for the hash-only requests that follow, over POST, GET or a websocket.
//!
//! The store is per instance and bounded like the parsed-document cache: by count, with
//! texts seen once making way first, and long texts never kept (their clients are told
//! "not found" again and send the text each time, which works, only less compactly).
//! A miss costs a look-up and a mismatch one hash of a bounded body, so neither is charged
//! to the viewer's allowance; the operation that runs is charged as any other.

use std::sync::Arc;

use async_graphql::{
    Request, ServerResult,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest},
};
use quick_cache::sync::Cache;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::AppError;

/// How many distinct queries are kept.
const MAX_QUERIES: usize = 512;
/// Longer queries are not kept: they are rare, and each would pin its text.
const MAX_QUERY_BYTES: usize = 16 * 1024;
/// The one version of the protocol.
const VERSION: u64 = 1;

/// The schema extension that resolves persisted-query hashes to their texts, with the texts
/// registered on this instance.
#[derive(Clone)]
pub struct PersistedQueries {
    queries: Arc<Cache<String, Arc<str>>>,
}

impl Default for PersistedQueries {
    fn default() -> Self {
        Self {
            queries: Arc::new(Cache::new(MAX_QUERIES)),
        }
    }
}

/// `extensions.persistedQuery` as the clients send it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PersistedQuery {
    version: u64,
    sha256_hash: String,
}

impl PersistedQueries {
    /// `request` with its query text in place: looked up by hash for a hash-only request,
    /// checked against the hash and kept when both are sent.
    fn resolve(&self, mut request: Request) -> Result<Request, AppError> {
        let Some(extension) = request.extensions.get("persistedQuery") else {
            return Ok(request);
        };
        let persisted = extension
            .clone()
            .into_json()
            .ok()
            .and_then(|json| serde_json::from_value::<PersistedQuery>(json).ok())
            .ok_or_else(|| bad_request("extensions.persistedQuery needs version and sha256Hash"))?;
        if persisted.version != VERSION {
            return Err(bad_request("Unsupported persisted query version"));
        }
        let hash = persisted.sha256_hash.to_ascii_lowercase();
        if request.query.is_empty() {
            let query = self
                .queries
                .get(&hash)
                .ok_or(AppError::PersistedQueryNotFound)?;
            request.query = query.to_string();
            return Ok(request);
        }
        if format!("{:x}", Sha256::digest(request.query.as_bytes())) != hash {
            return Err(bad_request("provided sha does not match query"));
        }
        if request.query.len() <= MAX_QUERY_BYTES {
            self.queries.insert(hash, Arc::from(request.query.as_str()));
        }
        Ok(request)
    }
}

fn bad_request(message: &str) -> AppError {
    AppError::BadUserInput {
        message: message.to_owned(),
        field: None,
    }
}

impl ExtensionFactory for PersistedQueries {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for PersistedQueries {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let request = self.resolve(request).map_err(AppError::into_server_error)?;
        next.run(ctx, request).await
    }
}
