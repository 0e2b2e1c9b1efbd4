//! Everything the application shares, assembled once at start-up: the domains' common state
//! and each domain's own runtime parts. The schema, the router and the scheduler are built
//! from it; resolvers reach each part as context data of its own type.

use std::sync::Arc;

use crate::{
    auth::Auth,
    chat::{SendQueue, TypingGate},
    db::JobWake,
    delivery::Delivery,
    state::AppState,
    video::Video,
};

/// The application's shared services, cheap to clone.
#[derive(Clone)]
pub struct Services {
    pub state: AppState,
    /// Tokens, the authenticator and the sign-in limits.
    pub auth: Auth,
    /// Where `sendMessage` joins a batch (group commit).
    pub sends: SendQueue,
    pub typing: Arc<TypingGate>,
    pub video: Arc<Video>,
    /// The push and email providers and the rules of delivery jobs.
    pub delivery: Arc<Delivery>,
    /// Wakes the job workers when a commit added jobs.
    pub job_wake: JobWake,
}
