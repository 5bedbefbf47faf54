//! The other nodes of a cluster, reached through Redis. socketioxide-redis carries each broadcast
//! to every node over Redis pub/sub, and each node delivers it to its own sockets; without
//! `--redis-url` a server is alone and its broadcasts never leave it. Either way the server's
//! code names one adapter type ([`Adapter`]), so that nothing else changes with the flag.
//!
//! socketioxide-redis's own Redis driver holds one connection for good: once Redis restarts,
//! that node neither sends nor receives again. [`Nodes`] is the driver instead, over redis's
//! `ConnectionManager`, which reconnects and subscribes again by itself.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind};
use socketioxide_core::adapter::BroadcastFlags;
use socketioxide_core::adapter::remote_packet::{RequestIn, RequestTypeIn};
use socketioxide_core::packet::PacketData;
use socketioxide_redis::drivers::{ChanItem, Driver, MessageStream};
use tokio::sync::mpsc;

use crate::chat::Chat;
use crate::presence::Registry;

pub mod presence;

/// The adapter every socket of the server has: socketioxide-redis's, over [`Nodes`].
pub type Adapter = socketioxide_redis::CustomRedisAdapter<socketioxide::adapter::Emitter, Nodes>;
/// A socket, as handlers get it.
pub type SocketRef = socketioxide::extract::SocketRef<Adapter>;
/// The Socket.IO server.
pub type SocketIo = socketioxide::SocketIo<Adapter>;

/// How long connecting to Redis, or a command to it, may take before it counts as unreachable:
/// a broadcast waits that long at most before it is delivered on this node alone, and none
/// waits while the heartbeat finds Redis unreachable.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long data sent to Redis may go unacknowledged before the kernel drops the connection (a
/// Redis that vanished without closing it, a failover that moved its address): the connection
/// manager then reconnects.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(3);
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

    /// Shares the presence `registry` keeps with the other nodes, through Redis; `None` alone.
    pub fn share_presence(&self, registry: &Arc<Registry>) -> Option<presence::SharedPresence> {
        let Self::Redis(nodes) = self else {
            return None;
        };
        let node = uuid::Uuid::new_v4().to_string();
        Some(presence::SharedPresence::start(
            nodes.presence_connection.clone(),
            nodes.shared.clone(),
            node,
            registry,
        ))
    }

    /// Counts Redis as unreachable until the heartbeat hears it again: a broadcast could not be
    /// published, so the rooms will be told their heads then.
    pub fn mark_unreachable(&self) {
        if let Self::Redis(nodes) = self {
            nodes.shared.unreachable.store(true, Ordering::Relaxed);
        }
    }

    /// Whether Redis answered the last heartbeat; `None` alone.
    pub fn reachable(&self) -> Option<bool> {
        match self {
            Self::Alone => None,
            Self::Redis(nodes) => Some(!nodes.shared.unreachable()),
        }
    }

    /// Changes each time Redis answers again after the heartbeat found it unreachable; `None`
    /// alone.
    pub fn reconnections(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        match self {
            Self::Alone => None,
            Self::Redis(nodes) => Some(nodes.shared.reconnections.subscribe()),
        }
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
    /// Presence's own (see [`presence`]): its rounds may be long, and must not delay the
    /// heartbeat nor broadcasts.
    presence_connection: ConnectionManager,
    shared: Arc<Shared>,
    /// Held by every clone: the heartbeat stops once the last one is gone.
    _alive: Arc<()>,
}

/// Told the room and size of a broadcast that reached this node from another.
type CountArrival = Box<dyn Fn(&str, u64) + Send + Sync>;

