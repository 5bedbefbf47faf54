//! The server's TCP connections, tracked so that the server can account for and end them itself.
//!
//! socketioxide drops a packet when a socket's queue is full and offers no way to close a socket
//! whose queue is full (its `disconnect` needs room in that queue). A reader that stopped reading
//! would keep a hole in its stream. So every accepted connection is wrapped in a
//! [`TrackedStream`] whose [`ConnectionHandle`] counts the bytes the kernel accepted and can abort
//! it: the next read or write fails, the websocket ends, and the client reconnects and catches up
//! (see [`crate::outgoing`]).
//!
//! Each request carries its connection's handle as `ConnectInfo<ConnectionInfo>`. A websocket
//! upgraded from polling arrives on a new connection with its `sid` in the query: [`Transports`]
//! remembers which connection carries which session, and which polling sessions were ended.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::cluster::SocketRef;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use futures_util::task::AtomicWaker;
use socketioxide::TransportType;
use socketioxide::socket::Sid;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// One accepted TCP connection, as the server sees it.
#[derive(Debug)]
pub struct ConnectionHandle {
    peer: SocketAddr,
    written: AtomicU64,
    aborted: AtomicBool,
    read_waker: AtomicWaker,
    write_waker: AtomicWaker,
    /// The Engine.IO session this connection carries as a websocket, once upgraded: one at
    /// most, so that no connection can fill [`Transports`] with names.
    websocket_of: OnceLock<Sid>,
}

impl ConnectionHandle {
    fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            written: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            read_waker: AtomicWaker::new(),
            write_waker: AtomicWaker::new(),
            websocket_of: OnceLock::new(),
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Bytes the kernel has accepted for sending on this connection so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Ends the connection: whatever reads or writes it next gets an error, at once.
    pub fn abort(&self) {
        self.aborted.store(true, Ordering::Release);
        self.read_waker.wake();
        self.write_waker.wake();
    }

    fn is_aborted(&self) -> bool {
        self.aborted.load(Ordering::Acquire)
    }
}

/// What each request knows of its connection (`ConnectInfo<ConnectionInfo>`).
#[derive(Debug, Clone)]
pub struct ConnectionInfo(pub Arc<ConnectionHandle>);

/// Open connections per client address.
type OpenByAddress = Arc<Mutex<HashMap<IpAddr, u32>>>;

/// A TCP listener whose connections are [`TrackedStream`]s, with `TCP_NODELAY` set, and at most
/// `max_per_address` open at once from one address: more are closed as soon as accepted.
pub struct TrackedListener {
    inner: TcpListener,
    max_per_address: Option<u32>,
    open: OpenByAddress,
    live: Arc<Mutex<Vec<Weak<ConnectionHandle>>>>,
}

impl TrackedListener {
    /// Tracks the connections `listener` accepts.
    pub fn new(listener: TcpListener, max_per_address: Option<u32>) -> Self {
        Self {
            inner: listener,
            max_per_address: max_per_address.filter(|max| *max > 0),
            open: OpenByAddress::default(),
            live: Arc::default(),
        }
    }

    /// Every connection still open: a shutdown aborts those that outlive its grace period.
    pub fn live_connections(&self) -> Arc<Mutex<Vec<Weak<ConnectionHandle>>>> {
        self.live.clone()
    }

    /// Takes a slot for `address`, or `None` when it has all it may have.
    fn admit(&self, address: IpAddr) -> Option<AddressSlot> {
        let mut open = lock(&self.open);
        let count = open.entry(address).or_default();
        if self.max_per_address.is_some_and(|max| *count >= max) {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            open: self.open.clone(),
            address,
        })
    }

    fn remember(&self, handle: &Arc<ConnectionHandle>) {
        let mut live = lock(&self.live);
        // Swept of closed connections as it doubles: amortised O(1), as large as those open.
        if live.len() >= 1024 && live.len().is_power_of_two() {
            live.retain(|connection| connection.strong_count() > 0);
        }
        live.push(Arc::downgrade(handle));
    }
}

