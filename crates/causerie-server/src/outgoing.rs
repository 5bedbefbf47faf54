//! Everything the server sends to sockets goes through here, so that nothing is ever dropped in
//! silence and one slow reader costs a known amount of memory.
//!
//! socketioxide queues each socket's packets and, when the queue is full, drops the next one and
//! leaves the socket connected: a reader that stopped for a few seconds would have a hole in its
//! stream and not know it. So a socket that falls too far behind is closed instead: nothing more
//! is sent to it (its stream ends before anything it missed), its transport is ended, and its
//! client reconnects and catches up from history.
//!
//! How far behind a socket is, in bytes: what it was sent, less what its transport delivered.
//! - Sent: a room's broadcasts are encoded once and shared by every member (socketioxide's own
//!   broadcast, which costs no more per recipient than the write itself); each room counts the
//!   bytes broadcast to it, and each socket remembers where its rooms' counters stood when it
//!   joined. Packets sent to one socket (its welcome, acks) are counted on the socket. Each packet
//!   counts its payload only, less than it costs on the wire, so that a reader that keeps up
//!   never seems to fall behind.
//! - Delivered: what the kernel took from its websocket ([`ConnectionHandle::written`]), and the
//!   bodies of its polling responses.
//!
//! A sweep every [`SWEEP_EVERY`] adds what each socket was sent since the last sweep to its
//! backlog and takes off what was delivered, never below zero (so that framing and volatile
//! packets, delivered but not counted as sent, bank no credit), and closes sockets with more than
//! [`MAX_QUEUED_BYTES`] of backlog: one slow reader costs at most that, plus one sweep's worth of
//! traffic. socketioxide's queue holds up to [`MAX_QUEUED_PACKETS`], more packets than 4 MiB of
//! even the smallest broadcasts make, so the byte bound acts first; a packet sent to one socket
//! that finds its queue full closes it at once. Typing notices are volatile: each socket keeps
//! only the latest one it has not written, outside its queue, so a flood of them fills nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use std::convert::Infallible;

use crate::cluster::Adapter;
use crate::cluster::SocketIo;
use crate::cluster::SocketRef;
use causerie_protocol::{ErrorBody, Reply};
use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::extract::AckSender;
use socketioxide::handler::{FromMessageParts, Value};
use socketioxide::operators::BroadcastOperators;
use socketioxide::socket::{Sid, Socket};
use socketioxide::{BroadcastError, SendError, SocketError, TransportType};

use crate::chat::Chat;
use crate::connections::ConnectionHandle;

/// Packets a socket's queue may hold. Only a bound of last resort: 4 MiB of broadcasts, even of
/// the smallest (a seed client's line, 20 bytes or more), are fewer packets, so
/// [`MAX_QUEUED_BYTES`] closes a slow reader first. The queue's memory grows only as it is used.
pub const MAX_QUEUED_PACKETS: usize = 262_144;

/// Bytes a socket may have waiting (sent, not yet delivered): 4 MiB, about 250 of the longest
/// messages or 20,000 ordinary ones. History pages are at most a sixteenth of it.
pub const MAX_QUEUED_BYTES: u64 = 4 * 1024 * 1024;

/// How often sockets are checked for falling behind.
pub const SWEEP_EVERY: Duration = Duration::from_millis(200);

/// Why a socket was closed for falling behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// A packet sent to it found its queue full.
    Packets,
    /// More than [`MAX_QUEUED_BYTES`] were waiting.
    Bytes,
}

impl Overflow {
    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Packets => "packets",
            Self::Bytes => "bytes",
        }
    }
}

/// Bytes broadcast to each room so far (one counter per room key, added to once per broadcast),
/// and the account of every socket, which the sweep walks without asking socketioxide for its
/// sockets (at 10,000 sockets, five lookups a second each cost more than the sweep itself).
#[derive(Debug, Default)]
pub struct Traffic {
    rooms: Mutex<HashMap<String, Arc<AtomicU64>>>,
    accounts: Mutex<Vec<(Sid, Weak<Outgoing>)>>,
}

