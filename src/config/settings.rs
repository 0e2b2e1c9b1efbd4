//! The declaration of every variable: name, command-line option, default, documentation
//! and how its text becomes a value, in one place each.
//!
//! A field is named after its variable (`event_bus_capacity` is `EVENT_BUS_CAPACITY` and
//! `--event-bus-capacity`), so `#[arg(long, env)]` spells the name once; `--addr`, `--env`
//! and `--log` keep short options for the three variables with a prefix. Its doc comment
//! is what `--help` and `docs/configuration.md` show.

use std::{fmt::Display, net::SocketAddr, str::FromStr, time::Duration};

use clap::{Args, Command, FromArgMatches};

use super::{
    ApnsConfig, AuthConfig, Config, DEV_JWT_SECRET, DatabaseConfig, DeliveryConfig, EmailConfig,
    Environment, FcmConfig, GraphqlConfig, HttpConfig, JobConfig, LogFormat, RateConfig,
    ReminderConfig, Secret, SignInConfig, TwilioConfig, UsageConfig, VideoConfig, WebPushConfig,
    WebSocketConfig,
};

/// The video secret used when `VIDEO_DEV_SECRET` is unset; the dev provider only runs locally.
const DEV_VIDEO_SECRET: &str = "caregraph-dev-video-secret";

/// Every variable the server reads, as clap options that fall back to the environment.
///
/// Flatten it into the command line and read it through [`Settings::configure`]; turn it
/// into the [`Config`] the rest of the code uses with `Config::from`.
#[derive(Args)]
pub struct Settings {
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    database: Database,
    #[command(flatten)]
    auth: Auth,
    #[command(flatten)]
    sign_in: SignIn,
    #[command(flatten)]
    http: Http,
    #[command(flatten)]
    graphql: Graphql,
    #[command(flatten)]
    usage: Usage,
    #[command(flatten)]
    websocket: WebSocket,
    #[command(flatten)]
    realtime: Realtime,
    #[command(flatten)]
    reminders: Reminders,
    #[command(flatten)]
    video: Video,
    #[command(flatten)]
    delivery: Delivery,
}

#[derive(Args)]
#[command(next_help_heading = "Server")]
struct Server {
    /// Address the HTTP server listens on.
    #[arg(long = "addr", env, default_value = "127.0.0.1:8000", value_parser = parsed::<SocketAddr>)]
    caregraph_addr: SocketAddr,
    /// `development` or `production`; any other value is an error.
    ///
    /// Production refuses to start without `CORS_ALLOWED_ORIGINS` and a strong `JWT_SECRET`,
    /// and turns introspection and GraphiQL off unless they are set.
    #[arg(long = "env", env, default_value = "development", value_parser = parsed::<Environment>)]
    caregraph_env: Environment,
    /// Where clients and Twilio reach this server. Unset: `http://` and the address actually
    /// bound.
    ///
    /// Rooms are created with the status callback `PUBLIC_URL` + `/webhooks/twilio/video`,
    /// and Twilio signs its callbacks with that URL, so behind a proxy or tunnel set it to
    /// the public URL. A trailing `/` is ignored. With Twilio configured and this unset,
    /// `CAREGRAPH_ENV=production` refuses to start and development logs a loud warning: no
    /// callback could reach the server.
    #[arg(long, env)]
    public_url: Option<String>,
    /// Log filter, in tracing's `EnvFilter` syntax.
    #[arg(long = "log", env, default_value = "info,sqlx=warn,sea_orm=warn")]
    rust_log: String,
    /// `text` (for a terminal) or `json` (one object per line, with `timestamp`, `level`,
    /// `target`, `fields` and the current spans, for a log pipeline).
    #[arg(long, env, default_value = "text", value_parser = parsed::<LogFormat>)]
    log_format: LogFormat,
    /// On SIGTERM or SIGINT, how long requests in flight, closing websockets and the
    /// jobs under way may take before the process exits.
    ///
    /// The listener closes at once and every websocket is closed with 1001 (going away), so
    /// clients reconnect to another instance; `/ready` answers 503 meanwhile.
    #[arg(long, env, default_value = "10000", value_parser = millis)]
    shutdown_grace_ms: Duration,
    /// `true` or `false`: Prometheus metrics on `GET /metrics`.
    ///
    /// The route is on the same port as the API and has no authentication: keep it off the
    /// public internet (the proxy or load balancer should not route `/metrics`), or set
    /// `false`.
    #[arg(long, env, default_value = "true", value_parser = parsed::<bool>, action = clap::ArgAction::Set)]
    metrics_enabled: bool,
}

