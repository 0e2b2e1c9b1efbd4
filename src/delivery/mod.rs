//! Delivery beyond the app: the devices pushes go to, the providers that carry pushes and
//! email, and the jobs that deliver each notification by the channels its user allows.
//!
//! A notification is stored with its delivery jobs in one transaction
//! (`notifications::outbox`); the job workers (`jobs::workers`) run them here. Each
//! provider is a [`provider::PushSender`] or [`provider::Mailer`] with a real HTTP or SMTP
//! implementation, reached at a configurable base URL.

pub mod apns;
mod content;
pub mod devices;
pub mod email;
mod email_job;
pub mod fcm;
mod graphql;
pub mod provider;
mod push_job;
mod record;
pub mod settings;
pub mod unsubscribe;
pub mod web_push;

use std::{sync::Arc, time::Duration};

pub use graphql::{DeliveryMutation, DeliveryQuery};
pub use provider::{Email, Mailer, Providers, Push, PushSender, SendFailure, SetupError};

use crate::{config::DeliveryConfig, queue::Backoff};

/// Delivery's runtime part: the configured providers and the rules of its jobs. Resolvers
/// read it as context data; the job workers run its handlers.
pub struct Delivery {
    pub providers: Providers,
    /// How failed deliveries are retried.
    pub backoff: Backoff,
    /// Whether Web Push endpoints on this machine are accepted (development and tests).
    pub allow_loopback_endpoints: bool,
    /// Signs the unsubscribe link of every email.
    pub unsubscribe: unsubscribe::UnsubscribeLinks,
}

impl Delivery {
    /// The retry policy of deliveries: 2 s doubling to at most an hour, 10 attempts (about
    /// three hours in all), so a provider's outage of a few hours loses nothing.
    pub const BACKOFF: Backoff = Backoff {
        base: Duration::from_secs(2),
        max: Duration::from_secs(3600),
        max_attempts: 10,
    };
}

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
    if let Some(web_push) = &config.web_push {
        let sender = web_push::WebPushSender::new(web_push, timeout)?;
        providers.web_push_public_key = Some(sender.public_key().to_owned());
        providers.web_push = Some(Arc::new(sender));
    }
    if let Some(email) = &config.email {
        providers.email = Some(Arc::new(email::SmtpMailer::new(email, timeout)?));
    }
    Ok(providers)
}
