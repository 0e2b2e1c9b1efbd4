//! Delivery beyond the app: the devices pushes go to, the providers that carry pushes and
//! email, and the jobs that deliver each notification by the channels its user allows.
//!
//! A notification is stored with its delivery jobs in one transaction
//! (`notifications::outbox`); the job workers (`jobs::workers`) run them here. Each
//! provider is a [`provider::PushSender`] or [`provider::Mailer`] with a real HTTP or SMTP
//! implementation, reached at a configurable base URL.

pub mod provider;

pub use provider::{Email, Mailer, Providers, Push, PushSender, SendFailure};