#[derive(Args)]
#[command(next_help_heading = "Database")]
struct Database {
    /// `sqlite://…` or `postgres://…`; migrations run at every start.
    ///
    /// SQLite runs in WAL mode with a pool of 8 connections, plus one for the message
    /// writer (`sqlite::memory:` works too, on the pool alone, and keeps nothing); a
    /// background task checkpoints the WAL every 200 ms, so commits never do, and starts the
    /// WAL over once it passes 32 MiB. PostgreSQL gets a pool of 32 connections, with
    /// `TCP_NODELAY` and `plan_cache_mode = force_custom_plan`, so each run of a prepared
    /// statement is planned for its own parameters. The database must exist; migrations
    /// create the tables.
    #[arg(long, env, default_value = "sqlite://caregraph.sqlite?mode=rwc")]
    database_url: Secret,
    /// The longest wait for a pooled connection, including opening one and checking an idle
    /// one; also a SQLite writer's wait for its turn.
    #[arg(long, env, default_value = "1000", value_parser = millis)]
    database_acquire_timeout_ms: Duration,
    /// PostgreSQL cancels a statement that runs longer (`0` disables); migrations run under
    /// it too.
    #[arg(long, env, default_value = "2000", value_parser = millis)]
    database_statement_timeout_ms: Duration,
    /// How long a write waits for SQLite's lock held by another process before it is
    /// refused.
    #[arg(long, env, default_value = "2000", value_parser = millis)]
    sqlite_busy_timeout_ms: Duration,
}

#[derive(Args)]
#[command(next_help_heading = "Authentication")]
struct Auth {
    /// HS256 key of caregraph's own tokens. Unset: a built-in development secret.
    ///
    /// Unset or shorter than 32 bytes, the server logs a loud warning, and
    /// `CAREGRAPH_ENV=production` refuses to start.
    #[arg(long, env)]
    jwt_secret: Option<Secret>,
    /// `iss` of issued tokens, required on incoming ones.
    #[arg(long, env, default_value = "caregraph")]
    jwt_issuer: String,
    /// `aud` of issued tokens, required on incoming ones.
    #[arg(long, env, default_value = "caregraph")]
    jwt_audience: String,
    /// Lifetime of an issued token.
    #[arg(long, env, default_value = "86400", value_parser = seconds)]
    jwt_ttl_seconds: Duration,
    /// When set, Supabase Auth access tokens signed with it are accepted too.
    #[arg(long, env)]
    supabase_jwt_secret: Option<Secret>,
    /// Users found in the database that this instance remembers, so their requests skip the
    /// users table and they stay signed in while the database does not answer. Users seen
    /// once give way first when it is full.
    #[arg(long, env, default_value = "100000", value_parser = parsed::<usize>)]
    known_users_capacity: usize,
}

#[derive(Args)]
#[command(next_help_heading = "Signing in")]
struct SignIn {
    /// `login` and `register` attempts on one email, from anywhere, at once.
    #[arg(long, env, default_value = "5", value_parser = positive)]
    login_account_burst: u32,
    /// After the burst, one more attempt on that email per this period.
    #[arg(long, env, default_value = "20000", value_parser = positive_millis)]
    login_account_period_ms: Duration,
    /// Sign-in attempts from one client address, on any email, at once.
    #[arg(long, env, default_value = "20", value_parser = positive)]
    login_address_burst: u32,
    /// After the burst, one more attempt from that address per this period.
    #[arg(long, env, default_value = "3000", value_parser = positive_millis)]
    login_address_period_ms: Duration,
    /// Registrations from one client address at once.
    #[arg(long, env, default_value = "5", value_parser = positive)]
    register_address_burst: u32,
    /// After the burst, one more registration from that address per this period.
    #[arg(long, env, default_value = "60000", value_parser = positive_millis)]
    register_address_period_ms: Duration,
    /// Behind a trusted proxy, the header whose rightmost entry is the client's address
    /// (e.g. `X-Forwarded-For`).
    ///
    /// Unset, the connection's peer address is used. Never set it without such a proxy:
    /// any client can write the header.
    #[arg(long, env)]
    client_ip_header: Option<String>,
}

