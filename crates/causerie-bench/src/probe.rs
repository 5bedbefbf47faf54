//! The text a sender sends: `b:<id>:<nanos>`, where `nanos` is the intended send time on the load
//! generator's monotonic clock. Servers relay it (Causerie as `"<name>: b:..."` to seed clients),
//! and the receiver finds it anywhere in the payload, so every server's format works.

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

/// The text of probe `id`, meant to be sent at `intended_nanos`.
pub fn text(id: u64, intended_nanos: u64) -> String {
    format!("{MARK}{id}:{intended_nanos}")
}

/// A probe found in a received payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Which message.
    pub id: u64,
    /// When it was meant to be sent.
    pub intended_nanos: u64,
}

impl Probe {
    /// Finds the probe in `payload` (raw JSON or text), if there is one.
    pub fn find(payload: &str) -> Option<Self> {
        let start = payload.find(MARK)? + MARK.len();
        let mut numbers = payload[start..].split(|c: char| !c.is_ascii_digit());
        let id = numbers.next()?.parse().ok()?;
        let intended_nanos = numbers.next()?.parse().ok()?;
        Some(Self { id, intended_nanos })
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
        let sent = text(42, 1_000_000);
        for payload in [
            format!("\"{sent}\""),
            format!("\"guest-0001: {sent}\""),
            format!(r#"{{"id":"x","text":"{sent}","seq":3}}"#),
        ] {
            assert_eq!(
                Probe::find(&payload),
                Some(Probe {
                    id: 42,
                    intended_nanos: 1_000_000
                }),
                "{payload}"
            );
        }
        assert_eq!(Probe::find("\"hello\""), None);
    }

    #[test]
    fn latency_counts_from_the_intended_time() {
        let probe = Probe {
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
