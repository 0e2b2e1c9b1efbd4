//! The time source. Every rule that depends on "now" asks a [`Clock`], so tests
//! can move time instead of sleeping.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use tokio::sync::watch;

/// Where the service reads the current time from.
pub trait Clock: Send + Sync + 'static {
    /// The current instant, to the microsecond (what both databases store).
    fn now(&self) -> DateTime<Utc>;

    /// Wakes background jobs when the clock is moved by hand. The wall clock moves by itself,
    /// so it has nothing to announce and jobs fall back to their polling interval.
    fn moves(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        None
    }
}

/// The wall clock, used in production.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now().trunc_subsecs(6)
    }
}

/// A clock that only moves when told to, so tests can reach "after the booking ended" at once.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: std::sync::Arc<watch::Sender<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing still at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: std::sync::Arc::new(watch::Sender::new(start)),
        }
    }

    /// Moves the clock forward by `by` and wakes whoever waits on it.
    pub fn advance(&self, by: Duration) {
        self.now.send_modify(|now| *now += by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn moves(&self) -> Option<watch::Receiver<DateTime<Utc>>> {
        Some(self.now.subscribe())
    }
}