impl Traffic {
    fn register(&self, sid: Sid, outgoing: &Arc<Outgoing>) {
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((sid, Arc::downgrade(outgoing)));
    }

    /// Every live socket's account; forgets those of sockets that are gone.
    fn accounts(&self) -> Vec<(Sid, Arc<Outgoing>)> {
        let mut accounts = self
            .accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        accounts.retain(|(_, outgoing)| outgoing.strong_count() > 0);
        accounts
            .iter()
            .filter_map(|(sid, outgoing)| Some((*sid, outgoing.upgrade()?)))
            .collect()
    }

    /// Counts `bytes` that another node broadcast to room `key`, if a socket here ever joined it
    /// (a room no one here is in has no account to keep).
    pub(crate) fn arrived(&self, key: &str, bytes: u64) {
        let rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(counter) = rooms.get(key) {
            counter.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    fn counter(&self, key: &str) -> Arc<AtomicU64> {
        let mut rooms = self
            .rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(counter) = rooms.get(key) {
            return counter.clone();
        }
        let counter = Arc::new(AtomicU64::new(0));
        rooms.insert(key.to_owned(), counter.clone());
        counter
    }
}

/// A room a socket is in: the room's counter, and where it stood when the socket joined.
#[derive(Debug)]
struct Subscription {
    counter: Arc<AtomicU64>,
    at_join: u64,
}

impl Subscription {
    /// A subscription that counts the room's broadcasts from now on.
    fn from_now(counter: Arc<AtomicU64>) -> Self {
        Self {
            at_join: counter.load(Ordering::Relaxed),
            counter,
        }
    }
}

/// One socket's account: what it was sent and what its transport delivered.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// Bytes sent to it alone, and the broadcasts of rooms it left.
    direct: AtomicU64,
    /// Bytes of broadcasts to its rooms that left it out.
    excluded: AtomicU64,
    /// The socketioxide rooms it is in, by key. Joins, leaves and the end of the socket take
    /// this lock for the whole change, presence included (see [`join`]).
    subscriptions: Mutex<HashMap<String, Subscription>>,
    /// Set, under the `subscriptions` lock, when the socket ended: it joins nothing more.
    ended: AtomicBool,
    /// Bytes of its polling responses.
    polled: AtomicU64,
    /// Its websocket, once it has one.
    websocket: OnceLock<Weak<ConnectionHandle>>,
    /// The backlog as of the last sweep, and the totals it was computed from.
    backlog: Mutex<Backlog>,
    /// Set once it fell behind: nothing more is sent to it.
    closing: AtomicBool,
}

/// A socket's backlog, advanced by each sweep.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Backlog {
    sent: u64,
    delivered: u64,
    waiting: u64,
}

impl Backlog {
    /// Adds what was sent since, takes off what was delivered since, never below zero: bytes
    /// delivered but never counted as sent (framing, pings, volatile packets) are no credit
    /// against what comes later.
    fn advance(self, sent: u64, delivered: u64) -> Self {
        let waiting = (self.waiting + sent.saturating_sub(self.sent))
            .saturating_sub(delivered.saturating_sub(self.delivered));
        Self {
            sent,
            delivered,
            waiting,
        }
    }
}

