//! `message`: validate, store (durably), ack, then broadcast to the room.

use std::sync::Arc;
use std::time::Instant;

use crate::cluster::SocketIo;
use crate::cluster::SocketRef;
use causerie_protocol::{
    DEFAULT_ROOM, ErrorBody, ErrorCode, Message, MessageAccepted, SendMessage, event,
};
use socketioxide::extract::{Extension, State, TryData};

use super::{
    SEED_ROOM_KEY, Session, check_client_id, has_joined, internal, not_joined, parse, room_key,
    within_quota,
};
use crate::chat::Chat;
use crate::limiter::Action;
use crate::outgoing::{self, Ack, Reach};
use crate::store::NewMessage;

pub(super) async fn on_message(
    _admitted: super::Admitted,
    socket: SocketRef,
    io: SocketIo,
    State(chat): State<Arc<Chat>>,
    Extension(session): Extension<Session>,
    TryData(data): TryData<serde_json::Value>,
    ack: Ack,
) {
    let received = Instant::now();
    let (message, fresh) = match accept(&socket, &chat, &session, data).await {
        Ok(accepted) => accepted,
        Err(error) => {
            // Counted by code in /metrics and summarised in the log; one line each only in
            // debug, or a flood of refusals would flood the log too.
            chat.metrics.rejected(error.code);
            tracing::debug!(
                sid = %socket.id, user = %session.user.id, code = %error.code,
                "message refused: {}", error.message
            );
            outgoing::reply::<MessageAccepted>(&socket, &chat, event::MESSAGE, ack, Err(error));
            return;
        }
    };
    outgoing::reply(
        &socket,
        &chat,
        event::MESSAGE,
        ack,
        Ok(MessageAccepted {
            message: message.clone(),
        }),
    );
    // A retried client id was broadcast the first time: only the ack repeats.
    if fresh {
        broadcast(&io, &chat, &message).await;
        chat.metrics.accepted(received.elapsed().as_secs_f64());
        // The text stays out of the logs: they are not the place for people's conversations.
        tracing::debug!(
            sid = %socket.id, user = %message.author.id, room = %message.room,
            seq = message.seq, id = %message.id, "message"
        );
    }
}

/// Checks and stores a message; `Ok((message, true))` when it was stored now, `false` when an
/// earlier send with the same client id stored it.
async fn accept(
    socket: &SocketRef,
    chat: &Chat,
    session: &Session,
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<(Message, bool), ErrorBody> {
    let request = if session.seed {
        seed_request(data)?
    } else {
        parse::<SendMessage>(data, "a message")?
    };
    check_client_id(&request.id, "a message")?;
    let room = request.room.unwrap_or_else(|| DEFAULT_ROOM.to_owned());
    if !session.seed && !has_joined(socket, &room) {
        return Err(not_joined(&room));
    }
    chat.limits.check_message(&request.text)?;
    let mentions = check_mentions(request.mentions)?;
    within_quota(chat, Action::Message, socket, session)?;
    // Only the room's members, and not the sender: a mention reaches someone who can read it.
    let mentions: Vec<String> = mentions
        .into_iter()
        .filter(|id| *id != session.user.id)
        .collect();
    let mentions = chat
        .store
        .members_among(&room, &mentions)
        .await
        .map_err(|e| internal(&e))?;
    if let Some(original) = request.reply_to {
        // A resend is answered with what was stored, whatever became of the original since.
        let sent = chat
            .store
            .sent(&session.user.id, &request.id)
            .await
            .map_err(|e| internal(&e))?;
        if let Some(sent) = sent {
            return Ok((sent, false));
        }
        // A deletion committed between this check and the append leaves a reply whose quote
        // says the original was deleted: harmless, and not worth a check inside the writer.
        let quote = chat
            .store
            .quote(&room, original)
            .await
            .map_err(|e| internal(&e))?;
        if quote.is_none_or(|quote| quote.deleted) {
            return Err(ErrorBody::new(
                ErrorCode::NotFound,
                format!("no message {original} in this room to reply to (or it was deleted)"),
            ));
        }
    }
    let appended = chat
        .store
        .append(NewMessage {
            client_id: request.id,
            room,
            author: session.user.clone(),
            text: request.text,
            reply_to: request.reply_to,
            mentions,
        })
        .await
        .map_err(|e| internal(&e))?;
    Ok((appended.message, !appended.duplicate))
}

/// The ids a message mentions, each once, in the order given; refused with `invalid` beyond
/// [`causerie_protocol::limits::MAX_MENTIONS`] or when one is not an id.
fn check_mentions(mentions: Vec<String>) -> Result<Vec<String>, ErrorBody> {
    let max = causerie_protocol::limits::MAX_MENTIONS;
    let mut kept: Vec<String> = Vec::with_capacity(mentions.len().min(max));
    for id in mentions {
        let valid = causerie_protocol::limits::is_valid_client_id(&id)
            && !id.chars().any(char::is_whitespace);
        if !valid || (kept.len() == max && !kept.contains(&id)) {
            return Err(ErrorBody::new(
                ErrorCode::Invalid,
                format!("a message mentions at most {max} people, by their ids"),
            ));
        }
        if !kept.contains(&id) {
            kept.push(id);
        }
    }
    Ok(kept)
}

/// A seed client sends the bare text; it has no client ids, so each send is a new message.
fn seed_request(
    data: Result<serde_json::Value, socketioxide::ParserError>,
) -> Result<SendMessage, ErrorBody> {
    match data {
        Ok(serde_json::Value::String(text)) => Ok(SendMessage {
            id: uuid::Uuid::new_v4().to_string(),
            room: None,
            text,
            reply_to: None,
            mentions: Vec::new(),
        }),
        _ => Err(ErrorBody::new(
            ErrorCode::Invalid,
            "a seed client sends its message as a string",
        )),
    }
}

/// Sends a stored message to everyone in its room: the object to Causerie clients, and
/// `"<name>: <text>"` to seed clients when the room is `general`.
async fn broadcast(io: &SocketIo, chat: &Chat, message: &Message) {
    let key = room_key(&message.room);
    outgoing::to_room(
        io,
        chat,
        Reach::Everywhere,
        &key,
        None,
        event::MESSAGE,
        message,
    )
    .await;
    if message.room == DEFAULT_ROOM {
        let line = seed_line(message);
        outgoing::to_room(
            io,
            chat,
            Reach::Everywhere,
            SEED_ROOM_KEY,
            None,
            event::MESSAGE,
            &line,
        )
        .await;
    }
    super::direct::message_sent(io, chat, message).await;
}

/// A message as the old server's clients read it, `"<name>: <text>"`, on one line: a line break
/// in the text would let a sender forge a second line from someone else.
fn seed_line(message: &Message) -> String {
    let text: String = message
        .text
        .chars()
        .map(|c| match c {
            '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}' => ' ',
            c => c,
        })
        .collect();
    format!("{}: {}", message.author.name, text)
}
