//! From a bearer token to the [`Viewer`] a request acts for.

use std::sync::Arc;

use async_graphql::Context;
use chrono::{DateTime, Utc};
use entity::enums::Role;
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::{
    known_users::KnownUsers,
    token::{TokenIssuer, TokenService},
};
use crate::{clock::Clock, error::AppError, users::UserService};

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
}

/// The viewer of the current request, or `UNAUTHENTICATED`.
pub fn viewer<'a>(ctx: &Context<'a>) -> Result<&'a Viewer, AppError> {
    match ctx.data_opt::<Credentials>() {
        Some(Credentials::Authenticated(viewer)) => Ok(viewer),
        Some(Credentials::Rejected(reason)) => Err(AppError::Unauthenticated(reason.clone())),
        _ => Err(AppError::Unauthenticated(
            "sign in first: send the header Authorization: Bearer <token>".to_owned(),
        )),
    }
}

/// Turns bearer tokens into viewers, provisioning users that Supabase Auth vouches for.
#[derive(Clone)]
pub struct Authenticator {
    tokens: Arc<TokenService>,
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    known: Arc<KnownUsers>,
}

impl Authenticator {
    pub fn new(tokens: Arc<TokenService>, db: DatabaseConnection, clock: Arc<dyn Clock>) -> Self {
        Self {
            tokens,
            db,
            clock,
            known: Arc::default(),
        }
    }

    /// Verifies a token and loads its user; every failure is `UNAUTHENTICATED`.
    pub async fn authenticate(&self, token: &str) -> Result<Viewer, AppError> {
        let now = self.clock.now();
        let verified = self.tokens.verify(token, now)?;
        if let Some(role) = self.known.role(verified.user_id) {
            return Ok(Viewer {
                id: verified.user_id,
                role,
                expires_at: verified.expires_at,
            });
        }
        let user = match UserService::find(&self.db, verified.user_id).await? {
            Some(user) => user,
            None => match verified.issuer {
                TokenIssuer::Supabase { email, metadata } => {
                    UserService::provision_external(
                        &self.db,
                        verified.user_id,
                        email,
                        &metadata,
                        now,
                    )
                    .await?
                }
                TokenIssuer::Caregraph => {
                    return Err(AppError::Unauthenticated(
                        "token rejected: the user no longer exists".to_owned(),
                    ));
                }
            },
        };
        self.known.remember(user.id, user.role);
        Ok(Viewer {
            id: user.id,
            role: user.role,
            expires_at: verified.expires_at,
        })
    }

    /// Credentials from an HTTP `Authorization` header value, if any.
    pub async fn from_header(&self, header: Option<&str>) -> Credentials {
        let Some(header) = header else {
            return Credentials::Anonymous;
        };
        match bearer(header) {
            Some(token) => self.credentials(token).await,
            None => Credentials::Rejected(
                "token rejected: expected the header Authorization: Bearer <token>".to_owned(),
            ),
        }
    }

    /// The viewer named by a graphql-ws `connection_init` payload:
    /// `{"Authorization": "Bearer <jwt>"}` or `{"token": "<jwt>"}`.
    pub async fn from_connection_init(
        &self,
        payload: &serde_json::Value,
    ) -> Result<Viewer, AppError> {
        let field = |name: &str| payload.get(name).and_then(|value| value.as_str());
        let token = field("Authorization")
            .or_else(|| field("authorization"))
            .and_then(bearer)
            .or_else(|| field("token"))
            .ok_or_else(|| {
                AppError::Unauthenticated(
                    "connection_init needs {\"Authorization\": \"Bearer <token>\"}".to_owned(),
                )
            })?;
        self.authenticate(token).await
    }

    async fn credentials(&self, token: &str) -> Credentials {
        match self.authenticate(token).await {
            Ok(viewer) => Credentials::Authenticated(viewer),
            Err(AppError::Unauthenticated(reason)) => Credentials::Rejected(reason),
            Err(other) => {
                tracing::error!(error = %other, "authentication failed");
                Credentials::Rejected("token rejected: authentication is unavailable".to_owned())
            }
        }
    }
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}