impl Outgoing {
    fn subscriptions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Subscription>> {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    #[cfg(test)]
    fn subscribe(&self, key: &str, counter: Arc<AtomicU64>) {
        self.subscriptions()
            .entry(key.to_owned())
            .or_insert_with(|| Subscription::from_now(counter));
    }

    #[cfg(test)]
    fn unsubscribe(&self, key: &str) -> bool {
        let mut subscriptions = self.subscriptions();
        self.unsubscribe_locked(&mut subscriptions, key)
    }

    /// What a left room sent it stays counted; nothing after.
    fn unsubscribe_locked(
        &self,
        subscriptions: &mut HashMap<String, Subscription>,
        key: &str,
    ) -> bool {
        let Some(left) = subscriptions.remove(key) else {
            return false;
        };
        let received = left.counter.load(Ordering::Relaxed) - left.at_join;
        self.direct.fetch_add(received, Ordering::Relaxed);
        true
    }

    /// Bytes sent to the socket so far.
    fn sent(&self) -> u64 {
        let broadcast: u64 = self
            .subscriptions()
            .values()
            .map(|s| s.counter.load(Ordering::Relaxed).saturating_sub(s.at_join))
            .sum();
        (self.direct.load(Ordering::Relaxed) + broadcast)
            .saturating_sub(self.excluded.load(Ordering::Relaxed))
    }

    /// Bytes its transports delivered so far. A websocket carries one session from its first
    /// byte, so all it wrote counts.
    fn delivered(&self) -> u64 {
        let websocket = self
            .websocket
            .get()
            .and_then(Weak::upgrade)
            .map_or(0, |connection| connection.written());
        self.polled.load(Ordering::Relaxed) + websocket
    }

    /// Advances the backlog to now and returns what is waiting.
    fn sweep(&self) -> u64 {
        let mut backlog = self
            .backlog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *backlog = backlog.advance(self.sent(), self.delivered());
        backlog.waiting
    }

    fn is_subscribed(&self, key: &str) -> bool {
        self.subscriptions().contains_key(key)
    }

    /// Counts what a polling response delivered.
    pub fn polled(&self, bytes: usize) {
        self.polled.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// Counts what its websocket delivers.
    pub fn attach_websocket(&self, connection: &Arc<ConnectionHandle>) {
        let _ = self.websocket.set(Arc::downgrade(connection));
    }
}

/// Sets up `socket`'s account when it connects, before it joins any room.
pub fn attach(socket: &SocketRef, chat: &Chat) {
    let outgoing = Arc::new(Outgoing::default());
    if let Some(connection) = chat.transports.websocket_of(socket) {
        outgoing.attach_websocket(&connection);
    }
    chat.traffic.register(socket.id, &outgoing);
    socket.extensions.insert(outgoing);
}

fn outgoing_of(socket: &SocketRef) -> Option<Arc<Outgoing>> {
    socket.extensions.get::<Arc<Outgoing>>()
}

/// Puts `socket` in the socketioxide room `key`, counting its broadcasts from now on, and runs
/// `arrived` (its presence) if it was not in it; `true` then. Not a socket being closed for
/// falling behind, whose stream must end where it fell behind, nor one that ended.
///
/// All under the account's lock, as [`leave`] and [`end`] are: a join that raced the socket's
/// disconnect (it waited on the store meanwhile) either comes first, and the departure undoes
/// it, or comes after and does nothing. Otherwise the user would stay online in the room for
/// good.
pub fn join(socket: &SocketRef, chat: &Chat, key: &str, arrived: impl FnOnce()) -> bool {
    let Some(outgoing) = outgoing_of(socket) else {
        return false;
    };
    let mut subscriptions = outgoing.subscriptions();
    if outgoing.closing.load(Ordering::Acquire)
        || outgoing.ended.load(Ordering::Acquire)
        || subscriptions.contains_key(key)
    {
        return false;
    }
    subscriptions.insert(
        key.to_owned(),
        Subscription::from_now(chat.traffic.counter(key)),
    );
    socket.join(key.to_owned());
    arrived();
    true
}

/// Takes `socket` out of the socketioxide room `key` and runs `departed` if it was in it;
/// `true` then.
pub fn leave(socket: &SocketRef, key: &str, departed: impl FnOnce()) -> bool {
    let Some(outgoing) = outgoing_of(socket) else {
        socket.leave(key.to_owned());
        return false;
    };
    let mut subscriptions = outgoing.subscriptions();
    // Under the lock, so that no join of the same room slips in between and leaves the socket
    // in the room unaccounted for; and not after the end, whose departure covered it.
    socket.leave(key.to_owned());
    if outgoing.ended.load(Ordering::Acquire)
        || !outgoing.unsubscribe_locked(&mut subscriptions, key)
    {
        return false;
    }
    departed();
    true
}

/// Ends `socket`'s rooms once it disconnected: runs `departed` for each room it was in (those
/// it was taken out of for falling behind included), once however often it is called; later
/// joins and leaves do nothing. `true` for the call that ended it.
pub fn end(socket: &SocketRef, mut departed: impl FnMut(&str)) -> bool {
    let Some(outgoing) = outgoing_of(socket) else {
        for room in socket.rooms() {
            departed(&room);
        }
        return true;
    };
    let subscriptions = outgoing.subscriptions();
    if outgoing.ended.swap(true, Ordering::AcqRel) {
        return false;
    }
    // Out of socketioxide's rooms too: a socket closed before its disconnect handler was set
    // was already removed from them, and a join since would have put it back for good.
    socket.leave_all();
    for key in subscriptions.keys() {
        departed(key);
    }
    true
}

/// Whether `socket` is in the socketioxide room `key`, in O(1).
pub fn is_in(socket: &SocketRef, key: &str) -> bool {
    outgoing_of(socket).is_some_and(|outgoing| outgoing.is_subscribed(key))
}

/// The socketioxide rooms `socket` is in, by key.
pub fn keys_of(socket: &SocketRef) -> Vec<String> {
    outgoing_of(socket).map_or_else(Vec::new, |outgoing| {
        outgoing.subscriptions().keys().cloned().collect()
    })
}

/// How many socketioxide rooms `socket` is in.
pub fn room_count(socket: &SocketRef) -> usize {
    outgoing_of(socket).map_or(0, |outgoing| outgoing.subscriptions().len())
}

/// Serializes a payload once, for sending to many sockets.
fn encode(payload: &impl Serialize) -> Option<Box<RawValue>> {
    serde_json::value::to_raw_value(payload)
        .inspect_err(|e| tracing::error!(error = %e, "cannot encode a payload"))
        .ok()
}

/// What a packet of `payload` for `event` counts as sent: its payload and event name, a few bytes
/// less than it takes on either transport, so that the estimate errs low.
fn packet_bytes(event: &str, payload: &RawValue) -> u64 {
    (payload.get().len() + event.len()) as u64
}

/// How far a broadcast goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Every node's sockets (this node's only, for a server on its own).
    Everywhere,
    /// This node's sockets: what each node says for itself (presence, for now).
    ThisNode,
}

/// Sends `event` to every socket in the socketioxide room `key` except `except`, encoded once.
pub async fn to_room(
    io: &SocketIo,
    chat: &Chat,
    reach: Reach,
    key: &str,
    except: Option<&SocketRef>,
    event: &str,
    payload: &impl Serialize,
) {
    let Some(payload) = encode(payload) else {
        return;
    };
    let size = packet_bytes(event, &payload);
    chat.traffic.counter(key).fetch_add(size, Ordering::Relaxed);
    if let Some(except) = except
        && let Some(outgoing) = outgoing_of(except)
        && outgoing.is_subscribed(key)
    {
        outgoing.excluded.fetch_add(size, Ordering::Relaxed);
    }
    // `socket.to(room)` leaves the socket out (`except(sid)` would look for a room of that name).
    // `io.within` panics once the server closed its namespace: a store write finishing during
    // shutdown has no one left to tell (its sender resends and is told then).
    let to = || match except {
        Some(except) => Some(except.to(key.to_owned())),
        None => io.of("/").map(|namespace| namespace.within(key.to_owned())),
    };
    broadcast(chat, reach, to, key, event, &payload).await;
}

/// Sends `event` to the connections of a user in the socketioxide room `key` (theirs:
/// `handlers::user_key`, `handlers::member_key`) on every node, but `except` and those in the
/// room `outside` (when given), encoded once. Not counted as sent (see the module's docs):
/// these are a few small packets, which a reader's backlog may miss.
pub async fn to_user(
    io: &SocketIo,
    chat: &Chat,
    key: &str,
    except: Option<&SocketRef>,
    outside: Option<&str>,
    event: &str,
    payload: &impl Serialize,
) {
    let Some(payload) = encode(payload) else {
        return;
    };
    let to = || {
        let to = match except {
            Some(except) => except.to(key.to_owned()),
            None => io.of("/")?.within(key.to_owned()),
        };
        Some(match outside {
            Some(room) => to.except(room.to_owned()),
            None => to,
        })
    };
    broadcast(chat, Reach::Everywhere, to, key, event, &payload).await;
}

/// Emits `payload` to the sockets `to` selects: on every node when clustered and `reach` says
/// so, else on this one.
/// While Redis cannot be reached, this node's sockets still get it; the other nodes' clients
/// catch up (see `cluster`).
async fn broadcast(
    chat: &Chat,
    reach: Reach,
    to: impl Fn() -> Option<BroadcastOperators<Adapter>>,
    key: &str,
    event: &str,
    payload: &RawValue,
) {
    let Some(everywhere) = to() else {
        return;
    };
    let sent = if chat.nodes.clustered() && reach == Reach::Everywhere {
        everywhere.emit(event, payload).await
    } else {
        everywhere.local().emit(event, payload).await
    };
    let sent = match sent {
        Err(BroadcastError::Adapter(e)) => {
            // Counted, not logged each: the heartbeat logs the outage once.
            chat.metrics.broadcasts_local_only();
            chat.nodes.mark_unreachable();
            if let Some(room) = crate::handlers::room_of_key(key) {
                chat.rooms_missed_elsewhere
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(room.to_owned());
            }
            tracing::debug!(error = %e, %key, "a broadcast reached this node only");
            match to() {
                Some(here) => here.local().emit(event, payload).await,
                None => return,
            }
        }
        sent => sent,
    };
    match sent {
        Ok(()) => {}
        Err(BroadcastError::Socket(errors)) => {
            let full = errors
                .iter()
                .filter(|e| matches!(e, SocketError::InternalChannelFull))
                .count();
            if full > 0 {
                // Unreachable by design (see the module's docs); counted and logged if not.
                chat.metrics.dropped(full);
                tracing::error!(full, %key, "a broadcast found full queues");
            }
        }
        Err(e) => tracing::error!(error = %e, %key, "a broadcast failed"),
    }
}

/// Sends a volatile `event` (typing) to every socket in the socketioxide room `key` except
/// `except`: each socket keeps only the latest one it has not written, outside its queue.
pub async fn to_room_volatile(
    chat: &Chat,
    key: &str,
    except: &SocketRef,
    event: &str,
    payload: &impl Serialize,
) {
    let Some(payload) = encode(payload) else {
        return;
    };
    // Volatile sends replace rather than queue: nothing can overflow, nothing to count.
    let to = || Some(except.to(key.to_owned()).volatile());
    broadcast(chat, Reach::Everywhere, to, key, event, &payload).await;
}

/// Sends `event` to one socket.
pub fn to_socket(socket: &SocketRef, chat: &Chat, event: &str, payload: &impl Serialize) {
    if let Some(payload) = encode(payload) {
        let size = packet_bytes(event, &payload);
        deliver(socket, chat, size, |socket| socket.emit(event, &*payload));
    }
}

/// A request's ack callback, and whether the client asked for one: socketioxide's `AckSender`
/// sends nothing, and says nothing, when it did not, which must not count as sent.
pub struct Ack {
    sender: AckSender<Adapter>,
    requested: bool,
}

impl FromMessageParts<Adapter> for Ack {
    type Error = Infallible;

