//! The client's decisions, without I/O: commands from the user and what the server says go in,
//! [`Effect`]s come out (events for the user, requests for the server, changes for the outbox
//! file). The supervisor performs the effects; tests feed inputs and read effects, no network.
//!
//! It composes the machines: [`Delivery`] (rooms, ordering, catch-up), [`Sending`] (the outbox
//! order, one in flight, pauses, the user's typing), [`WhoIsTyping`] (others' typing),
//! [`ReadMarkers`] (unread counts) and, while connected, [`Liveness`] (pings). The rules that
//! span them live here: each delivered message of the user's own confirms their pending copy,
//! once; each delivered message of someone else's counts as unread until read.

use std::collections::VecDeque;

use causerie_protocol::{
    Change, ChangeAccepted, ChangeKind, Direct, DirectRequest, ErrorBody, HandshakeAuth, Head,
    HistoryPage, HistoryRequest, Joined, Limits, Message, MessageAccepted, Pong, Presence,
    ReadState, Reply, RoomsPage, RoomsRequest, SearchPage, SearchRequest, Typing, Welcome, WhoPage,
    event,
};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::ClientConfig;
use crate::connection::{Outgoing, Request};
use crate::delivery::Delivery;
use crate::error::ClientError;
use crate::event::{ClientEvent, ConnectionState, Session};
use crate::liveness::{Liveness, Unanswered};
use crate::outbox::{LocalId, OutboxChange, OutboxEntry};
use crate::sending::{Acked, Sending};
use crate::timeline::Entry;
use crate::typing::WhoIsTyping;
use crate::unread::{ReadMarkers, Seen, Unread};

/// What a [`crate::ChatClient`] asks for.
#[derive(Debug)]
pub(crate) enum Command {
    Send(OutboxEntry),
    History {
        room: String,
        before: Option<u64>,
    },
    Join(String),
    Leave(String),
    Typing {
        room: String,
        typing: bool,
    },
    LoadMoreOnline(String),
    Around {
        room: String,
        seq: u64,
    },
    MarkRead {
        room: String,
        seq: u64,
    },
    Search(SearchRequest),
    OpenDirect(String),
    FindRooms {
        prefix: String,
        after: Option<String>,
    },
    CheckNow,
    /// Connect again at once with these credentials (sent only when connecting).
    ReconnectAs {
        name: Option<String>,
        join_code: Option<String>,
    },
    Disconnect,
}

/// Something for the supervisor to do.
#[derive(Debug, PartialEq)]
pub(crate) enum Effect {
    Emit(ClientEvent),
    Send(Outgoing),
    Save(OutboxChange),
}

/// What a command asks of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    Continue,
    /// Check the connection now: when offline, end the wait before the next attempt.
    CheckNow,
    /// Connect again at once (new credentials).
    Reconnect,
    Stop,
}

/// Who to be when connecting.
#[derive(Debug)]
struct Credentials {
    name: Option<String>,
    token: Option<String>,
    join_code: Option<String>,
}

/// Everything the client knows and decides.
#[derive(Debug)]
pub(crate) struct ChatState {
    credentials: Credentials,
    delivery: Delivery,
    sending: Sending,
    /// While welcomed: the connection's ping schedule.
    liveness: Option<Liveness>,
    typing: WhoIsTyping,
    read: ReadMarkers,
    /// The user's id, once welcomed.
    me: Option<String>,
    limits: Limits,
    config: ClientConfig,
    effects: VecDeque<Effect>,
}

impl ChatState {
    /// A client with `restored` messages (from the outbox file) to send first: each is told
    /// to the user as pending.
    pub(crate) fn new(config: ClientConfig, restored: Vec<OutboxEntry>) -> Self {
        let effects = restored
            .iter()
            .map(|entry| Effect::Emit(ClientEvent::Pending(entry.clone())))
            .chain([Effect::Emit(ClientEvent::State(
                ConnectionState::Connecting,
            ))])
            .collect();
        Self {
            credentials: Credentials {
                name: config.name.clone(),
                token: config.token.clone(),
                join_code: config.join_code.clone(),
            },
            delivery: Delivery::new(&config.rooms, config.backoff, config.request_timeout),
            sending: Sending::new(restored, config.backoff, config.request_timeout),
            liveness: None,
            typing: WhoIsTyping::default(),
            read: ReadMarkers::new(config.request_timeout),
            me: None,
            limits: Limits::default(),
            config,
            effects,
        }
    }

    /// What to say when connecting.
    pub(crate) fn auth(&self) -> HandshakeAuth {
        HandshakeAuth {
            protocol: Some(causerie_protocol::PROTOCOL_VERSION),
            name: self.credentials.name.clone(),
            token: self.credentials.token.clone(),
            code: self.credentials.join_code.clone(),
        }
    }

    /// What to do now, in order: the effects of the inputs so far, then the next message and
    /// page to send, if connected.
    pub(crate) fn take_effects(&mut self, now: Instant) -> Vec<Effect> {
        if self.liveness.is_some() {
            let dispatch = self
                .sending
                .next(now, &self.limits, |room| self.delivery.may_send_to(room));
            for (local_id, error) in dispatch.refused {
                self.refused(local_id, error);
            }
            if let Some(message) = dispatch.send {
                self.effects.push_back(Effect::Send(message));
            }
            if let Some(request) = self.delivery.next_request(now) {
                self.effects.push_back(Effect::Send(request));
            }
            let delivery = &self.delivery;
            if let Some(request) = self
                .read
                .next_request(now, |room| delivery.has_joined(room))
            {
                self.effects
                    .push_back(Effect::Send(Outgoing::Read(request)));
            }
        }
        self.effects.drain(..).collect()
    }