#[derive(Args)]
#[command(next_help_heading = "HTTP")]
struct Http {
    /// Larger request bodies get 413 before they are read.
    #[arg(long, env, default_value = "262144", value_parser = parsed::<usize>)]
    http_max_body_bytes: usize,
    /// A connection that has not sent a request's headers within this is closed; also the
    /// idle time of a kept-alive connection.
    #[arg(long, env, default_value = "10000", value_parser = millis)]
    http_header_timeout_ms: Duration,
    /// A request body not received within this gets 408.
    #[arg(long, env, default_value = "10000", value_parser = millis)]
    http_body_timeout_ms: Duration,
    /// Comma-separated origins browsers may call from, or `*`.
    ///
    /// Unset means any origin in development; production refuses to start without it.
    #[arg(long, env)]
    cors_allowed_origins: Option<String>,
}

#[derive(Args)]
#[command(next_help_heading = "GraphQL")]
struct Graphql {
    /// How deeply selections may nest.
    #[arg(long, env, default_value = "12", value_parser = parsed::<usize>)]
    graphql_max_depth: usize,
    /// The most a query may cost: a field costs 1, and a list multiplies its children by
    /// its page size or its longest length.
    #[arg(long, env, default_value = "5000", value_parser = parsed::<usize>)]
    graphql_max_complexity: usize,
    /// A longer document is refused while it is scanned, before it is parsed.
    #[arg(long, env, default_value = "5000", value_parser = parsed::<usize>)]
    graphql_max_tokens: usize,
    /// Aliases in one document.
    #[arg(long, env, default_value = "30", value_parser = parsed::<usize>)]
    graphql_max_aliases: usize,
    /// Directives in one document, in every position.
    #[arg(long, env, default_value = "50", value_parser = parsed::<usize>)]
    graphql_max_directives: usize,
    /// A query or mutation still running after this is stopped (its transaction rolls
    /// back) and answered with `TIMEOUT`.
    #[arg(long, env, default_value = "5000", value_parser = millis)]
    graphql_timeout_ms: Duration,
    /// A larger result (4 MiB by default) is replaced by `RESPONSE_TOO_LARGE`.
    #[arg(long, env, default_value = "4194304", value_parser = parsed::<usize>)]
    graphql_max_response_bytes: usize,
    /// `true` or `false`: whether `__schema` and `__type` answer and errors suggest field
    /// names. Unset: on in development, off in production.
    #[arg(long, env, value_parser = parsed::<bool>)]
    graphql_introspection: Option<bool>,
    /// `true` or `false`: the GraphiQL explorer on `GET /graphql`, its files served from the
    /// binary under `/graphiql/`. Unset: on in development, off in production.
    #[arg(long, env, value_parser = parsed::<bool>)]
    graphiql: Option<bool>,
}

#[derive(Args)]
#[command(next_help_heading = "Usage per user")]
struct Usage {
    /// GraphQL cost one user may spend at once; at least `GRAPHQL_MAX_COMPLEXITY`.
    ///
    /// Every request costs 50 before it is read, refused or not, then its complexity once
    /// validated. Past it: `RATE_LIMITED` with `retryAfterSeconds`.
    #[arg(long, env, default_value = "5000", value_parser = positive)]
    graphql_cost_burst: u32,
    /// GraphQL cost that comes back to a user each second.
    #[arg(long, env, default_value = "1000", value_parser = per_second)]
    graphql_cost_per_second: Duration,
    /// New websockets one user may open at once; past it they close with 1013.
    #[arg(long, env, default_value = "20", value_parser = positive)]
    ws_open_burst: u32,
    /// After the burst, one more websocket per this period.
    #[arg(long, env, default_value = "1000", value_parser = positive_millis)]
    ws_open_period_ms: Duration,
    /// Operations one user may start over their websockets at once; past it the start is
    /// refused with `RATE_LIMITED` and the socket stays open.
    #[arg(long, env, default_value = "20", value_parser = positive)]
    ws_operation_burst: u32,
    /// After the burst, one more operation per this period.
    #[arg(long, env, default_value = "100", value_parser = positive_millis)]
    ws_operation_period_ms: Duration,
}

