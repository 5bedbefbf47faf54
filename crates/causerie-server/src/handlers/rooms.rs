//! `join`, `leave`, `who`, `rooms`, and disconnects.
//!
//! Presence is per user, not per socket: someone with two tabs open arrives with the first and
//! leaves with the last ([`crate::presence`]), and rooms hear of it in the next presence flush.

use std::sync::Arc;

use crate::cluster::SocketRef;
use causerie_protocol::limits::{
    DEFAULT_HISTORY_LIMIT, DEFAULT_ONLINE_PAGE, DEFAULT_ROOMS_PAGE, MAX_ONLINE_PAGE,
    MAX_ROOM_CHARS, MAX_ROOMS_PAGE, direct_members, is_direct_room, is_room_or_direct,
    is_valid_room,
};
use causerie_protocol::{
    ErrorBody, ErrorCode, Joined, Left, RoomRequest, RoomsPage, RoomsRequest, WhoPage, WhoRequest,
    event,
};
use socketioxide::extract::{Extension, State, TryData};
use socketioxide::socket::DisconnectReason;

use super::history::HistoryTurn;
use super::{
    Session, has_joined, internal, not_joined, parse, room_key, room_of_key, within_quota,
};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing::{self, Ack};
use crate::presence::parse_cursor;
use crate::store::HistoryQuery;

pub(super) async fn on_join(
    _admitted: super::Admitted,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    Extension(turn): Extension<HistoryTurn>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let joined = join(&socket, &chat, &session, &turn, data).await;
    if !socket.connected() {
        return; // nobody to answer, and no refusal to count
    }
    outgoing::reply(&socket, &chat, event::JOIN, ack, joined);
}

