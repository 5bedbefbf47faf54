//! `direct`: open the direct conversation between the user and someone else. It is a room (see
//! [`causerie_protocol::limits::direct_room`]) that only its two members can join, so reading,
//! searching and writing in it need nothing more than the checks every room has: a connection
//! must have joined it. Each member's connections are told (`direct`), and join it themselves.

use std::sync::Arc;

use causerie_protocol::limits::{direct_members, direct_room, is_valid_user_id};
use causerie_protocol::{Direct, DirectRequest, ErrorBody, ErrorCode, Message, User, event};
use socketioxide::SocketIo;
use socketioxide::extract::{Extension, SocketRef, State, TryData};

use super::{Session, internal, parse, room_key, user_key, within_quota};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing::{self, Ack};

/// Direct conversations a server holds at most, for each room it may hold
/// ([`crate::ServerConfig::max_rooms`]): the catalog of rooms keeps them all in memory.
const DIRECTS_PER_ROOM: u64 = 100;

pub(super) async fn on_direct(
    _admitted: super::Admitted,
    socket: SocketRef,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    match open(&socket, &chat, &session, data).await {
        Ok(mine) => {
            outgoing::reply(&socket, &chat, event::DIRECT, ack, Ok(mine.clone()));
            // Both people's other connections, told once it is stored.
            let theirs = Direct {
                room: mine.room.clone(),
                peer: session.user.clone(),
            };
            tell(
                &socket.within(user_key(&mine.peer.id)).sockets(),
                &chat,
                &theirs,
                None,
            );
            let own = socket.within(user_key(&session.user.id)).sockets();
            tell(&own, &chat, &mine, Some(&socket));
        }
        Err(error) => outgoing::reply::<Direct>(&socket, &chat, event::DIRECT, ack, Err(error)),
    }
}

async fn open(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<Direct, ErrorBody> {
    within_quota(chat, Action::Membership, socket, session)?;
    let DirectRequest { user } = parse(data, "a direct request")?;
    let me = &session.user;
    if !is_valid_user_id(&user) || user == me.id {
        return Err(ErrorBody::new(
            ErrorCode::Invalid,
            "a direct conversation is with another user, by their id",
        ));
    }
    let peer = find_user(socket, chat, &user).await?.ok_or_else(|| {
        ErrorBody::new(
            ErrorCode::NotFound,
            "this server has not seen that user, or their app takes no direct messages",
        )
    })?;
    let room = direct_room(&me.id, &peer.id);
    let exists = chat.store.head(&room).await.map_err(|e| internal(&e))?;
    if exists.is_none() {
        let most = u64::from(chat.max_rooms).saturating_mul(DIRECTS_PER_ROOM);
        let count = chat.store.direct_count().await.map_err(|e| internal(&e))?;
        if count >= most {
            return Err(ErrorBody::new(
                ErrorCode::RoomLimit,
                format!("this server holds {most} direct conversations, its most"),
            ));
        }
        // A new one is stored for good, as a new room is.
        within_quota(chat, Action::CreateRoom, socket, session)?;
        chat.store
            .open_direct(&room, me, &peer)
            .await
            .map_err(|e| internal(&e))?;
        tracing::debug!(sid = %socket.id, user = %me.id, peer = %peer.id, "direct conversation opened");
    }
    Ok(Direct { room, peer })
}

/// User `id` under their current name: from one of their connections here, else as the store
/// last saw them. Seed clients are neither: their app has no direct messages.
async fn find_user(socket: &SocketRef, chat: &Chat, id: &str) -> Result<Option<User>, ErrorBody> {
    let connected = super::other_sessions_of(socket, id)
        .next()
        .map(|session| session.user);
    match connected {
        Some(user) => Ok(Some(user)),
        None => chat.store.user(id).await.map_err(|e| internal(&e)),
    }
}

/// Sends `direct` to each of `sockets` but `except`.
fn tell(sockets: &[SocketRef], chat: &Chat, direct: &Direct, except: Option<&SocketRef>) {
    for other in sockets {
        if except.is_none_or(|except| except.id != other.id) {
            outgoing::to_socket(other, chat, event::DIRECT, direct);
        }
    }
}

/// After a message in a direct conversation: the members' connections that are not in it (a
/// conversation left, or beyond those listed at their welcome) are told of it, so that they
/// join it and nothing said there goes unseen.
pub(super) async fn message_sent(io: &SocketIo, chat: &Chat, message: &Message) {
    let Some((one, other)) = direct_members(&message.room) else {
        return;
    };
    let key = room_key(&message.room);
    let outside = |user_id: &str| -> Vec<SocketRef> {
        io.within(user_key(user_id))
            .sockets()
            .into_iter()
            .filter(|socket| !outgoing::is_in(socket, &key))
            .collect()
    };
    let author = &message.author;
    let recipient = if author.id == one { other } else { one };
    let theirs = outside(recipient);
    if !theirs.is_empty() {
        let direct = Direct {
            room: message.room.clone(),
            peer: author.clone(),
        };
        tell(&theirs, chat, &direct, None);
    }
    let own = outside(&author.id);
    if !own.is_empty()
        && let Ok(Some(peer)) = chat.store.user(recipient).await
    {
        let direct = Direct {
            room: message.room.clone(),
            peer,
        };
        tell(&own, chat, &direct, None);
    }
}
