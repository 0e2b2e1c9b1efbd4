//! Delivery beyond the app: the devices pushes go to, the providers that carry pushes and
//! email, and the jobs that deliver each notification by the channels its user allows.
//!
//! A notification is stored with its delivery jobs in one transaction
//! (`notifications::outbox`); the job workers (`jobs::workers`) run them here. Each
//! provider is a [`provider::PushSender`] or [`provider::Mailer`] with a real HTTP or SMTP
//! implementation, reached at a configurable base URL.

pub mod email;
pub mod provider;
pub mod web_push;

use std::sync::Arc;

pub use provider::{Email, Mailer, Providers, Push, PushSender, SendFailure, SetupError};

use crate::config::DeliveryConfig;

/// The providers `config` turns on, each set up (keys read, URLs checked); the channels
/// left unconfigured are `None`.
pub fn providers(config: &DeliveryConfig) -> Result<Providers, SetupError> {
    let timeout = config.provider_timeout;
    let mut providers = Providers::default();
    if let Some(web_push) = &config.web_push {
        providers.web_push = Some(Arc::new(web_push::WebPushSender::new(web_push, timeout)?));
    }
    if let Some(email) = &config.email {
        providers.email = Some(Arc::new(email::SmtpMailer::new(email, timeout)?));
    }
    Ok(providers)
}
