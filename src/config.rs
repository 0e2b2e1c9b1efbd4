//! Typed configuration, read once at start-up from the environment and the command line.
//!
//! Every variable is declared once, in [`Settings`]: its name, its default, its
//! documentation and how its value is read. From that one declaration come the parsing,
//! `caregraph --help` and the reference in `docs/configuration.md`
//! ([`reference_markdown`]). The rest of the code reads the typed [`Config`] built from it;
//! tests build one with [`Config::from_lookup`] instead of touching the environment.

mod reference;
mod secret;
mod settings;

use std::{net::SocketAddr, str::FromStr, time::Duration};

pub use reference::{Variable, reference_markdown, variables};
pub use secret::Secret;
pub use settings::Settings;

/// The JWT secret used when `JWT_SECRET` is unset: fine on a laptop, refused in production.
pub const DEV_JWT_SECRET: &str = "caregraph-dev-secret-do-not-use-in-production";

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
    #[error(
        "Twilio is configured but PUBLIC_URL is unset and CAREGRAPH_ENV=production: Twilio's room callbacks could never reach this server; set PUBLIC_URL to its public https URL"
    )]
    PublicUrlUnsetWithTwilio,
    /// Some of a provider's variables are set and others are not.
    #[error("incomplete configuration: set {} too, or unset the others of its group", .0.join(" and "))]
    Incomplete(Vec<&'static str>),
    /// A value its declaration refuses, as [`Config::from_lookup`] reads it; the message
    /// names the variable.
    #[error("{0}")]
    Unreadable(String),
}

/// Which bus carries events to subscribers (see `EVENT_BUS_URL`).
#[derive(Debug, Clone)]
pub enum EventBusChoice {
    /// This instance's subscribers alone.
    InProcess,
    /// PostgreSQL's `NOTIFY` in the committing transactions, `LISTEN` on `listen_url`.
    Postgres { listen_url: Secret },
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Whether the server may run with development conveniences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

/// Parses `CAREGRAPH_ENV`, refusing anything but the two names so a typo cannot quietly
/// run production with development defaults.
impl FromStr for Environment {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "development" => Ok(Self::Development),
            "production" => Ok(Self::Production),
            other => Err(format!("expected development or production, got {other:?}")),
        }
    }
}

/// How log lines are written: for people reading a terminal, or one JSON object per line
/// for a log pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses `LOG_FORMAT`, refusing anything but the two names so a typo is not silently text.
impl FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        match value {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("expected text or json, got {other:?}")),
        }
    }
}

/// Everything the service is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the HTTP server listens.
    pub addr: SocketAddr,
    /// An SQLite file or a `postgres://…` URL, which may carry a password.
    pub database_url: Secret,
    /// Development or production.
    pub environment: Environment,
    /// The log filter, in tracing's `EnvFilter` syntax.
    pub log_filter: String,
    /// Text or JSON log lines.
    pub log_format: LogFormat,
    /// How long a stop waits for requests in flight, websockets and the scheduler.
    pub shutdown_grace: Duration,
    /// Whether `GET /metrics` serves Prometheus metrics.
    pub metrics_enabled: bool,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub sign_in: SignInConfig,
    pub graphql: GraphqlConfig,
    pub http: HttpConfig,
    pub websocket: WebSocketConfig,
    pub usage: UsageConfig,
    /// How many events of one topic (a user, a chat) a slow subscriber may fall behind
    /// before it is told it missed some and resynchronises from the database. Each live
    /// topic holds this many slots.
    pub bus_capacity: usize,
    /// `EVENT_BUS_URL` as set; [`Config::event_bus`] says what it selects.
    pub event_bus_url: Option<Secret>,
    pub reminders: ReminderConfig,
    /// How long "typing" shows without a refresh.
    pub typing_ttl: Duration,
    pub video: VideoConfig,
    pub delivery: DeliveryConfig,
    /// Where clients and providers reach this server; behind a proxy, the URL Twilio signs
    /// its callbacks with. Unset: `http://` and the address actually bound.
    pub public_url: Option<String>,
}

