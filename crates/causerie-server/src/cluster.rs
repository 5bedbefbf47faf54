//! The other nodes of a cluster, reached through Redis. socketioxide-redis carries each broadcast
//! to every node over Redis pub/sub, and each node delivers it to its own sockets; without
//! `--redis-url` a server is alone and its broadcasts never leave it. Either way the server's
//! code names one adapter type ([`Adapter`]), so that nothing else changes with the flag.
//!
//! socketioxide-redis's own Redis driver holds one connection for good: once Redis restarts,
//! that node neither sends nor receives again. [`Nodes`] is the driver instead, over redis's
//! `ConnectionManager`, which reconnects and subscribes again by itself.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
use socketioxide_core::adapter::BroadcastFlags;
use socketioxide_core::adapter::remote_packet::{RequestIn, RequestTypeIn};
use socketioxide_core::packet::PacketData;
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

/// The adapter every socket of the server has: socketioxide-redis's, over [`Nodes`].
pub type Adapter = socketioxide_redis::CustomRedisAdapter<socketioxide::adapter::Emitter, Nodes>;
/// A socket, as handlers get it.
pub type SocketRef = socketioxide::extract::SocketRef<Adapter>;
/// The Socket.IO server.
pub type SocketIo = socketioxide::SocketIo<Adapter>;

/// How long connecting to Redis, or a command to it, may take before it counts as unreachable:
/// a broadcast waits that long at most before it is delivered on this node alone.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// What the names of the adapter's request channels hold (`{prefix}-request#{ns}#[{node}#]`).
const REQUEST_CHANNEL: &str = "-request#";
/// How often a node checks that Redis answers (see [`heartbeat`]).
const HEARTBEAT: Duration = Duration::from_millis(500);

/// Where a node's broadcasts go beyond its own sockets.
#[derive(Clone)]
pub enum Nodes {
    /// Nowhere: a server on its own (the app's, or a single server).
    Alone,
    /// To the other nodes subscribed to the same Redis.
    Redis(RedisNodes),
}

impl Nodes {
    /// Whether there are other nodes to reach.
    pub fn clustered(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// Tells `count` the room and size of each broadcast another node sends here, before it is
    /// delivered to this node's sockets.
    pub fn count_arrivals(&self, count: impl Fn(&str, u64) + Send + Sync + 'static) {
        if let Self::Redis(nodes) = self {
            let _ = nodes.shared.arrivals.set(Box::new(count));
        }
    }
}

/// Nodes reached through one Redis server.
#[derive(Clone)]
pub struct RedisNodes {
    connection: ConnectionManager,
    shared: Arc<Shared>,
    /// Held by every clone: the heartbeat stops once the last one is gone.
    _alive: Arc<()>,
}

/// Told the room and size of a broadcast that reached this node from another.
type CountArrival = Box<dyn Fn(&str, u64) + Send + Sync>;

/// What the connection's push handler shares with the driver.
#[derive(Default)]
struct Shared {
    /// Where the messages of each subscribed channel go.
    channels: RwLock<HashMap<String, mpsc::Sender<ChanItem>>>,
    /// This node's id in the adapter's channel names, once it subscribed to its own channel.
    own_id: OnceLock<String>,
    /// Told the room and size of each broadcast that another node sends here (see
    /// [`Nodes::count_arrivals`]).
    arrivals: OnceLock<CountArrival>,
}

impl RedisNodes {
    /// Connects to the Redis at `url` (`redis://[user:password@]host[:port][/db]`), speaking
    /// RESP3 (Redis 6 or later), which carries pub/sub messages on the same connection.
    pub async fn connect(url: &str) -> Result<Self, redis::RedisError> {
        let info = url.into_connection_info()?;
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let shared = Arc::new(Shared::default());
        let pushed_to = shared.clone();
        let config = ConnectionManagerConfig::new()
            .set_push_sender(move |push: PushInfo| {
                pushed_to.deliver(push);
                Ok::<(), std::convert::Infallible>(())
            })
            .set_automatic_resubscription()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT));
        let connection = ConnectionManager::new_with_config(client, config).await?;
        let alive = Arc::new(());
        tokio::spawn(heartbeat(connection.clone(), Arc::downgrade(&alive)));
        Ok(Self {
            connection,
            shared,
            _alive: alive,
        })
    }
}

