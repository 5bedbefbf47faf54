//! Several nodes: what each hop of a cluster costs. The same Causerie clients against one node on
//! SQLite (the baseline), one node on PostgreSQL, and two nodes on PostgreSQL and Redis (the
//! clients spread over both, the fan-out's sender on the first), in the same run.
//!
//! Every server process (the nodes, PostgreSQL, Redis) runs on the server's core, the load on the
//! others: on a small machine this measures what the hops cost in latency and in throughput per
//! core, not what a cluster of machines holds (see `bench/README.md`, "Several nodes").

use std::sync::Arc;

use causerie_server::testing::{TestPostgres, TestRedis};
use serde::{Deserialize, Serialize};

use crate::peer::{CAUSERIE_BENCH_FLAGS, Log, Paths, Peer, RunningPeer};
use crate::scenario::{self, Ladder, Load, Protocol, Settings};
use crate::stats::Steps;

/// How the server is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// One node, its history in SQLite: the baseline.
    Sqlite,
    /// One node, its history in PostgreSQL.
    Postgres,
    /// Two nodes sharing PostgreSQL, delivering through Redis.
    TwoNodes,
}

impl Topology {
    /// Every topology, the baseline first.
    pub const ALL: [Topology; 3] = [Self::Sqlite, Self::Postgres, Self::TwoNodes];

    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Sqlite => "1 node, SQLite",
            Self::Postgres => "1 node, PostgreSQL",
            Self::TwoNodes => "2 nodes, PostgreSQL + Redis",
        }
    }
}

/// One topology, measured once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodesRun {
    /// Which repeat of the whole set (from 0).
    pub repeat: usize,
    /// How the server was deployed.
    pub topology: Topology,
    /// Clients connected for the fan-out.
    pub clients: usize,
    /// How many were welcomed.
    pub connected: usize,
    /// One sender at rising rates, every client receiving.
    pub fan_out: Option<Ladder>,
    /// Senders for the durable ingest.
    pub ingest_senders: usize,
    /// Acked messages at rising rates.
    pub ingest: Option<Ladder>,
}

/// A deployment of `topology`, running.
struct Deployment {
    nodes: Vec<RunningPeer>,
    _postgres: Option<TestPostgres>,
    _redis: Option<TestRedis>,
}

impl Deployment {
    async fn start(topology: Topology, paths: &Paths, cpus: Option<&str>) -> anyhow::Result<Self> {
        let (postgres, redis) = match topology {
            Topology::Sqlite => (None, None),
            Topology::Postgres => (
                Some(on_server_core(cpus, TestPostgres::start_durable)?),
                None,
            ),
            Topology::TwoNodes => (
                Some(on_server_core(cpus, TestPostgres::start_durable)?),
                Some(on_server_core(cpus, TestRedis::start)?),
            ),
        };
        let mut flags: Vec<String> = CAUSERIE_BENCH_FLAGS.map(str::to_owned).to_vec();
        if let Some(postgres) = &postgres {
            flags.extend(["--database-url".into(), postgres.database("causerie").await]);
        }
        if let Some(redis) = &redis {
            // One secret key, so that a token is good on either node.
            flags.extend(["--redis-url".into(), redis.url()]);
            let key = causerie_server::testing::CLUSTER_SECRET_KEY;
            flags.extend(["--secret-key".into(), key.into()]);
        }
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let count = if topology == Topology::TwoNodes { 2 } else { 1 };
        let mut nodes = Vec::new();
        for _ in 0..count {
            nodes.push(
                RunningPeer::start_with(Peer::Causerie, paths, cpus, &flags, Log::File).await?,
            );
        }
        Ok(Self {
            nodes,
            _postgres: postgres,
            _redis: redis,
        })
    }

    fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|node| node.url.clone()).collect()
    }

    /// The first node's process: the one whose CPU the ladders report.
    fn pid(&self) -> u32 {
        self.nodes.first().map_or(0, |node| node.pid)
    }

    async fn stop(self) {
        for node in self.nodes {
            node.stop().await;
        }
    }
}

/// Runs `start` on a thread pinned to the server's core (the first of `cpus`), so that the
/// processes it starts (PostgreSQL's, Redis) and theirs inherit that core.
fn on_server_core<T: Send + 'static>(cpus: Option<&str>, start: fn() -> T) -> anyhow::Result<T> {
    let core = cpus
        .and_then(|cpus| cpus.split([',', '-']).next())
        .and_then(|id| id.trim().parse().ok())
        .map(|id| core_affinity::CoreId { id });
    std::thread::spawn(move || {
        if let Some(core) = core {
            core_affinity::set_for_current(core);
        }
        start()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("a server did not start"))
}

/// Measures `topology`: the fan-out of one sender to `clients` Causerie clients, then the
/// durable ingest of `ingest_senders`, each on a fresh deployment.
pub async fn run(
    topology: Topology,
    clients: usize,
    ingest_senders: usize,
    paths: &Paths,
    cpus: Option<&str>,
    settings: &Settings,
) -> anyhow::Result<NodesRun> {
    let deployment = Deployment::start(topology, paths, cpus).await?;
    let steps = Arc::new(Steps::new(256, 4));
    let (hold, group) = scenario::hold(
        &deployment.urls(),
        deployment.pid(),
        clients,
        Protocol::Causerie,
        &steps,
        settings,
    )
    .await;
    eprintln!(
        "  {}: {}/{clients} welcomed, welcome p99 {:.1} ms",
        topology.label(),
        hold.connected,
        hold.welcome_p99_ms
    );
    let fan_out = if group.senders.len() == clients {
        let load = Load {
            pid: deployment.pid(),
            senders: &group.senders[..1],
            recipients: clients,
            steps,
            kind: Protocol::Causerie.into(),
        };
        let rates = scenario::ladder_rates(clients);
        Some(scenario::ladder(&load, &rates, scenario::FAN_OUT_P99_LIMIT, settings).await)
    } else {
        None
    };
    drop(group);
    deployment.stop().await;

    let ingest = if ingest_senders > 0 {
        let deployment = Deployment::start(topology, paths, cpus).await?;
        let urls = deployment.urls();
        let ingest = scenario::ingest(&urls, deployment.pid(), ingest_senders, settings).await;
        deployment.stop().await;
        Some(ingest?.1)
    } else {
        None
    };
    Ok(NodesRun {
        repeat: 0,
        topology,
        clients,
        connected: hold.connected,
        fan_out,
        ingest_senders,
        ingest,
    })
}
