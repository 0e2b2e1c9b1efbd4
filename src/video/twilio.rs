//! Twilio Video: access tokens, the Rooms REST API, and signed status callbacks.

use async_graphql::futures_util::future::BoxFuture;
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

use super::provider::{ProviderError, RoomAccess, SigningKey, VideoProvider, sign_access_token};
use crate::{config::TwilioConfig, error::AppError};

/// Twilio Video through its REST API (at a configurable base URL, so tests can stand in).
pub struct TwilioProvider {
    http: reqwest::Client,
    config: TwilioConfig,
    /// The public URL Twilio posts status callbacks to, and signs.
    status_callback: String,
}

#[derive(Deserialize)]
struct Room {
    sid: String,
}

impl TwilioProvider {
    pub fn new(config: TwilioConfig, status_callback: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            config,
            status_callback,
        }
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Result<Room, ProviderError> {
        let response = self
            .http
            .post(format!(
                "{}{path}",
                self.config.api_base_url.trim_end_matches('/')
            ))
            .basic_auth(
                &self.config.api_key_sid,
                Some(self.config.api_key_secret.expose()),
            )
            .form(form)
            .send()
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(ProviderError::Rejected {
                status: status.as_u16(),
                body: response.text().await.unwrap_or_default(),
            });
        }
        Ok(response.json().await?)
    }
}

impl VideoProvider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn access_token(&self, access: &RoomAccess<'_>) -> Result<String, AppError> {
        let key = SigningKey {
            key_sid: &self.config.api_key_sid,
            account_sid: &self.config.account_sid,
            secret: self.config.api_key_secret.expose(),
        };
        sign_access_token(&key, access)
    }

    fn create_room<'a>(
        &'a self,
        room: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            let created = self
                .post_form(
                    "/v1/Rooms",
                    &[
                        ("UniqueName", room),
                        ("StatusCallback", &self.status_callback),
                        ("StatusCallbackMethod", "POST"),
                    ],
                )
                .await?;
            Ok(Some(created.sid))
        })
    }

    fn complete_room<'a>(&'a self, room_sid: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.post_form(&format!("/v1/Rooms/{room_sid}"), &[("Status", "completed")])
                .await?;
            Ok(())
        })
    }

    fn verify_callback(&self, signature: &str, params: &[(String, String)]) -> bool {
        let Ok(given) = STANDARD.decode(signature.trim()) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(self.config.auth_token.expose().as_bytes())
        else {
            return false;
        };
        mac.update(signed_payload(&self.status_callback, params).as_bytes());
        mac.verify_slice(&given).is_ok()
    }
}

/// Twilio's request signature: base64 HMAC-SHA1, keyed with the auth token, of the URL
/// followed by every POST parameter's name and value, sorted by name.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(signed_payload(url, params).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

fn signed_payload(url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut payload = url.to_owned();
    for (name, value) in sorted {
        payload.push_str(name);
        payload.push_str(value);
    }
    payload
}
