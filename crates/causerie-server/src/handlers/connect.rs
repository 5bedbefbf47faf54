//! Connecting: authenticate the handshake, then greet the socket with `welcome`.

use std::sync::Arc;

use causerie_protocol::limits::{DEFAULT_HISTORY_LIMIT, normalize_name};
use causerie_protocol::{
    DEFAULT_ROOM, ErrorBody, ErrorCode, HandshakeAuth, Presence, User, Welcome, event,
};
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State, TryData};

use super::{SEED_ROOM_KEY, Session, history, message, online, room_key, rooms, typing};
use crate::chat::Chat;
use crate::identity::{guest_name, new_user_id};
use crate::outgoing::{self, Ack};
use crate::store::{HistoryQuery, StoreError};

/// Connect middleware: checks the join code and the name, and settles who the socket is. A refusal
/// reaches the client as a connect error `"<code>: <explanation>"`, before any event.
pub(super) async fn authenticate(
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    TryData(auth): TryData<serde_json::Value>,
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
    if let Some(expected) = &chat.join_code {
        let given = auth.code.as_deref().unwrap_or_default();
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            tracing::info!(sid = %socket.id, "refused: wrong or missing join code");
            return Err(ErrorBody::new(
                ErrorCode::Unauthorized,
                "this server needs the right join code",
            ));
        }
    }
    let name = match auth.name.as_deref() {
        Some(name) => Some(normalize_name(name).ok_or_else(|| {
            ErrorBody::new(
                ErrorCode::InvalidName,
                "a name has 1 to 32 characters and no control characters",
            )
        })?),
        None => None,
    };
    let returning = auth.token.as_deref().and_then(|t| chat.tokens.verify(t));
    let user = match (returning, name) {
        (Some(user), Some(name)) => User {
            name: name.to_owned(),
            ..user
        },
        (Some(user), None) => user,
        (None, name) => User {
            id: new_user_id(),
            name: name.map_or_else(guest_name, str::to_owned),
        },
    };
    socket.extensions.insert(Session { user, seed });
    Ok(())
}

/// Connect handler: registers the socket's event handlers, joins `general`, sends `welcome`, and
/// tells the room someone arrived.
pub(super) async fn on_connect(socket: SocketRef, io: SocketIo, State(chat): State<Arc<Chat>>) {
    let Some(Session { user, seed }) = socket.extensions.get::<Session>() else {
        tracing::error!(sid = %socket.id, "connected without a session");
        return;
    };
    chat.metrics.connected();
    tracing::info!(
        sid = %socket.id, user = %user.id, name = %user.name, seed,
        transport = ?socket.transport_type(), "connected"
    );

    // Before joining any room: a socket is sent room traffic only once it can be accounted for.
    outgoing::attach(&socket, &chat);
    socket.on(event::MESSAGE, message::on_message);
    socket.on(
        event::PING,
        async |socket: SocketRef, State(chat): State<Arc<Chat>>, ack: Ack| {
            outgoing::reply(&socket, &chat, ack, Ok(causerie_protocol::Pong {}));
        },
    );
    if !seed {
        socket.on(event::HISTORY, history::on_history);
        socket.on(event::JOIN, rooms::on_join);
        socket.on(event::LEAVE, rooms::on_leave);
        socket.on(event::TYPING, typing::on_typing);
    }
    socket.on_disconnect(rooms::on_disconnect);

    // Presence goes to the Causerie clients in `general`; with none there, nobody is told and
    // the O(N) look at who is online is skipped (a room of seed clients only).
    let someone_to_tell = !io.within(room_key(DEFAULT_ROOM)).sockets().is_empty();
    let arriving = someone_to_tell
        && !online(&io, DEFAULT_ROOM, None)
            .iter()
            .any(|u| u.id == user.id);
    let key = if seed {
        SEED_ROOM_KEY.to_owned()
    } else {
        room_key(DEFAULT_ROOM)
    };
    outgoing::join(&socket, &chat, &key);
    let welcome = if seed {
        Ok(seed_welcome(&chat, &user))
    } else {
        welcome(&chat, &io, &user).await
    };
    let welcome = match welcome {
        Ok(welcome) => welcome,
        Err(e) => {
            tracing::error!(error = %e, sid = %socket.id, "cannot greet a socket; closing it");
            // Never announced as arrived: leaving first keeps its departure unannounced too.
            outgoing::leave(&socket, &key);
            let _ = socket.disconnect();
            return;
        }
    };
    outgoing::to_socket(&socket, &chat, event::WELCOME, &welcome);
    if arriving {
        let online = if seed {
            online(&io, DEFAULT_ROOM, None)
        } else {
            welcome.online
        };
        rooms::announce(
            &io,
            &chat,
            &socket,
            Presence {
                room: DEFAULT_ROOM.to_owned(),
                online,
                joined: Some(user),
                left: None,
            },
        )
        .await;
    }
}

/// A seed client's welcome: the same object with no history, no one online and only `general`.
/// Seed clients ignore it; filling it would cost O(N) per connection, O(N²) for a crowd of them.
fn seed_welcome(chat: &Chat, user: &User) -> Welcome {
    Welcome {
        user: user.clone(),
        token: chat.tokens.issue(user),
        room: DEFAULT_ROOM.to_owned(),
        rooms: vec![DEFAULT_ROOM.to_owned()],
        online: Vec::new(),
        history: Vec::new(),
        head: 0,
        limits: chat.limits.clone(),
        server: chat.server.clone(),
    }
}

async fn welcome(chat: &Chat, io: &SocketIo, user: &User) -> Result<Welcome, StoreError> {
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
    Ok(Welcome {
        user: user.clone(),
        token: chat.tokens.issue(user),
        room: DEFAULT_ROOM.to_owned(),
        rooms: chat.store.rooms().await?,
        online: online(io, DEFAULT_ROOM, None),
        head: head_of(&history.messages),
        history: history.messages,
        limits: chat.limits.clone(),
        server: chat.server.clone(),
    })
}

/// The latest seq of a room, from its latest page read after the socket joined it.
pub(super) fn head_of(latest: &[causerie_protocol::Message]) -> u64 {
    latest.last().map_or(0, |message| message.seq)
}

/// Compares secrets without leaking, through timing, how much of them matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
