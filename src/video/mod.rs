//! Video calls: requests, provider rooms and access tokens, and the server-enforced limit.
//!
//! Twilio when it is configured, a dev provider otherwise, both behind [`VideoProvider`];
//! the rules live in [`VideoService`], the provider round-trips in [`rooms`], the timers
//! (a call's end, an expiry) and room closes in the job queue's video jobs (`jobs.rs`); the
//! HTTP layer (`http::webhooks`) authenticates the provider's callbacks and hands them to
//! [`rooms`].

mod graphql;
mod jobs;
mod notices;
mod provider;
pub mod rooms;
mod service;
mod twilio;

pub use graphql::{VideoMutation, VideoQuery, VideoSubscription};
pub use jobs::CLOSE_BACKOFF;
pub use provider::{DevProvider, ProviderError, RoomAccess, RoomSpec, RoomState, VideoProvider};
pub use service::{VideoService, VideoSettings};
pub use twilio::{TwilioProvider, twilio_signature};

use std::sync::Arc;

/// The video provider and the call rules, shared by resolvers, the webhook and the scheduler.
pub struct Video {
    pub provider: Arc<dyn VideoProvider>,
    pub settings: VideoSettings,
    /// The longest one provider REST call may take (`TWILIO_TIMEOUT_MS`).
    pub provider_timeout: std::time::Duration,
}
