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
use sea_orm::{DbErr, SqlErr};

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
    /// Too many attempts; try again later.
    #[error("{0}")]
    RateLimited(String),
    /// One socket holds as many live subscriptions as it may: complete one first.
    #[error("at most {limit} subscriptions may be live on one socket")]
    TooManySubscriptions { limit: usize },
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
            AppError::RateLimited(_) => "RATE_LIMITED",
            AppError::TooManySubscriptions { .. } => "TOO_MANY_SUBSCRIPTIONS",
            AppError::Internal(_) => "INTERNAL",
        }
    }

    /// The error as a GraphQL error object, for refusals made outside a resolver (a websocket
    /// `error` message), shaped like those the schema returns.
    pub fn to_graphql_error(&self) -> serde_json::Value {
        serde_json::json!({
            "message": self.public_message(),
            "extensions": { "code": self.code() },
        })
    }

    /// The message a client may see: internal details are replaced by a generic sentence.
    fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }
}

impl From<DbErr> for AppError {
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                AppError::Conflict("that already exists".to_owned())
            }
            _ => AppError::Internal(err.to_string()),
        }
    }
}

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
    }
    response
}

fn coded(error: &mut ServerError) {
    let (code, field, message) = match error.source::<AppError>() {
        Some(app_error) => {
            if let AppError::Internal(detail) = app_error {
                tracing::error!(%detail, "request failed");
            }
            let field = match app_error {
                AppError::BadUserInput { field, .. } => *field,
                _ => None,
            };
            (app_error.code(), field, Some(app_error.public_message()))
        }
        None => match error.extensions.as_ref().and_then(|ext| ext.get("code")) {
            Some(_) => return,
            // Parse, validation, limit and input-coercion errors: the client sent something wrong.
            None => ("BAD_USER_INPUT", None, None),
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
}
