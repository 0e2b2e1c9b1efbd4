//! The limits that keep one operation from occupying the server, checked before the work
//! they bound: tokens while the text is scanned, aliases, directives and introspection once
//! it is parsed, depth and cost once it is validated, then a deadline and a response size.
//!
//! Each operation is charged to its viewer's allowance of cost per second ([`UsageLimits`]):
//! a fixed amount before it is scanned, then its complexity once validated, so that many
//! cheap or refused operations cannot add up to a costly user.
//!
//! Every refusal is an [`AppError::LimitExceeded`] whose code names the limit, so a client
//! can tell which one to stay under; async-graphql's own complexity and depth checks are
//! left off, since they answer with a bare sentence.

mod document;
mod tokens;

use std::{io, sync::Arc, time::Duration};

use async_graphql::{
    Response, ServerError, ServerResult, ValidationResult, Value, Variables,
    extensions::{
        Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
    },
    parser::types::ExecutableDocument,
};

use crate::{auth::Credentials, config::GraphqlConfig, error::AppError, rate_limit::UsageLimits};

/// The longest message a syntax error carries: the parser's own message quotes the
/// offending line, which may be the whole document.
const MAX_SYNTAX_MESSAGE_CHARS: usize = 160;

/// The limits of one schema, shared by every operation it runs.
#[derive(Debug, Clone)]
struct Limits {
    max_tokens: usize,
    max_aliases: usize,
    max_directives: usize,
    max_depth: usize,
    max_complexity: usize,
    timeout: Duration,
    max_response_bytes: usize,
    introspection: bool,
}

/// The schema extension that enforces [`GraphqlConfig`]'s limits, and charges each
/// operation's cost to its viewer's allowance.
#[derive(Clone)]
pub struct QueryLimits(Arc<Limits>, Arc<UsageLimits>);

impl QueryLimits {
    /// Copies the limits out of the configuration once, for every operation to share.
    pub fn new(config: &GraphqlConfig, usage: Arc<UsageLimits>) -> Self {
        Self(
            Arc::new(Limits {
                max_tokens: config.max_tokens,
                max_aliases: config.max_aliases,
                max_directives: config.max_directives,
                max_depth: config.max_depth,
                max_complexity: config.max_complexity,
                timeout: config.timeout,
                max_response_bytes: config.max_response_bytes,
                introspection: config.introspection,
            }),
            usage,
        )
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
        let limits = &self.0;
        if let Some(Credentials::Authenticated(viewer)) = ctx.data_opt::<Credentials>() {
            self.1
                .start_request(viewer.id)
                .map_err(AppError::into_server_error)?;
        }
        if tokens::count_within(query, limits.max_tokens).is_none() {
            return Err(refusal(
                "TOO_MANY_TOKENS",
                format!("a document may have at most {} tokens", limits.max_tokens),
            ));
        }
        let document = next
            .run(ctx, query, variables)
            .await
            .map_err(without_quoted_source)?;
        let spelled = document::spelled(&document);
        at_most(
            spelled.aliases,
            limits.max_aliases,
            "TOO_MANY_ALIASES",
            "aliases",
        )?;
        at_most(
            spelled.directives,
            limits.max_directives,
            "TOO_MANY_DIRECTIVES",
            "directives",
        )?;
        if spelled.introspects && !limits.introspection {
            return Err(refusal(
                "INTROSPECTION_DISABLED",
                "introspection is off on this server (GRAPHQL_INTROSPECTION)".to_owned(),
            ));
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let limits = &self.0;
        let result = next.run(ctx).await?;
        if result.depth > limits.max_depth {
            return Err(vec![refusal(
                "QUERY_TOO_DEEP",
                format!(
                    "this query nests {} levels deep; at most {} are allowed",
                    result.depth, limits.max_depth
                ),
            )]);
        }
        if result.complexity > limits.max_complexity {
            return Err(vec![refusal(
                "QUERY_TOO_COMPLEX",
                format!(
                    "this query could return {} fields; at most {} are allowed: ask for smaller \
                     pages or fewer nested lists",
                    result.complexity, limits.max_complexity
                ),
            )]);
        }
        if let Some(Credentials::Authenticated(viewer)) = ctx.data_opt::<Credentials>() {
            self.1
                .spend(viewer.id, result.complexity)
                .map_err(|spent| vec![spent.into_server_error()])?;
        }
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let limits = &self.0;
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
