//! Latencies in HDR histograms, and deliveries counted against what was expected.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
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

/// One load step: which deliveries (or acks) were expected and received, and the latency of
/// each. Deliveries are counted per recipient and message, so a duplicate never hides a loss.
pub struct Tally {
    latencies: LatencyRecorder,
    messages: u64,
    recipients: usize,
    /// One bit per (message, recipient): set on its first delivery.
    delivered: Vec<AtomicU64>,
    expected: AtomicU64,
    received: AtomicU64,
    duplicates: AtomicU64,
    strays: AtomicU64,
}

/// Deliveries of one step: expected, received, and the difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Each message sent times the clients that should get it.
    pub expected: u64,
    /// Distinct (message, recipient) pairs that arrived.
    pub received: u64,
    /// Expected but never arrived.
    pub lost: u64,
    /// Deliveries of a message a recipient had already received.
    pub duplicates: u64,
    /// Deliveries no recipient should have had (a message id or recipient outside the step).
    pub strays: u64,
}

impl Tally {
    /// An empty tally for `messages` messages to `recipients` recipients each, recording into
    /// `shards` histograms.
    pub fn new(messages: u64, recipients: usize, shards: usize) -> Self {
        let bits = messages.saturating_mul(recipients as u64);
        Self {
            latencies: LatencyRecorder::new(shards),
            messages,
            recipients,
            delivered: (0..bits.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            expected: AtomicU64::new(0),
            received: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            strays: AtomicU64::new(0),
        }
    }

    /// A message was sent that `recipients` clients should receive.
    pub fn expect(&self, recipients: u64) {
        self.expected.fetch_add(recipients, Ordering::Relaxed);
    }

    /// Recipient `who` received message `id` `latency` after it was due to be sent.
    pub fn receive(&self, who: usize, id: u64, latency: Duration) {
        if who >= self.recipients || id >= self.messages {
            self.strays.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let bit = id * self.recipients as u64 + who as u64;
        let mask = 1u64 << (bit % 64);
        let word = &self.delivered[(bit / 64) as usize];
        if word.fetch_or(mask, Ordering::Relaxed) & mask != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
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
            duplicates: self.duplicates.load(Ordering::Relaxed),
            strays: self.strays.load(Ordering::Relaxed),
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
    tallies: Vec<OnceLock<Tally>>,
    next: AtomicUsize,
    shards: usize,
}

impl Steps {
    /// Room for `count` steps, each recording into `shards` histograms.
    pub fn new(count: usize, shards: usize) -> Self {
        Self {
            tallies: (0..count).map(|_| OnceLock::new()).collect(),
            next: AtomicUsize::new(0),
            shards,
        }
    }

    /// Starts the next step, of `messages` messages to `recipients` recipients each: its number
    /// (for the probes) and its tally. `None` once every step is used.
    pub fn start(&self, messages: u64, recipients: usize) -> Option<(usize, &Tally)> {
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = self.tallies.get(number)?;
        let tally = slot.get_or_init(|| Tally::new(messages, recipients, self.shards));
        Some((number, tally))
    }

    /// The tally of step `step`, if it has started.
    pub fn get(&self, step: usize) -> Option<&Tally> {
        self.tallies.get(step)?.get()
    }

    /// Deliveries received by all steps: steady once the server has nothing left to send.
    pub fn received(&self) -> u64 {
        self.tallies
            .iter()
            .filter_map(OnceLock::get)
            .map(|t| t.counts().received + t.counts().duplicates)
            .sum()
    }
}

/// Reads a figure written as `null`: serde_json writes a NaN (a figure not measured) so, and
/// could not read it back for `--replot`.
pub fn f64_or_nan<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(<Option<f64> as serde::Deserialize>::deserialize(deserializer)?.unwrap_or(f64::NAN))
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
        let tally = Tally::new(2, 10, 2);
        tally.expect(10);
        tally.expect(10);
        for who in 0..10 {
            tally.receive(who, 0, Duration::from_millis(1));
        }
        for who in 0..7 {
            tally.receive(who, 1, Duration::from_millis(1));
        }
        let counts = tally.counts();
        assert_eq!((counts.expected, counts.received, counts.lost), (20, 17, 3));
        assert_eq!(tally.latencies().count, 17);
    }

    #[test]
    fn a_duplicate_does_not_hide_a_loss() {
        let tally = Tally::new(2, 3, 1);
        tally.expect(3);
        tally.expect(3);
        // Recipient 0 gets message 0 twice and never message 1; the others get both.
        for (who, id) in [(0, 0), (0, 0), (1, 0), (2, 0), (1, 1), (2, 1)] {
            tally.receive(who, id, Duration::from_millis(1));
        }
        // Out of the step: a recipient or message it does not have.
        tally.receive(3, 0, Duration::from_millis(1));
        tally.receive(0, 2, Duration::from_millis(1));
        let counts = tally.counts();
        assert_eq!(
            (
                counts.received,
                counts.lost,
                counts.duplicates,
                counts.strays
            ),
            (5, 1, 1, 2)
        );
        assert_eq!(tally.latencies().count, 5);
    }

    #[test]
    fn each_step_keeps_its_own_count() {
        let steps = Steps::new(2, 1);
        let (first, tally) = steps.start(1, 1).expect("step 0");
        tally.receive(0, 0, Duration::from_millis(5));
        let (second, tally) = steps.start(2, 1).expect("step 1");
        tally.receive(0, 0, Duration::from_millis(9));
        tally.receive(0, 1, Duration::from_millis(9));
        assert_eq!((first, second), (0, 1));
        assert_eq!(steps.get(0).expect("step 0").counts().received, 1);
        assert_eq!(steps.get(1).expect("step 1").counts().received, 2);
        assert_eq!(steps.received(), 3);
        assert!(steps.start(1, 1).is_none(), "only two steps");
        assert!(steps.get(2).is_none());
    }
}
