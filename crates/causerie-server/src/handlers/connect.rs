//! Connecting: authenticate the handshake, then greet the socket with `welcome`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::SocketRef;
use axum::extract::ConnectInfo;
use causerie_protocol::limits::{
    DEFAULT_HISTORY_LIMIT, DEFAULT_ONLINE_PAGE, DEFAULT_ROOMS_PAGE, MAX_DIRECTS_LISTED,
    normalize_name,
};
use causerie_protocol::{
    DEFAULT_ROOM, ErrorBody, ErrorCode, HandshakeAuth, Pong, User, Welcome, event,
};
use socketioxide::extract::{Extension, State, TryData};

use super::{
    SEED_ROOM_KEY, Session, change, direct, history, message, read, room_key, rooms, search,
    typing, within_quota,
};
use crate::chat::Chat;
use crate::connections::{ConnectionInfo, client_address};
use crate::identity::{constant_time_eq, guest_name, new_user_id};
use crate::limiter::Action;
use crate::outgoing::{self, Ack};
use crate::store::{HistoryQuery, StoreError};

/// How long a session that gave a wrong join code is kept for its refusal to be read, before
/// its transport is ended (once its address is locked out).
const REFUSAL_GRACE: Duration = Duration::from_millis(500);

/// The client's address, from the connection of its first request.
fn address_of(socket: &SocketRef) -> Option<IpAddr> {
    socket
        .req_parts()
        .extensions
        .get::<ConnectInfo<ConnectionInfo>>()
        .map(|ConnectInfo(ConnectionInfo(connection))| client_address(connection.peer().ip()))
}

/// Connect middleware: checks the join code and the name, and settles who the socket is. A refusal
/// reaches the client as a connect error `"<code>: <explanation>"`, before any event.
pub(super) async fn authenticate(
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    TryData(auth): TryData<serde_json::Value>,
) -> Result<(), ErrorBody> {
    let refusal = identify(&socket, &chat, auth);
    if let Err(refused) = &refusal {
        chat.metrics.refused("connect", refused.code);
    }
    refusal
}

fn identify(
    socket: &SocketRef,
    chat: &Arc<Chat>,
    auth: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<(), ErrorBody> {
    let auth = auth.unwrap_or_default();
    let seed = auth.get("protocol").is_none();
    let auth: HandshakeAuth = match serde_json::from_value(auth) {
        Ok(auth) => auth,
        // Seed clients may send anything or nothing: they get a guest identity.
        Err(_) if seed => HandshakeAuth::default(),
        Err(_) => {
            return Err(ErrorBody::new(
                ErrorCode::Invalid,
                "the handshake auth object does not have the documented shape",
            ));
        }
    };
    // Version 1 knew no edits, version 2 no reactions: their clients cannot read the entries
    // that take those seqs, and would wait for them forever.
    if !seed && auth.protocol != Some(causerie_protocol::PROTOCOL_VERSION) {
        return Err(ErrorBody::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "this server speaks protocol {}: update the app",
                causerie_protocol::PROTOCOL_VERSION
            ),
        ));
    }
    let address = address_of(socket);
    if let Some(expected) = &chat.join_code {
        check_join_code(socket, chat, address, auth.code.as_deref(), expected)?;
    }
    let name = match auth.name.as_deref() {
        Some(name) => Some(normalize_name(name).ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::InvalidName,
                format!(
                    "a name has 1 to {} characters, no control, format or invisible characters",
                    causerie_protocol::limits::MAX_NAME_CHARS
                ),
            )
        })?),
        None => None,
    };
    let returning = auth.token.as_deref().and_then(|t| chat.tokens.verify(t));
    let has_token = returning.is_some();
    let user = match (returning, name) {
        (Some(user), Some(name)) => User {
            name: name.to_owned(),
            ..user
        },
        (Some(user), None) => user,
        (None, name) => {
            // Every connection without a token is a new user: limited per address, or per-user
            // quotas would be free to escape.
            if let Some(address) = address {
                chat.limiter.new_guest(address)?;
            }
            User {
                id: new_user_id(),
                name: name.map_or_else(guest_name, str::to_owned),
            }
        }
    };
    if has_token {
        // A reconnect loop would otherwise cost a welcome's pages each time, unlimited.
        chat.limiter.check(Action::Connect, socket.id, &user.id)?;
    }
    socket.extensions.insert(Session {
        user,
        seed,
        address,
    });
    Ok(())
}

