//! From a bearer token to the [`Viewer`] a request acts for.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::{
    known_users::KnownUsers,
    token::{TokenIssuer, TokenService},
};
use crate::{
    clock::Clock,
    db::Writer,
    error::AppError,
    users::UserService,
    viewer::{Credentials, Viewer},
};

/// Turns bearer tokens into viewers, provisioning users that Supabase Auth vouches for.
#[derive(Clone)]
pub struct Authenticator {
    tokens: Arc<TokenService>,
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    /// Creates the accounts of users that an external issuer vouches for.
    writer: Writer,
    known: Arc<KnownUsers>,
}

impl Authenticator {
    /// An authenticator remembering up to `known_users` users it has found.
    pub fn new(
        tokens: Arc<TokenService>,
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        writer: Writer,
        known_users: usize,
    ) -> Self {
        Self {
            tokens,
            db,
            clock,
            writer,
            known: Arc::new(KnownUsers::new(known_users)),
        }
    }

    /// Verifies a token and loads its user. A refused token is `UNAUTHENTICATED`; a database
    /// that does not answer is `SERVICE_UNAVAILABLE`, unless the user was found before.
    pub async fn authenticate(&self, token: &str) -> Result<Viewer, AppError> {
        let now = self.clock.now();
        let verified = self.tokens.verify(token, now)?;
        let viewer = |role| Viewer {
            id: verified.user_id,
            role,
            expires_at: verified.expires_at,
        };
        if let Some(role) = self.known.role(verified.user_id, now) {
            return Ok(viewer(role));
        }
        let found = match UserService::find(&self.db, verified.user_id).await {
            Ok(found) => found,
            Err(err) => {
                return match self.known.stale_role(verified.user_id) {
                    Some(role) => {
                        tracing::warn!(error = %err, "user lookup failed: trusting the last one");
                        Ok(viewer(role))
                    }
                    None => Err(err),
                };
            }
        };
        let user = match found {
            Some(user) => user,
            None => match verified.issuer {
                TokenIssuer::Supabase { email, metadata } => {
                    let id = verified.user_id;
                    let provisioned = self
                        .writer
                        .run(async |write| {
                            UserService::provision_external(write, id, email, &metadata).await
                        })
                        .await;
                    match provisioned {
                        // Two first requests raced; the other one created the account.
                        Err(AppError::Conflict(_)) => {
                            UserService::find(&self.db, id).await?.ok_or_else(|| {
                                AppError::Unauthenticated(
                                    "token rejected: this email belongs to another account"
                                        .to_owned(),
                                )
                            })?
                        }
                        other => other?,
                    }
                }
                TokenIssuer::Caregraph => {
                    return Err(AppError::Unauthenticated(
                        "token rejected: the user no longer exists".to_owned(),
                    ));
                }
            },
        };
        self.known.remember(user.id, user.role, now);
        Ok(viewer(user.role))
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
    /// `{"Authorization": "Bearer <jwt>"}`, `{"headers": {"Authorization": "Bearer <jwt>"}}`
    /// (the style of clients that pass HTTP headers through) or `{"token": "<jwt>"}`. The
    /// `Authorization` key is matched in any case.
    pub async fn from_connection_init(
        &self,
        payload: &serde_json::Value,
    ) -> Result<Viewer, AppError> {
        let token = authorization(payload)
            .or_else(|| payload.get("headers").and_then(authorization))
            .and_then(bearer)
            .or_else(|| payload.get("token").and_then(|value| value.as_str()))
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
            Err(err @ (AppError::Unavailable(_) | AppError::Internal(_))) => {
                Credentials::Unverified(err)
            }
            Err(other) => Credentials::Rejected(format!("token rejected: {other}")),
        }
    }
}

/// The `Authorization` entry of a JSON object, its key in any case, as headers are.
fn authorization(object: &serde_json::Value) -> Option<&str> {
    object
        .as_object()?
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, value)| value.as_str())
}

fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}
