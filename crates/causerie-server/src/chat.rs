//! The state every handler shares: the store, identity, limits, flood control, metrics and
//! transports.

use std::sync::Arc;
use std::time::Duration;

use causerie_protocol::{Limits, ServerInfo};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::{RateLimit, ServerConfig};
use crate::connections::Transports;
use crate::identity::TokenSigner;
use crate::metrics::Metrics;
use crate::outgoing::RoomTraffic;
use crate::store::Store;

/// One chat server's shared state, cheap to clone behind an [`Arc`].
pub struct Chat {
    /// Where messages are kept.
    pub store: Arc<dyn Store>,
    /// Signs and checks session tokens.
    pub tokens: TokenSigner,
    /// What clients may send.
    pub limits: Limits,
    /// The code clients must present, if any.
    pub join_code: Option<String>,
    /// Per-user flood control, if on.
    pub flood: Option<DefaultKeyedRateLimiter<String>>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
    /// Announced in `welcome`.
    pub server: ServerInfo,
    /// Which connection carries which session, to end those that fall behind.
    pub transports: Transports,
    /// Bytes broadcast to each room, to tell how far behind each socket is.
    pub traffic: RoomTraffic,
}

impl Chat {
    /// The state for `config`, over an opened store.
    pub fn new(config: &ServerConfig, store: Arc<dyn Store>, tokens: TokenSigner) -> Self {
        Self {
            store,
            tokens,
            limits: config.limits(),
            join_code: config.join_code.clone().filter(|code| !code.is_empty()),
            flood: config.rate_limit.map(flood_limiter),
            metrics: Metrics::default(),
            server: ServerInfo {
                name: config.server_name.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            transports: Transports::default(),
            traffic: RoomTraffic::default(),
        }
    }
}

/// How often idle users are dropped from the flood limiter, whose memory grows with each user.
const FLOOD_HOUSEKEEPING: Duration = Duration::from_secs(60);

/// Forgets, every minute, the flood state of users who have not sent for a while, until `stop`
/// says the server stopped (or `chat` is dropped).
pub fn spawn_housekeeping(chat: &Arc<Chat>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let chat = Arc::downgrade(chat);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FLOOD_HOUSEKEEPING);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => break,
            }
            let Some(chat) = chat.upgrade() else { break };
            if let Some(flood) = &chat.flood {
                flood.retain_recent();
                flood.shrink_to_fit();
            }
        }
    });
}

fn flood_limiter(limit: RateLimit) -> DefaultKeyedRateLimiter<String> {
    RateLimiter::keyed(Quota::per_second(limit.per_second).allow_burst(limit.burst))
}
