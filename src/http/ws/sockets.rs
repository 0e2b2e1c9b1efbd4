//! How many sockets each user holds on this instance, so that one user cannot hold them all,
//! and how many are open in all, so that a stop can wait for them to close.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::watch;
use uuid::Uuid;

use crate::{sync::lock, telemetry};

/// Open sockets per user; a user with none has no entry, so memory follows connected users.
pub struct OpenSockets {
    per_user: Mutex<HashMap<Uuid, usize>>,
    /// Every counted socket of every user, watched by a stop that waits for them to close.
    total: watch::Sender<usize>,
}

impl Default for OpenSockets {
    fn default() -> Self {
        Self {
            per_user: Mutex::default(),
            total: watch::Sender::new(0),
        }
    }
}

impl OpenSockets {
    /// Counts one more socket for `user`, or refuses when they already hold `max`.
    pub fn open(self: &Arc<Self>, user: Uuid, max: usize) -> Option<SocketSlot> {
        let mut per_user = lock(&self.per_user);
        let held = per_user.get(&user).copied().unwrap_or_default();
        if held >= max {
            return None;
        }
        per_user.insert(user, held + 1);
        self.total.send_modify(|total| *total += 1);
        telemetry::socket_opened();
        Some(SocketSlot {
            sockets: self.clone(),
            user,
        })
    }

    /// Completes once no counted socket is open, at once if none is.
    pub async fn all_closed(&self) {
        let mut total = self.total.subscribe();
        // The sender lives as long as `self`, so waiting cannot fail while this runs.
        let _ = total.wait_for(|open| *open == 0).await;
    }
}

/// One counted socket: dropping it, however the socket ends (a close, an error, a panic),
/// gives its place back.
pub struct SocketSlot {
    sockets: Arc<OpenSockets>,
    user: Uuid,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut per_user = lock(&self.sockets.per_user);
        if let Some(held) = per_user.get_mut(&self.user) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                per_user.remove(&self.user);
            }
        }
        self.sockets
            .total
            .send_modify(|total| *total = total.saturating_sub(1));
        telemetry::socket_closed();
    }
}
