//! When to try a failed webhook again: exponential backoff with full jitter, bounded by a
//! maximum delay and by a retry window counted from the status change.

use std::time::Duration;

use crate::domain::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The ceiling of the first retry's delay; it doubles after each failed attempt.
    pub first_delay: Duration,
    /// The ceiling never grows beyond this.
    pub max_delay: Duration,
    /// How long after the status change attempts go on; then the notification is given up.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 10 s doubling up to 1 h, for 3 days: a receiver down for a weekend still gets everything.
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The longest wait after `failed` failed attempts: `first_delay × 2^(failed - 1)`, capped.
    pub fn ceiling(&self, failed: u32) -> Duration {
        let doublings = failed.saturating_sub(1).min(63);
        let factor = 1u32.checked_shl(doublings).unwrap_or(u32::MAX);
        self.first_delay
            .checked_mul(factor)
            .unwrap_or(self.max_delay)
            .min(self.max_delay)
    }

    /// Full jitter: a delay drawn uniformly from `[0, ceiling]` (whole seconds, the store's
    /// resolution) with `random`, so that receivers recovering from an outage are not hit by
    /// every retry at once. `None` (no randomness available) waits the whole ceiling.
    pub fn delay(&self, failed: u32, random: Option<u64>) -> Duration {
        let ceiling = self.ceiling(failed).as_secs();
        match random {
            Some(random) => Duration::from_secs(random % ceiling.saturating_add(1)),
            None => Duration::from_secs(ceiling),
        }
    }

    /// When to try again after the `failed`-th failed attempt, made at `now`, of the
    /// notification of a change at `changed_at`; `None` once the retry window has closed. The
    /// last retry falls on the window's end, not after it.
    pub fn next_attempt(
        &self,
        changed_at: Instant,
        failed: u32,
        now: Instant,
        random: Option<u64>,
    ) -> Option<Instant> {
        let deadline = changed_at.plus_seconds(self.give_up_after.as_secs());
        if now >= deadline {
            return None;
        }
        Some(
            now.plus_seconds(self.delay(failed, random).as_secs())
                .min(deadline),
        )
    }
}

/// 64 random bits from the operating system, for the jitter.
pub fn random() -> Option<u64> {
    getrandom::u64().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_from_the_first_delay_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<u64> = (1..=11).map(|n| policy.ceiling(n).as_secs()).collect();
        assert_eq!(
            ceilings,
            [10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(policy.ceiling(0).as_secs(), 10);
        assert_eq!(policy.ceiling(u32::MAX).as_secs(), 3600);
    }

    #[test]
    fn delays_are_spread_over_the_whole_range_and_never_beyond() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (0..2000u64)
            .map(|i| {
                policy
                    .delay(3, Some(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
                    .as_secs()
            })
            .collect();
        assert!(delays.iter().all(|delay| *delay <= 40));
        assert!(delays.contains(&0));
        assert!(delays.contains(&40));
        assert_eq!(policy.delay(3, None).as_secs(), 40);
    }

    #[test]
    fn retries_stop_when_the_window_closes_and_the_last_one_falls_on_its_end() {
        let policy = RetryPolicy {
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(100),
        };
        let changed = Instant::from_unix(1_000);
        let now = Instant::from_unix(1_090);
        assert_eq!(
            policy.next_attempt(changed, 1, now, Some(5)),
            Some(Instant::from_unix(1_095))
        );
        assert_eq!(
            policy.next_attempt(changed, 8, now, None),
            Some(Instant::from_unix(1_100))
        );
        assert_eq!(
            policy.next_attempt(changed, 9, Instant::from_unix(1_100), None),
            None
        );
    }
}
