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

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use axum::serve::{IncomingStream, Listener};
use futures_util::task::AtomicWaker;
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
}

impl ConnectionHandle {
    fn new(peer: SocketAddr) -> Self {
        Self {
            peer,
            written: AtomicU64::new(0),
            aborted: AtomicBool::new(false),
            read_waker: AtomicWaker::new(),
            write_waker: AtomicWaker::new(),
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

impl axum::extract::connect_info::Connected<IncomingStream<'_, TrackedListener>>
    for ConnectionInfo
{
    fn connect_info(stream: IncomingStream<'_, TrackedListener>) -> Self {
        Self(stream.io().handle.clone())
    }
}

/// A TCP listener whose connections are [`TrackedStream`]s, with `TCP_NODELAY` set.
pub struct TrackedListener {
    inner: TcpListener,
}

impl TrackedListener {
    /// Tracks the connections `listener` accepts.
    pub fn new(listener: TcpListener) -> Self {
        Self { inner: listener }
    }
}

impl Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, peer) = Listener::accept(&mut self.inner).await;
        // Chat frames are small and written back to back (the handshake, then `welcome`): with
        // Nagle's algorithm on, the second waits for the client's delayed ACK, about 40 ms.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let handle = Arc::new(ConnectionHandle::new(peer));
        (TrackedStream { stream, handle }, peer)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that counts what it writes and fails once aborted.
pub struct TrackedStream {
    stream: TcpStream,
    handle: Arc<ConnectionHandle>,
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "the server ended the connection",
    )
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
            return Poll::Ready(Err(aborted()));
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
            return Poll::Ready(Err(aborted()));
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
            return Poll::Ready(Err(aborted()));
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
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Which connection carries which Engine.IO session, and which sessions the server ended.
#[derive(Debug, Default)]
pub struct Transports {
    websockets: Mutex<Websockets>,
    ended: Mutex<HashSet<String>>,
}

#[derive(Debug, Default)]
struct Websockets {
    by_sid: HashMap<String, Weak<ConnectionHandle>>,
    /// Insertions since dead entries were last swept out.
    since_sweep: usize,
}

impl Transports {
    /// Notes that `connection` carries session `sid` as a websocket.
    pub fn websocket_opened(&self, sid: &str, connection: &Arc<ConnectionHandle>) {
        let mut websockets = lock(&self.websockets);
        // Sessions that never finish connecting leave entries behind: sweep the dead ones now
        // and then, which keeps the map as large as the live connections, amortised O(1).
        websockets.since_sweep += 1;
        if websockets.since_sweep > websockets.by_sid.len().max(1024) {
            websockets.since_sweep = 0;
            websockets
                .by_sid
                .retain(|_, connection| connection.strong_count() > 0);
        }
        websockets
            .by_sid
            .insert(sid.to_owned(), Arc::downgrade(connection));
    }

    /// The live connection carrying session `sid` as a websocket, if any.
    pub fn websocket(&self, sid: &str) -> Option<Arc<ConnectionHandle>> {
        lock(&self.websockets)
            .by_sid
            .get(sid)
            .and_then(Weak::upgrade)
    }

    /// Ends a session for good: its websocket (if any) is aborted and its polling requests are
    /// refused from now on, so that its client reconnects.
    pub fn end(&self, sid: &str) {
        if let Some(connection) = self.websocket(sid) {
            connection.abort();
        }
        lock(&self.ended).insert(sid.to_owned());
    }

    /// Whether the server ended session `sid`.
    pub fn is_ended(&self, sid: &str) -> bool {
        lock(&self.ended).contains(sid)
    }

    /// Forgets a closed session.
    pub fn forget(&self, sid: &str) {
        lock(&self.websockets).by_sid.remove(sid);
        lock(&self.ended).remove(sid);
    }
}

/// A std mutex, not Tokio's: nothing awaits while one is held. A poisoned one still holds valid
/// maps (no update is left half done), so it is used as is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