/// Pings Redis every [`HEARTBEAT`] while the node runs. The connection manager reconnects (and
/// subscribes again) only when a command fails: a node that only listens would otherwise never
/// hear from the others again after Redis restarted.
async fn heartbeat(mut connection: ConnectionManager, alive: std::sync::Weak<()>) {
    let mut reachable = true;
    while alive.strong_count() > 0 {
        let ping: Result<(), _> = redis::cmd("PING").query_async(&mut connection).await;
        match (ping, reachable) {
            (Err(e), true) => {
                reachable = false;
                tracing::warn!(error = %e, "Redis is unreachable: broadcasts reach this node only");
            }
            (Ok(()), false) => {
                reachable = true;
                tracing::info!("Redis is reachable again");
            }
            _ => {}
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

impl Shared {
    /// Hands a pub/sub message to its channel's subscriber; drops it (logged) when that one is
    /// behind, as socketioxide-redis's driver does: the push must not block the connection.
    fn deliver(&self, push: PushInfo) {
        if !matches!(push.kind, PushKind::Message | PushKind::SMessage) {
            return;
        }
        let mut data = push.data.into_iter();
        let (Some(channel), Some(payload)) = (data.next(), data.next()) else {
            return;
        };
        let (Ok(channel), Ok(payload)) = (
            redis::from_redis_value::<String>(channel),
            redis::from_redis_value::<Vec<u8>>(payload),
        ) else {
            tracing::warn!("a Redis message that is not (channel, bytes)");
            return;
        };
        if channel.contains(REQUEST_CHANNEL) {
            self.count_arrival(&payload);
        }
        let channels = self
            .channels
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(subscriber) = channels.get(&channel)
            && subscriber.try_send((channel, payload)).is_err()
        {
            tracing::warn!("a Redis message dropped: its subscriber is behind");
        }
    }

    /// Counts a broadcast another node sent, for its rooms on this node, before the adapter
    /// delivers it: what this node's sockets are sent must be counted here too, or a slow
    /// reader would never seem behind (see `outgoing`). Counted as the sending node counts it
    /// (the payload and the event's name); volatile packets (typing) are not counted anywhere.
    fn count_arrival(&self, payload: &[u8]) {
        let Some(arrivals) = self.arrivals.get() else {
            return;
        };
        let Ok(request) = rmp_serde::from_slice::<RequestIn>(payload) else {
            return;
        };
        if self
            .own_id
            .get()
            .is_some_and(|own| *own == request.node_id.to_string())
        {
            return;
        }
        let (RequestTypeIn::Broadcast(packet), Some(options)) = (request.r#type, request.opts)
        else {
            return;
        };
        if options.has_flag(BroadcastFlags::Volatile) {
            return;
        }
        let (PacketData::Event(value, _) | PacketData::BinaryEvent(value, _)) = packet.inner else {
            return;
        };
        let Some(text) = value.as_str() else {
            return;
        };
        // `["event",payload]`: five characters more than what the sender counted.
        let size = text.len().saturating_sub(5) as u64;
        for room in &options.rooms {
            arrivals(room, size);
        }
    }
}

impl Driver for Nodes {
    type Error = redis::RedisError;

    async fn publish(&self, channel: String, value: Vec<u8>) -> Result<(), Self::Error> {
        match self {
            Self::Alone => Ok(()),
            Self::Redis(nodes) => {
                let _: redis::Value = nodes.connection.clone().publish(channel, value).await?;
                Ok(())
            }
        }
    }

    async fn subscribe(
        &self,
        channel: String,
        size: usize,
    ) -> Result<MessageStream<ChanItem>, Self::Error> {
        match self {
            Self::Alone => Ok(MessageStream::new_empty()),
            Self::Redis(nodes) => {
                nodes.connection.clone().subscribe(channel.as_str()).await?;
                // This node's own request channel names it: `{prefix}-request#{ns}#{node}#`.
                if let Some(own) = own_id_of(&channel) {
                    let _ = nodes.shared.own_id.set(own.to_owned());
                }
                let (sender, receiver) = mpsc::channel(size);
                nodes
                    .shared
                    .channels
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(channel, sender);
                Ok(MessageStream::new(receiver))
            }
        }
    }

    async fn unsubscribe(&self, channel: String) -> Result<(), Self::Error> {
        match self {
            Self::Alone => Ok(()),
            Self::Redis(nodes) => {
                nodes
                    .shared
                    .channels
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&channel);
                nodes.connection.clone().unsubscribe(channel).await
            }
        }
    }

    async fn num_serv(&self, channel: &str) -> Result<u16, Self::Error> {
        match self {
            Self::Alone => Ok(0),
            Self::Redis(nodes) => {
                let (_, count): (String, u16) = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(channel)
                    .query_async(&mut nodes.connection.clone())
                    .await?;
                Ok(count)
            }
        }
    }
}

/// The node id in the name of a node's own request channel (`{prefix}-request#{ns}#{node}#`),
/// `None` for the channel of all nodes (`{prefix}-request#{ns}#`) and for response channels.
fn own_id_of(channel: &str) -> Option<&str> {
    let (_, after) = channel.split_once(REQUEST_CHANNEL)?;
    let (_namespace, node) = after.split_once('#')?;
    let node = node.strip_suffix('#')?;
    (!node.is_empty()).then_some(node)
}
