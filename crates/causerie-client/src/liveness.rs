//! Liveness: is the connection still there? A `ping` goes out when the connection has been idle
//! for the interval, or when something makes it doubtful (a transport error, a request left
//! unanswered, the app back in the foreground); an unanswered ping means the connection is dead.
//!
//! A dead peer or a stalled network often gives no error at all: without this, a client would
//! wait forever on a connection that can no longer deliver.

use std::time::Duration;

use tokio::time::Instant;

/// The ping schedule of one connection.
#[derive(Debug)]
pub(crate) struct Liveness {
    interval: Duration,
    timeout: Duration,
    /// The ping out, and when it is too late for its answer.
    out: Option<(u64, Instant)>,
    next: Instant,
    sent: u64,
}

/// The connection did not answer a ping in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the server did not answer a ping")]
pub(crate) struct Unanswered;

impl Liveness {
    /// A schedule for a connection made `now`: checked after `interval`, allowed `timeout`.
    pub(crate) fn new(now: Instant, interval: Duration, timeout: Duration) -> Self {
        Self {
            interval,
            timeout,
            out: None,
            next: now + interval,
            sent: 0,
        }
    }

    /// A ping to send now, unless one is out already: its id.
    pub(crate) fn check(&mut self, now: Instant) -> Option<u64> {
        if self.out.is_some() {
            return None;
        }
        self.sent += 1;
        self.out = Some((self.sent, now + self.timeout));
        self.next = now + self.interval;
        Some(self.sent)
    }

    /// A ping was answered; a late answer to an earlier one proves nothing.
    pub(crate) fn answered(&mut self, id: u64) {
        if self.out.is_some_and(|(out, _)| out == id) {
            self.out = None;
        }
    }

    /// What is due at `now`: an error if the ping out went unanswered, else a ping to send if
    /// the connection has been idle long enough.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Result<Option<u64>, Unanswered> {
        match self.out {
            Some((_, deadline)) if now >= deadline => Err(Unanswered),
            Some(_) => Ok(None),
            None if now >= self.next => Ok(self.check(now)),
            None => Ok(None),
        }
    }

    /// When [`Liveness::on_timer`] has something to do: while a ping is out, its deadline
    /// matters, not the time of the next one.
    pub(crate) fn deadline(&self) -> Instant {
        self.out.map_or(self.next, |(_, deadline)| deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_secs(15);
    const TIMEOUT: Duration = Duration::from_secs(10);

    #[test]
    fn an_idle_connection_is_pinged_once_per_interval() {
        let start = Instant::now();
        let mut liveness = Liveness::new(start, INTERVAL, TIMEOUT);
        assert_eq!(liveness.deadline(), start + INTERVAL);
        assert_eq!(liveness.on_timer(start + INTERVAL / 2), Ok(None));
        assert_eq!(liveness.on_timer(start + INTERVAL), Ok(Some(1)));
        assert_eq!(liveness.deadline(), start + INTERVAL + TIMEOUT);
        liveness.answered(1);
        assert_eq!(liveness.deadline(), start + INTERVAL * 2);
        assert_eq!(liveness.on_timer(start + INTERVAL * 2), Ok(Some(2)));
    }

    #[test]
    fn an_unanswered_ping_means_the_connection_is_dead() {
        let start = Instant::now();
        let mut liveness = Liveness::new(start, INTERVAL, TIMEOUT);
        assert_eq!(liveness.check(start), Some(1));
        assert_eq!(liveness.on_timer(start + TIMEOUT / 2), Ok(None));
        assert_eq!(liveness.on_timer(start + TIMEOUT), Err(Unanswered));
    }

    #[test]
    fn doubts_send_one_ping_not_one_each() {
        let start = Instant::now();
        let mut liveness = Liveness::new(start, INTERVAL, TIMEOUT);
        assert_eq!(liveness.check(start), Some(1));
        assert_eq!(liveness.check(start), None, "one is out already");
        assert_eq!(
            liveness.on_timer(start + TIMEOUT / 2),
            Ok(None),
            "still out"
        );
    }

    #[test]
    fn a_late_answer_to_an_earlier_ping_proves_nothing() {
        let start = Instant::now();
        let mut liveness = Liveness::new(start, INTERVAL, TIMEOUT);
        liveness.check(start);
        liveness.answered(1);
        let later = start + Duration::from_secs(1);
        assert_eq!(liveness.check(later), Some(2));
        liveness.answered(1);
        assert_eq!(liveness.on_timer(later + TIMEOUT), Err(Unanswered));
    }
}
