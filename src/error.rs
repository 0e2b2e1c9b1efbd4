//! The one error type of the service and its mapping to GraphQL `extensions.code`.
//!
//! Resolvers return `Result<T, AppError>`; async-graphql keeps the `AppError`
//! as the error's source, and [`ErrorCodes`] turns it into the code and a safe
//! message in one place, for queries, mutations and subscription events alike.

use std::sync::Arc;

use async_graphql::{
    Response, ServerError, Value,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe},
    futures_util::stream::{BoxStream, StreamExt},
};
use sea_orm::{
    DbErr, RuntimeErr, SqlErr,
    sqlx::{self, postgres::PgDatabaseError, sqlite::SqliteError},
};

use crate::telemetry;

/// Everything that can go wrong in a request, by what the client should do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppError {
    /// No valid credentials: sign in (again).
    #[error("{0}")]
    Unauthenticated(String),
    /// Signed in, but this action is not the viewer's to take.
    #[error("{0}")]
    Forbidden(String),
    /// Does not exist, or exists but the viewer is not a party to it.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The input is malformed or breaks a rule; `field` names the offending input field.
    #[error("{message}")]
    BadUserInput {
        message: String,
        field: Option<&'static str>,
    },
    /// The object exists but its current state does not allow this action.
    #[error("{0}")]
    InvalidState(String),
    /// The action collides with something that already exists.
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; try again later, after `retry_after_seconds` when it is known.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_seconds: Option<u64>,
    },
    /// The database did not answer in time or refused for now: the same request may succeed
    /// if retried shortly. The detail goes to the log.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// An outside provider (Twilio Video) did not answer in time or refused for now; nothing
    /// was changed, and the same request may succeed if retried shortly. The detail goes to
    /// the log.
    #[error("provider unavailable: {0}")]
    ProviderUnavailable(String),
    /// The operation ran past its deadline and was stopped, its transaction rolled back:
    /// retrying may succeed (the database may have been slow for a moment).
    #[error(
        "the operation did not finish within {after_ms} ms and was stopped; nothing it changed was kept"
    )]
    TimedOut { after_ms: u128 },
    /// The request is larger or costlier than a configured limit allows; `code` names the
    /// limit (`QUERY_TOO_COMPLEX`, `TOO_MANY_ALIASES`, …) so a client can tell which one to
    /// stay under.
    #[error("{message}")]
    LimitExceeded { code: &'static str, message: String },
    /// A persisted query's hash that this instance does not know: send the query with it.
    /// The message and code are the ones Apollo's and urql's clients check for.
    #[error("PersistedQueryNotFound")]
    PersistedQueryNotFound,
    /// The operation may not be sent with this HTTP method (a mutation in a `GET`).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// A fault on our side; the detail goes to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// A `BAD_USER_INPUT` error about one input field.
    pub fn bad_input(field: &'static str, message: impl Into<String>) -> Self {
        AppError::BadUserInput {
            message: message.into(),
            field: Some(field),
        }
    }

    /// The stable code clients switch on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => "UNAUTHENTICATED",
            AppError::Forbidden(_) => "FORBIDDEN",
            AppError::NotFound(_) => "NOT_FOUND",
            AppError::BadUserInput { .. } => "BAD_USER_INPUT",
            AppError::InvalidState(_) => "INVALID_STATE",
            AppError::Conflict(_) => "CONFLICT",
            AppError::RateLimited { .. } => "RATE_LIMITED",
            AppError::Unavailable(_) => "SERVICE_UNAVAILABLE",
            AppError::ProviderUnavailable(_) => "PROVIDER_UNAVAILABLE",
            AppError::TimedOut { .. } => "TIMEOUT",
            AppError::LimitExceeded { code, .. } => code,
            AppError::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            AppError::MethodNotAllowed(_) => "METHOD_NOT_ALLOWED",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    /// The error as a GraphQL error object, for refusals made outside a resolver (a websocket
    /// `error` message), shaped like those the schema returns.
    pub fn to_graphql_error(&self) -> serde_json::Value {
        let mut extensions = serde_json::Map::new();
        extensions.insert("code".to_owned(), self.code().into());
        extensions.extend(
            self.retry_hints()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        );
        serde_json::json!({ "message": self.public_message(), "extensions": extensions })
    }

    /// What tells a client that retrying may succeed, and when: `retryable`, and
    /// `retryAfterSeconds` where the wait is known.
    fn retry_hints(&self) -> Vec<(&'static str, serde_json::Value)> {
        match self {
            AppError::RateLimited {
                retry_after_seconds: Some(seconds),
                ..
            } => vec![
                ("retryable", true.into()),
                ("retryAfterSeconds", (*seconds).into()),
            ],
            AppError::RateLimited { .. }
            | AppError::Unavailable(_)
            | AppError::ProviderUnavailable(_)
            | AppError::TimedOut { .. } => vec![("retryable", true.into())],
            _ => Vec::new(),
        }
    }

    /// The message a client may see: internal details are replaced by a generic sentence.
    fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "internal error".to_owned(),
            AppError::Unavailable(_) => {
                "the service is briefly unavailable; try again in a few seconds".to_owned()
            }
            AppError::ProviderUnavailable(_) => {
                "the video provider did not answer; nothing changed, try again in a few seconds"
                    .to_owned()
            }
            other => other.to_string(),
        }
    }

    /// A refusal by the limit that `code` names.
    pub fn limit(code: &'static str, message: impl Into<String>) -> Self {
        AppError::LimitExceeded {
            code,
            message: message.into(),
        }
    }

    /// The error as async-graphql carries it, with this error as its source so that
    /// [`ErrorCodes`] gives it its code like any other.
    pub fn into_server_error(self) -> ServerError {
        let mut error =
            async_graphql::Error::new_with_source(self).into_server_error(Default::default());
        error.locations.clear();
        error
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        if database_unavailable(&err) {
            return AppError::Unavailable(err.to_string());
        }
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                AppError::Conflict("that already exists".to_owned())
            }
            _ => AppError::Internal(err.to_string()),
        }
    }
}