    fn from_message_parts(
        socket: &Arc<Socket<Adapter>>,
        value: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(Self {
            sender: AckSender::from_message_parts(socket, value, ack_id)?,
            requested: ack_id.is_some(),
        })
    }
}

/// Answers a request for `event` through its ack callback, if the client asked for one; a
/// refusal is counted by event and code.
pub fn reply<T: Serialize>(
    socket: &SocketRef,
    chat: &Chat,
    event: &'static str,
    ack: Ack,
    result: Result<T, ErrorBody>,
) {
    if let Err(error) = &result {
        chat.metrics.refused(event, error.code);
    }
    if !ack.requested {
        return;
    }
    if let Some(payload) = encode(&Reply::from(result)) {
        let size = packet_bytes("", &payload);
        deliver(socket, chat, size, |_| ack.sender.send(&*payload));
    }
}

/// Sends one socket a packet of `size` bytes with `emit`, counts it, and closes the socket if
/// its queue was full.
fn deliver(
    socket: &SocketRef,
    chat: &Chat,
    size: u64,
    emit: impl FnOnce(&SocketRef) -> Result<(), SendError>,
) {
    let Some(outgoing) = outgoing_of(socket) else {
        return;
    };
    if outgoing.closing.load(Ordering::Acquire) {
        return;
    }
    match emit(socket) {
        Ok(()) => {
            outgoing.direct.fetch_add(size, Ordering::Relaxed);
        }
        Err(SendError::Socket(SocketError::InternalChannelFull)) => {
            close_behind(socket, chat, &outgoing, Overflow::Packets);
        }
        Err(SendError::Socket(SocketError::Closed)) => {}
        Err(e) => tracing::error!(error = %e, sid = %socket.id, "cannot send a packet"),
    }
}

/// Checks every socket every [`SWEEP_EVERY`] and closes those that fell behind, until `stop`
/// says the server stopped.
pub fn spawn_sweep(io: SocketIo, chat: Arc<Chat>, mut stop: tokio::sync::watch::Receiver<bool>) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stop.changed() => break,
            }
            for (sid, outgoing) in chat.traffic.accounts() {
                sweep(&io, &chat, sid, &outgoing);
            }
        }
    });
}

