//! Keyed rate limits (per account, per address, per user), each a burst then a steady rate,
//! timed by the service clock so that tests move their windows with the manual clock.
//!
//! [`KeyedLimiter`] is the one way the service limits a caller's rate: sign-in attempts
//! ([`crate::auth::SignInLimits`]) and what each user may spend ([`UsageLimits`]) are built on
//! it, and every refusal is `RATE_LIMITED` with when to retry.

mod usage;

use std::{
    hash::Hash,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use governor::{Quota, RateLimiter, middleware::NoOpMiddleware, state::keyed::HashMapStateStore};

pub use usage::UsageLimits;

use crate::{clock::Clock, config::RateConfig, error::AppError, sync::lock};

/// How often keys whose limit has fully replenished are forgotten.
const SWEEP_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// The governor clock over the service clock.
#[derive(Clone)]
struct ServiceClock(Arc<dyn Clock>);

impl governor::clock::Clock for ServiceClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        (self.0.now() - DateTime::UNIX_EPOCH)
            .to_std()
            .unwrap_or_default()
    }
}

/// A burst-then-rate limit per key, whose memory follows the keys seen in the last minute
/// or so rather than every key ever seen.
pub struct KeyedLimiter<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, HashMapStateStore<K>, ServiceClock, NoOpMiddleware<Duration>>,
    clock: ServiceClock,
    last_sweep: Mutex<DateTime<Utc>>,
    /// What is limited, for the refusal's message ("sign-in attempts on this account").
    what: &'static str,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter of `rate` (a zero burst or period, possible only in hand-made configs,
    /// counts as one).
    pub fn new(rate: RateConfig, clock: Arc<dyn Clock>, what: &'static str) -> Self {
        let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(rate.period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        let clock = ServiceClock(clock);
        Self {
            limiter: RateLimiter::hashmap_with_clock(quota, clock.clone()),
            last_sweep: Mutex::new(clock.0.now()),
            clock,
            what,
        }
    }

    /// Spends one unit of `key`'s allowance, or refuses with when to retry.
    pub fn admit(&self, key: &K) -> Result<(), AppError> {
        self.admit_n(key, 1)
    }

    /// Spends `units` of `key`'s allowance at once (a query's cost, say), or refuses with when
    /// to retry; more units than a whole burst are refused for good.
    pub fn admit_n(&self, key: &K, units: u32) -> Result<(), AppError> {
        self.sweep_now_and_then();
        let units = NonZeroU32::new(units).unwrap_or(NonZeroU32::MIN);
        match self.limiter.check_key_n(key, units) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => {
                let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
                let seconds = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
                Err(AppError::RateLimited {
                    message: format!("too many {}: try again in {seconds} s", self.what),
                    retry_after_seconds: Some(seconds),
                })
            }
            Err(_) => Err(AppError::RateLimited {
                message: format!(
                    "this costs more {} than are ever allowed at once",
                    self.what
                ),
                retry_after_seconds: None,
            }),
        }
    }

    /// Forgets, once a minute, the keys whose limit has fully replenished.
    fn sweep_now_and_then(&self) {
        let now = self.clock.0.now();
        {
            let mut last = lock(&self.last_sweep);
            if now - *last < SWEEP_EVERY {
                return;
            }
            *last = now;
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}