/// What the connection's push handler and the heartbeat share with the driver.
#[derive(Default)]
struct Shared {
    /// Whether the last heartbeat found Redis answering.
    unreachable: std::sync::atomic::AtomicBool,
    /// How many times the connection was lost (Redis restarted, the network dropped it), which
    /// the heartbeat may miss between two pings.
    disconnections: std::sync::atomic::AtomicU64,
    /// Where the messages of each subscribed channel go.
    channels: RwLock<HashMap<String, mpsc::Sender<ChanItem>>>,
    /// This node's id in the adapter's channel names, once it subscribed to its own channel.
    own_id: OnceLock<String>,
    /// Told the room and size of each broadcast that another node sends here (see
    /// [`Nodes::count_arrivals`]).
    arrivals: OnceLock<CountArrival>,
    /// How many times Redis answered again after an outage (see [`Nodes::reconnections`]).
    reconnections: tokio::sync::watch::Sender<u64>,
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
        let tcp = redis::io::tcp::TcpSettings::default();
        // Where the system has it; elsewhere the heartbeat's 1 s timeouts still keep broadcasts
        // from waiting, and the connection is dropped when the system gives up on it.
        #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
        let tcp = tcp.set_user_timeout(TCP_USER_TIMEOUT);
        let client = redis::Client::open(info.set_redis_settings(settings).set_tcp_settings(tcp))?;
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
        let connection = ConnectionManager::new_with_config(client.clone(), config).await?;
        let presence_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(presence::ROUND_TIMEOUT));
        let presence_connection =
            ConnectionManager::new_with_config(client, presence_config).await?;
        let alive = Arc::new(());
        tokio::spawn(heartbeat(
            connection.clone(),
            shared.clone(),
            Arc::downgrade(&alive),
        ));
        Ok(Self {
            connection,
            presence_connection,
            shared,
            _alive: alive,
        })
    }
}