/// Refuses a wrong or missing join code, and an address locked out for too many of them; once it
/// is locked out, the session itself is ended too, so that it cannot keep trying.
fn check_join_code(
    socket: &SocketRef,
    chat: &Arc<Chat>,
    address: Option<IpAddr>,
    given: Option<&str>,
    expected: &str,
) -> Result<(), ErrorBody> {
    let now = Instant::now();
    if let Some(address) = address {
        chat.limiter.join_code_allowed(address, now)?;
    }
    let given = given.unwrap_or_default();
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        if let Some(address) = address {
            chat.limiter.join_code_succeeded(address);
        }
        return Ok(());
    }
    tracing::debug!(sid = %socket.id, "refused: wrong or missing join code");
    if let Some(address) = address {
        chat.limiter.join_code_failed(address, now);
        if chat.limiter.join_code_allowed(address, now).is_err() {
            let socket = socket.clone();
            let chat = chat.clone();
            tokio::spawn(async move {
                tokio::time::sleep(REFUSAL_GRACE).await;
                chat.transports.end(&socket);
            });
        }
    }
    Err(ErrorBody::new(
        ErrorCode::Unauthorized,
        "this server needs the right join code",
    ))
}

/// Connect handler: registers the socket's event handlers, joins `general`, and sends
/// `welcome`. The room hears of the arrival in its next presence flush.
pub(super) async fn on_connect(socket: SocketRef, State(chat): State<Arc<Chat>>) {
    let Some(session) = socket.extensions.get::<Session>() else {
        tracing::error!(sid = %socket.id, "connected without a session");
        return;
    };
    let (user, seed) = (session.user.clone(), session.seed);
    chat.metrics.connected();
    tracing::debug!(
        sid = %socket.id, user = %user.id, name = %user.name, seed,
        transport = ?socket.transport_type(), "connected"
    );

    // Before joining any room: a socket is sent room traffic only once it can be accounted for.
    outgoing::attach(&socket, &chat);
    socket
        .extensions
        .insert(super::InFlight::new(chat.max_requests_in_flight));
    socket.on(event::MESSAGE, message::on_message);
    socket.on(event::PING, on_ping);
    if !seed {
        socket.extensions.insert(history::HistoryTurn::default());
        socket.on(event::HISTORY, history::on_history);
        socket.on(event::JOIN, rooms::on_join);
        socket.on(event::LEAVE, rooms::on_leave);
        socket.on(event::WHO, rooms::on_who);
        socket.on(event::ROOMS, rooms::on_rooms);
        socket.on(event::TYPING, typing::on_typing);
        socket.on(event::EDIT, change::on_edit);
        socket.on(event::DELETE, change::on_delete);
        socket.on(event::REACT, change::on_react);
        socket.on(event::READ, read::on_read);
        socket.on(event::SEARCH, search::on_search);
        socket.on(event::DIRECT, direct::on_direct);
        // Not an accounted room: it only finds the user's connections (see `read`).
        socket.join(super::user_key(&user.id));
        // Someone others can open a direct conversation with, under their latest name. In the
        // background: a greeting does not wait on a write (nor fail while writes fail). Not
        // again for each tab or device: one already connected here under this name was kept.
        let kept =
            super::other_sessions_of(&socket, &user.id).any(|other| other.user.name == user.name);
        if !kept {
            let (store, seen) = (chat.store.clone(), user.clone());
            tokio::spawn(async move {
                if let Err(error) = store.remember_user(&seen).await {
                    tracing::debug!(%error, "a user was not remembered");
                }
            });
        }
    }
    socket.on_disconnect(rooms::on_disconnect);

    let key = if seed {
        SEED_ROOM_KEY.to_owned()
    } else {
        room_key(DEFAULT_ROOM)
    };
    outgoing::join(&socket, &chat, &key, || {
        chat.presence.arrive(DEFAULT_ROOM, &user);
        if !seed {
            socket.join(super::member_key(&user.id, DEFAULT_ROOM));
        }
    });
    if !socket.connected() {
        // Closed before its disconnect handler was set, which then never runs: depart here
        // (once, if the handler runs too).
        rooms::closed(&socket, &chat, &session);
        return;
    }
    let welcome = if seed {
        Ok(seed_welcome(&chat, &user))
    } else {
        welcome(&chat, &user).await
    };
    match welcome {
        Ok(welcome) => outgoing::to_socket(&socket, &chat, event::WELCOME, &welcome),
        Err(e) => {
            tracing::error!(error = %e, sid = %socket.id, "cannot greet a socket; closing it");
            outgoing::leave(&socket, &key, || {
                chat.presence.depart(DEFAULT_ROOM, &user.id);
                socket.leave(super::member_key(&user.id, DEFAULT_ROOM));
            });
            let _ = socket.disconnect();
        }
    }
}

