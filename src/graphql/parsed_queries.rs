//! A cache of parsed GraphQL documents, keyed by the query text.
//!
//! Clients send the same few operations over and over (Apollo and urql send a fixed
//! document per hook), and parsing one with async-graphql's pest parser was a tenth of the
//! server's CPU per `sendMessage`. A cached document has passed the parser's checks on
//! recursion depth and the query limits' checks on tokens, aliases and directives once, so
//! it is handed out without repeating them;
//! validation against the schema and the variables still runs on every request.

use std::sync::Arc;

use async_graphql::{
    ServerResult, Variables,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery},
    parser::types::ExecutableDocument,
};
use quick_cache::sync::Cache;

/// How many distinct documents are kept. When full, documents seen once make way first: a
/// client sending ever-new queries costs parses, never memory, and does not push out the
/// documents in steady use.
const MAX_DOCUMENTS: usize = 512;
/// Longer queries are parsed every time: they are rare, and each would pin its text.
const MAX_QUERY_BYTES: usize = 16 * 1024;

/// The schema extension that parses each distinct query text once per instance.
#[derive(Clone)]
pub struct ParsedQueries {
    documents: Arc<Cache<String, Arc<ExecutableDocument>>>,
}

impl Default for ParsedQueries {
    fn default() -> Self {
        Self {
            documents: Arc::new(Cache::new(MAX_DOCUMENTS)),
        }
    }
}

impl ExtensionFactory for ParsedQueries {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ParsedQueries {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > MAX_QUERY_BYTES {
            return next.run(ctx, query, variables).await;
        }
        if let Some(document) = self.documents.get(query) {
            return Ok(ExecutableDocument::clone(&document));
        }
        let document = next.run(ctx, query, variables).await?;
        self.documents
            .insert(query.to_owned(), Arc::new(document.clone()));
        Ok(document)
    }
}
