//! The seam between call rules and a video service: rooms, access tokens, callbacks.

use async_graphql::futures_util::future::BoxFuture;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;

use crate::error::AppError;

/// A provider's REST call failed; the call rules log it and retry where they can.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider request failed: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("provider answered {status}: {body}")]
    Rejected { status: u16, body: String },
}

/// A video service that hosts call rooms.
pub trait VideoProvider: Send + Sync + 'static {
    /// `twilio` or `dev`, as clients see it in `videoCallToken`.
    fn name(&self) -> &'static str;

    /// A token that carries `access` into its room.
    fn access_token(&self, access: &RoomAccess<'_>) -> Result<String, AppError>;

    /// Creates the room; returns the provider's id for it (None when there is nothing to manage).
    fn create_room<'a>(
        &'a self,
        room: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>>;

    /// Ends the room for everyone in it.
    fn complete_room<'a>(&'a self, room_sid: &'a str) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Whether a status callback really comes from the provider. Providers without callbacks
    /// accept none.
    fn verify_callback(&self, signature: &str, params: &[(String, String)]) -> bool;
}

/// Who may join which room, and for how long: what an access token says.
pub struct RoomAccess<'a> {
    pub identity: &'a str,
    pub room: &'a str,
    /// When the token starts to be valid.
    pub now: DateTime<Utc>,
    pub ttl: Duration,
}

/// The key a provider signs its access tokens with.
pub(super) struct SigningKey<'a> {
    pub key_sid: &'a str,
    pub account_sid: &'a str,
    pub secret: &'a str,
}

/// The grants of a Twilio Video access token, which the dev provider imitates.
#[derive(Serialize)]
pub(super) struct AccessClaims<'a> {
    pub jti: String,
    pub iss: &'a str,
    pub sub: &'a str,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub grants: Grants<'a>,
}

#[derive(Serialize)]
pub(super) struct Grants<'a> {
    pub identity: &'a str,
    pub video: RoomGrant<'a>,
}

#[derive(Serialize)]
pub(super) struct RoomGrant<'a> {
    pub room: &'a str,
}

/// Signs Twilio-shaped access claims: HS256 with the `twilio-fpa;v=1` content type.
pub(super) fn sign_access_token(
    key: &SigningKey<'_>,
    access: &RoomAccess<'_>,
) -> Result<String, AppError> {
    let SigningKey {
        key_sid,
        account_sid,
        secret,
    } = *key;
    let RoomAccess {
        identity,
        room,
        now,
        ttl,
    } = *access;
    let iat = now.timestamp();
    let claims = AccessClaims {
        jti: format!("{key_sid}-{iat}"),
        iss: key_sid,
        sub: account_sid,
        iat,
        nbf: iat,
        exp: (now + ttl).timestamp(),
        grants: Grants {
            identity,
            video: RoomGrant { room },
        },
    };
    let mut header = Header::new(Algorithm::HS256);
    header.cty = Some("twilio-fpa;v=1".to_owned());
    encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|err| AppError::Internal(format!("signing a video token: {err}")))
}

/// Runs the whole call flow on a laptop: Twilio-shaped tokens signed with a local secret,
/// rooms that need no management, no callbacks.
pub struct DevProvider {
    secret: String,
}

impl DevProvider {
    pub fn new(secret: String) -> Self {
        Self { secret }
    }
}

impl VideoProvider for DevProvider {
    fn name(&self) -> &'static str {
        "dev"
    }

    fn access_token(&self, access: &RoomAccess<'_>) -> Result<String, AppError> {
        let key = SigningKey {
            key_sid: "SKdev",
            account_sid: "ACdev",
            secret: &self.secret,
        };
        sign_access_token(&key, access)
    }

    fn create_room<'a>(
        &'a self,
        _room: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }

    fn complete_room<'a>(&'a self, _room_sid: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn verify_callback(&self, _signature: &str, _params: &[(String, String)]) -> bool {
        false
    }
}
