//! `direct`: open the direct conversation between the user and someone else. It is a room (see
//! [`causerie_protocol::limits::direct_room`]) that only its two members can join, so reading,
//! searching and writing in it need nothing more than the checks every room has: a connection
//! must have joined it. Each member's connections are told (`direct`), and join it themselves.

use std::sync::Arc;

use crate::cluster::SocketIo;
use crate::cluster::SocketRef;
use causerie_protocol::limits::{direct_members, direct_room, is_valid_user_id};
use causerie_protocol::{Direct, DirectRequest, ErrorBody, ErrorCode, Message, User, event};
use socketioxide::extract::{Extension, State, TryData};

use super::{Session, internal, parse, room_key, user_key, within_quota};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing::{self, Ack};

/// Direct conversations a server holds at most, for each room it may hold
/// ([`crate::ServerConfig::max_rooms`]): the catalog of rooms keeps them all in memory.
const DIRECTS_PER_ROOM: u64 = 100;

pub(super) async fn on_direct(
    _admitted: super::Admitted,
    io: SocketIo,
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
            let (peer, own) = (user_key(&mine.peer.id), user_key(&session.user.id));
            outgoing::to_user(&io, &chat, &peer, None, None, event::DIRECT, &theirs).await;
            outgoing::to_user(&io, &chat, &own, Some(&socket), None, event::DIRECT, &mine).await;
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

/// After a message in a direct conversation: the members' connections that are not in it (a
/// conversation left, or beyond those listed at their welcome) are told of it, so that they
/// join it and nothing said there goes unseen.
pub(super) async fn message_sent(io: &SocketIo, chat: &Chat, message: &Message) {
    let Some((one, other)) = direct_members(&message.room) else {
        return;
    };
    let key = room_key(&message.room);
    let author = &message.author;
    let recipient = if author.id == one { other } else { one };
    let theirs = Direct {
        room: message.room.clone(),
        peer: author.clone(),
    };
    let to = user_key(recipient);
    outgoing::to_user(io, chat, &to, None, Some(&key), event::DIRECT, &theirs).await;
    // On whichever node they are, the author's own connections outside it (a rare case: it
    // was left) are told too, under the peer's latest name. Alone, the server sees them all,
    // and reads the name only when there is one to tell.
    let author_outside = chat.nodes.clustered()
        || io
            .within(user_key(&author.id))
            .sockets()
            .iter()
            .any(|socket| !outgoing::is_in(socket, &key));
    if author_outside && let Ok(Some(peer)) = chat.store.user(recipient).await {
        let own = Direct {
            room: message.room.clone(),
            peer,
        };
        let to = user_key(&author.id);
        outgoing::to_user(io, chat, &to, None, Some(&key), event::DIRECT, &own).await;
    }
}