/// Checks one socket's account; the socket itself is looked up only when something is to be
/// done with it (rare: a session still on polling, or one falling behind).
fn sweep(io: &SocketIo, chat: &Chat, sid: Sid, outgoing: &Outgoing) {
    let attached = outgoing.websocket.get().is_some();
    if attached && outgoing.closing.load(Ordering::Acquire) {
        return; // its websocket was ended when it was closed
    }
    if !attached {
        let Some(socket) = io.get_socket(sid) else {
            return;
        };
        if let Some(connection) = chat.transports.websocket_of(&socket) {
            // Upgraded from polling since it connected.
            outgoing.attach_websocket(&connection);
            if outgoing.closing.load(Ordering::Acquire) {
                // Closed while upgrading: the websocket came up after its session was ended,
                // so end it too.
                connection.abort();
                return;
            }
        }
    }
    if outgoing.closing.load(Ordering::Acquire) {
        return;
    }
    if outgoing.sweep() > MAX_QUEUED_BYTES
        && let Some(socket) = io.get_socket(sid)
    {
        close_behind(&socket, chat, outgoing, Overflow::Bytes);
    }
}

/// How often, and how many times, a socket closed for falling behind is sent a disconnect when
/// its transport cannot be ended directly (a router nested in another app, without tracked
/// connections): until its queue has room, within the heartbeat's 45 s.
const DISCONNECT_RETRY: Duration = Duration::from_millis(100);
const DISCONNECT_TRIES: u32 = 450;