/// `ping`: acked at once, for clients that check their connection themselves.
async fn on_ping(
    _admitted: super::Admitted,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    ack: Ack,
) {
    let pong = within_quota(&chat, Action::Ping, &socket, &session).map(|()| Pong {});
    outgoing::reply(&socket, &chat, event::PING, ack, pong);
}

/// A seed client's welcome: the same object with no history, no one online and only `general`.
/// Seed clients ignore it; filling it would cost O(N) per connection, O(N²) for a crowd of them.
fn seed_welcome(chat: &Chat, user: &User) -> Welcome {
    Welcome {
        user: user.clone(),
        token: chat.tokens.issue(user),
        room: DEFAULT_ROOM.to_owned(),
        rooms: vec![DEFAULT_ROOM.to_owned()],
        rooms_next: None,
        online: Vec::new(),
        online_count: 0,
        online_next: None,
        history: Vec::new(),
        changes: Vec::new(),
        head: 0,
        read: None,
        directs: Vec::new(),
        limits: chat.limits.clone(),
        server: chat.server.clone(),
    }
}

/// A Causerie client's welcome: bounded whatever the server's size (first pages of rooms and of
/// the people online, the latest page of history).
async fn welcome(chat: &Chat, user: &User) -> Result<Welcome, StoreError> {
    // The read state first, then the page, sent as soon as it is read: a page held while the
    // count waits for a reader is a page per connection in memory at a reconnection wave.
    let latest = chat.store.head(DEFAULT_ROOM).await?.unwrap_or(0);
    let read = read::state_on_arrival(chat, &user.id, DEFAULT_ROOM, latest).await?;
    let directs = chat.store.directs_of(&user.id, MAX_DIRECTS_LISTED).await?;
    let history = chat
        .store
        .history(
            DEFAULT_ROOM,
            HistoryQuery {
                limit: DEFAULT_HISTORY_LIMIT,
                ..HistoryQuery::default()
            },
        )
        .await?;
    let rooms = chat.store.rooms_page("", "", DEFAULT_ROOMS_PAGE).await?;
    let online = chat
        .online(DEFAULT_ROOM, None, DEFAULT_ONLINE_PAGE as usize)
        .await;
    let head = head_of(&history);
    Ok(Welcome {
        user: user.clone(),
        token: chat.tokens.issue(user),
        room: DEFAULT_ROOM.to_owned(),
        rooms_next: rooms
            .has_more
            .then(|| rooms.rooms.last().cloned())
            .flatten(),
        rooms: rooms.rooms,
        online: online.users,
        online_count: online.count,
        online_next: online.next,
        head,
        read: Some(read),
        history: history.messages,
        changes: history.changes,
        directs,
        limits: chat.limits.clone(),
        server: chat.server.clone(),
    })
}

/// The latest seq of a room, from its latest page read after the socket joined it.
pub(super) fn head_of(latest: &crate::store::HistorySlice) -> u64 {
    let message = latest.messages.last().map_or(0, |message| message.seq);
    let change = latest.changes.last().map_or(0, |change| change.seq);
    message.max(change)
}
