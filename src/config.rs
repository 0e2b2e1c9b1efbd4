//! Typed configuration, read once from the environment at start-up.
//!
//! Every setting has a default that runs on a fresh machine; tests build a
//! [`Config`] by hand instead of touching the environment.

use std::{net::SocketAddr, num::NonZeroU64, time::Duration};

/// The JWT secret used when `JWT_SECRET` is unset: fine on a laptop, refused in production.
pub const DEV_JWT_SECRET: &str = "caregraph-dev-secret-do-not-use-in-production";

/// 12 s between server pings: under the 30 to 60 s idle timeouts of common proxies. Never
/// zero, which would ping in a busy loop.
const DEFAULT_KEEPALIVE_MS: NonZeroU64 = NonZeroU64::new(12_000).unwrap();

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} is not valid: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error(
        "JWT_SECRET is unset (or the development default) and CAREGRAPH_ENV=production: set a secret of at least 32 bytes"
    )]
    DevSecretInProduction,
}

/// Whether the server may run with development conveniences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Everything the service is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens (`CAREGRAPH_ADDR`, default 127.0.0.1:8000).
    pub addr: SocketAddr,
    /// `DATABASE_URL`: an SQLite file by default, or `postgres://…`.
    pub database_url: String,
    /// `CAREGRAPH_ENV`: `development` (default) or `production`.
    pub environment: Environment,
    pub auth: AuthConfig,
    pub graphql: GraphqlConfig,
    pub websocket: WebSocketConfig,
    /// `EVENT_BUS_CAPACITY` (default 64): how many events of one topic (a user, a chat) a slow
    /// subscriber may fall behind before it is told it missed some and resynchronises from
    /// the database. Each live topic holds this many slots.
    pub bus_capacity: usize,
    pub reminders: ReminderConfig,
    /// `TYPING_TTL_MS` (default 5000): how long "typing" shows without a refresh.
    pub typing_ttl: Duration,
    pub video: VideoConfig,
    /// `PUBLIC_URL` (default `http://{CAREGRAPH_ADDR}`): where clients and providers reach this
    /// server; behind a proxy, the URL Twilio signs its callbacks with.
    pub public_url: String,
}

/// Video calls and their provider.
#[derive(Debug, Clone)]
pub struct VideoConfig {
    /// Set when all four `TWILIO_*` variables are; otherwise the dev provider is used.
    pub twilio: Option<TwilioConfig>,
    /// `VIDEO_MAX_DURATION_SECONDS` (default 15): the server ends a call this long after it starts.
    pub max_duration: Duration,
    /// `VIDEO_REQUEST_TTL_SECONDS` (default 600): an unanswered request expires after this.
    pub request_ttl: Duration,
    /// `VIDEO_TOKEN_TTL_SECONDS` (default 300): how long an access token is valid.
    pub token_ttl: Duration,
    /// `VIDEO_DEV_SECRET`: signs the dev provider's tokens.
    pub dev_secret: String,
}

/// Twilio credentials, named as in the seed plan.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// `TWILIO_ACCOUNT_SID`: the `sub` of access tokens.
    pub account_sid: String,
    /// `TWILIO_AUTH_TOKEN`: verifies the signatures of status callbacks.
    pub auth_token: String,
    /// `TWILIO_API_KEY_SID`: the `iss` of access tokens and the REST user.
    pub api_key_sid: String,
    /// `TWILIO_API_KEY_SECRET`: signs access tokens and authenticates REST calls.
    pub api_key_secret: String,
    /// `TWILIO_API_BASE_URL` (default `https://video.twilio.com`).
    pub api_base_url: String,
}

/// Booking reminders and the scheduler that sends them.
#[derive(Debug, Clone)]
pub struct ReminderConfig {
    /// `REMINDER_OFFSETS_MINUTES` (default `1440,60`): remind both parties this long before an
    /// accepted booking starts. Offsets of 60 minutes or less are "starting soon" reminders.
    pub offsets_minutes: Vec<i32>,
    /// `SCHEDULER_INTERVAL_MS` (default 5000): how often the scheduler looks for due work.
    pub scheduler_interval: Duration,
}