/// Closes a socket that fell behind, once: nothing more is sent, and its transport is ended.
fn close_behind(socket: &SocketRef, chat: &Chat, outgoing: &Outgoing, overflow: Overflow) {
    {
        // Under the account's lock, as joins are: a join that passed its check cannot put the
        // socket back in a room after this.
        let _subscriptions = outgoing.subscriptions();
        if outgoing.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        // Out of its rooms at once, so that no broadcast reaches it after what it missed. The
        // disconnect handler still announces its departure: it reads the rooms from the account.
        socket.leave_all();
    }
    chat.metrics.closed_behind(overflow);
    tracing::warn!(
        sid = %socket.id, cause = overflow.as_str(),
        "closing a connection that fell behind; its client reconnects and catches up"
    );
    // Aborts its websocket, or refuses its polling requests from now on (their 400 makes the
    // client start a new session) until the heartbeat ends this one.
    let ended = chat.transports.end(socket);
    if !ended && socket.transport_type() == TransportType::Websocket {
        let socket = socket.clone();
        tokio::spawn(async move {
            for _ in 0..DISCONNECT_TRIES {
                match socket.clone().disconnect() {
                    Err(SocketError::InternalChannelFull) => {
                        tokio::time::sleep(DISCONNECT_RETRY).await;
                    }
                    _ => return,
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> Arc<AtomicU64> {
        Arc::new(AtomicU64::new(0))
    }

    #[test]
    fn a_socket_is_sent_what_its_rooms_broadcast_after_it_joined() {
        let general = room();
        general.fetch_add(1_000, Ordering::Relaxed); // before it joined
        let outgoing = Outgoing::default();
        outgoing.subscribe("room:general", general.clone());
        general.fetch_add(300, Ordering::Relaxed);
        outgoing.direct.fetch_add(50, Ordering::Relaxed);
        assert_eq!(outgoing.sent(), 350);
    }

    #[test]
    fn broadcasts_that_left_it_out_are_not_counted() {
        let general = room();
        let outgoing = Outgoing::default();
        outgoing.subscribe("room:general", general.clone());
        general.fetch_add(200, Ordering::Relaxed);
        outgoing.excluded.fetch_add(200, Ordering::Relaxed);
        assert_eq!(outgoing.sent(), 0);
    }

    #[test]
    fn what_a_left_room_sent_stays_counted_and_nothing_after() {
        let rust = room();
        let outgoing = Outgoing::default();
        outgoing.subscribe("room:rust", rust.clone());
        rust.fetch_add(400, Ordering::Relaxed);
        outgoing.unsubscribe("room:rust");
        rust.fetch_add(10_000, Ordering::Relaxed);
        assert_eq!(outgoing.sent(), 400);
    }

    #[test]
    fn joining_twice_counts_once() {
        let general = room();
        let outgoing = Outgoing::default();
        outgoing.subscribe("room:general", general.clone());
        general.fetch_add(100, Ordering::Relaxed);
        outgoing.subscribe("room:general", general.clone());
        general.fetch_add(100, Ordering::Relaxed);
        assert_eq!(outgoing.sent(), 200);
    }

    #[test]
    fn the_backlog_is_what_was_sent_less_what_was_delivered() {
        let general = room();
        let outgoing = Outgoing::default();
        outgoing.subscribe("room:general", general.clone());
        general.fetch_add(5_000, Ordering::Relaxed);
        outgoing.polled(3_000);
        assert_eq!(outgoing.sweep(), 2_000);
        outgoing.polled(2_000);
        assert_eq!(outgoing.sweep(), 0);
    }

    #[test]
    fn bytes_delivered_beyond_what_was_sent_are_no_credit_later() {
        // Framing, pings and volatile packets are delivered but not counted as sent.
        let backlog = Backlog::default().advance(1_000, 9_000);
        assert_eq!(backlog.waiting, 0);
        // A reader that then stops: everything sent from now on is waiting.
        let backlog = backlog.advance(6_000, 9_000);
        assert_eq!(backlog.waiting, 5_000);
        let backlog = backlog.advance(6_000, 10_000);
        assert_eq!(backlog.waiting, 4_000);
    }

    #[test]
    fn a_backlog_never_underflows_whatever_the_counters_do() {
        let backlog = Backlog {
            sent: 500,
            delivered: 700,
            waiting: 0,
        };
        assert_eq!(backlog.advance(400, 600).waiting, 0);
    }
}
