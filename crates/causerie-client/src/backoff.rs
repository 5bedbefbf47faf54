//! Reconnection delays: exponential backoff with full jitter, never below a floor, never above a cap.

use std::time::Duration;

use rand::Rng;

/// How long to wait before each reconnection attempt.
///
/// Attempt `n` waits a random time between [`Backoff::initial`] and
/// `min(max, initial × 2^(n-1))` ("full jitter", floored at `initial` so that no outage, however
/// long, turns into a tight loop). The random spread keeps a crowd of clients from reconnecting in
/// lockstep after a server restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first ceiling, and the shortest wait. Defaults to 500 ms.
    pub initial: Duration,
    /// The longest wait. Defaults to 30 s.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The longest wait before attempt `attempt` (1 for the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        self.initial
            .saturating_mul(1 << doublings)
            .min(self.max)
            .max(self.initial)
    }

    /// A random wait before attempt `attempt`, between `initial` and [`Backoff::ceiling`].
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let floor = self.initial.min(ceiling);
        rand::rng().random_range(floor..=ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ceiling_doubles_up_to_the_cap_and_stays_there() {
        let backoff = Backoff::default();
        let ceilings: Vec<u64> = (1..=8)
            .map(|n| backoff.ceiling(n).as_millis() as u64)
            .collect();
        assert_eq!(
            ceilings,
            [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000]
        );
        assert_eq!(backoff.ceiling(1_000_000), Duration::from_secs(30));
    }

    #[test]
    fn delays_stay_between_the_floor_and_the_ceiling() {
        let backoff = Backoff::default();
        for attempt in [1, 2, 5, 50, u32::MAX] {
            for _ in 0..200 {
                let delay = backoff.delay(attempt);
                assert!(
                    delay >= backoff.initial && delay <= backoff.ceiling(attempt),
                    "{delay:?}"
                );
            }
        }
    }

    #[test]
    fn delays_are_spread_out() {
        let backoff = Backoff::default();
        let delays: std::collections::BTreeSet<Duration> =
            (0..50).map(|_| backoff.delay(10)).collect();
        assert!(delays.len() > 40, "full jitter spreads clients apart");
    }
}
