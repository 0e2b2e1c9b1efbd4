//! What each signed-in user may spend on this instance: query cost, new sockets, and
//! operations started over sockets. The per-request and per-socket limits bound one
//! request; these bound a user who sends many, or reconnects to start afresh.

use std::sync::Arc;

use uuid::Uuid;

use super::KeyedLimiter;
use crate::{clock::Clock, config::UsageConfig, error::AppError};

/// What every request is charged beside its complexity: parsing, authenticating and
/// answering it cost the server something whatever it selects.
const REQUEST_COST: usize = 50;

/// The per-user allowances, shared by HTTP and graphql-ws.
pub struct UsageLimits {
    cost: KeyedLimiter<Uuid>,
    socket_opens: KeyedLimiter<Uuid>,
    socket_operations: KeyedLimiter<Uuid>,
}

impl UsageLimits {
    /// Allowances as configured, timed by `clock`.
    pub fn new(config: &UsageConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            cost: KeyedLimiter::new(config.cost, clock.clone(), "units of query cost"),
            socket_opens: KeyedLimiter::new(config.socket_opens, clock.clone(), "new sockets"),
            socket_operations: KeyedLimiter::new(
                config.socket_operations,
                clock,
                "operations started over sockets",
            ),
        }
    }

    /// Charges `user` for one request: a flat amount for reading and answering it, plus what
    /// it may return (its complexity; 0 for one refused before that is known, which so still
    /// costs its sender). Refuses it with when to retry.
    pub fn spend(&self, user: Uuid, complexity: usize) -> Result<(), AppError> {
        let cost = complexity.saturating_add(REQUEST_COST);
        self.cost
            .admit_n(&user, u32::try_from(cost).unwrap_or(u32::MAX))
    }

    /// Counts a new socket of `user`.
    pub fn open_socket(&self, user: Uuid) -> Result<(), AppError> {
        self.socket_opens.admit(&user)
    }

    /// Counts an operation `user` starts over a socket.
    pub fn start_operation(&self, user: Uuid) -> Result<(), AppError> {
        self.socket_operations.admit(&user)
    }
}
