//! The limits that keep one operation from occupying the server, checked before the work
//! they bound: tokens while the text is scanned, aliases, directives and introspection once
//! it is parsed, depth and cost once it is validated, then a deadline and a response size.
//!
//! Each operation is charged once to its viewer's allowance of cost per second
//! ([`UsageLimits`]): a flat amount, plus its complexity once validated, so that many cheap
//! or refused operations cannot add up to a costly user.
//!
//! The document checks run where the text is parsed, behind the cache of parsed documents
//! (`ParsedQueries`): a cached document has passed them, and is handed out without repeating
//! them or the parser. A request that may only read (a `GET`, [`read_only`]) is then held to
//! queries, whether its document was cached or not.
//!
//! Every refusal is an [`AppError::LimitExceeded`] whose code names the limit, so a client
//! can tell which one to stay under; async-graphql's own complexity and depth checks are
//! left off, since they answer with a bare sentence.

mod document;
pub mod read_only;
mod tokens;

use std::{io, sync::Arc};

use async_graphql::{
    Response, ServerError, ServerResult, ValidationResult, Value, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
    },
    parser::types::ExecutableDocument,
};

use super::parsed_queries::ParsedQueries;
use crate::{
    bus::parking::Resumed, config::GraphqlConfig, error::AppError, rate_limit::UsageLimits,
    viewer::Credentials,
};

/// The longest message a syntax error carries: the parser's own message quotes the
/// offending line, which may be the whole document.
const MAX_SYNTAX_MESSAGE_CHARS: usize = 160;

/// The schema extension that enforces [`GraphqlConfig`]'s limits, and charges each
/// operation's cost to its viewer's allowance.
#[derive(Clone)]
pub struct QueryLimits {
    config: Arc<GraphqlConfig>,
    usage: Arc<UsageLimits>,
    parsed: ParsedQueries,
}

impl QueryLimits {
    /// The limits of `config`, charging to `usage`.
    pub fn new(config: &GraphqlConfig, usage: Arc<UsageLimits>) -> Self {
        Self {
            config: Arc::new(config.clone()),
            usage,
            parsed: ParsedQueries::default(),
        }
    }

    /// Charges the viewer, if signed in, for one operation that may return `complexity`
    /// fields (0 for one refused before that is known).
    fn charge(&self, ctx: &ExtensionContext<'_>, complexity: usize) -> ServerResult<()> {
        if ctx.data_opt::<Resumed>().is_some() {
            // A parked subscription executed again was charged when it started.
            return Ok(());
        }
        match ctx.data_opt::<Credentials>() {
            Some(Credentials::Authenticated(viewer)) => self
                .usage
                .spend(viewer.id, complexity)
                .map_err(AppError::into_server_error),
            _ => Ok(()),
        }
    }

    /// A refused operation still costs its viewer; one whose allowance is spent is told so
    /// instead.
    fn refused(&self, ctx: &ExtensionContext<'_>, refusal: ServerError) -> ServerError {
        self.charge(ctx, 0).err().unwrap_or(refusal)
    }

    /// The check before parsing: the text's length in tokens.
    fn within_tokens(&self, query: &str) -> ServerResult<()> {
        let max_tokens = self.config.max_tokens;
        match tokens::count_within(query, max_tokens) {
            Some(_) => Ok(()),
            None => Err(refusal(
                "TOO_MANY_TOKENS",
                format!("a document may have at most {max_tokens} tokens"),
            )),
        }
    }

    /// The checks of what a parsed document spells out: aliases, directives, introspection.
    fn within_spelling(&self, document: &ExecutableDocument) -> ServerResult<()> {
        let config = &self.config;
        let spelled = document::spelled(document);
        at_most(
            spelled.aliases,
            config.max_aliases,
            "TOO_MANY_ALIASES",
            "aliases",
        )?;
        at_most(
            spelled.directives,
            config.max_directives,
            "TOO_MANY_DIRECTIVES",
            "directives",
        )?;
        if spelled.introspects && !config.introspection {
            return Err(refusal(
                "INTROSPECTION_DISABLED",
                "introspection is off on this server (GRAPHQL_INTROSPECTION)".to_owned(),
            ));
        }
        Ok(())
    }

