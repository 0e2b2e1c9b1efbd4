//! caregraph: the realtime backend of a care marketplace behind one GraphQL API.
//!
//! A request flows one way through these modules (`docs/architecture.md` draws the layers):
//!
//! - [`config`]: typed configuration, read once from the environment.
//! - [`startup`]: builds the application: database, migrations, bus, schema, router.
//! - [`http`]: the router: `POST /graphql`, GraphiQL, the graphql-ws upgrade, `/health`,
//!   `/ready`, `/metrics`; the accept loop and its graceful stop.
//! - [`auth`]: bearer tokens in, a [`viewer::Viewer`] out; the only code that sees the secret.
//! - [`viewer`]: who is asking, as every domain reads it from the GraphQL context.
//! - [`graphql`]: the schema assembled from the domains, its limits and error codes.
//! - [`users`], [`bookings`], [`chat`], [`video`], [`notifications`]: the domains, each with
//!   its rules, queries, events and resolvers.
//! - [`paging`]: keyset cursors and page rules that services use and resolvers present.
//! - [`delivery`]: push devices, the providers (FCM, APNs, Web Push, SMTP), and the jobs
//!   that deliver each notification by push and email.
//! - [`queue`]: the durable job queue in the database, claimed once, retried with backoff.
//! - [`jobs`]: the scheduler: booking reminders, video request expiry, call limits.
//! - [`db`]: connecting, and the write transaction that commits first and publishes after.
//! - [`bus`]: committed events fanned out to subscription streams.
//! - [`error`]: the one error type and its GraphQL codes.
//! - [`state`]: what every domain shares: the pool, the writer, the bus, the clock.
//! - [`services`]: the shared state and each domain's runtime parts, assembled at start-up.
//! - [`clock`]: the time source, replaceable in tests.
//! - [`sync`]: locking that survives a panic elsewhere.
//! - [`telemetry`]: the Prometheus families and the process-wide recorder `/metrics` renders.
//! - [`shutdown`]: the signal that a stop was asked for, which every long-running part watches.
//! - [`rate_limit`]: keyed rate limits: sign-in attempts, and what each user may spend.

pub mod auth;
pub mod bookings;
pub mod bus;
pub mod chat;
pub mod clock;
pub mod config;
pub mod db;
pub mod delivery;
pub mod error;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod notifications;
pub mod paging;
pub mod queue;
pub mod rate_limit;
pub mod services;
pub mod shutdown;
pub mod startup;
pub mod state;
pub mod sync;
pub mod telemetry;
pub mod users;
pub mod video;
pub mod viewer;