#[derive(Args)]
#[command(next_help_heading = "WebSockets")]
struct WebSocket {
    /// A websocket that sends nothing for this long after the upgrade is closed with 4408.
    #[arg(long, env, default_value = "5000", value_parser = millis)]
    ws_init_timeout_ms: Duration,
    /// The largest message or frame read from a client, from the first one on; a larger
    /// one closes the socket with 1009 before it is buffered.
    #[arg(long, env, default_value = "65536", value_parser = parsed::<usize>)]
    ws_max_message_bytes: usize,
    /// Live operations on one socket; one more is refused with `TOO_MANY_SUBSCRIPTIONS`
    /// and the socket stays open.
    #[arg(long, env, default_value = "100", value_parser = parsed::<usize>)]
    ws_max_subscriptions_per_socket: usize,
    /// Sockets one user may hold on this instance; one more is closed with 1013 after
    /// `connection_init`, so clients retry with backoff.
    #[arg(long, env, default_value = "20", value_parser = parsed::<usize>)]
    ws_max_sockets_per_user: usize,
    /// The sustained rate of client messages on one socket.
    #[arg(long, env, default_value = "20", value_parser = parsed::<u32>)]
    ws_messages_per_second: u32,
    /// Client messages one socket may send at once, above the sustained rate; past it the
    /// socket is closed with 1008.
    #[arg(long, env, default_value = "200", value_parser = parsed::<u32>)]
    ws_message_burst: u32,
    /// How often the server pings (`ping` or `ka`), under the 30 to 60 s idle timeouts of
    /// common proxies; never zero, which would ping in a busy loop. A subscription in use
    /// that waited through two of these ticks gives up its execution until its next event
    /// (docs/architecture.md, "Idle subscriptions").
    #[arg(long, env, default_value = "12000", value_parser = positive_millis)]
    ws_keepalive_ms: Duration,
}

#[derive(Args)]
#[command(next_help_heading = "Subscriptions and chat")]
struct Realtime {
    /// How many undelivered events a slow subscriber may hold before it is told it missed
    /// some and resynchronises from the database; an idle subscriber holds none.
    #[arg(long, env, default_value = "64", value_parser = parsed::<usize>)]
    event_bus_capacity: usize,
    /// How events reach the subscribers of other instances. Unset: PostgreSQL's
    /// `LISTEN`/`NOTIFY` on `DATABASE_URL` when it is PostgreSQL, this instance alone on
    /// SQLite.
    ///
    /// `postgres://…`: listen on this URL instead, e.g. a direct connection when
    /// `DATABASE_URL` goes through a pooler in transaction mode, where `LISTEN` does not
    /// work; events still leave with `NOTIFY` in the transactions that commit them, so
    /// `DATABASE_URL` must be PostgreSQL. `in-process`: this instance alone, for a single
    /// instance on PostgreSQL (subscribers on any other instance would miss its events).
    #[arg(long, env)]
    event_bus_url: Option<Secret>,
    /// How long "typing" shows without a refresh.
    #[arg(long, env, default_value = "5000", value_parser = millis)]
    typing_ttl_ms: Duration,
}

#[derive(Args)]
#[command(next_help_heading = "Reminders and the scheduler")]
struct Reminders {
    /// Comma-separated minutes before an accepted booking starts at which both parties get
    /// a reminder.
    ///
    /// Offsets of 60 or less send `BOOKING_STARTING_SOON`, larger ones
    /// `BOOKING_REMINDER`. A value that is not a positive whole number is an error at
    /// start-up.
    #[arg(long, env, default_value = "1440,60", value_parser = offsets)]
    reminder_offsets_minutes: Offsets,
    /// How often the scheduler looks for reminders that are due and video calls that
    /// should have expired, ended or closed their room, and queues the job any of them is
    /// missing (each has its own job, which keeps its time; this is a safety net).
    #[arg(long, env, default_value = "5000", value_parser = millis)]
    scheduler_interval_ms: Duration,
}