/// Video calls and their provider.
#[derive(Debug, Clone)]
pub struct VideoConfig {
    /// Set when all four Twilio credentials are; otherwise the dev provider is used.
    pub twilio: Option<TwilioConfig>,
    /// The server ends a call this long after it starts.
    pub max_duration: Duration,
    /// An unanswered request expires after this.
    pub request_ttl: Duration,
    /// How long an access token is valid.
    pub token_ttl: Duration,
    /// An accepted call nobody joins expires after this.
    pub join_timeout: Duration,
    /// The longest wait for one Twilio REST call.
    pub twilio_timeout: Duration,
    /// Signs the dev provider's tokens.
    pub dev_secret: Secret,
}

/// Twilio credentials, named as in the seed plan.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// The `sub` of access tokens.
    pub account_sid: String,
    /// Verifies the signatures of status callbacks.
    pub auth_token: Secret,
    /// The `iss` of access tokens and the REST user.
    pub api_key_sid: String,
    /// Signs access tokens and authenticates REST calls.
    pub api_key_secret: Secret,
    /// Where the Rooms REST API is (tests point it at a fake).
    pub api_base_url: String,
}

/// Push, email and the job workers that deliver them. A provider is `None` when its
/// variables are unset: that channel is off.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub fcm: Option<FcmConfig>,
    pub apns: Option<ApnsConfig>,
    pub web_push: Option<WebPushConfig>,
    pub email: Option<EmailConfig>,
    /// For each provider configured only in part, the variables still missing; start-up
    /// refuses while any are.
    pub incomplete: Vec<Vec<&'static str>>,
    /// The longest wait for one provider request.
    pub provider_timeout: Duration,
    /// How long a chat stays unread before it goes into an email digest.
    pub digest_delay: Duration,
    pub jobs: JobConfig,
}

/// Firebase Cloud Messaging (HTTP v1).
#[derive(Debug, Clone)]
pub struct FcmConfig {
    /// The service account's JSON key file.
    pub service_account_file: String,
    pub api_base_url: String,
}

/// Apple Push Notification service, with token-based authentication.
#[derive(Debug, Clone)]
pub struct ApnsConfig {
    /// The `.p8` auth key (PKCS#8 PEM, P-256).
    pub key_file: String,
    pub key_id: String,
    pub team_id: String,
    pub base_url: String,
    pub sandbox_base_url: String,
}

/// Web Push with VAPID.
#[derive(Debug, Clone)]
pub struct WebPushConfig {
    /// The application server's P-256 private scalar, base64url.
    pub private_key: Secret,
    /// A `mailto:` or `https:` contact, the `sub` of VAPID tokens.
    pub subject: String,
}

/// Email over SMTP.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// `smtp://` (STARTTLS) or `smtps://` (TLS), with credentials.
    pub smtp_url: Secret,
    /// The `From` of every email.
    pub from: String,
}

/// The job workers of one instance.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Jobs run at once.
    pub concurrency: usize,
    /// How long a claim holds before another worker may take the job over.
    pub lease: Duration,
    /// How often an idle worker looks for due jobs.
    pub poll: Duration,
}

/// Booking reminders and the scheduler that sends them.
#[derive(Debug, Clone)]
pub struct ReminderConfig {
    /// Remind both parties this long before an accepted booking starts. Offsets of 60
    /// minutes or less are "starting soon" reminders.
    pub offsets_minutes: Vec<i32>,
    /// How often the scheduler looks for due work.
    pub scheduler_interval: Duration,
}

/// Token issuing and verification.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Signs and verifies caregraph's own HS256 tokens.
    pub jwt_secret: Secret,
    /// The `iss` of issued tokens, required on verified ones.
    pub issuer: String,
    /// The `aud` of issued tokens, required on verified ones.
    pub audience: String,
    /// How long an issued token is valid.
    pub token_ttl: Duration,
    /// When set, Supabase Auth access tokens are accepted too.
    pub supabase_jwt_secret: Option<Secret>,
    /// How many users found in the database this instance remembers, so their requests skip
    /// the users table and they stay signed in while the database does not answer; it bounds
    /// the memory that takes.
    pub known_users_capacity: usize,
}

