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

/// One load step: how many deliveries (or acks) were expected and received, and the latency of each.
pub struct Tally {
    latencies: LatencyRecorder,
    expected: AtomicU64,
    received: AtomicU64,
}

/// Deliveries of one step: expected, received, and the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Each message sent times the clients that should get it.
    pub expected: u64,
    /// What arrived.
    pub received: u64,
    /// Expected but never arrived.
    pub lost: u64,
}

impl Tally {
    /// An empty tally recording into `shards` histograms.
    pub fn new(shards: usize) -> Self {
        Self {
            latencies: LatencyRecorder::new(shards),
            expected: AtomicU64::new(0),
            received: AtomicU64::new(0),
        }
    }

    /// A message was sent that `recipients` clients should receive.
    pub fn expect(&self, recipients: u64) {
        self.expected.fetch_add(recipients, Ordering::Relaxed);
    }

    /// Client `who` received a message `latency` after it was due to be sent.
    pub fn receive(&self, who: usize, latency: Duration) {
        self.latencies.record(who, latency);
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Expected, received and lost so far.
    pub fn counts(&self) -> Counts {
        let expected = self.expected.load(Ordering::Relaxed);
        let received = self.received.load(Ordering::Relaxed);
        Counts {
            expected,
            received,
            lost: expected.saturating_sub(received),
        }
    }

    /// The latencies recorded so far.
    pub fn latencies(&self) -> LatencySummary {
        self.latencies.summary()
    }
}

/// The tallies of a run's steps, found by the step number each probe carries, so that a late
/// delivery counts against the step that sent it and never flatters the next one.
pub struct Steps {
    tallies: Vec<Tally>,
}

impl Steps {
    /// Room for `count` steps.
    pub fn new(count: usize, shards: usize) -> Self {
        Self {
            tallies: (0..count).map(|_| Tally::new(shards)).collect(),
        }
    }

    /// The tally of step `step`, if the run has one.
    pub fn get(&self, step: usize) -> Option<&Tally> {
        self.tallies.get(step)
    }

    /// Deliveries received by all steps: steady once the server has nothing left to send.
    pub fn received(&self) -> u64 {
        self.tallies.iter().map(|t| t.counts().received).sum()
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
        let tally = Tally::new(2);
        tally.expect(10);
        tally.expect(10);
        for who in 0..17 {
            tally.receive(who, Duration::from_millis(1));
        }
        let counts = tally.counts();
        assert_eq!((counts.expected, counts.received, counts.lost), (20, 17, 3));
        assert_eq!(tally.latencies().count, 17);
    }

    #[test]
    fn each_step_keeps_its_own_count() {
        let steps = Steps::new(2, 1);
        steps
            .get(0)
            .expect("step 0")
            .receive(0, Duration::from_millis(5));
        steps
            .get(1)
            .expect("step 1")
            .receive(0, Duration::from_millis(9));
        steps
            .get(1)
            .expect("step 1")
            .receive(0, Duration::from_millis(9));
        assert_eq!(steps.get(0).expect("step 0").counts().received, 1);
        assert_eq!(steps.get(1).expect("step 1").counts().received, 2);
        assert_eq!(steps.received(), 3);
        assert!(steps.get(2).is_none());
    }
}
