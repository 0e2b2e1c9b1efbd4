//! Rate limits on `login` and `register`, per account and per client address, so that a
//! guesser gets a few tries a minute on an account and one client cannot flood sign-ins or
//! sign-ups (each of which costs an Argon2 hash).
//!
//! Every attempt on an email counts, right or wrong: the server cannot tell a guesser's
//! right password from the owner's without checking it, which is what the limit withholds.
//! A stranger can therefore hold an account's sign-in back only while they keep trying, one
//! period per attempt, never for good. Limits are timed by the service clock.

use std::{
    hash::Hash,
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::http::{HeaderMap, HeaderName};
use chrono::{DateTime, Utc};
use governor::{Quota, RateLimiter, middleware::NoOpMiddleware, state::keyed::HashMapStateStore};

use crate::{
    clock::Clock,
    config::{ConfigError, RateConfig, SignInConfig},
    error::AppError,
};

/// Emails longer than this cannot exist, so longer keys are cut here to bound memory.
const MAX_EMAIL_KEY: usize = 320;
/// How often keys whose limit has fully replenished are forgotten.
const SWEEP_EVERY: chrono::Duration = chrono::Duration::seconds(60);

/// The address a request came from, put in the GraphQL request data by the HTTP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The governor clock over the service clock, so tests move rate windows with the `ManualClock`.
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

type Limiter<K> = RateLimiter<K, HashMapStateStore<K>, ServiceClock, NoOpMiddleware<Duration>>;

/// The keyed limiters of sign-in and sign-up, shared by every request of this instance.
pub struct SignInLimits {
    per_account: Limiter<String>,
    per_address: Limiter<IpAddr>,
    registrations_per_address: Limiter<IpAddr>,
    clock: ServiceClock,
    client_ip_header: Option<HeaderName>,
    last_sweep: Mutex<DateTime<Utc>>,
}

impl SignInLimits {
    /// Limiters with the configured quotas; refuses a `CLIENT_IP_HEADER` that is no header name.
    pub fn new(config: &SignInConfig, clock: Arc<dyn Clock>) -> Result<Self, ConfigError> {
        let client_ip_header = config
            .client_ip_header
            .as_deref()
            .map(|name| {
                HeaderName::try_from(name.trim()).map_err(|err| ConfigError::Invalid {
                    name: "CLIENT_IP_HEADER",
                    reason: err.to_string(),
                })
            })
            .transpose()?;
        let clock = ServiceClock(clock);
        Ok(Self {
            per_account: limiter(config.per_account, &clock),
            per_address: limiter(config.per_address, &clock),
            registrations_per_address: limiter(config.registrations_per_address, &clock),
            last_sweep: Mutex::new(clock.0.now()),
            clock,
            client_ip_header,
        })
    }

    /// Where a request came from: the connection's peer or, behind a trusted proxy, the
    /// rightmost entry of the configured header (the one that proxy appended). IPv6 clients
    /// are counted by their /64, which one subscriber usually holds whole.
    pub fn client_addr(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientAddr {
        let forwarded = self.client_ip_header.as_ref().and_then(|name| {
            let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
            let entry = value.rsplit(',').next()?.trim();
            entry
                .parse::<IpAddr>()
                .ok()
                .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        });
        ClientAddr(network_of(forwarded.unwrap_or(peer.ip())))
    }

    /// Counts a sign-in attempt on `email` from `addr`, or refuses it with when to retry.
    pub fn login(&self, email: &str, addr: Option<ClientAddr>) -> Result<(), AppError> {
        self.sweep_now_and_then();
        self.admit(
            &self.per_address,
            &address_key(addr),
            "sign-in attempts from your address",
        )?;
        self.admit(
            &self.per_account,
            &email_key(email),
            "sign-in attempts on this account",
        )
    }

    /// Counts a registration of `email` from `addr`, or refuses it with when to retry.
    pub fn register(&self, email: &str, addr: Option<ClientAddr>) -> Result<(), AppError> {
        self.sweep_now_and_then();
        self.admit(
            &self.registrations_per_address,
            &address_key(addr),
            "registrations from your address",
        )?;
        self.admit(
            &self.per_account,
            &email_key(email),
            "sign-in attempts on this account",
        )
    }

    fn admit<K: Hash + Eq + Clone>(
        &self,
        limiter: &Limiter<K>,
        key: &K,
        what: &str,
    ) -> Result<(), AppError> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(&self.clock));
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            AppError::RateLimited {
                message: format!("too many {what}: try again in {} s", seconds.max(1)),
                retry_after_seconds: Some(seconds.max(1)),
            }
        })
    }

    /// Forgets, once a minute, the keys whose limit has fully replenished, so memory follows
    /// the callers of the last few periods, not every caller ever seen.
    fn sweep_now_and_then(&self) {
        let now = self.clock.0.now();
        {
            let mut last = self
                .last_sweep
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if now - *last < SWEEP_EVERY {
                return;
            }
            *last = now;
        }
        self.per_account.retain_recent();
        self.per_account.shrink_to_fit();
        self.per_address.retain_recent();
        self.per_address.shrink_to_fit();
        self.registrations_per_address.retain_recent();
        self.registrations_per_address.shrink_to_fit();
    }
}

/// A limiter of `rate` (a zero burst or period, possible only in hand-made configs, counts as one).
fn limiter<K: Hash + Eq + Clone>(rate: RateConfig, clock: &ServiceClock) -> Limiter<K> {
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(rate.period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    RateLimiter::hashmap_with_clock(quota, clock.clone())
}

/// The normalised email (as `login` looks it up), cut to the longest possible email.
fn email_key(email: &str) -> String {
    email
        .trim()
        .to_lowercase()
        .chars()
        .take(MAX_EMAIL_KEY)
        .collect()
}

/// Requests that arrive without an address (not over HTTP) share one key: limited, not exempt.
fn address_key(addr: Option<ClientAddr>) -> IpAddr {
    addr.map_or(IpAddr::from([0, 0, 0, 0]), |ClientAddr(ip)| ip)
}

/// An IPv6 address's /64; an IPv4 address (also mapped into IPv6) as it is.
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = !0u128 << 64;
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        },
    }
}
