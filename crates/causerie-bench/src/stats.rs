//! Latencies in HDR histograms, and deliveries counted against what was expected.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

/// Highest latency recorded exactly: a minute, in microseconds; anything slower counts as this.
const HIGHEST_MICROS: u64 = 60_000_000;

/// Latencies recorded from many tasks at once. One histogram per shard keeps the tasks from
/// queueing on a single lock; each client records into the shard its id picks.
pub struct LatencyRecorder {
    shards: Vec<Mutex<Histogram<u64>>>,
}

/// What a set of latencies looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySummary {
    /// How many were recorded.
    pub count: u64,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest.
    pub max: Duration,
}

impl LatencyRecorder {
    /// A recorder with `shards` histograms (a few per core is plenty).
    pub fn new(shards: usize) -> Self {
        let shards = (0..shards.max(1))
            .map(|_| {
                // 3 significant figures: 0.1% resolution at every magnitude.
                let histogram = Histogram::new_with_bounds(1, HIGHEST_MICROS, 3)
                    .unwrap_or_else(|_| unreachable!("the bounds are valid constants"));
                Mutex::new(histogram)
            })
            .collect();
        Self { shards }
    }

    /// Records one latency from the task numbered `who`.
    pub fn record(&self, who: usize, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, HIGHEST_MICROS);
        // A std Mutex: recording takes nanoseconds and never awaits while held.
        let mut shard = self.shards[who % self.shards.len()]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = shard.record(micros);
    }

    /// All shards merged.
    pub fn summary(&self) -> LatencySummary {
        let mut all = Histogram::<u64>::new_with_bounds(1, HIGHEST_MICROS, 3)
            .unwrap_or_else(|_| unreachable!("the bounds are valid constants"));
        for shard in &self.shards {
            let shard = shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = all.add(&*shard);
        }
        let at = |q: f64| Duration::from_micros(all.value_at_quantile(q));
        LatencySummary {
            count: all.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: Duration::from_micros(all.max()),
        }
    }
}

/// Deliveries expected (each message times the clients that should get it) and received.
#[derive(Debug, Default)]
pub struct Deliveries {
    expected: AtomicU64,
    received: AtomicU64,
}

impl Deliveries {
    /// A message was sent that `recipients` clients should receive.
    pub fn expect(&self, recipients: u64) {
        self.expected.fetch_add(recipients, Ordering::Relaxed);
    }

    /// A client received a message.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// (expected, received, lost).
    pub fn totals(&self) -> (u64, u64, u64) {
        let expected = self.expected.load(Ordering::Relaxed);
        let received = self.received.load(Ordering::Relaxed);
        (expected, received, expected.saturating_sub(received))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_every_shard() {
        let recorder = LatencyRecorder::new(4);
        for i in 1..=100u64 {
            recorder.record(i as usize, Duration::from_millis(i));
        }
        let summary = recorder.summary();
        assert_eq!(summary.count, 100);
        assert!((49..=51).contains(&summary.p50.as_millis()), "{summary:?}");
        assert!((98..=100).contains(&summary.p99.as_millis()), "{summary:?}");
        assert!((99..=101).contains(&summary.max.as_millis()), "{summary:?}");
    }

    #[test]
    fn latencies_beyond_the_range_are_kept_at_its_edges() {
        let recorder = LatencyRecorder::new(1);
        recorder.record(0, Duration::ZERO);
        recorder.record(0, Duration::from_secs(3600));
        let summary = recorder.summary();
        assert_eq!(summary.count, 2);
        assert!(summary.max >= Duration::from_secs(59));
    }

    #[test]
    fn lost_deliveries_are_expected_minus_received() {
        let deliveries = Deliveries::default();
        deliveries.expect(10);
        deliveries.expect(10);
        for _ in 0..17 {
            deliveries.received();
        }
        assert_eq!(deliveries.totals(), (20, 17, 3));
    }
}