    /// When [`ChatState::on_timer`] has something to do; `None` when not connected.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        let liveness = self.liveness.as_ref()?.deadline();
        [
            self.sending.deadline(),
            self.delivery.deadline(),
            self.typing.deadline(),
            self.read.deadline(|room| self.delivery.has_joined(room)),
        ]
        .into_iter()
        .flatten()
        .chain([liveness])
        .min()
    }

    /// Handles a command from the user.
    pub(crate) fn on_command(&mut self, command: Command, now: Instant) -> Control {
        let connected = self.liveness.is_some();
        match command {
            Command::Disconnect => return Control::Stop,
            Command::ReconnectAs { name, join_code } => {
                self.credentials.name = name;
                self.credentials.join_code = join_code;
                return Control::Reconnect;
            }
            Command::CheckNow if connected => self.check(now),
            Command::CheckNow => return Control::CheckNow,
            Command::Send(entry) => {
                self.effects
                    .push_back(Effect::Save(OutboxChange::Add(entry.clone())));
                self.effects
                    .push_back(Effect::Emit(ClientEvent::Pending(entry.clone())));
                let stopped_typing = self.sending.push(entry);
                if let Some(stopped) = stopped_typing.filter(|_| connected) {
                    self.effects
                        .push_back(Effect::Send(Outgoing::Typing(stopped)));
                }
            }
            Command::History { room, before } if connected => {
                let request = self.delivery.older_page(room, before);
                self.effects.push_back(Effect::Send(request));
            }
            Command::Around { room, seq } if connected => {
                let request = HistoryRequest {
                    room: Some(room),
                    around: Some(seq),
                    ..HistoryRequest::default()
                };
                self.effects
                    .push_back(Effect::Send(Outgoing::Around(request)));
            }
            Command::Search(request) if connected => {
                self.effects
                    .push_back(Effect::Send(Outgoing::Search(request)));
            }
            Command::OpenDirect(user) if connected => {
                self.effects
                    .push_back(Effect::Send(Outgoing::Direct(DirectRequest { user })));
            }
            Command::FindRooms { prefix, after } if connected => {
                let request = RoomsRequest {
                    prefix: Some(prefix),
                    after,
                    limit: None,
                };
                self.effects
                    .push_back(Effect::Send(Outgoing::Rooms(request)));
            }
            Command::History { .. }
            | Command::FindRooms { .. }
            | Command::Around { .. }
            | Command::OpenDirect(_)
            | Command::Search(_) => self
                .effects
                .push_back(Effect::Emit(ClientEvent::Error(ClientError::NotConnected))),
            Command::Join(room) => self.delivery.join(room),
            Command::MarkRead { room, seq } => {
                let marked = self.read.mark(&room, seq);
                self.emit_unread(marked);
            }
            Command::Leave(room) => {
                self.read.left(&room);
                if self.typing.leave(&room) {
                    self.emit_typing(room.clone());
                }
                if let Some(request) = self.delivery.leave(room) {
                    self.effects.push_back(Effect::Send(request));
                }
            }
            Command::LoadMoreOnline(room) => self.delivery.load_more_online(room),
            Command::Typing { room, typing } if connected => {
                let request = self.sending.typing(room, typing, now);
                self.effects
                    .push_back(Effect::Send(Outgoing::Typing(request)));
            }
            Command::Typing { .. } => {}
        }
        self.flush_delivery();
        Control::Continue
    }

    /// A connection was welcomed.
    pub(crate) fn welcomed(&mut self, welcome: Welcome, now: Instant) {
        tracing::info!(user = %welcome.user.id, "connected");
        self.me = Some(welcome.user.id.clone());
        self.credentials.token = Some(welcome.token.clone());
        self.limits = welcome.limits.clone();
        self.liveness = Some(Liveness::new(
            now,
            self.config.liveness_interval,
            self.config.request_timeout,
        ));
        self.sending.connected();
        self.effects.extend([
            Effect::Emit(ClientEvent::State(ConnectionState::Connected)),
            Effect::Emit(ClientEvent::Welcome(Session {
                user: welcome.user.clone(),
                token: welcome.token.clone(),
                rooms: welcome.rooms.clone(),
                rooms_next: welcome.rooms_next.clone(),
                limits: welcome.limits.clone(),
                server: welcome.server.clone(),
            })),
        ]);
        // Before the page: its messages are the server's to count. A server without markers
        // has none to give, and is sent none.
        if let Some(state) = welcome.read.clone() {
            let unread = self.read.on_state(state);
            self.emit_unread(unread);
        }
        let directs = welcome.directs.clone();
        self.delivery.welcomed(welcome);
        for direct in directs {
            self.open_direct(direct);
        }
        self.flush_delivery();
    }

    /// The connection is gone: so is what it told, of who is typing.
    pub(crate) fn disconnected(&mut self) {
        self.liveness = None;
        self.delivery.disconnected();
        self.read.disconnected();
        for room in self.typing.clear() {
            self.emit_typing(room);
        }
    }

    /// An event the server sent.
    pub(crate) fn on_event(&mut self, name: &str, data: Value, now: Instant) {
        // Someone who said something live, or left, stopped typing (not someone whose old
        // message comes in a catch-up page).
        let mut stopped_typing = Vec::new();
        match name {
            event::MESSAGE => {
                if let Ok(message) = serde_json::from_value::<Message>(data) {
                    if self.typing.gone(&message.room, &message.author.id) {
                        stopped_typing.push(message.room.clone());
                    }
                    self.delivery.on_entry(message);
                }
            }
            event::CHANGE => {
                if let Ok(change) = serde_json::from_value::<Change>(data) {
                    self.delivery.on_entry(change);
                }
            }
            event::HEAD => {
                if let Ok(head) = serde_json::from_value::<Head>(data) {
                    self.delivery.on_head(&head);
                }
            }
            event::PRESENCE => {
                if let Ok(presence) = serde_json::from_value::<Presence>(data) {
                    for user in &presence.left {
                        if self.typing.gone(&presence.room, &user.id) {
                            stopped_typing.push(presence.room.clone());
                        }
                    }
                    self.delivery.on_presence(presence);
                }
            }
            event::READ => {
                // The user read further on another device, in a room joined here.
                if let Ok(state) = serde_json::from_value::<ReadState>(data)
                    && self.delivery.is_in(&state.room)
                {
                    let unread = self.read.on_state(state);
                    self.emit_unread(unread);
                }
            }
            // Someone opened a conversation with the user: followed as the user's rooms are.
            event::DIRECT => {
                if let Ok(direct) = serde_json::from_value::<Direct>(data) {
                    self.open_direct(direct);
                }
            }
            event::TYPING => {
                // Not the user's own (from their other connections), and only for rooms they
                // are in: a late notice of a room left would otherwise stay.
                if let Ok(notice) = serde_json::from_value::<Typing>(data)
                    && self.me.as_deref() != Some(notice.user.id.as_str())
                    && self.delivery.is_in(&notice.room)
                {
                    let room = notice.room.clone();
                    if self.typing.on_notice(notice, now) {
                        self.emit_typing(room);
                    }
                }
            }
            _ => {}
        }
        self.flush_delivery();
        stopped_typing.dedup();
        for room in stopped_typing {
            self.emit_typing(room);
        }
    }

    /// The answer to a request.
    pub(crate) fn on_ack(&mut self, request: Request, data: Value, now: Instant) {
        if !self.delivery.takes_answer_to(&request) {
            return;
        }
        match request {
            Request::Ping(id) => {
                if parse::<Pong>(data).is_some()
                    && let Some(liveness) = &mut self.liveness
                {
                    liveness.answered(id);
                }
            }
            Request::Send(local_id) => {
                if let Some(reply) = parse::<Stored>(data) {
                    self.on_send_ack(local_id, reply.map(Entry::from), now);
                }
            }
            Request::Join(room) => {
                if let Some(reply) = parse::<Joined>(data) {
                    // Before the page, as for a welcome.
                    if let Ok(Joined {
                        read: Some(state), ..
                    }) = &reply
                        && self.delivery.is_in(&room)
                    {
                        let unread = self.read.on_state(state.clone());
                        self.emit_unread(unread);
                    }
                    self.delivery.on_joined(room, reply, now);
                }
            }
            Request::Read(room) => {
                if let Some(reply) = parse::<ReadState>(data) {
                    let unread = self.read.answered(&room, reply, now);
                    self.emit_unread(unread);
                }
            }
            Request::Leave(room) => self.delivery.left(room),
            Request::Who { room, more } => {
                if let Some(Ok(page)) = parse::<WhoPage>(data) {
                    self.delivery.on_who(&room, more, page);
                }
            }
            // The user left the room meanwhile: nothing to show.
            Request::Around { room, .. } if !self.delivery.is_in(&room) => {}
            Request::Around { seq, .. } => self.answer(data, |page: HistoryPage| {
                ClientEvent::Around { around: seq, page }
            }),
            Request::Search { query } => {
                self.answer(data, |page: SearchPage| ClientEvent::Search {
                    query,
                    results: page.results,
                    next: page.next,
                })
            }
            Request::Direct => {
                match parse::<Direct>(data) {
                    Some(Ok(direct)) => self.open_direct(direct),
                    Some(Err(error)) => self.effects.push_back(Effect::Emit(ClientEvent::Error(
                        ClientError::Rejected(error),
                    ))),
                    None => {}
                }
            }
            Request::Rooms { prefix } => self.answer(data, |page: RoomsPage| ClientEvent::Rooms {
                prefix,
                rooms: page.rooms,
                next: page.next,
            }),
            Request::History { room, catch_up } => {
                if let Some(reply) = parse::<HistoryPage>(data) {
                    if catch_up {
                        self.delivery.on_catch_up(room, reply);
                    } else {
                        self.delivery.on_older_page(room, reply);
                    }
                }
            }
        }
        self.flush_delivery();
    }

    /// A direct conversation of the user's: told, then joined (again, after a reconnect: joining
    /// twice is harmless) like the user's rooms.
    fn open_direct(&mut self, direct: Direct) {
        let room = direct.room.clone();
        self.effects
            .push_back(Effect::Emit(ClientEvent::Direct(direct)));
        if !self.delivery.is_in(&room) {
            self.delivery.join(room);
        }
    }

    /// Tells the user the answer to a request of theirs, as `event` of its body, or its refusal.
    fn answer<T: DeserializeOwned>(&mut self, data: Value, event: impl FnOnce(T) -> ClientEvent) {
        let told = match parse::<T>(data) {
            Some(Ok(body)) => event(body),
            Some(Err(error)) => ClientEvent::Error(ClientError::Rejected(error)),
            None => return,
        };
        self.effects.push_back(Effect::Emit(told));
    }

    /// A transport hiccup may or may not have killed the connection: ask it.
    pub(crate) fn on_transport_error(&mut self, now: Instant) {
        self.check(now);
    }

    /// Does what is due at `now`: an error when the connection is found dead.
    pub(crate) fn on_timer(&mut self, now: Instant) -> Result<(), Unanswered> {
        for room in self.typing.on_timer(now) {
            self.emit_typing(room);
        }
        let Some(liveness) = &mut self.liveness else {
            return Ok(());
        };
        if let Some(id) = liveness.on_timer(now)? {
            self.effects.push_back(Effect::Send(Outgoing::Ping(id)));
        }
        for still in self.sending.typing_refreshes(now) {
            self.effects
                .push_back(Effect::Send(Outgoing::Typing(still)));
        }
        // A request went unanswered: it is asked again, and the connection checked meanwhile.
        let unanswered = self.delivery.on_timer(now) | self.sending.on_timer(now);
        if unanswered {
            self.check(now);
        }
        Ok(())
    }

    /// Sends a ping unless one is out.
    fn check(&mut self, now: Instant) {
        if let Some(id) = self.liveness.as_mut().and_then(|l| l.check(now)) {
            self.effects.push_back(Effect::Send(Outgoing::Ping(id)));
        }
    }

    fn on_send_ack(&mut self, local_id: LocalId, reply: Result<Entry, ErrorBody>, now: Instant) {
        match self
            .sending
            .on_ack(local_id.clone(), reply, now, &self.limits)
        {
            Acked::Stored(stored) => {
                let pending = self.sending.contains(local_id.as_str());
                self.delivery.on_stored(stored, pending);
            }
            Acked::Refused(local_id, error) => self.refused(local_id, error),
            Acked::Paused | Acked::Ignored => {}
        }
    }

    /// An outbox entry refused for good: out of the file, and the user told.
    fn refused(&mut self, local_id: LocalId, error: ErrorBody) {
        self.effects
            .push_back(Effect::Save(OutboxChange::Remove(local_id.clone())));
        self.effects.push_back(Effect::Emit(ClientEvent::Failed {
            local_id,
            resendable: error.code.is_resendable(),
            error,
        }));
    }

    fn emit_unread(&mut self, unread: Option<Unread>) {
        if let Some(unread) = unread {
            self.effects
                .push_back(Effect::Emit(ClientEvent::Unread(unread)));
        }
    }

    fn emit_typing(&mut self, room: String) {
        let users = self.typing.in_room(&room);
        self.effects
            .push_back(Effect::Emit(ClientEvent::Typing { room, users }));
    }

    /// Moves delivery's events out; each message of the user's that is pending confirms it (and
    /// takes it out of the outbox), whichever way it arrived; each of someone else's counts as
    /// unread, and a deletion takes one back.
    fn flush_delivery(&mut self) {
        for mut event in self.delivery.take_events() {
            let unread = match &event {
                ClientEvent::Message { message, .. } => {
                    let me = self.me.as_deref();
                    let seen = Seen {
                        by_others: me != Some(message.author.id.as_str()),
                        deleted: message.deleted,
                        mentions_me: me.is_some_and(|me| message.mentions.iter().any(|m| m == me)),
                    };
                    self.read.delivered(&message.room, message.seq, seen)
                }
                ClientEvent::Change { change, .. } if change.kind == ChangeKind::Delete => {
                    self.read.deleted(&change.room, change.target, change.seq)
                }
                ClientEvent::Left { room } => {
                    self.read.left(room);
                    None
                }
                _ => None,
            };
            let (author, client_id, confirms) = match &mut event {
                ClientEvent::Message {
                    message, confirms, ..
                } => (&message.author.id, &message.client_id, confirms),
                ClientEvent::Change { change, confirms } => {
                    (&change.author.id, &change.client_id, confirms)
                }
                _ => {
                    self.effects.push_back(Effect::Emit(event));
                    continue;
                }
            };
            let own = self.me.as_deref() == Some(author.as_str());
            let local_id = LocalId::from(client_id.as_str());
            if own && self.sending.remove(&local_id) {
                self.effects
                    .push_back(Effect::Save(OutboxChange::Remove(local_id.clone())));
                *confirms = Some(local_id);
            }
            self.effects.push_back(Effect::Emit(event));
            self.emit_unread(unread);
        }
    }
}

