//! Typed configuration, read once from the environment at start-up.
//!
//! Every setting has a default that runs on a fresh machine; tests build a
//! [`Config`] by hand instead of touching the environment.

mod secret;

use std::{net::SocketAddr, num::NonZeroU64, time::Duration};

pub use secret::Secret;

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
    #[error(
        "CORS_ALLOWED_ORIGINS is unset and CAREGRAPH_ENV=production: list the origins of your web apps (or `*` to allow any)"
    )]
    CorsUnsetInProduction,
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
    /// `DATABASE_URL`: an SQLite file by default, or `postgres://…`, which may carry a password.
    pub database_url: Secret,
    /// `CAREGRAPH_ENV`: `development` (default) or `production`.
    pub environment: Environment,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub sign_in: SignInConfig,
    pub graphql: GraphqlConfig,
    pub http: HttpConfig,
    pub websocket: WebSocketConfig,
    pub usage: UsageConfig,
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
    pub dev_secret: Secret,
}

/// Twilio credentials, named as in the seed plan.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// `TWILIO_ACCOUNT_SID`: the `sub` of access tokens.
    pub account_sid: String,
    /// `TWILIO_AUTH_TOKEN`: verifies the signatures of status callbacks.
    pub auth_token: Secret,
    /// `TWILIO_API_KEY_SID`: the `iss` of access tokens and the REST user.
    pub api_key_sid: String,
    /// `TWILIO_API_KEY_SECRET`: signs access tokens and authenticates REST calls.
    pub api_key_secret: Secret,
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
    pub jwt_secret: Secret,
    /// `JWT_ISSUER` (default `caregraph`): the `iss` of issued tokens, required on verified ones.
    pub issuer: String,
    /// `JWT_AUDIENCE` (default `caregraph`): the `aud` of issued tokens, required on verified ones.
    pub audience: String,
    /// `JWT_TTL_SECONDS` (default 86400): how long an issued token is valid.
    pub token_ttl: Duration,
    /// `SUPABASE_JWT_SECRET`: when set, Supabase Auth access tokens are accepted too.
    pub supabase_jwt_secret: Option<Secret>,
}

/// How long the service waits for the database before telling the client to retry.
///
/// Together they bound a request's wait for an absent database to about two acquisitions
/// (the user lookup, then the resolver's), so a client hears `SERVICE_UNAVAILABLE` within 3 s.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `DATABASE_ACQUIRE_TIMEOUT_MS` (default 1000): the longest wait for a pooled connection,
    /// including opening a new one and pinging an idle one; also bounds a writer's wait for
    /// its turn in SQLite's write queue.
    pub acquire_timeout: Duration,
    /// `DATABASE_STATEMENT_TIMEOUT_MS` (default 2000; 0 disables): PostgreSQL cancels a
    /// statement that runs longer. Migrations run under it too.
    pub statement_timeout: Duration,
    /// `SQLITE_BUSY_TIMEOUT_MS` (default 2000): how long a write waits for SQLite's write lock
    /// held by another process before it is refused.
    pub sqlite_busy_timeout: Duration,
}

/// Rate limits on `login` and `register`, so guessing passwords and mass sign-ups stay slow.
///
/// Each limit lets a burst through, then one attempt per period; a refused caller learns
/// when to retry.
#[derive(Debug, Clone)]
pub struct SignInConfig {
    /// `LOGIN_ACCOUNT_BURST` (default 5) and `LOGIN_ACCOUNT_PERIOD_MS` (default 20000):
    /// sign-in attempts on one email, from anywhere.
    pub per_account: RateConfig,
    /// `LOGIN_ADDRESS_BURST` (default 20) and `LOGIN_ADDRESS_PERIOD_MS` (default 3000):
    /// sign-in attempts from one client address, on any email.
    pub per_address: RateConfig,
    /// `REGISTER_ADDRESS_BURST` (default 5) and `REGISTER_ADDRESS_PERIOD_MS` (default 60000):
    /// registrations from one client address.
    pub registrations_per_address: RateConfig,
    /// `CLIENT_IP_HEADER` (unset by default): behind a trusted proxy, the header whose
    /// rightmost entry is the client's address (e.g. `X-Forwarded-For`). Unset, the peer
    /// address of the connection is used, since any client can write such a header.
    pub client_ip_header: Option<String>,
}

/// A burst of `burst` attempts, then one more each `period`.
#[derive(Debug, Clone, Copy)]
pub struct RateConfig {
    /// Attempts allowed at once from rest; a legitimate user's retries fit in it.
    pub burst: u32,
    /// Time for one spent attempt to come back; the steady rate once the burst is spent.
    pub period: Duration,
}

