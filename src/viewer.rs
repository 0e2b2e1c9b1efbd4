//! Who is asking: the signed-in user a request or socket acts for, what the transport learned
//! about the caller, and how a resolver reads them from the GraphQL context.
//!
//! It sits below the domains and below `auth`: `auth` produces these values from tokens (and
//! looks accounts up in `users`), the transports put them in the context, and every domain
//! reads them, so no domain depends on how a token is checked.

use std::net::IpAddr;

use async_graphql::Context;
use chrono::{DateTime, Utc};
use entity::enums::Role;
use uuid::Uuid;

use crate::error::AppError;

/// The signed-in user a request or socket acts for.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub id: Uuid,
    pub role: Role,
    /// When the token expires; a socket is closed at this instant.
    pub expires_at: DateTime<Utc>,
}

/// What the transport learned about the caller, put in the GraphQL context of every request.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// No token was sent: only `register` and `login` are open.
    Anonymous,
    Authenticated(Viewer),
    /// A token was sent and refused; the reason is returned by every resolver that needs a viewer.
    Rejected(String),
    /// A token was sent but could not be checked, because the database did not answer: every
    /// resolver that needs a viewer returns this error, which tells the client to retry
    /// rather than to sign in again.
    Unverified(AppError),
}

/// The viewer of the current request, or `UNAUTHENTICATED`.
pub fn viewer<'a>(ctx: &Context<'a>) -> Result<&'a Viewer, AppError> {
    match ctx.data_opt::<Credentials>() {
        Some(Credentials::Authenticated(viewer)) => Ok(viewer),
        Some(Credentials::Rejected(reason)) => Err(AppError::Unauthenticated(reason.clone())),
        Some(Credentials::Unverified(err)) => Err(err.clone()),
        _ => Err(AppError::Unauthenticated(
            "sign in first: send the header Authorization: Bearer <token>".to_owned(),
        )),
    }
}

/// The address a request came from, put in the GraphQL request data by the HTTP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);
