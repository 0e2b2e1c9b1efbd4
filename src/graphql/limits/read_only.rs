//! Requests that may only read: a `GET` may run a query, never a mutation or a subscription,
//! as the GraphQL-over-HTTP spec requires (a `GET` is safe: caches, prefetchers and crawlers
//! repeat it at will).
//!
//! The check runs once the document is parsed (through the parsed-document cache and the
//! query limits' checks) and before it is validated or run, on the operation the request
//! selects; a refusal is [`AppError::MethodNotAllowed`], which the HTTP layer answers with
//! 405 and `Allow: POST`, charged to the viewer like any other refused operation.

use async_graphql::{
    ServerResult,
    extensions::ExtensionContext,
    parser::types::{ExecutableDocument, OperationType},
};

use crate::{error::AppError, graphql::selected::selected_operation};

/// Request data marking a request that may only run a query (one sent with `GET`).
pub struct ReadOnlyRequest {
    /// The operation the request selects (`operationName`), to find it in the document.
    pub operation_name: Option<String>,
}

/// Refuses a mutation or subscription in a [`ReadOnlyRequest`]; any other document passes.
pub fn allows(ctx: &ExtensionContext<'_>, document: &ExecutableDocument) -> ServerResult<()> {
    let Some(read_only) = ctx.data_opt::<ReadOnlyRequest>() else {
        return Ok(());
    };
    // An operation that cannot be selected is refused by validation, whatever its type.
    match selected_operation(document, read_only.operation_name.as_deref()) {
        Some(operation) if operation.node.ty != OperationType::Query => {
            Err(AppError::MethodNotAllowed(
                "a GET request may only run a query: send mutations with POST, and subscriptions \
                 over a websocket"
                    .to_owned(),
            )
            .into_server_error())
        }
        _ => Ok(()),
    }
}