/// What one signed-in user may spend, across all their requests and sockets on this
/// instance, so that a few users cannot take the server's time from everyone else.
#[derive(Debug, Clone)]
pub struct UsageConfig {
    /// `GRAPHQL_COST_BURST` (default 5000) and `GRAPHQL_COST_PER_SECOND` (default 1000):
    /// the cost a user may spend at once, and then per second. Every request costs 50 before
    /// it is read, refused or not, and then its complexity as `GRAPHQL_MAX_COMPLEXITY` counts
    /// it. The burst must hold the costliest query.
    pub cost: RateConfig,
    /// `WS_OPEN_BURST` (default 20) and `WS_OPEN_PERIOD_MS` (default 1000): new sockets a user
    /// may open at once, then one per period; past it the socket closes with 1013.
    pub socket_opens: RateConfig,
    /// `WS_OPERATION_BURST` (default 20) and `WS_OPERATION_PERIOD_MS` (default 100):
    /// operations a user may start over their sockets at once, then one per period; past it
    /// the start is refused with `RATE_LIMITED` and the socket stays open.
    pub socket_operations: RateConfig,
}

/// Limits that keep one query from occupying the server, and what the schema shows of itself.
#[derive(Debug, Clone)]
pub struct GraphqlConfig {
    /// `GRAPHQL_MAX_DEPTH` (default 12): how deeply selections may nest.
    pub max_depth: usize,
    /// `GRAPHQL_MAX_COMPLEXITY` (default 5000): the most a query may cost, where a field
    /// costs 1 and a list multiplies its children by its page size or its longest length.
    pub max_complexity: usize,
    /// `GRAPHQL_MAX_TOKENS` (default 5000): a longer document is refused while it is scanned.
    pub max_tokens: usize,
    /// `GRAPHQL_MAX_ALIASES` (default 30): aliases in one document.
    pub max_aliases: usize,
    /// `GRAPHQL_MAX_DIRECTIVES` (default 50): directives in one document, in every position.
    pub max_directives: usize,
    /// `GRAPHQL_TIMEOUT_MS` (default 5000): a query or mutation still running after this is
    /// stopped (its transaction rolls back) and answered with `TIMEOUT`.
    pub timeout: Duration,
    /// `GRAPHQL_MAX_RESPONSE_BYTES` (default 4 MiB): a larger result is replaced by
    /// `RESPONSE_TOO_LARGE`.
    pub max_response_bytes: usize,
    /// `GRAPHQL_INTROSPECTION` (default on in development, off in production): whether
    /// `__schema`/`__type` answer and errors suggest field names.
    pub introspection: bool,
    /// `GRAPHIQL` (default on in development, off in production): the explorer on `GET /graphql`.
    pub graphiql: bool,
}

