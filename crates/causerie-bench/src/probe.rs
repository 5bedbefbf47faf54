//! The text a sender sends: `b:<step>:<id>:<nanos>`, where `step` is the load step it belongs to
//! and `nanos` its intended send time on the load generator's monotonic clock. Servers relay it
//! (Causerie as `"<name>: b:..."` to seed clients, inside the message object in acks), and the
//! receiver finds it anywhere in the payload, so every server's format works. Because the step
//! travels with the message, a late delivery is counted against the step that sent it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MARK: &str = "b:";

/// The load generator's clock: nanoseconds since its first use, the same for senders and receivers.
pub fn now_nanos() -> u64 {
    nanos_at(Instant::now())
}

/// `at` on the load generator's clock.
pub fn nanos_at(at: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX)
}

/// A probe: which message of which step, and when it was meant to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// The load step that sent it.
    pub step: usize,
    /// Which message of the step.
    pub id: u64,
    /// When it was meant to be sent.
    pub intended_nanos: u64,
}

impl Probe {
    /// The text that carries this probe.
    pub fn text(&self) -> String {
        format!("{MARK}{}:{}:{}", self.step, self.id, self.intended_nanos)
    }

    /// Finds the probe in `payload` (raw JSON or text), if there is one.
    pub fn find(payload: &str) -> Option<Self> {
        let start = payload.find(MARK)? + MARK.len();
        let mut numbers = payload[start..].split(|c: char| !c.is_ascii_digit());
        let step = numbers.next()?.parse().ok()?;
        let id = numbers.next()?.parse().ok()?;
        let intended_nanos = numbers.next()?.parse().ok()?;
        Some(Self {
            step,
            id,
            intended_nanos,
        })
    }

    /// How long after its intended send time the probe arrived at `received_nanos`.
    pub fn latency(&self, received_nanos: u64) -> Duration {
        Duration::from_nanos(received_nanos.saturating_sub(self.intended_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_is_found_in_any_servers_format() {
        let probe = Probe {
            step: 3,
            id: 42,
            intended_nanos: 1_000_000,
        };
        let sent = probe.text();
        for payload in [
            format!("\"{sent}\""),
            format!("\"guest-0001: {sent}\""),
            format!(r#"{{"id":"x","text":"{sent}","seq":3}}"#),
        ] {
            assert_eq!(Probe::find(&payload), Some(probe), "{payload}");
        }
        assert_eq!(Probe::find("\"hello\""), None);
        assert_eq!(Probe::find("\"b:1:2\""), None);
    }

    #[test]
    fn latency_counts_from_the_intended_time() {
        let probe = Probe {
            step: 0,
            id: 1,
            intended_nanos: 5_000,
        };
        assert_eq!(probe.latency(7_500), Duration::from_nanos(2_500));
        assert_eq!(probe.latency(1_000), Duration::ZERO);
    }

    #[test]
    fn the_clock_moves_forward() {
        let a = now_nanos();
        let b = now_nanos();
        assert!(b >= a);
    }
}
