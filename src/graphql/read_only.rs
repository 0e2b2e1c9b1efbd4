//! Requests that may only read: a `GET` may run a query, never a mutation or a subscription,
//! as the GraphQL-over-HTTP spec requires (a `GET` is safe: caches, prefetchers and crawlers
//! repeat it at will).
//!
//! The check runs once the document is parsed (through the parsed-document cache and the
//! query limits' checks) and before it is validated or run, on the operation the request
//! selects; a refusal is [`AppError::MethodNotAllowed`], which the HTTP layer answers with
//! 405 and `Allow: POST`.

use std::sync::Arc;

use async_graphql::{
    ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::{ExecutableDocument, OperationType},
};

use crate::{error::AppError, rate_limit::UsageLimits, viewer::Credentials};

/// Request data marking a request that may only run a query (one sent with `GET`).
pub struct ReadOnlyRequest {
    /// The operation the request selects (`operationName`), to find it in the document.
    pub operation_name: Option<String>,
}

/// The schema extension that refuses a mutation or subscription in a [`ReadOnlyRequest`],
/// charging the refusal to the viewer like any other refused operation.
#[derive(Clone)]
pub struct ReadOnlyRequests {
    usage: Arc<UsageLimits>,
}

impl ReadOnlyRequests {
    /// Refusals charged to `usage`.
    pub fn new(usage: Arc<UsageLimits>) -> Self {
        Self { usage }
    }
}

impl ExtensionFactory for ReadOnlyRequests {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ReadOnlyRequests {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let Some(read_only) = ctx.data_opt::<ReadOnlyRequest>() else {
            return Ok(document);
        };
        let selected = match read_only.operation_name.as_deref() {
            Some(name) => document
                .operations
                .iter()
                .find(|(operation, _)| operation.is_some_and(|operation| operation == name)),
            None => {
                let mut operations = document.operations.iter();
                operations.next().filter(|_| operations.next().is_none())
            }
        };
        // An operation that cannot be selected is refused by validation, whatever its type.
        let Some((_, operation)) = selected else {
            return Ok(document);
        };
        if operation.node.ty == OperationType::Query {
            return Ok(document);
        }
        if let Some(Credentials::Authenticated(viewer)) = ctx.data_opt::<Credentials>() {
            self.usage
                .spend(viewer.id, 0)
                .map_err(AppError::into_server_error)?;
        }
        Err(AppError::MethodNotAllowed(
            "a GET request may only run a query: send mutations with POST, and subscriptions \
             over a websocket"
                .to_owned(),
        )
        .into_server_error())
    }
}
