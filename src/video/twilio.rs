//! Twilio Video: access tokens, the Rooms REST API, and signed status callbacks.

use async_graphql::futures_util::future::BoxFuture;
use base64::{Engine, engine::general_purpose::STANDARD};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha1::Sha1;

use std::time::Duration;

use super::provider::{
    ProviderError, RoomAccess, RoomSpec, RoomState, SigningKey, VideoProvider, sign_access_token,
};
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
    #[serde(default)]
    status: Option<String>,
}

/// Twilio's error body: `{"code": 53112, "message": "…", "status": 400, "more_info": "…"}`.
#[derive(Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// The most of a response body read (an error body is a few hundred bytes, a room ~2 KB).
const MAX_BODY: usize = 64 * 1024;
/// Twilio's bounds for `MaxParticipantDuration` (seconds) and the room timeouts (minutes).
const MIN_PARTICIPANT_SECONDS: u64 = 600;
const MAX_PARTICIPANT_SECONDS: u64 = 86_400;
const MAX_TIMEOUT_MINUTES: u64 = 60;

impl TwilioProvider {
    /// Every REST call connects within `timeout` and is answered, body included, within it.
    pub fn new(
        config: TwilioConfig,
        status_callback: String,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()?;
        Ok(Self {
            http,
            config,
            status_callback,
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Room, ProviderError> {
        let url = format!("{}{path}", self.config.api_base_url.trim_end_matches('/'));
        let mut request = self.http.request(method, url).basic_auth(
            &self.config.api_key_sid,
            Some(self.config.api_key_secret.expose()),
        );
        if !form.is_empty() {
            request = request.form(form);
        }
        let mut response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unavailable)? {
            body.extend_from_slice(&chunk[..chunk.len().min(MAX_BODY - body.len())]);
            if body.len() >= MAX_BODY {
                break;
            }
        }
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|err| ProviderError::Rejected {
                status: status.as_u16(),
                code: None,
                message: format!("unreadable room: {err}"),
            });
        }
        let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let message = parsed
            .as_ref()
            .and_then(|body| body.message.clone())
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(ProviderError::Unavailable(format!("{status}: {message}")));
        }
        Err(ProviderError::Rejected {
            status: status.as_u16(),
            code: parsed.and_then(|body| body.code),
            message,
        })
    }
}

/// A request that got no answer (no connection, a timeout, a broken response).
fn unavailable(err: reqwest::Error) -> ProviderError {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else {
        "failed"
    };
    ProviderError::Unavailable(format!("request {what}: {err}"))
}

/// Whole minutes, at least one, at most Twilio's bound.
fn minutes(duration: Duration) -> String {
    duration
        .as_secs()
        .div_ceil(60)
        .clamp(1, MAX_TIMEOUT_MINUTES)
        .to_string()
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

    fn manages_rooms(&self) -> bool {
        true
    }

    fn create_room<'a>(
        &'a self,
        room: &'a RoomSpec<'a>,
    ) -> BoxFuture<'a, Result<Option<String>, ProviderError>> {
        Box::pin(async move {
            let max_participant = room
                .max_participant_duration
                .as_secs()
                .clamp(MIN_PARTICIPANT_SECONDS, MAX_PARTICIPANT_SECONDS)
                .to_string();
            let unused = minutes(room.unused_timeout);
            let created = self
                .call(
                    reqwest::Method::POST,
                    "/v1/Rooms",
                    &[
                        ("UniqueName", room.name),
                        ("StatusCallback", &self.status_callback),
                        ("StatusCallbackMethod", "POST"),
                        ("MaxParticipantDuration", &max_participant),
                        ("EmptyRoomTimeout", "1"),
                        ("UnusedRoomTimeout", &unused),
                    ],
                )
                .await;
            match created {
                Ok(created) => Ok(Some(created.sid)),
                // A create whose answer was lost made the room: take it over.
                Err(err) if err.room_exists() => {
                    let existing = self
                        .call(
                            reqwest::Method::GET,
                            &format!("/v1/Rooms/{}", room.name),
                            &[],
                        )
                        .await?;
                    Ok(Some(existing.sid))
                }
                Err(err) => Err(err),
            }
        })
    }

    fn complete_room<'a>(&'a self, room_sid: &'a str) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            self.call(
                reqwest::Method::POST,
                &format!("/v1/Rooms/{room_sid}"),
                &[("Status", "completed")],
            )
            .await?;
            Ok(())
        })
    }

    fn room_status<'a>(&'a self, room: &'a str) -> BoxFuture<'a, Result<RoomState, ProviderError>> {
        Box::pin(async move {
            match self
                .call(reqwest::Method::GET, &format!("/v1/Rooms/{room}"), &[])
                .await
            {
                Ok(found) => Ok(match found.status.as_deref() {
                    Some("completed" | "failed") => RoomState::Over,
                    _ => RoomState::InProgress,
                }),
                Err(ProviderError::Rejected { status: 404, .. }) => Ok(RoomState::Missing),
                Err(err) => Err(err),
            }
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