#[derive(Args)]
#[command(next_help_heading = "Video calls")]
struct Video {
    /// The server ends a video call this long after it starts; a call keeps the value it
    /// was requested with.
    #[arg(long, env, default_value = "15", value_parser = seconds)]
    video_max_duration_seconds: Duration,
    /// An unanswered video call request expires this long after it was made.
    #[arg(long, env, default_value = "600", value_parser = seconds)]
    video_request_ttl_seconds: Duration,
    /// Lifetime of a video access token (`expiresIn`); never longer than the call's limit
    /// plus 60 s.
    #[arg(long, env, default_value = "300", value_parser = seconds)]
    video_token_ttl_seconds: Duration,
    /// An accepted call that nobody joins expires this long after it was accepted, and the
    /// pair may ask again; Twilio ends the unused room after as many whole minutes (1 to 60).
    #[arg(long, env, default_value = "300", value_parser = seconds)]
    video_join_timeout_seconds: Duration,
    /// HS256 key of the dev provider's video tokens; not used with Twilio. Unset: a
    /// built-in development secret.
    #[arg(long, env)]
    video_dev_secret: Option<Secret>,
    /// Twilio account SID: the `sub` of video access tokens.
    ///
    /// Video calls use Twilio only when all four of `TWILIO_ACCOUNT_SID`,
    /// `TWILIO_AUTH_TOKEN`, `TWILIO_API_KEY_SID` and `TWILIO_API_KEY_SECRET` are set;
    /// otherwise they use the dev provider, and the server says so at start-up.
    #[arg(long, env)]
    twilio_account_sid: Option<String>,
    /// Twilio auth token: checks the signature of status callbacks.
    #[arg(long, env)]
    twilio_auth_token: Option<Secret>,
    /// Twilio API key SID: the `iss` of video access tokens and the user name of REST calls.
    #[arg(long, env)]
    twilio_api_key_sid: Option<String>,
    /// The API key's secret: signs video access tokens and is the password of REST calls.
    #[arg(long, env)]
    twilio_api_key_secret: Option<Secret>,
    /// Base URL of the Twilio Video REST API.
    #[arg(long, env, default_value = "https://video.twilio.com")]
    twilio_api_base_url: String,
    /// Longest wait for one Twilio REST call, connecting included; past it the call counts
    /// as failed for now (`acceptVideoCall` answers `PROVIDER_UNAVAILABLE`, a room close is
    /// retried). Keep it under `GRAPHQL_TIMEOUT_MS`.
    #[arg(long, env, default_value = "3000", value_parser = positive_millis)]
    twilio_timeout_ms: Duration,
}

