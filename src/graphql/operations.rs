//! Counting operations by type, and subscriptions while they live, for `/metrics`; and
//! telling a socket's operation whether it may park (`crate::bus::parking`).

use std::sync::{Arc, Mutex};

use async_graphql::{
    Request, ServerError, ServerResult, ValidationResult, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
        NextValidation,
    },
    parser::types::{ExecutableDocument, OperationType, Selection},
};

use super::selected::selected_operation;
use crate::{
    bus::parking::{Resumed, Slot},
    sync::lock,
    telemetry::{self, LiveSubscription},
};

/// The schema extension that records each operation once it passed validation; registered
/// first, so that it sees every document, cached or not.
pub struct OperationMetrics;

impl ExtensionFactory for OperationMetrics {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Recording::default())
    }
}

/// One request's operation, from its parsing to the end of the request or subscription.
#[derive(Default)]
struct Recording {
    /// The operation the request names, to pick it among several in the document.
    name: Mutex<Option<String>>,
    /// The chosen operation's type, and for a subscription its field, until validated.
    parsed: Mutex<Option<(OperationType, Option<String>)>>,
    /// Held while the subscription lives: the extension lives as long as its stream.
    live: Mutex<Option<LiveSubscription>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for Recording {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        lock(&self.name).clone_from(&request.operation_name);
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let wanted = lock(&self.name).clone();
        if let Some(operation) = selected_operation(&document, wanted.as_deref()) {
            let items = &operation.node.selection_set.node.items;
            let one_field =
                matches!(items.as_slice(), [only] if matches!(only.node, Selection::Field(_)));
            if let (false, Some(slot)) = (one_field, ctx.data_opt::<Arc<Slot>>()) {
                // Parking is decided before any resolver runs, so it must know now.
                slot.never_park();
            }
            let kind = operation.node.ty;
            let field = (kind == OperationType::Subscription).then(|| {
                match operation.node.selection_set.node.items.first() {
                    Some(selection) => match &selection.node {
                        Selection::Field(field) => field.node.name.node.to_string(),
                        Selection::FragmentSpread(_) | Selection::InlineFragment(_) => {
                            "(fragment)".to_owned()
                        }
                    },
                    None => "(none)".to_owned(),
                }
            });
            *lock(&self.parsed) = Some((kind, field));
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if ctx.data_opt::<Resumed>().is_some() {
            // A parked subscription executed again: counted when it started.
            return Ok(result);
        }
        if let Some((kind, field)) = lock(&self.parsed).take() {
            telemetry::operation(match kind {
                OperationType::Query => "query",
                OperationType::Mutation => "mutation",
                OperationType::Subscription => "subscription",
            });
            // Validated: the field is one of the schema's, so the label's values are bounded.
            if let Some(field) = field {
                let live = LiveSubscription::start(field);
                // On a socket, the subscription outlives each of its executions.
                match ctx.data_opt::<Arc<Slot>>() {
                    Some(slot) => slot.keep_counted(live),
                    None => *lock(&self.live) = Some(live),
                }
            }
        }
        Ok(result)
    }
}
