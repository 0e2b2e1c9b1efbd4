//! Which operation of a document a request runs, as the GraphQL spec picks it.

use async_graphql::{
    Positioned,
    parser::types::{ExecutableDocument, OperationDefinition},
};

/// The operation named `name`, or without a name the document's only operation; `None` when
/// there is no such operation, which validation then refuses.
pub fn selected_operation<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a Positioned<OperationDefinition>> {
    let mut operations = document.operations.iter();
    let (_, operation) = match name {
        Some(name) => operations.find(|(operation, _)| operation.is_some_and(|op| op == name)),
        None => operations.next().filter(|_| operations.next().is_none()),
    }?;
    Some(operation)
}
