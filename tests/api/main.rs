//! Integration tests: each starts the real server on a loopback port, with its own
//! database (SQLite by default; PostgreSQL when TEST_DATABASE_URL is set), and
//! talks to it over HTTP and graphql-ws as a client would.

mod abuse;
mod auth;
mod bookings;
mod chat;
mod cluster;
mod config;
mod deliveries;
mod fake_apns;
mod fake_fcm;
mod fake_smtp;
mod fake_twilio;
mod fake_web_push;
mod graphiql;
mod helpers;
mod http;
mod jobs;
mod lagging;
mod limits;
mod metrics;
mod notifications;
mod outage;
mod push_providers;
mod push_web_and_email;
mod schema;
mod shutdown;
mod tcp_proxy;
mod users;
mod video;
mod video_failures;
mod video_overshoot;
mod websocket;
