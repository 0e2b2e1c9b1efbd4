//! Delivery beyond the app: the devices pushes go to, the providers that carry pushes and
//! email, and the jobs that deliver each notification by the channels its user allows.
//!
//! A notification is stored with its delivery jobs in one transaction
//! (`notifications::outbox`); the job workers (`jobs::workers`) run them here. Each
//! provider is a [`provider::PushSender`] or [`provider::Mailer`] with a real HTTP or SMTP
//! implementation, reached at a configurable base URL.

pub mod apns;
pub mod fcm;
pub mod provider;

use std::sync::Arc;

pub use provider::{Email, Mailer, Providers, Push, PushSender, SendFailure, SetupError};

use crate::config::DeliveryConfig;

/// Builds every configured provider; one whose key cannot be read or used stops start-up.
/// A channel whose variables are unset stays `None`.
pub fn providers(config: &DeliveryConfig) -> Result<Providers, SetupError> {
    let timeout = config.provider_timeout;
    let mut providers = Providers::default();
    if let Some(fcm) = &config.fcm {
        providers.fcm = Some(Arc::new(fcm::FcmSender::new(fcm, timeout)?));
    }
    if let Some(apns) = &config.apns {
        providers.apns = Some(Arc::new(apns::ApnsSender::new(apns, timeout)?));
    }
    Ok(providers)
}
