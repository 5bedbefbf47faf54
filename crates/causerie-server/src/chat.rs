//! The state every handler shares: the store, identity, limits and quotas, presence, metrics and
//! transports.

use std::sync::Arc;
use std::time::Duration;

use causerie_protocol::{Limits, ServerInfo};

use crate::cluster::Nodes;
use crate::cluster::presence::SharedPresence;
use crate::config::{CorsOrigins, ServerConfig};
use crate::connections::Transports;
use crate::identity::TokenSigner;
use crate::limiter::Limiter;
use crate::metrics::{Metrics, Tally};
use crate::outgoing::Traffic;
use crate::presence::{OnlinePage, Registry};
use crate::store::Store;

/// One chat server's shared state, cheap to clone behind an [`Arc`].
pub struct Chat {
    /// Where messages are kept.
    pub store: Arc<dyn Store>,
    /// Signs and checks session tokens.
    pub tokens: TokenSigner,
    /// What clients may send.
    pub limits: Limits,
    /// How long after sending a message its author may edit it.
    pub edit_window: std::time::Duration,
    /// The code clients must present, if any.
    pub join_code: Option<String>,
    /// The quotas of every kind of request.
    pub limiter: Limiter,
    /// Who is online in each room, on this node.
    pub presence: Arc<Registry>,
    /// Who is online across nodes, in a cluster.
    pub shared_presence: Option<SharedPresence>,
    /// Rooms the server holds at most.
    pub max_rooms: u32,
    /// Requests a connection may have in flight at once.
    pub max_requests_in_flight: u32,
    /// Browser origins allowed to reach Socket.IO.
    pub origins: CorsOrigins,
    /// The token `/metrics` needs, if any.
    pub metrics_token: Option<String>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Announced in `welcome`.
    pub server: ServerInfo,
    /// Which connection carries which session, to end those that fall behind.
    pub transports: Transports,
    /// Bytes broadcast to each room, and each socket's account, to tell how far behind each
    /// socket is.
    pub traffic: Traffic,
    /// The other nodes, if any (through Redis): broadcasts then go to them too, and fall back
    /// to this node's sockets alone while Redis cannot be reached.
    pub nodes: Nodes,
    /// Rooms whose broadcasts reached this node only (Redis unreachable), to be told their head
    /// once it answers again (`cluster::spawn_heads`).
    pub rooms_missed_elsewhere: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Chat {
    /// The state for `config`, over an opened store.
    pub fn new(
        config: &ServerConfig,
        store: Arc<dyn Store>,
        tokens: TokenSigner,
        nodes: &Nodes,
    ) -> Self {
        let presence = Arc::new(Registry::default());
        let shared_presence = nodes.share_presence(&presence);
        Self {
            store,
            tokens,
            limits: config.limits(),
            edit_window: config.edit_window,
            join_code: config.join_code.clone().filter(|code| !code.is_empty()),
            limiter: Limiter::new(config.event_limits.as_ref(), config.rate_limit),
            presence,
            shared_presence,
            max_rooms: config.max_rooms,
            max_requests_in_flight: config.max_requests_in_flight,
            origins: config.cors_origins.clone(),
            metrics_token: config.metrics_token.clone().filter(|t| !t.is_empty()),
            metrics: Metrics::default().with_dropped_log_lines(config.dropped_log_lines.clone()),
            server: ServerInfo {
                name: config.server_name.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            transports: Transports::default(),
            traffic: Traffic::default(),
            nodes: nodes.clone(),
            rooms_missed_elsewhere: std::sync::Mutex::default(),
        }
    }

    /// Up to `limit` people online in `room` by name, after the cursor `after`: across nodes in
    /// a cluster (this node's own while Redis cannot tell).
    pub async fn online(
        &self,
        room: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> OnlinePage {
        if let Some(shared) = &self.shared_presence
            && let Some(page) = shared.page(room, after, limit).await
        {
            return page;
        }
        self.presence.page(room, after, limit)
    }
}

/// How often idle connections and users are dropped from the quotas, whose memory grows with each.
const QUOTA_HOUSEKEEPING: Duration = Duration::from_secs(60);

/// Forgets, every minute, the quota state of connections and users idle for a while, until `stop`
/// says the server stopped (or `chat` is dropped).
pub fn spawn_housekeeping(chat: &Arc<Chat>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let chat = Arc::downgrade(chat);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(QUOTA_HOUSEKEEPING);
        tick.tick().await;
        let mut last = Tally::default();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let Some(chat) = chat.upgrade() else { break };
            chat.limiter.forget_idle();
            let now = chat.metrics.tally();
            log_summary(last, now);
            last = now;
        }
    });
}

/// One line for the last minute, when anything happened: connects, messages and refusals are
/// logged one by one only at debug level, so that a flood of them cannot flood the log.
fn log_summary(last: Tally, now: Tally) {
    if now == last {
        return;
    }
    tracing::info!(
        connected = now.connections,
        connects = now.connects - last.connects,
        messages = now.messages - last.messages,
        refusals = now.refusals - last.refusals,
        closed_behind = now.closed_behind - last.closed_behind,
        "the last minute"
    );
}