/// How long the service waits for the database before telling the client to retry.
///
/// Together they bound a request's wait for an absent database to about two acquisitions
/// (the user lookup, then the resolver's), so a client hears `SERVICE_UNAVAILABLE` within 3 s.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// The longest wait for a pooled connection, including opening a new one and pinging an
    /// idle one; also bounds a writer's wait for its turn in SQLite's write queue.
    pub acquire_timeout: Duration,
    /// PostgreSQL cancels a statement that runs longer (zero disables). Migrations run
    /// under it too.
    pub statement_timeout: Duration,
    /// How long a write waits for SQLite's write lock held by another process before it is
    /// refused.
    pub sqlite_busy_timeout: Duration,
}

/// Rate limits on `login` and `register`, so guessing passwords and mass sign-ups stay slow.
///
/// Each limit lets a burst through, then one attempt per period; a refused caller learns
/// when to retry.
#[derive(Debug, Clone)]
pub struct SignInConfig {
    /// Sign-in attempts on one email, from anywhere.
    pub per_account: RateConfig,
    /// Sign-in attempts from one client address, on any email.
    pub per_address: RateConfig,
    /// Registrations from one client address.
    pub registrations_per_address: RateConfig,
    /// Behind a trusted proxy, the header whose rightmost entry is the client's address
    /// (e.g. `X-Forwarded-For`). Unset, the peer address of the connection is used, since
    /// any client can write such a header.
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
    /// The cost a user may spend at once, and then per period. Every request costs 50
    /// before it is read, refused or not, and then its complexity as
    /// [`GraphqlConfig::max_complexity`] counts it. The burst must hold the costliest query.
    pub cost: RateConfig,
    /// New sockets a user may open at once, then one per period; past it the socket closes
    /// with 1013.
    pub socket_opens: RateConfig,
    /// Operations a user may start over their sockets at once, then one per period; past it
    /// the start is refused with `RATE_LIMITED` and the socket stays open.
    pub socket_operations: RateConfig,
}

/// Limits that keep one query from occupying the server, and what the schema shows of itself.
#[derive(Debug, Clone)]
pub struct GraphqlConfig {
    /// How deeply selections may nest.
    pub max_depth: usize,
    /// The most a query may cost, where a field costs 1 and a list multiplies its children
    /// by its page size or its longest length.
    pub max_complexity: usize,
    /// A longer document is refused while it is scanned.
    pub max_tokens: usize,
    /// Aliases in one document.
    pub max_aliases: usize,
    /// Directives in one document, in every position.
    pub max_directives: usize,
    /// A query or mutation still running after this is stopped (its transaction rolls back)
    /// and answered with `TIMEOUT`.
    pub timeout: Duration,
    /// A larger result is replaced by `RESPONSE_TOO_LARGE`.
    pub max_response_bytes: usize,
    /// Whether `__schema`/`__type` answer and errors suggest field names.
    pub introspection: bool,
    /// The explorer on `GET /graphql`.
    pub graphiql: bool,
}

/// Bounds on what one HTTP request may cost before GraphQL sees it, and who may call.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Larger bodies get 413 before they are read.
    pub max_body_bytes: usize,
    /// A connection that has not sent a request's headers within this is closed.
    pub header_timeout: Duration,
    /// A body not received within this gets 408.
    pub body_timeout: Duration,
    /// The origins browsers may call from, or `*`. `None` means any origin in development;
    /// production refuses to start without it.
    pub cors_allowed_origins: Option<Vec<String>>,
}