async fn join(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    turn: &HistoryTurn,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<Joined, ErrorBody> {
    within_quota(chat, Action::Membership, socket, session)?;
    let RoomRequest { room } = parse(data, "a join request")?;
    if let Some(members) = direct_members(&room) {
        may_join_direct(chat, session, &room, members).await?;
    } else if !is_valid_room(&room) {
        return Err(invalid_room());
    }
    if !has_joined(socket, &room) {
        admit(socket, chat, session, &room).await?;
        // Joined before the history is read: a message stored meanwhile is in the page or
        // reaches the socket live (or both; clients drop repeats by seq), never neither. If the
        // read fails the socket stays joined: the client asks again, and joining twice is
        // harmless.
        if outgoing::join(socket, chat, &room_key(&room), || {
            chat.presence.arrive(&room, &session.user);
            socket.join(super::member_key(&session.user.id, &room));
        }) {
            tracing::debug!(sid = %socket.id, user = %session.user.id, %room, "joined");
        }
    }
    // The join's page waits its turn with the connection's `history` requests: thirty joins of
    // a room already joined would otherwise read thirty pages at once.
    let _turn = turn.wait().await;
    if !socket.connected() {
        return Err(closed_meanwhile());
    }
    // The read state first, then the page, sent as soon as it is read: a page held while the
    // count waits for a reader is a page per connection in memory when many join at once.
    let latest = chat
        .store
        .head(&room)
        .await
        .map_err(|e| internal(&e))?
        .unwrap_or(0);
    let read = super::read::state_on_arrival(chat, &session.user.id, &room, latest)
        .await
        .map_err(|e| internal(&e))?;
    let history = chat
        .store
        .history(
            &room,
            HistoryQuery {
                limit: DEFAULT_HISTORY_LIMIT,
                ..HistoryQuery::default()
            },
        )
        .await
        .map_err(|e| internal(&e))?;
    let online = chat.online(&room, None, DEFAULT_ONLINE_PAGE as usize).await;
    let head = super::connect::head_of(&history);
    Ok(Joined {
        room,
        online: online.users,
        online_count: online.count,
        online_next: online.next,
        head,
        read: Some(read),
        history: history.messages,
        changes: history.changes,
    })
}

/// A direct conversation is joined by its two members only, once opened (with `direct`: joining
/// creates no conversation, as it would with anyone, seen or not).
async fn may_join_direct(
    chat: &Chat,
    session: &Session,
    room: &str,
    (one, other): (&str, &str),
) -> Result<(), ErrorBody> {
    let me = session.user.id.as_str();
    if me != one && me != other {
        return Err(ErrorBody::new(
            ErrorCode::Forbidden,
            "only its two members can join a direct conversation",
        ));
    }
    if chat
        .store
        .head(room)
        .await
        .map_err(|e| internal(&e))?
        .is_none()
    {
        return Err(ErrorBody::new(
            ErrorCode::NotFound,
            "no such direct conversation: open it with `direct`",
        ));
    }
    Ok(())
}

/// Lets `socket` into `room` within the room limits, creating the room if it is new.
async fn admit(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    room: &str,
) -> Result<(), ErrorBody> {
    let max = chat.limits.max_joined_rooms;
    // Direct conversations have a budget of their own: people opening conversations with
    // someone never keep them out of rooms.
    let direct = is_direct_room(room);
    let keys = outgoing::keys_of(socket);
    let directs = keys
        .iter()
        .filter(|key| room_of_key(key).is_some_and(is_direct_room))
        .count();
    let rooms = keys.len() - directs;
    if direct && directs >= max as usize {
        return Err(room_limit(format!(
            "a connection may be in {max} direct conversations at once; leave one first"
        )));
    }
    if !direct && rooms >= max as usize {
        return Err(room_limit(format!(
            "a connection may be in {max} rooms at once; leave one first"
        )));
    }
    if !direct
        && !chat.presence.is_online(room, &session.user.id)
        && chat.presence.rooms_of_user(&session.user.id) >= max
    {
        return Err(room_limit(format!(
            "a user may be in {max} rooms at once, across connections; leave one first"
        )));
    }
    if chat
        .store
        .room_exists(room)
        .await
        .map_err(|e| internal(&e))?
    {
        return Ok(());
    }
    let rooms = chat.store.room_count().await.map_err(|e| internal(&e))?;
    if rooms >= u64::from(chat.max_rooms) {
        return Err(room_limit(format!(
            "this server holds {} rooms, its most; join one of them",
            chat.max_rooms
        )));
    }
    within_quota(chat, Action::CreateRoom, socket, session)?;
    chat.store.create_room(room).await.map_err(|e| internal(&e))
}

pub(super) async fn on_leave(
    _admitted: super::Admitted,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let left = leave(&socket, &chat, &session, data);
    outgoing::reply(&socket, &chat, event::LEAVE, ack, left);
}

fn leave(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<Left, ErrorBody> {
    within_quota(chat, Action::Membership, socket, session)?;
    let RoomRequest { room } = parse(data, "a leave request")?;
    if !is_room_or_direct(&room) {
        return Err(invalid_room());
    }
    if !outgoing::leave(socket, &room_key(&room), || {
        chat.presence.depart(&room, &session.user.id);
        socket.leave(super::member_key(&session.user.id, &room));
    }) {
        return Err(not_joined(&room));
    }
    // The user's last connection in the room left it: so does their place in it. In the
    // background: a leave does not wait on a write (nor fail while writes fail). Not from a
    // direct conversation: it stays theirs, listed with what they have not read.
    if !chat.presence.is_online(&room, &session.user.id) && direct_members(&room).is_none() {
        let (store, user, left) = (chat.store.clone(), session.user.id.clone(), room.clone());
        tokio::spawn(async move {
            if let Err(error) = store.forget_read(&user, &left).await {
                tracing::debug!(%error, room = %left, "a read marker was not forgotten");
            }
        });
    }
    tracing::debug!(sid = %socket.id, user = %session.user.id, %room, "left");
    Ok(Left { room })
}

pub(super) async fn on_who(
    _admitted: super::Admitted,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let page = who(&socket, &chat, &session, data).await;
    outgoing::reply(&socket, &chat, event::WHO, ack, page);
}

async fn who(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<WhoPage, ErrorBody> {
    within_quota(chat, Action::Who, socket, session)?;
    let request: WhoRequest = parse(data, "a who request")?;
    let limit = request.limit.unwrap_or(DEFAULT_ONLINE_PAGE);
    if !(1..=MAX_ONLINE_PAGE).contains(&limit) {
        return Err(ErrorBody::new(
            ErrorCode::Invalid,
            format!("limit is 1 to {MAX_ONLINE_PAGE}"),
        ));
    }
    if !has_joined(socket, &request.room) {
        return Err(not_joined(&request.room));
    }
    let after = match request.after.as_deref() {
        Some(after) => Some(parse_cursor(after).ok_or_else(|| {
            ErrorBody::new(ErrorCode::Invalid, "after is the next of an earlier page")
        })?),
        None => None,
    };
    let page = chat.online(&request.room, after, limit as usize).await;
    Ok(WhoPage {
        room: request.room,
        users: page.users,
        count: page.count,
        next: page.next,
    })
}

pub(super) async fn on_rooms(
    _admitted: super::Admitted,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let page = rooms(&socket, &chat, &session, data).await;
    outgoing::reply(&socket, &chat, event::ROOMS, ack, page);
}

async fn rooms(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<RoomsPage, ErrorBody> {
    within_quota(chat, Action::Rooms, socket, session)?;
    let request: RoomsRequest = parse(data, "a rooms request")?;
    let limit = request.limit.unwrap_or(DEFAULT_ROOMS_PAGE);
    if !(1..=MAX_ROOMS_PAGE).contains(&limit) {
        return Err(ErrorBody::new(
            ErrorCode::Invalid,
            format!("limit is 1 to {MAX_ROOMS_PAGE}"),
        ));
    }
    let prefix = request.prefix.unwrap_or_default();
    let after = request.after.unwrap_or_default();
    // Both are (parts of) room names: anything else matches nothing, and says so.
    let room_like =
        |text: &str| text.is_empty() || (text.len() <= MAX_ROOM_CHARS && is_valid_room(text));
    if !room_like(&prefix) || !room_like(&after) {
        return Err(invalid_room());
    }
    let page = chat
        .store
        .rooms_page(&prefix, &after, limit)
        .await
        .map_err(|e| internal(&e))?;
    Ok(RoomsPage {
        next: page.has_more.then(|| page.rooms.last().cloned()).flatten(),
        rooms: page.rooms,
    })
}

pub(super) async fn on_disconnect(
    socket: SocketRef,
    reason: DisconnectReason,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
) {
    tracing::debug!(
        sid = %socket.id, user = %session.user.id, name = %session.user.name, ?reason,
        "disconnected"
    );
    closed(&socket, &chat, &session);
}

/// Everything a closed socket leaves behind, once however often it is called (by the disconnect
/// handler, and by the connect handler for a socket closed before that handler was set): its
/// departure from every room it was in (from its account, which still knows its rooms if it was
/// taken out of them for falling behind), its transport, and the count of connections.
pub(super) fn closed(socket: &SocketRef, chat: &Chat, session: &Session) {
    let ended = outgoing::end(socket, |key| {
        if let Some(room) = room_of_key(key) {
            chat.presence.depart(room, &session.user.id);
        }
    });
    if ended {
        chat.metrics.disconnected();
        chat.transports.forget(socket.id);
    }
}

/// The answer to a join whose connection closed while it waited: never delivered (a closed
/// socket's acks go nowhere), so no page is read for it.
fn closed_meanwhile() -> ErrorBody {
    ErrorBody::new(ErrorCode::Invalid, "the connection closed")
}

fn room_limit(explanation: String) -> ErrorBody {
    ErrorBody::new(ErrorCode::RoomLimit, explanation)
}

fn invalid_room() -> ErrorBody {
    ErrorBody::new(
        ErrorCode::InvalidRoom,
        format!(
            "a room name has 1 to {} of a-z, 0-9, - and _",
            causerie_protocol::limits::MAX_ROOM_CHARS
        ),
    )
}
