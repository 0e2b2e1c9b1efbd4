//! Typing indicators: ephemeral, rate-limited, and expiring by themselves.
//!
//! Nothing is stored. `setTyping` publishes a bus event (at most once per
//! refresh interval while the state is unchanged), and each `typing`
//! subscription turns the other member's events into start/stop updates,
//! stopping by itself when no refresh arrives within the time to live.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use uuid::Uuid;

use crate::{error::AppError, sync::lock};

/// How many `setTyping` calls one member may make per session in one window.
const CALLS_PER_WINDOW: u32 = 20;
const WINDOW: Duration = Duration::from_secs(10);
/// An unchanged "still typing" is passed on at most this often.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct Member {
    window_started: Instant,
    calls: u32,
    published: Option<(bool, Instant)>,
}

/// Decides which `setTyping` calls are published, per member and session, in this instance,
/// and how long a "typing" lasts without a refresh.
pub struct TypingGate {
    members: Mutex<HashMap<(Uuid, Uuid), Member>>,
    ttl: Duration,
}

impl TypingGate {
    pub fn new(ttl: Duration) -> Self {
        Self {
            members: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    /// How long subscribers show "typing" after the last refresh.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Whether this call should be published; `RATE_LIMITED` past the call budget.
    pub fn admit(&self, user_id: Uuid, session_id: Uuid, typing: bool) -> Result<bool, AppError> {
        let now = Instant::now();
        let mut members = lock(&self.members);
        members.retain(|_, member| now.duration_since(member.window_started) < WINDOW * 6);
        let member = members.entry((user_id, session_id)).or_insert(Member {
            window_started: now,
            calls: 0,
            published: None,
        });
        if now.duration_since(member.window_started) >= WINDOW {
            member.window_started = now;
            member.calls = 0;
        }
        member.calls += 1;
        if member.calls > CALLS_PER_WINDOW {
            return Err(AppError::RateLimited {
                message: format!(
                    "at most {CALLS_PER_WINDOW} setTyping calls per {} seconds",
                    WINDOW.as_secs()
                ),
                retry_after_seconds: None,
            });
        }
        let publish = match member.published {
            Some((last, at)) => {
                last != typing || (typing && now.duration_since(at) >= REFRESH_INTERVAL)
            }
            None => true,
        };
        if publish {
            member.published = Some((typing, now));
        }
        Ok(publish)
    }
}
