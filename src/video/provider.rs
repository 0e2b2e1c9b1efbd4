//! The seam between call rules and a video service: rooms, access tokens, callbacks.

use async_graphql::futures_util::future::BoxFuture;
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde::Serialize;

use crate::error::AppError;

/// A provider's REST call failed, by what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// No answer in time, no connection, 429 or 5xx: the same call may succeed later.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the call; `code` is its own error code when it gave one.
    #[error("provider refused with {status}{}: {message}", code.map(|code| format!(" (code {code})")).unwrap_or_default())]
    Rejected {
        status: u16,
        code: Option<u32>,
        message: String,
    },
}

/// Twilio's "resource not found" and Video's "Room not found".
const NOT_FOUND_CODES: [u32; 2] = [20404, 53106];
/// Video's "Status is invalid": a room that can no longer be set to `completed` (it ended).
const ROOM_STATUS_INVALID: u32 = 53112;
/// Video's "Room exists": an in-progress room already has this unique name.
const ROOM_EXISTS: u32 = 53113;

impl ProviderError {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ProviderError::Unavailable(_))
    }

    /// Whether the answer says the room is already over or was never there (404, or a
    /// status change refused as invalid): worth confirming with a `GET`, never retrying.
    pub fn room_is_gone(&self) -> bool {
        match self {
            ProviderError::Rejected { status, code, .. } => {
                *status == 404
                    || code.is_some_and(|code| {
                        NOT_FOUND_CODES.contains(&code) || code == ROOM_STATUS_INVALID
                    })
            }
            ProviderError::Unavailable(_) => false,
        }
    }

    /// Whether creation was refused because a room of that name is already in progress (a
    /// create whose answer was lost, retried).
    pub fn room_exists(&self) -> bool {
        matches!(
            self,
            ProviderError::Rejected {
                code: Some(ROOM_EXISTS),
                ..
            }
        )
    }
}

/// What the provider says about a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomState {
    InProgress,
    /// Completed or failed: nobody can be in it.
    Over,
    /// The provider knows no such room.
    Missing,
}

/// The room a call asks the provider for, with the provider's own ceilings as a backstop
/// to the server's limit.
#[derive(Debug, Clone)]
pub struct RoomSpec<'a> {
    pub name: &'a str,
    /// The longest a participant may stay (the provider's minimum may be higher).
    pub max_participant_duration: std::time::Duration,
    /// A room nobody joined ends after this.
    pub unused_timeout: std::time::Duration,
}

/// A video service that hosts call rooms.
pub trait VideoProvider: Send + Sync + 'static {
    /// `twilio` or `dev`, as clients see it in `videoCallToken`.
    fn name(&self) -> &'static str;

    /// A token that carries `access` into its room.
    fn access_token(&self, access: &RoomAccess<'_>) -> Result<String, AppError>;

    /// Whether calls need a provider room before anyone may join (a token for a call without
    /// one is refused).
    fn manages_rooms(&self) -> bool;

    /// Creates the room; returns the provider's id for it (None when there is nothing to manage).
    fn create_room<'a>(
        &'a self,
        room: &'a RoomSpec<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>>;

    /// Ends the room for everyone in it.
    fn complete_room<'a>(&'a self, room_sid: &'a str) -> BoxFuture<'a, Result<(), ProviderError>>;

    /// Where the room is, by sid (or by unique name while it is in progress).
    fn room_status<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<RoomState, ProviderError>>;

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

    fn manages_rooms(&self) -> bool {
        false
    }

    fn create_room<'a>(
        &'a self,
        _room: &'a RoomSpec<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async { Ok(None) })
    }

    fn complete_room<'a>(&'a self, _room_sid: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    fn room_status<'a>(
        &'a self,
        _room: &'a str,
    ) -> BoxFuture<'a, Result<RoomState, ProviderError>> {
        Box::pin(async { Ok(RoomState::Missing) })
    }

    fn verify_callback(&self, _signature: &str, _params: &[(String, String)]) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::ProviderError;

    fn refused(status: u16, code: Option<u32>) -> ProviderError {
        ProviderError::Rejected {
            status,
            code,
            message: "refused".to_owned(),
        }
    }

    #[test]
    fn only_an_unavailable_provider_is_worth_retrying() {
        assert!(ProviderError::Unavailable("timed out".to_owned()).is_transient());
        assert!(!refused(401, Some(20003)).is_transient());
        assert!(!refused(400, Some(53112)).is_transient());
    }

    #[test]
    fn a_room_is_gone_on_404_or_twilios_room_codes() {
        assert!(refused(404, None).room_is_gone());
        assert!(refused(404, Some(20404)).room_is_gone());
        assert!(refused(400, Some(53106)).room_is_gone());
        assert!(refused(400, Some(53112)).room_is_gone());
        assert!(!refused(400, Some(53113)).room_is_gone());
        assert!(!refused(401, Some(20003)).room_is_gone());
        assert!(!ProviderError::Unavailable("503".to_owned()).room_is_gone());
        assert!(refused(400, Some(53113)).room_exists());
    }

    #[test]
    fn a_refusal_names_twilios_code() {
        assert_eq!(
            refused(400, Some(53112)).to_string(),
            "provider refused with 400 (code 53112): refused"
        );
        assert_eq!(
            refused(401, None).to_string(),
            "provider refused with 401: refused"
        );
    }
}
