//! Prometheus metrics, served at `GET /metrics`.
//!
//! Each server instance owns its registry (prometheus-client) rather than a process-global
//! recorder, so that several servers embedded in one process (tests, the app) count separately.

use causerie_protocol::ErrorCode;

use crate::store::WriteHealth;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CauseLabel {
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    event: &'static str,
    code: &'static str,
}

/// A few totals, for a summary line in the log instead of a line per event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Sockets connected now.
    pub connections: i64,
    /// Sockets accepted since start.
    pub connects: u64,
    /// Messages stored and broadcast since start.
    pub messages: u64,
    /// Requests and connections refused since start.
    pub refusals: u64,
    /// Connections closed for falling behind since start.
    pub closed_behind: u64,
}

/// The server's counters.
pub struct Metrics {
    registry: Registry,
    connections: Gauge,
    connects: Counter,
    accepted: Counter,
    changes: Family<KindLabel, Counter>,
    rejected: Family<CodeLabel, Counter>,
    broadcast_latency: Histogram,
    store_writable: Gauge,
    redis_reachable: Gauge,
    closed_behind: Family<CauseLabel, Counter>,
    dropped: Counter,
    broadcasts_local_only: Counter,
    refusals: Family<RefusalLabels, Counter>,
    /// All refusals, for the log's summary (a family cannot be summed).
    refusals_total: Counter,
    closed_behind_total: Counter,
    log_lines_dropped: Gauge,
    dropped_log_lines: Option<crate::config::DroppedLogLines>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("causerie");
        let connections = Gauge::default();
        let connects = Counter::default();
        let accepted = Counter::default();
        let rejected = Family::<CodeLabel, Counter>::default();
        let changes = Family::<KindLabel, Counter>::default();
        // 100 µs to about 3 s.
        let broadcast_latency = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register("connections", "Sockets connected now", connections.clone());
        registry.register("connects", "Sockets accepted since start", connects.clone());
        registry.register(
            "messages_accepted",
            "Messages stored and broadcast",
            accepted.clone(),
        );
        registry.register(
            "changes_accepted",
            "Edits and deletions stored and broadcast, by kind (refusals are in causerie_refusals)",
            changes.clone(),
        );
        registry.register(
            "messages_rejected",
            "Messages refused, by error code",
            rejected.clone(),
        );
        let closed_behind = Family::<CauseLabel, Counter>::default();
        registry.register(
            "connections_closed_behind",
            "Connections closed because they fell behind (queue full, by packets or bytes)",
            closed_behind.clone(),
        );
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "refusals",
            "Requests and connections refused, by event and error code",
            refusals.clone(),
        );
        let log_lines_dropped = Gauge::default();
        registry.register(
            "log_lines_dropped",
            "Log lines dropped because the log's reader fell behind (the server never waits for it)",
            log_lines_dropped.clone(),
        );
        let dropped = Counter::default();
        registry.register(
            "deliveries_dropped",
            "Broadcast deliveries dropped by a full queue: never, by design (see /metrics docs)",
            dropped.clone(),
        );
        let broadcasts_local_only = Counter::default();
        registry.register(
            "broadcasts_local_only",
            "Broadcasts (typing included) delivered on this node only, Redis being unreachable \
             (the other nodes' clients catch up)",
            broadcasts_local_only.clone(),
        );
        let redis_reachable = Gauge::default();
        registry.register(
            "redis_reachable",
            "1 while Redis answers this node's heartbeat (or there is no Redis), 0 while not",
            redis_reachable.clone(),
        );
        let store_writable = Gauge::default();
        registry.register(
            "store_writable",
            "1 while the store commits writes, 0 while they fail (see /healthz for why)",
            store_writable.clone(),
        );
        registry.register(
            "broadcast_latency_seconds",
            "From receiving a message to handing it to every recipient's socket, commit included",
            broadcast_latency.clone(),
        );
        Self {
            registry,
            connections,
            connects,
            accepted,
            changes,
            rejected,
            broadcast_latency,
            store_writable,
            redis_reachable,
            closed_behind,
            dropped,
            broadcasts_local_only,
            refusals,
            refusals_total: Counter::default(),
            closed_behind_total: Counter::default(),
            log_lines_dropped,
            dropped_log_lines: None,
        }
    }
}

impl Metrics {
    /// A socket connected.
    pub fn connected(&self) {
        self.connections.inc();
        self.connects.inc();
    }

    /// A socket went away.
    pub fn disconnected(&self) {
        self.connections.dec();
    }

    /// A message was stored and broadcast `seconds` after it arrived.
    pub fn accepted(&self, seconds: f64) {
        self.accepted.inc();
        self.broadcast_latency.observe(seconds);
    }

    /// An edit or a deletion was stored and broadcast.
    pub fn changed(&self, kind: causerie_protocol::ChangeKind) {
        let kind = kind.as_str();
        self.changes.get_or_create(&KindLabel { kind }).inc();
    }

    /// A connection was closed because it fell behind.
    pub fn closed_behind(&self, overflow: crate::outgoing::Overflow) {
        self.closed_behind_total.inc();
        self.closed_behind
            .get_or_create(&CauseLabel {
                cause: overflow.as_str(),
            })
            .inc();
    }

    /// A broadcast found `count` full queues and dropped its packet for them.
    pub fn dropped(&self, count: usize) {
        self.dropped.inc_by(count as u64);
    }

    /// A broadcast reached this node's sockets only: Redis could not be reached.
    pub fn broadcasts_local_only(&self) {
        self.broadcasts_local_only.inc();
    }

    /// Reports `dropped` as the count of log lines dropped (set by the binary, which owns the
    /// log's writer).
    pub fn with_dropped_log_lines(
        mut self,
        dropped: Option<crate::config::DroppedLogLines>,
    ) -> Self {
        self.dropped_log_lines = dropped;
        self
    }

    /// A request for `event` (or `connect`) was refused with `code`.
    pub fn refused(&self, event: &'static str, code: ErrorCode) {
        self.refusals
            .get_or_create(&RefusalLabels {
                event,
                code: code.as_str(),
            })
            .inc();
        self.refusals_total.inc();
    }

    /// The counts the log's summary compares from one minute to the next.
    pub fn tally(&self) -> Tally {
        Tally {
            connections: self.connections.get(),
            connects: self.connects.get(),
            messages: self.accepted.get(),
            refusals: self.refusals_total.get(),
            closed_behind: self.closed_behind_total.get(),
        }
    }

    /// A message was refused with `code`.
    pub fn rejected(&self, code: ErrorCode) {
        self.rejected
            .get_or_create(&CodeLabel {
                code: code.as_str(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition, with the store's `health` and whether Redis is
    /// `reachable` (`None`: no Redis) as they are now.
    pub fn render(&self, health: WriteHealth, reachable: Option<bool>) -> String {
        self.store_writable
            .set(i64::from(health == WriteHealth::Writable));
        self.redis_reachable
            .set(i64::from(reachable.unwrap_or(true)));
        if let Some(dropped) = &self.dropped_log_lines {
            self.log_lines_dropped
                .set(i64::try_from(dropped.get()).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}
