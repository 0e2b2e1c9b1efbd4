//! A cache of parsed GraphQL documents, keyed by the query text, consulted by the query
//! limits where a text is parsed (`limits`).
//!
//! Clients send the same few operations over and over (Apollo and urql send a fixed
//! document per hook), and parsing one with async-graphql's pest parser was a tenth of the
//! server's CPU per `sendMessage`. A cached document has passed the parser's checks on
//! recursion depth and the query limits' checks on tokens, aliases and directives once, so
//! it is handed out without repeating them;
//! validation against the schema and the variables still runs on every request.

use std::sync::Arc;

use async_graphql::parser::types::ExecutableDocument;
use quick_cache::sync::Cache;

/// How many distinct documents are kept. When full, documents seen once make way first: a
/// client sending ever-new queries costs parses, never memory, and does not push out the
/// documents in steady use.
const MAX_DOCUMENTS: usize = 512;
/// Longer queries are parsed every time: they are rare, and each would pin its text.
const MAX_QUERY_BYTES: usize = 16 * 1024;

/// The documents parsed from each distinct query text, once per instance.
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

impl ParsedQueries {
    /// The document parsed from `query` before, if it is kept.
    pub fn get(&self, query: &str) -> Option<ExecutableDocument> {
        if query.len() > MAX_QUERY_BYTES {
            return None;
        }
        self.documents
            .get(query)
            .map(|document| ExecutableDocument::clone(&document))
    }

    /// Keeps `document` as what `query` parses to; long texts are not kept.
    pub fn keep(&self, query: &str, document: &ExecutableDocument) {
        if query.len() <= MAX_QUERY_BYTES {
            self.documents
                .insert(query.to_owned(), Arc::new(document.clone()));
        }
    }
}
