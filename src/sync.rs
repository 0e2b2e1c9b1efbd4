//! Locking that survives a panic elsewhere.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex` even if a thread panicked while holding it: every value kept behind these
/// locks (a cache, a queue of events, a set of timers) stays valid between statements, so a
/// panic in one request must not turn every later request into a second panic.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}
