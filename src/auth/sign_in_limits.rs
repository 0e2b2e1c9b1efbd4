//! Rate limits on `login` and `register`, per account and per client address, so that a
//! guesser gets a few tries a minute on an account and one client cannot flood sign-ins or
//! sign-ups (each of which costs an Argon2 hash).
//!
//! Every attempt on an email counts, right or wrong: the server cannot tell a guesser's
//! right password from the owner's without checking it, which is what the limit withholds.
//! A stranger can therefore hold an account's sign-in back only while they keep trying, one
//! period per attempt, never for good. Limits are timed by the service clock.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::http::{HeaderMap, HeaderName};

use crate::{
    clock::Clock,
    config::{ConfigError, SignInConfig},
    error::AppError,
    rate_limit::KeyedLimiter,
    viewer::ClientAddr,
};

/// Emails longer than this cannot exist, so longer keys are cut here to bound memory.
const MAX_EMAIL_KEY: usize = 320;

/// The keyed limiters of sign-in and sign-up, shared by every request of this instance.
pub struct SignInLimits {
    per_account: KeyedLimiter<String>,
    per_address: KeyedLimiter<IpAddr>,
    registrations_per_address: KeyedLimiter<IpAddr>,
    client_ip_header: Option<HeaderName>,
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
        Ok(Self {
            per_account: KeyedLimiter::new(
                config.per_account,
                clock.clone(),
                "sign-in attempts on this account",
            ),
            per_address: KeyedLimiter::new(
                config.per_address,
                clock.clone(),
                "sign-in attempts from your address",
            ),
            registrations_per_address: KeyedLimiter::new(
                config.registrations_per_address,
                clock,
                "registrations from your address",
            ),
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
        self.per_address.admit(&address_key(addr))?;
        self.per_account.admit(&email_key(email))
    }

    /// Counts a registration of `email` from `addr`, or refuses it with when to retry.
    pub fn register(&self, email: &str, addr: Option<ClientAddr>) -> Result<(), AppError> {
        self.registrations_per_address.admit(&address_key(addr))?;
        self.per_account.admit(&email_key(email))
    }
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
