//! The unsubscribe link of every email: a signed token naming the user and the type, which
//! turns that type's email off without signing in (RFC 8058 one-click, and a page with a
//! button for people, so a mail scanner that follows links changes nothing).

use entity::enums::{Channel, NotificationType};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sea_orm::Iterable;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::content::type_name;
use crate::{config::Secret, db::Write, error::AppError, notifications::PreferenceService};

/// What an unsubscribe token says.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    /// The notification type, as GraphQL names it.
    kind: String,
    /// Keeps these tokens apart from sign-in tokens signed with the same secret.
    aud: String,
}

/// The audience of unsubscribe tokens; a sign-in token never carries it.
const AUDIENCE: &str = "caregraph-unsubscribe";

/// Signs and reads unsubscribe links.
pub struct UnsubscribeLinks {
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Where this server is reached: the links point at its `/unsubscribe`.
    public_url: String,
}

impl UnsubscribeLinks {
    /// Links signed with `secret` (the server's JWT secret) under `public_url`.
    pub fn new(secret: &Secret, public_url: &str) -> Self {
        UnsubscribeLinks {
            encoding: EncodingKey::from_secret(secret.expose().as_bytes()),
            decoding: DecodingKey::from_secret(secret.expose().as_bytes()),
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The link that turns `kind`'s email off for `user_id`.
    pub fn url(&self, user_id: Uuid, kind: NotificationType) -> Result<String, AppError> {
        let claims = Claims {
            sub: user_id,
            kind: type_name(kind),
            aud: AUDIENCE.to_owned(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
                .map_err(|err| AppError::Internal(format!("signing an unsubscribe link: {err}")))?;
        Ok(format!("{}/unsubscribe?token={token}", self.public_url))
    }

    /// Who and which type a token names; `BAD_USER_INPUT` for anything not signed by us.
    pub fn read(&self, token: &str) -> Result<(Uuid, NotificationType), AppError> {
        let refused = || AppError::bad_input("token", "this unsubscribe link is not valid");
        if token.len() > 1024 {
            return Err(refused());
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.required_spec_claims = ["sub", "aud"].into_iter().map(str::to_owned).collect();
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|_| refused())?
            .claims;
        let kind = NotificationType::iter()
            .find(|kind| type_name(*kind) == claims.kind)
            .ok_or_else(refused)?;
        Ok((claims.sub, kind))
    }

    /// Turns the type's email off, as the link's user asked.
    pub async fn apply(&self, write: &Write, token: &str) -> Result<NotificationType, AppError> {
        let (user_id, kind) = self.read(token)?;
        PreferenceService::update(write, user_id, &[(kind, Channel::Email, false)]).await?;
        Ok(kind)
    }
}