#[derive(Args)]
#[command(next_help_heading = "Push, email and background jobs")]
struct Delivery {
    /// Path of a Firebase service account's JSON key file: turns on FCM pushes.
    ///
    /// Its `project_id` names the project messages are sent for and its `token_uri` is
    /// where access tokens are obtained (a JWT bearer grant signed with its private key).
    #[arg(long, env)]
    fcm_service_account_file: Option<String>,
    /// Base URL of the FCM HTTP v1 API.
    #[arg(long, env, default_value = "https://fcm.googleapis.com")]
    fcm_api_base_url: String,
    /// Path of the APNs auth key (`AuthKey_XXXXXXXXXX.p8`, ES256): turns on APNs pushes,
    /// with `APNS_KEY_ID` and `APNS_TEAM_ID`. Setting some but not all three is an error.
    #[arg(long, env)]
    apns_key_file: Option<String>,
    /// The APNs key's 10-character key id (`kid` of provider tokens).
    #[arg(long, env)]
    apns_key_id: Option<String>,
    /// The Apple developer team id (`iss` of provider tokens).
    #[arg(long, env)]
    apns_team_id: Option<String>,
    /// Base URL of the APNs production gateway.
    #[arg(long, env, default_value = "https://api.push.apple.com")]
    apns_base_url: String,
    /// Base URL of the APNs development gateway, for sandbox device tokens.
    #[arg(long, env, default_value = "https://api.sandbox.push.apple.com")]
    apns_sandbox_base_url: String,
    /// The VAPID private key: the 32-byte P-256 scalar, base64url (as `web-push
    /// generate-vapid-keys` prints it). Turns on Web Push, with `VAPID_SUBJECT`.
    #[arg(long, env)]
    vapid_private_key: Option<Secret>,
    /// Who push services may contact about this sender: a `mailto:` or `https:` URL.
    #[arg(long, env)]
    vapid_subject: Option<String>,
    /// Where email is sent: `smtp://user:pass@host:587` (STARTTLS required),
    /// `smtps://user:pass@host:465` (TLS), or `smtp://host:25?tls=none` (loopback relays
    /// only). Turns on email, with `EMAIL_FROM`.
    #[arg(long, env)]
    smtp_url: Option<Secret>,
    /// The sender of every email, e.g. `Caregraph <care@example.com>`.
    #[arg(long, env)]
    email_from: Option<String>,
    /// Longest wait for one provider request (connecting included) before it counts as a
    /// transient failure and is retried.
    #[arg(long, env, default_value = "10000", value_parser = positive_millis)]
    provider_timeout_ms: Duration,
    /// How long a chat may stay unread before it goes into the user's email digest.
    #[arg(long, env, default_value = "900", value_parser = seconds)]
    email_digest_delay_seconds: Duration,
    /// How many jobs (deliveries, digests) one instance runs at once.
    #[arg(long, env, default_value = "256", value_parser = positive)]
    job_concurrency: u32,
    /// How long a claimed job is its worker's; a job whose worker died is taken over after.
    #[arg(long, env, default_value = "120", value_parser = seconds)]
    job_lease_seconds: Duration,
    /// How often an idle worker looks for due jobs when nothing woke it.
    #[arg(long, env, default_value = "1000", value_parser = positive_millis)]
    job_poll_ms: Duration,
}

/// Booking reminder offsets, in minutes; a newtype so clap takes the list as one value.
#[derive(Clone)]
struct Offsets(Vec<i32>);

impl Settings {
    /// Readies a command that flattens `Settings` to read them from the process: every
    /// setting may follow a subcommand, `--help` never prints a variable's value (some are
    /// secrets), and a variable that is empty or blank counts as unset.
    pub fn configure(cmd: Command) -> Command {
        cmd.mut_args(|arg| {
            let Some(name) = arg.get_env() else {
                return arg;
            };
            let blank = std::env::var_os(name)
                .is_some_and(|value| value.to_string_lossy().trim().is_empty());
            let arg = arg.global(true).hide_env_values(true);
            if blank { arg.env(None) } else { arg }
        })
    }

    /// The declarations alone, on a bare command, for the reference and for lookups.
    pub(super) fn command() -> Command {
        Self::augment_args(Command::new("caregraph"))
    }

    /// Reads every variable through `lookup` (and nothing from the process), with the
    /// rules of [`Settings::configure`]: blank counts as unset.
    pub(super) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, clap::Error> {
        let declared = Self::command();
        let options: Vec<String> = declared
            .get_arguments()
            .filter_map(|arg| {
                let value = lookup(arg.get_env()?.to_str()?)?;
                let long = arg.get_long()?;
                (!value.trim().is_empty()).then(|| format!("--{long}={value}"))
            })
            .collect();
        let matches = declared
            .mut_args(|arg| arg.env(None))
            .try_get_matches_from(std::iter::once("caregraph".to_owned()).chain(options))?;
        Self::from_arg_matches(&matches)
    }
}

