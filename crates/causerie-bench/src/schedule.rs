//! Open-loop sending: message `n` is due at `start + n / rate`, whatever happened to message
//! `n - 1`. A closed loop (send, wait, send) lets a slow server slow the load down and hides its
//! queueing delay ("coordinated omission"); measuring from the due time shows it.

use std::time::{Duration, Instant};

/// When each message of a steady rate is due.
#[derive(Debug, Clone, Copy)]
pub struct OpenLoop {
    start: Instant,
    interval: Duration,
}

impl OpenLoop {
    /// `per_second` messages a second from `start`.
    pub fn new(start: Instant, per_second: f64) -> Self {
        let interval = Duration::from_secs_f64(1.0 / per_second.max(f64::MIN_POSITIVE));
        Self { start, interval }
    }

    /// When message `n` (from 0) is due.
    pub fn due(&self, n: u64) -> Instant {
        self.start + self.interval.mul_f64(n as f64)
    }

    /// How many messages are due by `now` (all those with `due(n) <= now`).
    pub fn due_by(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        (elapsed.as_secs_f64() / self.interval.as_secs_f64()).floor() as u64 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_due_at_a_steady_rate_from_the_start() {
        let start = Instant::now();
        let schedule = OpenLoop::new(start, 100.0);
        assert_eq!(schedule.due(0), start);
        assert_eq!(schedule.due(10), start + Duration::from_millis(100));
        assert_eq!(schedule.due(250), start + Duration::from_millis(2_500));
    }

    #[test]
    fn a_late_sender_finds_every_missed_message_still_due() {
        let start = Instant::now();
        let schedule = OpenLoop::new(start, 10.0);
        assert_eq!(schedule.due_by(start), 1);
        assert_eq!(schedule.due_by(start + Duration::from_millis(950)), 10);
        assert_eq!(schedule.due_by(start + Duration::from_secs(3)), 31);
    }
}