/// Bounds on what one HTTP request may cost before GraphQL sees it, and who may call.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// `HTTP_MAX_BODY_BYTES` (default 256 KiB): larger bodies get 413 before they are read.
    pub max_body_bytes: usize,
    /// `HTTP_HEADER_TIMEOUT_MS` (default 10000): a connection that has not sent a request's
    /// headers within this is closed.
    pub header_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT_MS` (default 10000): a body not received within this gets 408.
    pub body_timeout: Duration,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins browsers may call from, or `*`.
    /// Unset means any origin in development; production refuses to start without it.
    pub cors_allowed_origins: Option<Vec<String>>,
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
        let development = environment == Environment::Development;
        let addr = parsed(
            &var,
            "CAREGRAPH_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8000)),
        )?;
        Ok(Config {
            addr,
            database_url: var("DATABASE_URL")
                .unwrap_or_else(|| "sqlite://caregraph.sqlite?mode=rwc".to_owned())
                .into(),
            environment,
            database: DatabaseConfig {
                acquire_timeout: millis(&var, "DATABASE_ACQUIRE_TIMEOUT_MS", 1000)?,
                statement_timeout: millis(&var, "DATABASE_STATEMENT_TIMEOUT_MS", 2000)?,
                sqlite_busy_timeout: millis(&var, "SQLITE_BUSY_TIMEOUT_MS", 2000)?,
            },
            sign_in: SignInConfig {
                per_account: rate(
                    &var,
                    ("LOGIN_ACCOUNT_BURST", 5),
                    ("LOGIN_ACCOUNT_PERIOD_MS", 20_000),
                )?,
                per_address: rate(
                    &var,
                    ("LOGIN_ADDRESS_BURST", 20),
                    ("LOGIN_ADDRESS_PERIOD_MS", 3000),
                )?,
                registrations_per_address: rate(
                    &var,
                    ("REGISTER_ADDRESS_BURST", 5),
                    ("REGISTER_ADDRESS_PERIOD_MS", 60_000),
                )?,
                client_ip_header: var("CLIENT_IP_HEADER"),
            },
            auth: AuthConfig {
                jwt_secret: var("JWT_SECRET")
                    .unwrap_or_else(|| DEV_JWT_SECRET.to_owned())
                    .into(),
                issuer: var("JWT_ISSUER").unwrap_or_else(|| "caregraph".to_owned()),
                audience: var("JWT_AUDIENCE").unwrap_or_else(|| "caregraph".to_owned()),
                token_ttl: Duration::from_secs(parsed(&var, "JWT_TTL_SECONDS", 86_400)?),
                supabase_jwt_secret: var("SUPABASE_JWT_SECRET").map(Secret::from),
            },
            graphql: GraphqlConfig {
                max_depth: parsed(&var, "GRAPHQL_MAX_DEPTH", 12)?,
                max_complexity: parsed(&var, "GRAPHQL_MAX_COMPLEXITY", 5000)?,
                max_tokens: parsed(&var, "GRAPHQL_MAX_TOKENS", 5000)?,
                max_aliases: parsed(&var, "GRAPHQL_MAX_ALIASES", 30)?,
                max_directives: parsed(&var, "GRAPHQL_MAX_DIRECTIVES", 50)?,
                timeout: millis(&var, "GRAPHQL_TIMEOUT_MS", 5000)?,
                max_response_bytes: parsed(&var, "GRAPHQL_MAX_RESPONSE_BYTES", 4 << 20)?,
                introspection: parsed(&var, "GRAPHQL_INTROSPECTION", development)?,
                graphiql: parsed(&var, "GRAPHIQL", development)?,
            },
            http: HttpConfig {
                max_body_bytes: parsed(&var, "HTTP_MAX_BODY_BYTES", 256 << 10)?,
                header_timeout: millis(&var, "HTTP_HEADER_TIMEOUT_MS", 10_000)?,
                body_timeout: millis(&var, "HTTP_BODY_TIMEOUT_MS", 10_000)?,
                cors_allowed_origins: var("CORS_ALLOWED_ORIGINS").map(|raw| {
                    raw.split(',')
                        .map(|origin| origin.trim().to_owned())
                        .filter(|origin| !origin.is_empty())
                        .collect()
                }),
            },
            usage: UsageConfig {
                cost: per_second(
                    &var,
                    ("GRAPHQL_COST_BURST", 5_000),
                    ("GRAPHQL_COST_PER_SECOND", 1_000),
                )?,
                socket_opens: rate(&var, ("WS_OPEN_BURST", 20), ("WS_OPEN_PERIOD_MS", 1000))?,
                socket_operations: rate(
                    &var,
                    ("WS_OPERATION_BURST", 20),
                    ("WS_OPERATION_PERIOD_MS", 100),
                )?,
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
                        auth_token: auth_token.into(),
                        api_key_sid,
                        api_key_secret: api_key_secret.into(),
                        api_base_url: var("TWILIO_API_BASE_URL")
                            .unwrap_or_else(|| "https://video.twilio.com".to_owned()),
                    }),
                    _ => None,
                },
                max_duration: Duration::from_secs(parsed(&var, "VIDEO_MAX_DURATION_SECONDS", 15)?),
                request_ttl: Duration::from_secs(parsed(&var, "VIDEO_REQUEST_TTL_SECONDS", 600)?),
                token_ttl: Duration::from_secs(parsed(&var, "VIDEO_TOKEN_TTL_SECONDS", 300)?),
                dev_secret: var("VIDEO_DEV_SECRET")
                    .unwrap_or_else(|| "caregraph-dev-video-secret".to_owned())
                    .into(),
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
        if usize::try_from(self.usage.cost.burst).unwrap_or(usize::MAX)
            < self.graphql.max_complexity
        {
            return Err(ConfigError::Invalid {
                name: "GRAPHQL_COST_BURST",
                reason: "must be at least GRAPHQL_MAX_COMPLEXITY, or the costliest query could never run".to_owned(),
            });
        }
        if self.environment == Environment::Production && self.http.cors_allowed_origins.is_none() {
            return Err(ConfigError::CorsUnsetInProduction);
        }
        let secret = self.auth.jwt_secret.expose();
        let weak = secret == DEV_JWT_SECRET || secret.len() < 32;
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

fn millis(
    var: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    parsed(var, name, default).map(Duration::from_millis)
}

/// A rate given as a burst and a number per second, for allowances spent in large units;
/// both must be positive.
fn per_second(
    var: &impl Fn(&str) -> Option<String>,
    (burst_name, burst): (&'static str, u32),
    (rate_name, rate): (&'static str, u32),
) -> Result<RateConfig, ConfigError> {
    let per_second: u32 = parsed(var, rate_name, rate)?;
    let config = RateConfig {
        burst: parsed(var, burst_name, burst)?,
        period: Duration::from_secs(1)
            .checked_div(per_second)
            .unwrap_or_default(),
    };
    positive(config, burst_name, rate_name)
}

/// A rate from its burst and period variables; both must be positive.
fn rate(
    var: &impl Fn(&str) -> Option<String>,
    (burst_name, burst): (&'static str, u32),
    (period_name, period_ms): (&'static str, u64),
) -> Result<RateConfig, ConfigError> {
    let config = RateConfig {
        burst: parsed(var, burst_name, burst)?,
        period: millis(var, period_name, period_ms)?,
    };
    positive(config, burst_name, period_name)
}

/// Refuses a rate that could never admit anything, naming the two variables that set it.
fn positive(
    config: RateConfig,
    burst_name: &'static str,
    pace_name: &'static str,
) -> Result<RateConfig, ConfigError> {
    if config.burst == 0 || config.period.is_zero() {
        return Err(ConfigError::Invalid {
            name: burst_name,
            reason: format!("{burst_name} and {pace_name} must both be positive"),
        });
    }
    Ok(config)
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