impl From<Settings> for Config {
    fn from(settings: Settings) -> Self {
        let Settings {
            server,
            database,
            auth,
            sign_in,
            http,
            graphql,
            usage,
            websocket,
            realtime,
            reminders,
            video,
            delivery,
        } = settings;
        let environment = server.caregraph_env;
        let development = environment == Environment::Development;
        let addr = server.caregraph_addr;
        Config {
            addr,
            database_url: database.database_url,
            environment,
            log_filter: server.rust_log,
            log_format: server.log_format,
            shutdown_grace: server.shutdown_grace_ms,
            metrics_enabled: server.metrics_enabled,
            database: DatabaseConfig {
                acquire_timeout: database.database_acquire_timeout_ms,
                statement_timeout: database.database_statement_timeout_ms,
                sqlite_busy_timeout: database.sqlite_busy_timeout_ms,
            },
            auth: AuthConfig {
                jwt_secret: auth.jwt_secret.unwrap_or_else(|| DEV_JWT_SECRET.into()),
                issuer: auth.jwt_issuer,
                audience: auth.jwt_audience,
                token_ttl: auth.jwt_ttl_seconds,
                supabase_jwt_secret: auth.supabase_jwt_secret,
                known_users_capacity: auth.known_users_capacity,
            },
            sign_in: SignInConfig {
                per_account: RateConfig {
                    burst: sign_in.login_account_burst,
                    period: sign_in.login_account_period_ms,
                },
                per_address: RateConfig {
                    burst: sign_in.login_address_burst,
                    period: sign_in.login_address_period_ms,
                },
                registrations_per_address: RateConfig {
                    burst: sign_in.register_address_burst,
                    period: sign_in.register_address_period_ms,
                },
                client_ip_header: sign_in.client_ip_header,
            },
            graphql: GraphqlConfig {
                max_depth: graphql.graphql_max_depth,
                max_complexity: graphql.graphql_max_complexity,
                max_tokens: graphql.graphql_max_tokens,
                max_aliases: graphql.graphql_max_aliases,
                max_directives: graphql.graphql_max_directives,
                timeout: graphql.graphql_timeout_ms,
                max_response_bytes: graphql.graphql_max_response_bytes,
                introspection: graphql.graphql_introspection.unwrap_or(development),
                graphiql: graphql.graphiql.unwrap_or(development),
            },
            http: HttpConfig {
                max_body_bytes: http.http_max_body_bytes,
                header_timeout: http.http_header_timeout_ms,
                body_timeout: http.http_body_timeout_ms,
                cors_allowed_origins: http.cors_allowed_origins.map(|raw| {
                    raw.split(',')
                        .map(|origin| origin.trim().to_owned())
                        .filter(|origin| !origin.is_empty())
                        .collect()
                }),
            },
            usage: UsageConfig {
                cost: RateConfig {
                    burst: usage.graphql_cost_burst,
                    period: usage.graphql_cost_per_second,
                },
                socket_opens: RateConfig {
                    burst: usage.ws_open_burst,
                    period: usage.ws_open_period_ms,
                },
                socket_operations: RateConfig {
                    burst: usage.ws_operation_burst,
                    period: usage.ws_operation_period_ms,
                },
            },
            websocket: WebSocketConfig {
                init_timeout: websocket.ws_init_timeout_ms,
                max_message_bytes: websocket.ws_max_message_bytes,
                max_subscriptions_per_socket: websocket.ws_max_subscriptions_per_socket,
                max_sockets_per_user: websocket.ws_max_sockets_per_user,
                messages_per_second: websocket.ws_messages_per_second,
                message_burst: websocket.ws_message_burst,
                keepalive: websocket.ws_keepalive_ms,
            },
            bus_capacity: realtime.event_bus_capacity,
            event_bus_url: realtime.event_bus_url,
            reminders: ReminderConfig {
                offsets_minutes: reminders.reminder_offsets_minutes.0,
                scheduler_interval: reminders.scheduler_interval_ms,
            },
            typing_ttl: realtime.typing_ttl_ms,
            video: VideoConfig {
                twilio: match (
                    video.twilio_account_sid,
                    video.twilio_auth_token,
                    video.twilio_api_key_sid,
                    video.twilio_api_key_secret,
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
                        api_base_url: video.twilio_api_base_url,
                    }),
                    _ => None,
                },
                max_duration: video.video_max_duration_seconds,
                request_ttl: video.video_request_ttl_seconds,
                token_ttl: video.video_token_ttl_seconds,
                join_timeout: video.video_join_timeout_seconds,
                twilio_timeout: video.twilio_timeout_ms,
                dev_secret: video
                    .video_dev_secret
                    .unwrap_or_else(|| DEV_VIDEO_SECRET.into()),
            },
            delivery: delivery.into(),
            public_url: server.public_url,
        }
    }
}