/// Whether `err` says the database is absent, slow or busy rather than that the request is
/// wrong: the same request may succeed once the database answers again. Any failure to
/// get a connection counts (a peer that hangs up mid-handshake is a protocol error), except
/// a configuration that can never work.
fn database_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Conn(RuntimeErr::SqlxError(err)) => {
            !matches!(err.as_ref(), sqlx::Error::Configuration(_))
        }
        DbErr::Exec(RuntimeErr::SqlxError(err)) | DbErr::Query(RuntimeErr::SqlxError(err)) => {
            match err.as_ref() {
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(err) => err
                    .code()
                    .is_some_and(|code| unavailable_code(&code, err.as_ref())),
                _ => false,
            }
        }
        _ => false,
    }
}

/// PostgreSQL: statement timeout (57014), shutdowns (57P01 to 57P03), too many connections
/// (53300) and connection exceptions (class 08). SQLite: busy and locked, whatever the
/// extended code.
fn unavailable_code(code: &str, err: &dyn sqlx::error::DatabaseError) -> bool {
    if err.try_downcast_ref::<PgDatabaseError>().is_some() {
        matches!(code, "57014" | "57P01" | "57P02" | "57P03" | "53300") || code.starts_with("08")
    } else if err.try_downcast_ref::<SqliteError>().is_some() {
        code.parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
    } else {
        false
    }
}

/// SQLite's primary result codes for "another connection holds the lock".
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

/// The schema extension that gives every error its `extensions.code`.
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        with_codes(next.run(ctx).await)
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream).map(with_codes).boxed()
    }
}

fn with_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        coded(error);
        if let Some(Value::String(code)) = error.extensions.as_ref().and_then(|ext| ext.get("code"))
        {
            telemetry::error(code);
        }
    }
    response
}

fn coded(error: &mut ServerError) {
    let (code, field, hints, message) = match error.source::<AppError>() {
        Some(app_error) => {
            if let AppError::Internal(detail) = app_error {
                tracing::error!(%detail, "request failed");
            }
            if let AppError::Unavailable(detail) = app_error {
                tracing::warn!(%detail, "request refused: database unavailable");
            }
            if let AppError::ProviderUnavailable(detail) = app_error {
                tracing::warn!(%detail, "request refused: provider unavailable");
            }
            let field = match app_error {
                AppError::BadUserInput { field, .. } => *field,
                _ => None,
            };
            (
                app_error.code(),
                field,
                app_error.retry_hints(),
                Some(app_error.public_message()),
            )
        }
        None => match error.extensions.as_ref().and_then(|ext| ext.get("code")) {
            Some(_) => return,
            // Parse, validation, limit and input-coercion errors: the client sent something wrong.
            None => ("BAD_USER_INPUT", None, Vec::new(), None),
        },
    };
    if let Some(message) = message {
        error.message = message;
    }
    let extensions = error.extensions.get_or_insert_with(Default::default);
    extensions.set("code", Value::from(code));
    if let Some(field) = field {
        extensions.set("field", Value::from(field));
    }
    for (name, value) in hints {
        extensions.set(name, Value::from_json(value).unwrap_or(Value::Null));
    }
}