/// graphql-ws connection handling.
#[derive(Debug, Clone)]
pub struct WebSocketConfig {
    /// A socket silent this long after the upgrade is closed with 4408.
    pub init_timeout: Duration,
    /// The largest message or frame read from a client, from the first one on; a larger
    /// one closes the socket with 1009 before it is buffered.
    pub max_message_bytes: usize,
    /// Live operations on one socket; one more is refused with `TOO_MANY_SUBSCRIPTIONS`
    /// and the socket stays open.
    pub max_subscriptions_per_socket: usize,
    /// Sockets one user may hold on this instance; one more is closed with 1013 after
    /// `connection_init`, so clients retry with backoff.
    pub max_sockets_per_user: usize,
    /// The sustained rate of client messages on one socket.
    pub messages_per_second: u32,
    /// Client messages one socket may send at once, above the sustained rate; past it the
    /// socket is closed with 1008.
    pub message_burst: u32,
    /// How often the server pings (`ping` or `ka`), shorter than the idle timeouts of
    /// common proxies (30 to 60 s). Never zero.
    pub keepalive: Duration,
}

impl Config {
    /// Reads the configuration through `lookup` instead of the process environment, with
    /// the same declarations and rules as the server, so tests (and the rules themselves)
    /// do not depend on the machine's variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Settings::from_lookup(lookup)
            .map(Config::from)
            .map_err(|err| {
                // clap renders "error: <what>" and a hint about --help; keep the first part.
                let rendered = err.to_string();
                let first = rendered.lines().next().unwrap_or_default();
                ConfigError::Unreadable(first.trim_start_matches("error: ").to_owned())
            })
    }

    /// The event bus `EVENT_BUS_URL` selects, with `DATABASE_URL` (see its declaration).
    pub fn event_bus(&self) -> Result<EventBusChoice, ConfigError> {
        let on_postgres = is_postgres(self.database_url.expose());
        let invalid = |reason: &str| ConfigError::Invalid {
            name: "EVENT_BUS_URL",
            reason: reason.to_owned(),
        };
        match self.event_bus_url.as_ref().map(Secret::expose) {
            None | Some("") if on_postgres => Ok(EventBusChoice::Postgres {
                listen_url: self.database_url.clone(),
            }),
            None | Some("") | Some("in-process") => Ok(EventBusChoice::InProcess),
            Some(url) if is_postgres(url) => {
                if on_postgres {
                    Ok(EventBusChoice::Postgres {
                        listen_url: Secret::from(url),
                    })
                } else {
                    Err(invalid(
                        "a PostgreSQL bus needs DATABASE_URL on PostgreSQL: events leave with NOTIFY in the transactions that commit them",
                    ))
                }
            }
            Some(_) => Err(invalid("expected postgres://… or in-process")),
        }
    }

    /// Refuses settings that are unsafe for the chosen environment; warns loudly about the dev secret.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.event_bus()?;
        if usize::try_from(self.usage.cost.burst).unwrap_or(usize::MAX)
            < self.graphql.max_complexity
        {
            return Err(ConfigError::Invalid {
                name: "GRAPHQL_COST_BURST",
                reason: "must be at least GRAPHQL_MAX_COMPLEXITY, or the costliest query could never run".to_owned(),
            });
        }
        if let Some(missing) = self.delivery.incomplete.first() {
            return Err(ConfigError::Incomplete(missing.clone()));
        }
        if self.environment == Environment::Production && self.http.cors_allowed_origins.is_none() {
            return Err(ConfigError::CorsUnsetInProduction);
        }
        if self.video.twilio.is_some() && self.public_url.is_none() {
            if self.environment == Environment::Production {
                return Err(ConfigError::PublicUrlUnsetWithTwilio);
            }
            tracing::warn!(
                "Twilio is configured but PUBLIC_URL is unset: rooms get a status callback on the \
                 listening address, which Twilio cannot reach, so calls only start and end as \
                 clients and the server's limit say. Set PUBLIC_URL to the server's public URL; \
                 CAREGRAPH_ENV=production refuses to start like this."
            );
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
