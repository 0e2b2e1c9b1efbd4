//! Users the authenticator has already found, so a request with a valid token does not
//! read the users table again: accounts are never deleted and roles never change, so
//! the only thing a hit could miss is an account created on first sight, which is not a
//! hit. Entries still expire, so that a future account deletion is seen within the TTL.
//! An expired entry is still the best answer while the database cannot be asked: a
//! signed-in user stays signed in through an outage instead of being told to sign in again.
//! Past its capacity the cache forgets first the users seen once and not since, so a crowd
//! of newcomers does not push out the users who keep coming back.

use chrono::{DateTime, Duration, Utc};
use entity::enums::Role;
use quick_cache::sync::Cache;
use uuid::Uuid;

/// How long a found user is trusted without reading it again.
const TTL: Duration = Duration::seconds(60);

/// A bounded, expiring map from user id to role, timed by the service clock.
pub struct KnownUsers {
    entries: Cache<Uuid, (Role, DateTime<Utc>)>,
}

impl KnownUsers {
    /// A cache of about `capacity` users (its shards round up), so memory stays bounded.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Cache::new(capacity),
        }
    }

    /// The role of a user found less than [`TTL`] before `now`.
    pub fn role(&self, user_id: Uuid, now: DateTime<Utc>) -> Option<Role> {
        self.entries
            .get(&user_id)
            .filter(|(_, found_at)| now - *found_at < TTL)
            .map(|(role, _)| role)
    }

    /// The role of a user found at any time, for when the database cannot be asked.
    pub fn stale_role(&self, user_id: Uuid) -> Option<Role> {
        self.entries.get(&user_id).map(|(role, _)| role)
    }

    /// Remembers a user just read from the database.
    pub fn remember(&self, user_id: Uuid, role: Role, now: DateTime<Utc>) {
        self.entries.insert(user_id, (role, now));
    }
}
