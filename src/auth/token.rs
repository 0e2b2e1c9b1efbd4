//! JWT issuing and verification: the only code that sees the signing secrets.

use chrono::{DateTime, TimeZone, Utc};
use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode, errors::ErrorKind,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{config::AuthConfig, error::AppError};

/// The audience and role Supabase Auth puts in a signed-in user's access token.
const SUPABASE_AUDIENCE: &str = "authenticated";

/// Where a verified token came from, which decides whether an unknown subject may be provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenIssuer {
    Caregraph,
    /// Supabase Auth; carries the claims needed to provision the user on first sight.
    Supabase {
        email: Option<String>,
        metadata: serde_json::Value,
    },
}

/// A token whose signature, issuer, audience and lifetime were all checked.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub issuer: TokenIssuer,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// Optional here so that a missing subject is reported as such, not as a malformed token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    exp: i64,
    iat: i64,
    /// Not before: absent on the tokens this service issues, honoured when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    iss: String,
    aud: String,
}

#[derive(Debug, Deserialize)]
struct SupabaseClaims {
    #[serde(default)]
    sub: Option<String>,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    role: Option<String>,
    email: Option<String>,
    #[serde(default)]
    user_metadata: serde_json::Value,
}

/// Issues caregraph tokens and verifies caregraph and (optionally) Supabase tokens.
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    supabase: Option<(DecodingKey, Validation)>,
    issuer: String,
    audience: String,
    ttl: chrono::Duration,
}

impl TokenService {
    /// Prepares the keys once; validation is strict: HS256 only, no leeway, every claim required.
    pub fn new(config: &AuthConfig) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        // Expiry is checked against the service clock in `verify`, not the library's.
        validation.validate_exp = false;
        validation.leeway = 0;
        let supabase = config.supabase_jwt_secret.as_ref().map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_audience(&[SUPABASE_AUDIENCE]);
            validation.set_required_spec_claims(&["exp", "aud", "sub"]);
            validation.validate_exp = false;
            validation.leeway = 0;
            (
                DecodingKey::from_secret(secret.expose().as_bytes()),
                validation,
            )
        });
        Self {
            encoding: EncodingKey::from_secret(config.jwt_secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(config.jwt_secret.expose().as_bytes()),
            validation,
            supabase,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl: chrono::Duration::from_std(config.token_ttl)
                .unwrap_or_else(|_| chrono::Duration::days(1)),
        }
    }

    /// Mints a token for `user_id`, valid from `now` for the configured lifetime.
    pub fn issue(
        &self,
        user_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), AppError> {
        let expires_at = now + self.ttl;
        let claims = Claims {
            sub: Some(user_id.to_string()),
            exp: expires_at.timestamp(),
            iat: now.timestamp(),
            nbf: None,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|err| AppError::Internal(format!("signing a token: {err}")))?;
        Ok((token, expires_at))
    }

    /// Checks a bearer token; every failure is `UNAUTHENTICATED` with the reason.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<VerifiedToken, AppError> {
        let own = decode::<Claims>(token, &self.decoding, &self.validation);
        let (sub, exp, issuer) = match (own, &self.supabase) {
            (Ok(data), _) => {
                not_early(Some(data.claims.iat), data.claims.nbf, now)?;
                (data.claims.sub, data.claims.exp, TokenIssuer::Caregraph)
            }
            // The signature is checked before any claim, so only a token signed with
            // another key can be a Supabase token.
            (Err(own_err), Some((key, validation)))
                if matches!(own_err.kind(), ErrorKind::InvalidSignature) =>
            {
                let data = decode::<SupabaseClaims>(token, key, validation)
                    .map_err(|err| rejection(&err))?;
                if data.claims.role.as_deref() != Some(SUPABASE_AUDIENCE) {
                    return Err(AppError::Unauthenticated(
                        "token rejected: Supabase token is not for a signed-in user".to_owned(),
                    ));
                }
                not_early(data.claims.iat, data.claims.nbf, now)?;
                let issuer = TokenIssuer::Supabase {
                    email: data.claims.email,
                    metadata: data.claims.user_metadata,
                };
                (data.claims.sub, data.claims.exp, issuer)
            }
            (Err(err), _) => return Err(rejection(&err)),
        };
        let expires_at = Utc
            .timestamp_opt(exp, 0)
            .single()
            .ok_or_else(|| AppError::Unauthenticated("token rejected: bad expiry".to_owned()))?;
        if expires_at <= now {
            return Err(AppError::Unauthenticated(
                "token rejected: expired".to_owned(),
            ));
        }
        let sub = sub.ok_or_else(|| {
            AppError::Unauthenticated("token rejected: missing claim sub".to_owned())
        })?;
        let user_id = Uuid::parse_str(&sub).map_err(|_| {
            AppError::Unauthenticated("token rejected: subject is not a user id".to_owned())
        })?;
        Ok(VerifiedToken {
            user_id,
            expires_at,
            issuer,
        })
    }
}

/// How far ahead of the service clock an issuer's clock may run: a token minted by a
/// Supabase instance whose clock is a few seconds fast is still usable at once.
const CLOCK_SKEW_SECONDS: i64 = 60;

/// Refuses a token used before its `nbf`, or issued (`iat`) later than now, beyond the skew.
/// The library checks neither against the service clock.
fn not_early(iat: Option<i64>, nbf: Option<i64>, now: DateTime<Utc>) -> Result<(), AppError> {
    let latest = now.timestamp().saturating_add(CLOCK_SKEW_SECONDS);
    if nbf.is_some_and(|nbf| nbf > latest) {
        return Err(AppError::Unauthenticated(
            "token rejected: not valid yet (nbf is in the future)".to_owned(),
        ));
    }
    if iat.is_some_and(|iat| iat > latest) {
        return Err(AppError::Unauthenticated(
            "token rejected: issued in the future (iat)".to_owned(),
        ));
    }
    Ok(())
}

fn rejection(err: &jsonwebtoken::errors::Error) -> AppError {
    let reason = match err.kind() {
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
        ErrorKind::InvalidAlgorithm => "algorithm not allowed".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("missing claim {claim}"),
        ErrorKind::InvalidClaimFormat(claim) => format!("malformed claim {claim}"),
        _ => "malformed token".to_owned(),
    };
    AppError::Unauthenticated(format!("token rejected: {reason}"))
}