/// An outbox entry's ack: a message's, or an edit's or deletion's, read in one pass.
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Stored {
    Message(MessageAccepted),
    Change(ChangeAccepted),
}

impl From<Stored> for Entry {
    fn from(stored: Stored) -> Self {
        match stored {
            Stored::Message(accepted) => Entry::Message(accepted.message),
            Stored::Change(accepted) => Entry::Change(accepted.change),
        }
    }
}

/// Reads an ack as `Reply<T>`: `None` when it has neither shape (an ack routed to the wrong
/// request: rust_socketio draws ack ids at random).
fn parse<T: DeserializeOwned>(data: Value) -> Option<Result<T, ErrorBody>> {
    serde_json::from_value::<Reply<T>>(data)
        .ok()
        .map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::OutboxAction;
    use causerie_protocol::ChangeKind;
    use causerie_protocol::{
        ErrorCode, HistoryRequest, ReadRequest, ServerInfo, TypingRequest, User,
    };
    use serde::Serialize;
    use std::time::Duration;

    const ME: &str = "u-me";

    fn user(id: &str) -> User {
        User {
            id: id.into(),
            name: id.into(),
        }
    }

    fn message(seq: u64, author: &str, client_id: &str) -> Message {
        Message {
            id: format!("m{seq}"),
            client_id: client_id.into(),
            room: "general".into(),
            seq,
            author: user(author),
            text: format!("text {seq}"),
            sent_at: "2026-11-27T00:00:00Z".into(),
            edited_at: None,
            deleted: false,
            as_of: 0,
            mentions: Vec::new(),
            reactions: Vec::new(),
            reply_to: None,
        }
    }

    fn theirs(seq: u64) -> Message {
        message(seq, "u-other", &format!("c{seq}"))
    }

    fn welcome(history: Vec<Message>, head: u64) -> Welcome {
        Welcome {
            user: user(ME),
            token: "token".into(),
            room: "general".into(),
            rooms: vec!["general".into()],
            rooms_next: None,
            online: vec![user(ME)],
            online_count: 1,
            online_next: None,
            history,
            changes: vec![],
            head,
            read: Some(causerie_protocol::ReadState {
                room: causerie_protocol::DEFAULT_ROOM.into(),
                seq: head,
                unread: 0,
                mentions: 0,
                head,
            }),
            directs: vec![],
            limits: Limits::default(),
            server: ServerInfo {
                name: "causerie".into(),
                version: "test".into(),
            },
        }
    }

    fn ok(body: impl Serialize) -> Value {
        let mut value = serde_json::to_value(body).expect("serializable");
        value["ok"] = Value::Bool(true);
        value
    }

    fn error(code: ErrorCode) -> Value {
        serde_json::to_value(Reply::<Pong>::Err(ErrorBody::new(code, "no"))).expect("serializable")
    }

    fn page(messages: Vec<Message>, has_more: bool) -> HistoryPage {
        HistoryPage {
            room: "general".into(),
            messages,
            changes: vec![],
            has_more,
            has_newer: false,
        }
    }

    fn entry(id: &str, text: &str) -> OutboxEntry {
        OutboxEntry {
            local_id: LocalId::from(id),
            room: "general".into(),
            text: text.into(),
            action: OutboxAction::Send,
            reply_to: None,
            mentions: Vec::new(),
        }
    }

    /// A client driven by hand, on a clock that moves only when told.
    struct Client {
        state: ChatState,
        now: Instant,
    }

    impl Client {
        fn new(restored: Vec<OutboxEntry>) -> Self {
            let config = ClientConfig::new("http://127.0.0.1:1");
            Self {
                state: ChatState::new(config, restored),
                now: Instant::now(),
            }
        }

        fn welcomed(restored: Vec<OutboxEntry>, history: Vec<Message>, head: u64) -> Self {
            let mut client = Self::new(restored);
            client.state.welcomed(welcome(history, head), client.now);
            client
        }

        fn effects(&mut self) -> Vec<Effect> {
            self.state.take_effects(self.now)
        }

        fn command(&mut self, command: Command) -> Control {
            self.state.on_command(command, self.now)
        }

        fn ack(&mut self, request: Request, data: Value) {
            self.state.on_ack(request, data, self.now);
        }

        fn live(&mut self, message: Message) {
            let data = serde_json::to_value(message).expect("serializable");
            self.state.on_event(event::MESSAGE, data, self.now);
        }

        fn advance(&mut self, by: Duration) -> Result<(), Unanswered> {
            self.now += by;
            self.state.on_timer(self.now)
        }
    }

    /// The seqs of the messages delivered, each with what it confirms.
    fn delivered(effects: &[Effect]) -> Vec<(u64, Option<&str>)> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Emit(ClientEvent::Message {
                    message, confirms, ..
                }) => Some((message.seq, confirms.as_ref().map(LocalId::as_str))),
                _ => None,
            })
            .collect()
    }

    fn sent(effects: &[Effect]) -> Vec<&Outgoing> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Send(outgoing) => Some(outgoing),
                _ => None,
            })
            .collect()
    }

    fn catch_up_after(effects: &[Effect]) -> Option<u64> {
        sent(effects)
            .into_iter()
            .find_map(|outgoing| match outgoing {
                Outgoing::History {
                    request,
                    catch_up: true,
                } => request.after,
                _ => None,
            })
    }

    fn catch_up() -> Request {
        Request::History {
            room: "general".into(),
            catch_up: true,
        }
    }

    #[test]
    fn a_catch_up_page_racing_live_messages_delivers_each_once_in_order() {
        let mut client = Client::welcomed(vec![], vec![theirs(1), theirs(2)], 2);
        assert_eq!(delivered(&client.effects()), [(1, None), (2, None)]);
        // 3 and 4 were missed; 5 arrives live first and waits behind the gap.
        client.live(theirs(5));
        let effects = client.effects();
        assert_eq!(delivered(&effects), []);
        assert_eq!(catch_up_after(&effects), Some(2));
        // 6 arrives live while the page is out; the page brings 3 to 6.
        client.live(theirs(6));
        client.ack(
            catch_up(),
            ok(page(
                vec![theirs(3), theirs(4), theirs(5), theirs(6)],
                false,
            )),
        );
        let effects = client.effects();
        assert_eq!(
            delivered(&effects),
            [(3, None), (4, None), (5, None), (6, None)]
        );
        assert_eq!(catch_up_after(&effects), None, "no gap left");
    }

    #[test]
    fn a_rejoin_replaying_history_shows_nothing_twice() {
        let mut client = Client::welcomed(vec![], vec![theirs(1), theirs(2), theirs(3)], 3);
        assert_eq!(delivered(&client.effects()).len(), 3);
        client.state.disconnected();
        // The next welcome repeats the latest page, and one new message.
        client.state.welcomed(
            welcome(vec![theirs(2), theirs(3), theirs(4)], 4),
            client.now,
        );
        assert_eq!(delivered(&client.effects()), [(4, None)]);
    }

    #[test]
    fn a_resends_late_ack_after_a_catch_up_page_confirmed_it_shows_it_once() {
        let mut client = Client::welcomed(vec![entry("a", "hello")], vec![theirs(1)], 1);
        let effects = client.effects();
        assert!(matches!(sent(&effects)[..], [Outgoing::Send(m)] if m.id == "a"));
        // The ack is lost; the resend goes out after the timeout.
        client.advance(Duration::from_secs(10)).expect("alive");
        let effects = client.effects();
        assert!(
            sent(&effects)
                .iter()
                .any(|o| matches!(o, Outgoing::Send(m) if m.id == "a"))
        );
        // A gap, then a catch-up page brings the first copy, which confirms it.
        client.live(theirs(3));
        client.effects();
        client.ack(
            catch_up(),
            ok(page(vec![message(2, ME, "a"), theirs(3)], false)),
        );
        assert_eq!(delivered(&client.effects()), [(2, Some("a")), (3, None)]);
        // Then the resend's ack: nothing more.
        let accepted = MessageAccepted {
            message: message(2, ME, "a"),
        };
        client.ack(Request::Send("a".into()), ok(accepted));
        let effects = client.effects();
        assert_eq!(delivered(&effects), []);
        assert!(sent(&effects).is_empty(), "nothing resent");
    }

    #[test]
    fn an_ack_ahead_of_the_broadcast_confirms_once_when_its_turn_comes() {
        let mut client = Client::welcomed(vec![], vec![theirs(1)], 1);
        client.effects();
        client.command(Command::Send(entry("a", "hi")));
        client.effects();
        // Stored as 3: 2 has not arrived yet, so it waits.
        let accepted = MessageAccepted {
            message: message(3, ME, "a"),
        };
        client.ack(Request::Send("a".into()), ok(accepted));
        let effects = client.effects();
        assert_eq!(delivered(&effects), []);
        assert_eq!(catch_up_after(&effects), Some(1));
        // The broadcast of 3 repeats it; 2 fills the gap.
        client.live(message(3, ME, "a"));
        client.ack(catch_up(), ok(page(vec![theirs(2)], false)));
        assert_eq!(delivered(&client.effects()), [(2, None), (3, Some("a"))]);
    }

    #[test]
    fn an_ack_of_a_message_older_than_the_first_page_still_confirms_it() {
        // Sent before a restart; stored as 1, but this client's first page starts at 2.
        let mut client = Client::welcomed(vec![entry("a", "hi")], vec![theirs(2)], 2);
        client.effects();
        let accepted = MessageAccepted {
            message: message(1, ME, "a"),
        };
        client.ack(Request::Send("a".into()), ok(accepted));
        let effects = client.effects();
        assert_eq!(delivered(&effects), [(1, Some("a"))]);
        assert!(effects.contains(&Effect::Save(OutboxChange::Remove("a".into()))));
    }

    #[test]
    fn over_long_text_is_refused_here_with_the_servers_code() {
        let mut client = Client::welcomed(vec![], vec![], 0);
        client.effects();
        let text = "x".repeat(Limits::default().max_message_chars as usize + 1);
        client.command(Command::Send(entry("a", &text)));
        let effects = client.effects();
        assert!(sent(&effects).is_empty());
        assert!(effects.iter().any(|effect| matches!(
            effect,
            Effect::Emit(ClientEvent::Failed { local_id, error, resendable: false })
                if local_id.as_str() == "a" && error.code == ErrorCode::TooLong
        )));
        assert!(effects.contains(&Effect::Save(OutboxChange::Remove("a".into()))));
    }

    #[test]
    fn sending_where_the_user_typed_tells_the_room_they_stopped_once() {
        let mut client = Client::welcomed(vec![], vec![], 0);
        client.effects();
        client.command(Command::Typing {
            room: "general".into(),
            typing: true,
        });
        client.effects();
        client.command(Command::Send(entry("a", "hi")));
        let stopped = Outgoing::Typing(TypingRequest {
            room: "general".into(),
            typing: false,
        });
        assert_eq!(sent(&client.effects())[0], &stopped);
        client.command(Command::Send(entry("b", "again")));
        assert!(!sent(&client.effects()).contains(&&stopped));
    }

    #[test]
    fn a_message_to_a_room_being_joined_waits_for_the_join() {
        let mut client = Client::welcomed(vec![], vec![], 0);
        client.effects();
        client.command(Command::Join("side".into()));
        client.command(Command::Send(OutboxEntry {
            room: "side".into(),
            ..entry("a", "hi")
        }));
        let effects = client.effects();
        assert_eq!(
            sent(&effects),
            [&Outgoing::Join(causerie_protocol::RoomRequest {
                room: "side".into()
            })]
        );
        let joined = Joined {
            room: "side".into(),
            online: vec![user(ME)],
            online_count: 1,
            online_next: None,
            history: vec![],
            changes: vec![],
            head: 0,
            read: Some(causerie_protocol::ReadState {
                room: "side".into(),
                ..Default::default()
            }),
        };
        client.ack(Request::Join("side".into()), ok(joined));
        let effects = client.effects();
        assert!(matches!(sent(&effects)[..], [Outgoing::Send(m)] if m.id == "a"));
    }

    #[test]
    fn only_what_comes_after_the_first_join_is_fresh() {
        let fresh = |effects: &[Effect]| -> Vec<(u64, bool)> {
            effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Emit(ClientEvent::Message { message, fresh, .. }) => {
                        Some((message.seq, *fresh))
                    }
                    _ => None,
                })
                .collect()
        };
        // The welcome's page is the past; a catch-up page too, even of what came since.
        let mut client = Client::welcomed(vec![], vec![theirs(1), theirs(2)], 3);
        let effects = client.effects();
        assert_eq!(fresh(&effects), [(1, false), (2, false)]);
        client.ack(catch_up(), ok(page(vec![theirs(3)], false)));
        assert_eq!(fresh(&client.effects()), [(3, false)]);
        // Live, after the join: news.
        client.live(theirs(4));
        assert_eq!(fresh(&client.effects()), [(4, true)]);
        // Missed while disconnected, it is news too when the next welcome's page brings it.
        client.state.disconnected();
        client
            .state
            .welcomed(welcome(vec![theirs(4), theirs(5)], 5), client.now);
        assert_eq!(fresh(&client.effects()), [(5, true)]);
    }

    #[test]
    fn direct_conversations_are_told_then_joined_however_they_come() {
        let direct = |peer: &str| Direct {
            room: causerie_protocol::limits::direct_room(ME, peer),
            peer: user(peer),
        };
        let joins = |effects: &[Effect]| -> Vec<String> {
            sent(effects)
                .into_iter()
                .filter_map(|o| match o {
                    Outgoing::Join(request) => Some(request.room.clone()),
                    _ => None,
                })
                .collect()
        };
        let told = |effects: &[Effect]| -> Vec<Direct> {
            effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Emit(ClientEvent::Direct(direct)) => Some(direct.clone()),
                    _ => None,
                })
                .collect()
        };

        // Listed in the welcome: told, and joined (one join at a time).
        let mut client = Client::new(vec![]);
        let listed = Welcome {
            directs: vec![direct("u-ada")],
            ..welcome(vec![], 0)
        };
        client.state.welcomed(listed, client.now);
        let effects = client.effects();
        assert_eq!(told(&effects), [direct("u-ada")]);
        assert_eq!(joins(&effects), [direct("u-ada").room]);

        // Opened by the user: asked, then told and joined once answered.
        client.command(Command::OpenDirect("u-bob".into()));
        let effects = client.effects();
        assert!(matches!(sent(&effects)[..], [Outgoing::Direct(r)] if r.user == "u-bob"));
        client.ack(Request::Direct, ok(direct("u-bob")));
        assert_eq!(told(&client.effects()), [direct("u-bob")]);
        assert!(client.state.delivery.is_in(&direct("u-bob").room));

        // Opened by someone else: the same. Opened again: told, not joined twice.
        let data = serde_json::to_value(direct("u-cy")).expect("serializable");
        client.state.on_event(event::DIRECT, data, client.now);
        assert_eq!(told(&client.effects()), [direct("u-cy")]);
        assert!(client.state.delivery.is_in(&direct("u-cy").room));
        client.ack(Request::Direct, ok(direct("u-bob")));
        let effects = client.effects();
        assert_eq!(told(&effects), [direct("u-bob")]);
        assert!(joins(&effects).is_empty());

        // Refused: said.
        client.command(Command::OpenDirect("u-nobody".into()));
        client.effects();
        client.ack(Request::Direct, error(ErrorCode::NotFound));
        assert!(client.effects().iter().any(|e| matches!(
            e,
            Effect::Emit(ClientEvent::Error(ClientError::Rejected(body))) if body.code == ErrorCode::NotFound
        )));
    }

    #[test]
    fn a_join_the_server_cannot_do_now_is_asked_again_after_a_pause() {
        let mut client = Client::welcomed(vec![], vec![], 0);
        client.effects();
        client.command(Command::Join("side".into()));
        client.effects();
        client.ack(Request::Join("side".into()), error(ErrorCode::Internal));
        assert!(sent(&client.effects()).is_empty());
        client.advance(Duration::from_secs(1)).expect("alive");
        let effects = client.effects();
        assert!(
            sent(&effects)
                .iter()
                .any(|o| matches!(o, Outgoing::Join(_)))
        );
    }

    #[test]
    fn the_users_older_page_starts_below_what_was_handed_out_and_repeats_nothing() {
        let mut client = Client::welcomed(vec![], vec![theirs(8), theirs(9)], 9);
        client.effects();
        client.command(Command::History {
            room: "general".into(),
            before: None,
        });
        let effects = client.effects();
        let [
            Outgoing::History {
                request,
                catch_up: false,
            },
        ] = sent(&effects)[..]
        else {
            panic!("one page asked for: {effects:?}");
        };
        assert_eq!(request.before, Some(8));
        let older = Request::History {
            room: "general".into(),
            catch_up: false,
        };
        client.ack(
            older.clone(),
            ok(page(vec![theirs(6), theirs(7), theirs(8)], true)),
        );
        client.ack(older, ok(page(vec![theirs(7)], true)));
        let pages: Vec<Vec<u64>> = client
            .effects()
            .iter()
            .filter_map(|effect| match effect {
                Effect::Emit(ClientEvent::History(page)) => {
                    Some(page.messages.iter().map(|m| m.seq).collect())
                }
                _ => None,
            })
            .collect();
        assert_eq!(pages, [vec![6, 7], vec![]]);
        assert_eq!(
            client.state.delivery.older_page("general".into(), None),
            Outgoing::History {
                request: HistoryRequest {
                    room: Some("general".into()),
                    after: None,
                    before: Some(6),
                    around: None,
                    limit: Some(causerie_protocol::limits::DEFAULT_HISTORY_LIMIT),
                },
                catch_up: false,
            }
        );
    }

    #[test]
    fn an_unanswered_ping_ends_the_connection_and_a_transport_error_checks_it() {
        let mut client = Client::welcomed(vec![], vec![], 0);
        client.effects();
        client.state.on_transport_error(client.now);
        assert_eq!(sent(&client.effects()), [&Outgoing::Ping(1)]);
        client.state.on_transport_error(client.now);
        assert!(sent(&client.effects()).is_empty(), "one ping out at a time");
        assert_eq!(client.advance(Duration::from_secs(10)), Err(Unanswered));
    }

    fn typing_in(effects: &[Effect]) -> Vec<Vec<String>> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Emit(ClientEvent::Typing { users, .. }) => {
                    Some(users.iter().map(|u| u.name.clone()).collect())
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn who_is_typing_ends_with_their_message_or_after_a_silence_and_never_lists_the_user() {
        let mut client = Client::welcomed(vec![], vec![], 0);
        client.effects();
        let notice = |id: &str| {
            serde_json::to_value(Typing {
                room: "general".into(),
                user: user(id),
                typing: true,
            })
            .expect("serializable")
        };
        client.state.on_event(event::TYPING, notice(ME), client.now);
        assert!(client.effects().is_empty(), "the user is not shown typing");
        client
            .state
            .on_event(event::TYPING, notice("u-other"), client.now);
        assert_eq!(typing_in(&client.effects()), [vec!["u-other".to_owned()]]);
        client.live(theirs(1));
        assert_eq!(typing_in(&client.effects()), [Vec::<String>::new()]);
        client
            .state
            .on_event(event::TYPING, notice("u-other"), client.now);
        client.effects();
        let shown = Duration::from_millis(causerie_protocol::limits::TYPING_SHOWN_MS);
        assert_eq!(client.state.next_wake(), Some(client.now + shown));
        client.advance(shown).expect("alive");
        assert_eq!(typing_in(&client.effects()), [Vec::<String>::new()]);
    }

    fn change(seq: u64, target: u64, kind: ChangeKind, client_id: &str) -> Change {
        Change {
            id: format!("c{seq}"),
            client_id: client_id.into(),
            room: "general".into(),
            seq,
            author: user(ME),
            kind,
            target,
            text: (kind == ChangeKind::Edit).then(|| format!("edited {target}")),
            emoji: matches!(kind, ChangeKind::React | ChangeKind::Unreact).then(|| "👍".into()),
            at: "2026-11-27T00:00:00Z".into(),
        }
    }

    /// The seqs delivered, messages and changes alike, with what they confirm.
    fn log(effects: &[Effect]) -> Vec<(u64, Option<&str>)> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Emit(ClientEvent::Message {
                    message, confirms, ..
                }) => Some((message.seq, confirms.as_ref().map(LocalId::as_str))),
                Effect::Emit(ClientEvent::Change { change, confirms }) => {
                    Some((change.seq, confirms.as_ref().map(LocalId::as_str)))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_change_that_overtakes_its_place_waits_and_a_catch_up_page_brings_the_rest_in_order() {
        let mut client = Client::welcomed(vec![], vec![message(1, ME, "m1")], 1);
        client.effects();
        // The deletion (seq 3) arrives live before the edit (seq 2).
        let deleted = change(3, 1, ChangeKind::Delete, "d1");
        client.state.on_event(
            event::CHANGE,
            serde_json::to_value(&deleted).expect("json"),
            client.now,
        );
        let effects = client.effects();
        assert_eq!(log(&effects), []);
        assert_eq!(catch_up_after(&effects), Some(1));
        let edited = change(2, 1, ChangeKind::Edit, "e1");
        let page = HistoryPage {
            room: "general".into(),
            messages: vec![],
            changes: vec![edited, deleted],
            has_more: false,
            has_newer: false,
        };
        client.ack(catch_up(), ok(page));
        assert_eq!(log(&client.effects()), [(2, None), (3, None)]);
    }

    #[test]
    fn a_catch_up_page_of_every_kind_of_change_is_delivered_once_in_order() {
        let mut client = Client::welcomed(vec![], vec![theirs(1)], 1);
        client.effects();
        // Away meanwhile: a reaction toggled twice, an edit, a deletion, then a message.
        client.live(theirs(7));
        let effects = client.effects();
        assert_eq!(catch_up_after(&effects), Some(1));
        let page = HistoryPage {
            room: "general".into(),
            messages: vec![theirs(6)],
            changes: vec![
                change(2, 1, ChangeKind::React, "r1"),
                change(3, 1, ChangeKind::Unreact, "r2"),
                change(4, 1, ChangeKind::Edit, "e1"),
                change(5, 1, ChangeKind::Delete, "d1"),
            ],
            has_more: false,
            has_newer: false,
        };
        client.ack(catch_up(), ok(&page));
        assert_eq!(
            log(&client.effects()),
            [
                (2, None),
                (3, None),
                (4, None),
                (5, None),
                (6, None),
                (7, None)
            ]
        );
        // Delivered again (a late live copy), nothing repeats.
        let data = serde_json::to_value(change(3, 1, ChangeKind::Unreact, "r2")).expect("json");
        client.state.on_event(event::CHANGE, data, client.now);
        assert!(log(&client.effects()).is_empty());
    }

    #[test]
    fn the_users_edit_goes_out_in_order_and_is_confirmed_by_its_change() {
        let mut client = Client::welcomed(vec![], vec![message(1, ME, "m1")], 1);
        client.effects();
        client.command(Command::Send(OutboxEntry {
            action: OutboxAction::Edit { target: 1 },
            ..entry("e1", "fixed")
        }));
        let effects = client.effects();
        let [Outgoing::Edit(request)] = sent(&effects)[..] else {
            panic!("an edit: {effects:?}");
        };
        assert_eq!((request.target, request.text.as_str()), (1, "fixed"));
        let accepted = causerie_protocol::ChangeAccepted {
            change: change(2, 1, ChangeKind::Edit, "e1"),
        };
        client.ack(Request::Send("e1".into()), ok(accepted));
        let effects = client.effects();
        assert_eq!(log(&effects), [(2, Some("e1"))]);
        assert!(effects.contains(&Effect::Save(OutboxChange::Remove("e1".into()))));
    }

    #[test]
    fn an_older_page_hands_out_its_messages_as_they_are_now_and_not_its_changes() {
        let mut client = Client::welcomed(vec![], vec![theirs(10)], 10);
        client.effects();
        let older = Request::History {
            room: "general".into(),
            catch_up: false,
        };
        let page = HistoryPage {
            room: "general".into(),
            messages: vec![message(7, ME, "m7"), theirs(9)],
            changes: vec![change(8, 7, ChangeKind::Edit, "e7")],
            has_more: true,
            has_newer: false,
        };
        client.ack(older, ok(page));
        let effects = client.effects();
        let [Effect::Emit(ClientEvent::History(page))] = &effects[..] else {
            panic!("one page: {effects:?}");
        };
        assert_eq!(
            page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            [7, 9]
        );
        assert!(page.changes.is_empty(), "already applied");
        // Everything from 7 up was handed out: the next page ends below it.
        let Outgoing::History { request, .. } =
            client.state.delivery.older_page("general".into(), None)
        else {
            panic!("a history request");
        };
        assert_eq!(request.before, Some(7));
    }

    #[test]
    fn typing_ends_on_leaving_and_not_on_an_old_message_and_is_ignored_for_rooms_not_joined() {
        let mut client = Client::welcomed(vec![], vec![theirs(1)], 1);
        client.effects();
        let notice = |room: &str| {
            serde_json::to_value(Typing {
                room: room.into(),
                user: user("u-other"),
                typing: true,
            })
            .expect("serializable")
        };
        client
            .state
            .on_event(event::TYPING, notice("elsewhere"), client.now);
        assert!(typing_in(&client.effects()).is_empty(), "not joined");
        client
            .state
            .on_event(event::TYPING, notice("general"), client.now);
        client.effects();
        // Their old message, in a catch-up page, is no news of their typing.
        let third = message(3, "u-third", "c3");
        client.live(third.clone());
        client.effects();
        client.ack(catch_up(), ok(page(vec![theirs(2), third], false)));
        assert!(typing_in(&client.effects()).is_empty());
        client.command(Command::Leave("general".into()));
        assert_eq!(typing_in(&client.effects()), [Vec::<String>::new()]);
    }

    #[test]
    fn the_users_lasting_typing_is_told_again_until_they_stop() {
        let mut client = Client::welcomed(vec![], vec![], 0);
        client.effects();
        client.command(Command::Typing {
            room: "general".into(),
            typing: true,
        });
        client.effects();
        let refresh = Duration::from_millis(causerie_protocol::limits::TYPING_REFRESH_MS);
        client.advance(refresh).expect("alive");
        let again = Outgoing::Typing(TypingRequest {
            room: "general".into(),
            typing: true,
        });
        assert_eq!(sent(&client.effects()), [&again]);
        client.command(Command::Typing {
            room: "general".into(),
            typing: false,
        });
        client.effects();
        client.advance(refresh).expect("alive");
        assert!(!sent(&client.effects()).contains(&&again));
    }

    fn unread_in(effects: &[Effect]) -> Vec<(u64, u32)> {
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Emit(ClientEvent::Unread(unread)) => Some((unread.read, unread.count)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn unread_counts_others_live_messages_and_reading_here_or_elsewhere_clears_them() {
        let mut client = Client::new(vec![]);
        let mut greeting = welcome(vec![theirs(1), theirs(2), theirs(3)], 3);
        greeting.read = Some(causerie_protocol::ReadState {
            room: "general".into(),
            seq: 1,
            unread: 2,
            mentions: 0,
            head: 3,
        });
        client.state.welcomed(greeting, client.now);
        // Told before the page's messages, which the server counted already.
        let effects = client.effects();
        assert_eq!(unread_in(&effects), [(1, 2)]);
        client.live(theirs(4));
        client.live(message(5, ME, "mine"));
        assert_eq!(unread_in(&client.effects()), [(1, 3)]);

        // Read here: cleared at once, and the server told with one request.
        client.command(Command::MarkRead {
            room: "general".into(),
            seq: 5,
        });
        let effects = client.effects();
        assert_eq!(unread_in(&effects), [(5, 0)]);
        let read = ReadRequest {
            room: "general".into(),
            seq: 5,
        };
        assert_eq!(sent(&effects), [&Outgoing::Read(read)]);
        let confirmed = causerie_protocol::ReadState {
            room: "general".into(),
            seq: 5,
            unread: 0,
            mentions: 0,
            head: 5,
        };
        client.ack(Request::Read("general".into()), ok(&confirmed));
        assert!(sent(&client.effects()).is_empty(), "nothing more to tell");

        // Read further on another device.
        client.live(theirs(6));
        client.live(theirs(7));
        assert_eq!(unread_in(&client.effects()), [(5, 1), (5, 2)]);
        let elsewhere = causerie_protocol::ReadState {
            seq: 6,
            unread: 1,
            mentions: 0,
            head: 7,
            ..confirmed
        };
        let data = serde_json::to_value(&elsewhere).expect("serializable");
        client.state.on_event(event::READ, data, client.now);
        assert_eq!(unread_in(&client.effects()), [(6, 1)]);
    }

    #[test]
    fn offline_the_user_is_told_what_needs_a_connection() {
        let mut client = Client::new(vec![]);
        client.effects();
        assert_eq!(
            client.command(Command::History {
                room: "general".into(),
                before: None
            }),
            Control::Continue
        );
        assert_eq!(
            client.effects(),
            [Effect::Emit(ClientEvent::Error(ClientError::NotConnected))]
        );
        client.command(Command::Leave("side".into()));
        assert_eq!(
            client.effects(),
            [Effect::Emit(ClientEvent::Left {
                room: "side".into()
            })]
        );
        assert_eq!(client.command(Command::CheckNow), Control::CheckNow);
        let renamed = Command::ReconnectAs {
            name: Some("Bea".into()),
            join_code: None,
        };
        assert_eq!(client.command(renamed), Control::Reconnect);
        assert_eq!(client.state.auth().name.as_deref(), Some("Bea"));
        assert_eq!(client.command(Command::Disconnect), Control::Stop);
    }

    #[test]
    fn restored_messages_are_shown_pending_and_sent_first_once_welcomed() {
        let mut client = Client::new(vec![entry("a", "one"), entry("b", "two")]);
        let effects = client.effects();
        assert_eq!(
            effects[..2],
            [
                Effect::Emit(ClientEvent::Pending(entry("a", "one"))),
                Effect::Emit(ClientEvent::Pending(entry("b", "two"))),
            ]
        );
        assert!(sent(&effects).is_empty(), "not connected");
        client.state.welcomed(welcome(vec![], 0), client.now);
        let effects = client.effects();
        assert!(matches!(sent(&effects)[..], [Outgoing::Send(m)] if m.id == "a"));
        assert_eq!(client.state.auth().token.as_deref(), Some("token"));
    }
}