/// Token issuing and verification.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// `JWT_SECRET`: signs and verifies caregraph's own HS256 tokens.
    pub jwt_secret: String,
    /// `JWT_ISSUER` (default `caregraph`): the `iss` of issued tokens, required on verified ones.
    pub issuer: String,
    /// `JWT_AUDIENCE` (default `caregraph`): the `aud` of issued tokens, required on verified ones.
    pub audience: String,
    /// `JWT_TTL_SECONDS` (default 86400): how long an issued token is valid.
    pub token_ttl: Duration,
    /// `SUPABASE_JWT_SECRET`: when set, Supabase Auth access tokens are accepted too.
    pub supabase_jwt_secret: Option<String>,
}

/// Limits that keep one query from occupying the server.
#[derive(Debug, Clone)]
pub struct GraphqlConfig {
    /// `GRAPHQL_MAX_DEPTH` (default 12).
    pub max_depth: usize,
    /// `GRAPHQL_MAX_COMPLEXITY` (default 1000).
    pub max_complexity: usize,
}

/// graphql-ws connection handling.
#[derive(Debug, Clone)]
pub struct WebSocketConfig {
    /// `WS_INIT_TIMEOUT_MS` (default 5000): a socket silent this long after the upgrade is closed with 4408.
    pub init_timeout: Duration,
    /// `WS_MAX_MESSAGE_BYTES` (default 65536): the largest message or frame read from a client,
    /// from the first one on; a larger one closes the socket with 1009 before it is buffered.
    pub max_message_bytes: usize,
    /// `WS_MAX_SUBSCRIPTIONS_PER_SOCKET` (default 100): live operations on one socket; one more
    /// is refused with `TOO_MANY_SUBSCRIPTIONS` and the socket stays open.
    pub max_subscriptions_per_socket: usize,
    /// `WS_MAX_SOCKETS_PER_USER` (default 20): sockets one user may hold on this instance; one
    /// more is closed with 1013 after `connection_init`, so clients retry with backoff.
    pub max_sockets_per_user: usize,
    /// `WS_MESSAGES_PER_SECOND` (default 20): the sustained rate of client messages on one socket.
    pub messages_per_second: u32,
    /// `WS_MESSAGE_BURST` (default 200): client messages one socket may send at once, above the
    /// sustained rate; past it the socket is closed with 1008.
    pub message_burst: u32,
    /// `WS_KEEPALIVE_MS` (default 12000): how often the server pings (`ping` or `ka`), shorter than
    /// the idle timeouts of common proxies (30 to 60 s).
    pub keepalive: Duration,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so the parsing rules are testable without the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let var = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let environment = match var("CAREGRAPH_ENV").as_deref() {
            None | Some("development") => Environment::Development,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "CAREGRAPH_ENV",
                    reason: format!("expected development or production, got {other:?}"),
                });
            }
        };
        let addr = parsed(
            &var,
            "CAREGRAPH_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8000)),
        )?;
        Ok(Config {
            addr,
            database_url: var("DATABASE_URL")
                .unwrap_or_else(|| "sqlite://caregraph.sqlite?mode=rwc".to_owned()),
            environment,
            auth: AuthConfig {
                jwt_secret: var("JWT_SECRET").unwrap_or_else(|| DEV_JWT_SECRET.to_owned()),
                issuer: var("JWT_ISSUER").unwrap_or_else(|| "caregraph".to_owned()),
                audience: var("JWT_AUDIENCE").unwrap_or_else(|| "caregraph".to_owned()),
                token_ttl: Duration::from_secs(parsed(&var, "JWT_TTL_SECONDS", 86_400)?),
                supabase_jwt_secret: var("SUPABASE_JWT_SECRET"),
            },
            graphql: GraphqlConfig {
                max_depth: parsed(&var, "GRAPHQL_MAX_DEPTH", 12)?,
                max_complexity: parsed(&var, "GRAPHQL_MAX_COMPLEXITY", 1000)?,
            },
            websocket: WebSocketConfig {
                init_timeout: Duration::from_millis(parsed(&var, "WS_INIT_TIMEOUT_MS", 5000)?),
                max_message_bytes: parsed(&var, "WS_MAX_MESSAGE_BYTES", 64 * 1024)?,
                max_subscriptions_per_socket: parsed(&var, "WS_MAX_SUBSCRIPTIONS_PER_SOCKET", 100)?,
                max_sockets_per_user: parsed(&var, "WS_MAX_SOCKETS_PER_USER", 20)?,
                messages_per_second: parsed(&var, "WS_MESSAGES_PER_SECOND", 20)?,
                message_burst: parsed(&var, "WS_MESSAGE_BURST", 200)?,
                keepalive: Duration::from_millis(
                    parsed(&var, "WS_KEEPALIVE_MS", DEFAULT_KEEPALIVE_MS)?.get(),
                ),
            },
            bus_capacity: parsed(&var, "EVENT_BUS_CAPACITY", 64)?,
            typing_ttl: Duration::from_millis(parsed(&var, "TYPING_TTL_MS", 5000)?),
            video: VideoConfig {
                twilio: match (
                    var("TWILIO_ACCOUNT_SID"),
                    var("TWILIO_AUTH_TOKEN"),
                    var("TWILIO_API_KEY_SID"),
                    var("TWILIO_API_KEY_SECRET"),
                ) {
                    (
                        Some(account_sid),
                        Some(auth_token),
                        Some(api_key_sid),
                        Some(api_key_secret),
                    ) => Some(TwilioConfig {
                        account_sid,
                        auth_token,
                        api_key_sid,
                        api_key_secret,
                        api_base_url: var("TWILIO_API_BASE_URL")
                            .unwrap_or_else(|| "https://video.twilio.com".to_owned()),
                    }),
                    _ => None,
                },
                max_duration: Duration::from_secs(parsed(&var, "VIDEO_MAX_DURATION_SECONDS", 15)?),
                request_ttl: Duration::from_secs(parsed(&var, "VIDEO_REQUEST_TTL_SECONDS", 600)?),
                token_ttl: Duration::from_secs(parsed(&var, "VIDEO_TOKEN_TTL_SECONDS", 300)?),
                dev_secret: var("VIDEO_DEV_SECRET")
                    .unwrap_or_else(|| "caregraph-dev-video-secret".to_owned()),
            },
            public_url: var("PUBLIC_URL").unwrap_or_else(|| format!("http://{addr}")),
            reminders: ReminderConfig {
                offsets_minutes: offsets(var("REMINDER_OFFSETS_MINUTES").as_deref())?,
                scheduler_interval: Duration::from_millis(parsed(
                    &var,
                    "SCHEDULER_INTERVAL_MS",
                    5000,
                )?),
            },
        })
    }

    /// Refuses settings that are unsafe for the chosen environment; warns loudly about the dev secret.
    pub fn check(&self) -> Result<(), ConfigError> {
        let weak = self.auth.jwt_secret == DEV_JWT_SECRET || self.auth.jwt_secret.len() < 32;
        match (weak, self.environment) {
            (true, Environment::Production) => Err(ConfigError::DevSecretInProduction),
            (true, Environment::Development) => {
                tracing::warn!(
                    "JWT_SECRET is unset or shorter than 32 bytes: anyone can mint tokens for this server. \
                     Set JWT_SECRET before exposing it; CAREGRAPH_ENV=production refuses to start like this."
                );
                Ok(())
            }
            (false, _) => Ok(()),
        }
    }
}

fn offsets(raw: Option<&str>) -> Result<Vec<i32>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(vec![1440, 60]);
    };
    raw.split(',')
        .map(|part| match part.trim().parse::<i32>() {
            Ok(minutes) if minutes > 0 => Ok(minutes),
            _ => Err(ConfigError::Invalid {
                name: "REMINDER_OFFSETS_MINUTES",
                reason: format!("{part:?} is not a positive number of minutes"),
            }),
        })
        .collect()
}

fn parsed<T: std::str::FromStr>(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    match var(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|err: T::Err| ConfigError::Invalid {
                name,
                reason: err.to_string(),
            }),
    }
}
