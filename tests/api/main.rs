//! Integration tests: each starts the real server on a loopback port, with its own
//! database (SQLite by default; PostgreSQL when TEST_DATABASE_URL is set), and
//! talks to it over HTTP and graphql-ws as a client would.

mod abuse;
mod auth;
mod bookings;
mod chat;
mod config;
mod fake_twilio;
mod graphiql;
mod helpers;
mod http;
mod lagging;
mod limits;
mod metrics;
mod notifications;
mod outage;
mod schema;
mod shutdown;
mod users;
mod video;
mod websocket;