    /// Depth and cost, once the document is known to fit the schema.
    fn within_cost(&self, result: &ValidationResult) -> ServerResult<()> {
        let config = &self.config;
        if result.depth > config.max_depth {
            return Err(refusal(
                "QUERY_TOO_DEEP",
                format!(
                    "this query nests {} levels deep; at most {} are allowed",
                    result.depth, config.max_depth
                ),
            ));
        }
        if result.complexity > config.max_complexity {
            return Err(refusal(
                "QUERY_TOO_COMPLEX",
                format!(
                    "this query could return {} fields; at most {} are allowed: ask for smaller \
                     pages or fewer nested lists",
                    result.complexity, config.max_complexity
                ),
            ));
        }
        Ok(())
    }
}

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for QueryLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = match self.parsed.get(query) {
            Some(document) => document,
            None => {
                let checked = async {
                    self.within_tokens(query)?;
                    let document = next
                        .run(ctx, query, variables)
                        .await
                        .map_err(without_quoted_source)?;
                    self.within_spelling(&document)?;
                    Ok(document)
                };
                let document = checked
                    .await
                    .map_err(|refusal| self.refused(ctx, refusal))?;
                self.parsed.keep(query, &document);
                document
            }
        };
        read_only::allows(ctx, &document).map_err(|refusal| self.refused(ctx, refusal))?;
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next
            .run(ctx)
            .await
            .map_err(|errors| match self.charge(ctx, 0) {
                Err(spent) => vec![spent],
                Ok(()) => errors,
            })?;
        self.within_cost(&result)
            .map_err(|refusal| vec![self.refused(ctx, refusal)])?;
        self.charge(ctx, result.complexity)
            .map_err(|spent| vec![spent])?;
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let limits = &self.config;
        let Ok(response) =
            tokio::time::timeout(limits.timeout, next.run(ctx, operation_name)).await
        else {
            let timed_out = AppError::TimedOut {
                after_ms: limits.timeout.as_millis(),
            };
            return Response::from_errors(vec![timed_out.into_server_error()]);
        };
        if fits(&response.data, limits.max_response_bytes) {
            return response;
        }
        Response::from_errors(vec![refusal(
            "RESPONSE_TOO_LARGE",
            format!(
                "the result is larger than {} bytes: ask for smaller pages or fewer fields",
                limits.max_response_bytes
            ),
        )])
    }
}

/// Refuses a document that spells out more than `max` of `what`.
fn at_most(count: usize, max: usize, code: &'static str, what: &str) -> ServerResult<()> {
    if count <= max {
        return Ok(());
    }
    Err(refusal(
        code,
        format!("this document has {count} {what}; at most {max} are allowed"),
    ))
}

fn refusal(code: &'static str, message: String) -> ServerError {
    AppError::limit(code, message).into_server_error()
}

/// The parser's last line ("expected selection", …) without the quoted document above it;
/// the error's location still says where.
fn without_quoted_source(mut error: ServerError) -> ServerError {
    let last_line = error.message.lines().last().unwrap_or_default();
    let summary = last_line.trim().trim_start_matches("= ");
    error.message = summary.chars().take(MAX_SYNTAX_MESSAGE_CHARS).collect();
    error
}

/// Whether `data` serialises to at most `max_bytes`, found without keeping the bytes and
/// stopping as soon as it does not.
fn fits(data: &Value, max_bytes: usize) -> bool {
    struct Budget(usize);
    impl io::Write for Budget {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0 = self
                .0
                .checked_sub(bytes.len())
                .ok_or_else(|| io::Error::other("over budget"))?;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Budget(max_bytes), data).is_ok()
}
