//! When a job that failed for now runs again: exponential backoff with full jitter, or the
//! provider's own `Retry-After` when it gave one.

use std::time::Duration;

/// Exponential waits between attempts: the retry policy of one kind of job (or of the event
/// bus listening again).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The wait after the first failure, before jitter.
    pub base: Duration,
    /// No wait is longer than this.
    pub max: Duration,
    /// After this many attempts the job fails for good.
    pub max_attempts: i32,
}

impl Backoff {
    /// The wait after attempt `attempt` (1 for the first) failed: a random point of
    /// `[base·2^(attempt-1) / 2, base·2^(attempt-1)]`, capped at `max`, so retries of many
    /// jobs that failed together spread out. A `Retry-After` from the provider is honoured
    /// when it is longer (capped the same way).
    pub fn wait(&self, attempt: i32, retry_after: Option<Duration>, unit: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
        let ceiling = self
            .base
            .saturating_mul(1u32 << exponent.min(20))
            .min(self.max);
        let jittered = ceiling.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0));
        match retry_after {
            Some(asked) => asked.min(self.max).max(jittered),
            None => jittered,
        }
    }

    /// A uniform draw from [0, 1] for [`Self::wait`], from the operating system's generator.
    pub fn jitter() -> f64 {
        use rand_core::RngCore;
        rand_core::OsRng.next_u64() as f64 / u64::MAX as f64
    }

    /// Whether attempt `attempt` was the last one allowed.
    pub fn exhausted(&self, attempt: i32) -> bool {
        attempt >= self.max_attempts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: Backoff = Backoff {
        base: Duration::from_secs(2),
        max: Duration::from_secs(600),
        max_attempts: 8,
    };

    #[test]
    fn waits_double_within_jitter_and_stop_at_the_cap() {
        assert_eq!(POLICY.wait(1, None, 1.0), Duration::from_secs(2));
        assert_eq!(POLICY.wait(1, None, 0.0), Duration::from_secs(1));
        assert_eq!(POLICY.wait(4, None, 1.0), Duration::from_secs(16));
        assert_eq!(POLICY.wait(30, None, 1.0), Duration::from_secs(600));
    }

    #[test]
    fn retry_after_is_honoured_when_longer_and_capped() {
        let asked = Some(Duration::from_secs(120));
        assert_eq!(POLICY.wait(1, asked, 1.0), Duration::from_secs(120));
        let absurd = Some(Duration::from_secs(86_400));
        assert_eq!(POLICY.wait(1, absurd, 1.0), Duration::from_secs(600));
    }

    #[test]
    fn the_last_attempt_is_exhausted() {
        assert!(!POLICY.exhausted(7));
        assert!(POLICY.exhausted(8));
    }
}