impl Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, peer) = Listener::accept(&mut self.inner).await;
            let Some(slot) = self.admit(client_address(peer.ip())) else {
                tracing::debug!(%peer, "refused a connection: too many from this address");
                continue; // dropped: the client sees its connection reset
            };
            // Chat frames are small and written back to back (the handshake, then `welcome`):
            // with Nagle's algorithm on, the second waits for the client's delayed ACK, 40 ms.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
            let handle = Arc::new(ConnectionHandle::new(peer));
            self.remember(&handle);
            let stream = TrackedStream {
                stream,
                handle,
                _slot: slot,
            };
            return (stream, peer);
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One open connection counted against its address, given back when the connection closes.
struct AddressSlot {
    open: OpenByAddress,
    address: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// A TCP stream that counts what it writes and fails once aborted.
pub struct TrackedStream {
    stream: TcpStream,
    handle: Arc<ConnectionHandle>,
    _slot: AddressSlot,
}

impl TrackedStream {
    /// The connection's handle.
    pub fn handle(&self) -> &Arc<ConnectionHandle> {
        &self.handle
    }
}

impl TrackedStream {
    /// The error every read and write gets once the connection was aborted. The socket is set
    /// to reset when closed, so that what the kernel still holds for a reader that stopped
    /// reading is dropped at once rather than kept for minutes.
    fn aborted(&self) -> io::Error {
        let _ = self.stream.set_zero_linger();
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "the server ended the connection",
        )
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Registered before the check, so that an abort between the two still wakes this task.
        self.handle.read_waker.register(cx.waker());
        if self.handle.is_aborted() {
            return Poll::Ready(Err(self.aborted()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.handle.write_waker.register(cx.waker());
        if self.handle.is_aborted() {
            return Poll::Ready(Err(self.aborted()));
        }
        let written = Pin::new(&mut self.stream).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = written {
            self.handle.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.handle.write_waker.register(cx.waker());
        if self.handle.is_aborted() {
            return Poll::Ready(Err(self.aborted()));
        }
        let written = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            self.handle.written.fetch_add(n as u64, Ordering::Relaxed);
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.handle.write_waker.register(cx.waker());
        if self.handle.is_aborted() {
            return Poll::Ready(Err(self.aborted()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Which connection carries which Engine.IO session as a websocket, and which polling sessions
/// the server ended.
#[derive(Debug, Default)]
pub struct Transports {
    websockets: Mutex<Websockets>,
    /// Polling sessions ended, and when: refused until their heartbeat ends them (45 s).
    ended: Mutex<HashMap<Sid, Instant>>,
}

#[derive(Debug, Default)]
struct Websockets {
    by_sid: HashMap<Sid, Weak<ConnectionHandle>>,
    /// Insertions since dead entries were last swept out.
    since_sweep: usize,
}

/// How long an ended polling session is remembered: past its heartbeat, it is gone anyway.
const ENDED_FOR: Duration = Duration::from_secs(120);

impl Transports {
    /// Notes that `connection` asks to carry session `sid` as a websocket. Each connection
    /// carries one session at most, so the map holds no more entries than live connections
    /// (dead ones are swept, amortised O(1)).
    pub fn websocket_opened(&self, sid: Sid, connection: &Arc<ConnectionHandle>) {
        if connection.websocket_of.set(sid).is_err() {
            return;
        }
        let mut websockets = lock(&self.websockets);
        websockets.since_sweep += 1;
        if websockets.since_sweep > websockets.by_sid.len().max(1024) {
            websockets.since_sweep = 0;
            websockets
                .by_sid
                .retain(|_, connection| connection.strong_count() > 0);
        }
        websockets.by_sid.insert(sid, Arc::downgrade(connection));
    }

    /// The live websocket connection carrying `socket`: upgraded from polling (known by its
    /// session id), or opened as a websocket from the start (the connection of its first
    /// request). `None` on polling, or when served without tracked connections.
    pub fn websocket_of(&self, socket: &SocketRef) -> Option<Arc<ConnectionHandle>> {
        if socket.transport_type() != TransportType::Websocket {
            return None;
        }
        let upgraded = lock(&self.websockets)
            .by_sid
            .get(&socket.id)
            .and_then(Weak::upgrade);
        // A session that started as a websocket has no upgrade: its first request's connection
        // is the websocket. (For one that started on polling, that connection may be a proxy's,
        // shared with others: never used.)
        let started_as_websocket = socket
            .req_parts()
            .uri
            .query()
            .is_some_and(|query| query.split('&').any(|pair| pair == "transport=websocket"));
        upgraded.or_else(|| {
            started_as_websocket
                .then(|| {
                    socket
                        .req_parts()
                        .extensions
                        .get::<ConnectInfo<ConnectionInfo>>()
                })
                .flatten()
                .map(|ConnectInfo(ConnectionInfo(connection))| connection.clone())
        })
    }

    /// Ends `socket`'s transport: aborts its websocket, or refuses its polling session's
    /// requests from now on. `false` when neither can be done (a websocket not tracked).
    pub fn end(&self, socket: &SocketRef) -> bool {
        if let Some(connection) = self.websocket_of(socket) {
            connection.abort();
            return true;
        }
        if socket.transport_type() == TransportType::Websocket {
            return false;
        }
        let now = Instant::now();
        let mut ended = lock(&self.ended);
        ended.retain(|_, at| now.duration_since(*at) < ENDED_FOR);
        ended.insert(socket.id, now);
        true
    }

    /// Whether the server ended polling session `sid`.
    pub fn is_ended(&self, sid: Sid) -> bool {
        lock(&self.ended).contains_key(&sid)
    }

    /// Forgets a closed session.
    pub fn forget(&self, sid: Sid) {
        lock(&self.websockets).by_sid.remove(&sid);
        lock(&self.ended).remove(&sid);
    }
}

/// A client's address as the limits per address count it: an IPv6 /64, which one home or one
/// server gets whole (counting its 2^64 addresses apart would make every limit per address
/// free to escape), and an IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn client_address(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from_bits(
                v6.to_bits() & !u128::from(u64::MAX),
            )),
        },
    }
}

/// A std mutex, not Tokio's: nothing awaits while one is held. A poisoned one still holds valid
/// maps (no update is left half done), so it is used as is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::client_address;
    use std::net::IpAddr;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn an_ipv6_64_counts_as_one_client_address_and_ipv4_stays_whole() {
        assert_eq!(
            client_address(ip("2001:db8:1:2:aaaa::1")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(
            client_address(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            client_address(ip("2001:db8:1:2::7"))
        );
        assert_ne!(client_address(ip("2001:db8:1:3::1")), ip("2001:db8:1:2::"));
        assert_eq!(client_address(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_address(ip("192.0.2.7")), ip("192.0.2.7"));
    }
}
