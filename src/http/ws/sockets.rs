//! How many sockets each user holds on this instance, so that one user cannot hold them all.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use uuid::Uuid;

use crate::sync::lock;

/// Open sockets per user; a user with none has no entry, so memory follows connected users.
#[derive(Default)]
pub struct OpenSockets {
    per_user: Mutex<HashMap<Uuid, usize>>,
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
        Some(SocketSlot {
            sockets: self.clone(),
            user,
        })
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
    }
}