/// Pings Redis every [`HEARTBEAT`] while the node runs, and keeps whether it answered: while it
/// does not, broadcasts do not wait for it. The pings also keep data in flight, so that a
/// connection the network stopped acknowledging is dropped by the TCP user timeout, and the
/// connection manager reconnects (and subscribes again).
async fn heartbeat(
    mut connection: ConnectionManager,
    shared: Arc<Shared>,
    alive: std::sync::Weak<()>,
) {
    while alive.strong_count() > 0 {
        let ping = tokio::time::timeout(
            REDIS_TIMEOUT,
            redis::cmd("PING").query_async::<()>(&mut connection),
        )
        .await;
        let answered = matches!(ping, Ok(Ok(())));
        let was_unreachable = shared.unreachable.swap(!answered, Ordering::Relaxed);
        match (answered, was_unreachable) {
            (false, false) => {
                tracing::warn!("Redis is unreachable: broadcasts reach this node only");
            }
            (true, true) => {
                tracing::info!("Redis is reachable again");
                shared.reconnections.send_modify(|count| *count += 1);
            }
            _ => {}
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

impl Shared {
    /// Whether the last heartbeat found Redis unreachable (or a publish failed since).
    fn unreachable(&self) -> bool {
        self.unreachable.load(Ordering::Relaxed)
    }

    /// Hands a pub/sub message to its channel's subscriber; drops it (logged) when that one is
    /// behind, as socketioxide-redis's driver does: the push must not block the connection.
    fn deliver(&self, push: PushInfo) {
        if push.kind == PushKind::Disconnection {
            // Subscriptions are lost until the connection manager subscribes again: what is
            // published meanwhile is missed. Counted as an outage, so that the rooms are told
            // their heads once the heartbeat hears Redis again, and presence starts over.
            self.disconnections.fetch_add(1, Ordering::Relaxed);
            self.unreachable.store(true, Ordering::Relaxed);
            return;
        }
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
        // A broadcast from another node: checked before the adapter sees it (a packet it cannot
        // encode would panic its task, and the node would hear no more), then counted once
        // handed over.
        let arrival = if channel.contains(REQUEST_CHANNEL) {
            match self.arrival(&payload) {
                Arrival::Refused => {
                    tracing::warn!("a Redis request that is not Causerie's, dropped");
                    return;
                }
                arrival => arrival,
            }
        } else {
            Arrival::Uncounted
        };
        let channels = self
            .channels
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(subscriber) = channels.get(&channel) else {
            return;
        };
        if subscriber.try_send((channel, payload)).is_err() {
            tracing::warn!("a Redis message dropped: its subscriber is behind");
            return;
        }
        if let (Arrival::Counted { rooms, bytes }, Some(count)) = (arrival, self.arrivals.get()) {
            for room in &rooms {
                count(room, bytes);
            }
        }
    }

    /// What an incoming request is, for the accounting of this node's readers: a broadcast
    /// another node sent counts toward its rooms here as the sending node counted it there (the
    /// payload and the event's name); volatile packets (typing) are counted nowhere.
    fn arrival(&self, payload: &[u8]) -> Arrival {
        let Ok(request) = rmp_serde::from_slice::<RequestIn>(payload) else {
            return Arrival::Refused;
        };
        // Causerie's nodes send broadcasts and nothing else (no remote disconnects, joins or
        // fetches): anything else is someone else's.
        let RequestTypeIn::Broadcast(packet) = request.r#type else {
            return Arrival::Refused;
        };
        // Causerie's broadcasts are text events; anything else would not encode.
        let PacketData::Event(value, _) = packet.inner else {
            return Arrival::Refused;
        };
        let Some(text) = value.as_str() else {
            return Arrival::Refused;
        };
        let Some(options) = request.opts else {
            return Arrival::Uncounted;
        };
        let own = self
            .own_id
            .get()
            .is_some_and(|own| *own == request.node_id.to_string());
        if own || options.has_flag(BroadcastFlags::Volatile) {
            return Arrival::Uncounted;
        }
        Arrival::Counted {
            rooms: options.rooms.iter().map(ToString::to_string).collect(),
            // `["event",payload]`: five characters more than the sender counted.
            bytes: text.len().saturating_sub(5) as u64,
        }
    }
}

/// What a request from Redis is to this node's accounting.
enum Arrival {
    /// A broadcast from another node: `bytes` for each of `rooms`.
    Counted { rooms: Vec<String>, bytes: u64 },
    /// Anything else the adapter handles.
    Uncounted,
    /// Not a request Causerie's nodes send: dropped.
    Refused,
}

/// How long after Redis answers again the rooms are told their heads: time for every node to
/// subscribe again, so that what is sent after the heads reaches all.
const HEADS_AFTER: Duration = Duration::from_secs(1);

/// Each time Redis answers again after an outage, tells every room with members on this node,
/// and every room whose broadcasts reached this node only, its latest seq (`head`), on every
/// node, until `stop` says the server stopped; the rooms with members here are sent their
/// count and first page of who is online too. During the outage this node's messages reached
/// its own clients only, and its clients heard nothing from the others: a client that gets no
/// later message would not know it is behind. Between them, the nodes tell every room that may
/// have missed something.
pub fn spawn_heads(
    io: SocketIo,
    chat: std::sync::Arc<Chat>,
    mut reconnections: tokio::sync::watch::Receiver<u64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = reconnections.changed() => if changed.is_err() { break },
                _ = stop.changed() => break,
            }
            tokio::time::sleep(HEADS_AFTER).await;
            let mut rooms: std::collections::BTreeSet<String> = chat
                .rooms_missed_elsewhere
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .drain()
                .collect();
            for room in chat.presence.rooms() {
                // Presence events were missed too, both ways: the room's first page replaces
                // what its members list.
                if let Some(shared) = &chat.shared_presence {
                    shared.tell_everything(&room);
                }
                rooms.insert(room);
            }
            for room in rooms {
                let seq = match chat.store.head(&room).await {
                    Ok(Some(seq)) => seq,
                    Ok(None) => continue,
                    Err(error) => {
                        tracing::warn!(%error, %room, "a room's head could not be told");
                        continue;
                    }
                };
                let key = crate::handlers::room_key(&room);
                let head = causerie_protocol::Head { room, seq };
                let reach = crate::outgoing::Reach::Everywhere;
                let event = causerie_protocol::event::HEAD;
                crate::outgoing::to_room(&io, &chat, reach, &key, None, event, &head).await;
            }
        }
    });
}

/// The error of a command Redis did not answer in time, or at all.
fn unreachable() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "Redis did not answer",
    ))
}

impl Driver for Nodes {
    type Error = redis::RedisError;

    async fn publish(&self, channel: String, value: Vec<u8>) -> Result<(), Self::Error> {
        match self {
            Self::Alone => Ok(()),
            // While the heartbeat finds Redis unreachable a broadcast does not wait for it: it
            // fails at once, and reaches this node's sockets (`outgoing::broadcast`).
            Self::Redis(nodes) if nodes.shared.unreachable() => Err(unreachable()),
            Self::Redis(nodes) => {
                let mut connection = nodes.connection.clone();
                let publish = connection.publish::<_, _, redis::Value>(channel, value);
                match tokio::time::timeout(REDIS_TIMEOUT, publish).await {
                    Ok(published) => published.map(|_| ()),
                    Err(_) => Err(unreachable()),
                }
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