impl From<Delivery> for DeliveryConfig {
    fn from(delivery: Delivery) -> Self {
        let mut incomplete = Vec::new();
        let apns = match (
            delivery.apns_key_file,
            delivery.apns_key_id,
            delivery.apns_team_id,
        ) {
            (Some(key_file), Some(key_id), Some(team_id)) => Some(ApnsConfig {
                key_file,
                key_id,
                team_id,
                base_url: delivery.apns_base_url,
                sandbox_base_url: delivery.apns_sandbox_base_url,
            }),
            (None, None, None) => None,
            (key_file, key_id, team_id) => {
                incomplete.push(missing(&[
                    ("APNS_KEY_FILE", key_file.is_some()),
                    ("APNS_KEY_ID", key_id.is_some()),
                    ("APNS_TEAM_ID", team_id.is_some()),
                ]));
                None
            }
        };
        let web_push = match (delivery.vapid_private_key, delivery.vapid_subject) {
            (Some(private_key), Some(subject)) => Some(WebPushConfig {
                private_key,
                subject,
            }),
            (None, None) => None,
            (key, subject) => {
                incomplete.push(missing(&[
                    ("VAPID_PRIVATE_KEY", key.is_some()),
                    ("VAPID_SUBJECT", subject.is_some()),
                ]));
                None
            }
        };
        let email = match (delivery.smtp_url, delivery.email_from) {
            (Some(smtp_url), Some(from)) => Some(EmailConfig { smtp_url, from }),
            (None, None) => None,
            (url, from) => {
                incomplete.push(missing(&[
                    ("SMTP_URL", url.is_some()),
                    ("EMAIL_FROM", from.is_some()),
                ]));
                None
            }
        };
        DeliveryConfig {
            fcm: delivery
                .fcm_service_account_file
                .map(|service_account_file| FcmConfig {
                    service_account_file,
                    api_base_url: delivery.fcm_api_base_url,
                }),
            apns,
            web_push,
            email,
            incomplete,
            provider_timeout: delivery.provider_timeout_ms,
            digest_delay: delivery.email_digest_delay_seconds,
            jobs: JobConfig {
                concurrency: delivery.job_concurrency as usize,
                lease: delivery.job_lease_seconds,
                poll: delivery.job_poll_ms,
            },
        }
    }
}

/// The names of a group's variables that were left unset while others were set.
fn missing(group: &[(&'static str, bool)]) -> Vec<&'static str> {
    group
        .iter()
        .filter(|(_, set)| !set)
        .map(|(name, _)| *name)
        .collect()
}

/// A value read with its type's `FromStr`, surrounding blanks ignored.
fn parsed<T: FromStr>(text: &str) -> Result<T, String>
where
    T::Err: Display,
{
    text.trim().parse().map_err(|err: T::Err| err.to_string())
}

/// A whole number of milliseconds.
fn millis(text: &str) -> Result<Duration, String> {
    parsed(text).map(Duration::from_millis)
}

/// A whole number of seconds.
fn seconds(text: &str) -> Result<Duration, String> {
    parsed(text).map(Duration::from_secs)
}

/// A burst: a rate that admits nothing at once could never admit anything.
fn positive(text: &str) -> Result<u32, String> {
    match parsed(text)? {
        0 => Err("must be positive".to_owned()),
        count => Ok(count),
    }
}

/// A rate's period, in milliseconds; a zero period would refill without end.
fn positive_millis(text: &str) -> Result<Duration, String> {
    let period = millis(text)?;
    if period.is_zero() {
        return Err("must be positive".to_owned());
    }
    Ok(period)
}

/// An allowance per second, spent in large units, read as the period of one unit.
fn per_second(text: &str) -> Result<Duration, String> {
    let per_second: u32 = parsed(text)?;
    match Duration::from_secs(1).checked_div(per_second) {
        Some(period) if !period.is_zero() => Ok(period),
        _ => Err("must be between 1 and 1000000000".to_owned()),
    }
}

/// Booking reminder offsets: positive whole minutes, comma-separated.
fn offsets(text: &str) -> Result<Offsets, String> {
    text.split(',')
        .map(|part| match part.trim().parse::<i32>() {
            Ok(minutes) if minutes > 0 => Ok(minutes),
            _ => Err(format!("{part:?} is not a positive number of minutes")),
        })
        .collect::<Result<_, _>>()
        .map(Offsets)
}
