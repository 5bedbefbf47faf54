//! The supervisor: one task that owns the connection, the outbox and the rooms, and turns
//! commands from [`crate::ChatClient`] and signals from the connection into [`ClientEvent`]s.
//!
//! Owning everything in one task makes the reliability rules plain sequential code: no locks, and
//! each message decision (deliver, hold, drop) happens in one place, in order.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;

use causerie_protocol::{
    DEFAULT_ROOM, ErrorBody, ErrorCode, HistoryPage, Joined, Limits, Message, MessageAccepted,
    Pong, Presence, Reply, RoomsPage, User, Welcome, WhoPage, event,
};
use causerie_protocol::{
    HandshakeAuth, HistoryRequest, RoomRequest, RoomsRequest, SendMessage, TypingRequest,
    WhoRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::ClientConfig;
use crate::connection::{Connection, Request, Signal, Tagged, refusal};
use crate::error::ClientError;
use crate::event::{ClientEvent, ConnectionState, DisconnectReason, Session};
use crate::online::{MAX_KNOWN, OnlineView};
use crate::outbox::{LocalId, Outbox, OutboxEntry};
use crate::pages::{PageQueue, PageRequest};
use crate::timeline::Timeline;

/// A request's payload as rust_socketio takes it.
fn payload(data: impl Serialize) -> Value {
    serde_json::to_value(data).expect("protocol payloads are plain structs, always serializable")
}

/// An empty `ping` body.
#[derive(Serialize)]
struct PingRequest {}

/// People listed per `who` page: as many as a view keeps.
const MAX_KNOWN_PAGE: u32 = MAX_KNOWN as u32;

/// Messages in one catch-up page: the most the server gives.
const CATCH_UP_PAGE: u32 = causerie_protocol::limits::MAX_HISTORY_LIMIT;

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

/// What to do with a welcomed connection after a command.
enum Flow {
    Continue,
    /// Connect again at once (new credentials).
    Reconnect,
    Stop,
}

/// How a connection ended.
enum End {
    Lost {
        reason: String,
        was_connected: bool,
    },
    Refused(ErrorBody),
    /// Ended on purpose, to connect again at once.
    Reconnect,
    Stopped,
}

fn lost(reason: impl Into<String>, was_connected: bool) -> End {
    End::Lost {
        reason: reason.into(),
        was_connected,
    }
}

/// The state of one welcomed connection.
struct Live {
    connection: Connection,
    generation: u64,
    /// Rooms the server confirmed on this connection.
    joined: HashSet<String>,
    /// Joins and catch-up pages, asked for one at a time.
    pages: PageQueue,
    /// The message waiting for its ack, and when to give up waiting.
    in_flight: Option<(LocalId, Instant)>,
    /// Acked on this connection, but held back in a timeline behind a gap.
    acked: HashSet<LocalId>,
    /// Sending waits until then after `rate_limited` or `internal`.
    paused_until: Option<Instant>,
    /// Rooms whose join the server could not do for now, and when to ask again.
    rejoin_at: BTreeMap<String, Instant>,
    /// Retryable join refusals in a row, per room, for the backoff.
    join_failures: BTreeMap<String, u32>,
    ping: Option<(u64, Instant)>,
    next_ping: Instant,
    pings_sent: u64,
    /// Rooms told the user is typing: told they stopped when the user sends there.
    typing: HashSet<String>,
}

impl Live {
    fn next_wake(&self) -> Instant {
        // While a ping is out, its deadline matters, not the time of the next one.
        [
            self.ping.is_none().then_some(self.next_ping),
            self.ping.map(|(_, deadline)| deadline),
            self.in_flight.as_ref().map(|(_, deadline)| *deadline),
            self.paused_until,
            self.rejoin_at.values().min().copied(),
            self.pages.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.next_ping)
    }
}

pub(crate) struct Supervisor {
    config: ClientConfig,
    url: String,
    /// For `https://` servers, by both transports.
    tls: Option<native_tls::TlsConnector>,
    commands: mpsc::UnboundedReceiver<Command>,
    signal_sender: mpsc::UnboundedSender<Tagged>,
    signals: mpsc::UnboundedReceiver<Tagged>,
    events: mpsc::UnboundedSender<ClientEvent>,
    outbox: Outbox,
    /// The rooms the user is in, joined again after every reconnect.
    rooms: BTreeSet<String>,
    /// Where delivery stands in each room ever joined. Kept after leaving, so that a rejoin
    /// delivers only what is new.
    timelines: BTreeMap<String, Timeline>,
    /// Who is online in each room the user is in.
    online: BTreeMap<String, OnlineView>,
    me: Option<User>,
    token: Option<String>,
    limits: Limits,
    generation: u64,
    /// `internal` refusals in a row, for the backoff before the next resend.
    failed_sends: u32,
}

impl Supervisor {
    pub(crate) fn new(
        config: ClientConfig,
        url: String,
        tls: Option<native_tls::TlsConnector>,
        outbox: Outbox,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<ClientEvent>,
    ) -> Self {
        let (signal_sender, signals) = mpsc::unbounded_channel();
        let rooms = std::iter::once(DEFAULT_ROOM.to_owned())
            .chain(config.rooms.iter().cloned())
            .collect();
        Self {
            token: config.token.clone(),
            config,
            url,
            tls,
            commands,
            signal_sender,
            signals,
            events,
            outbox,
            rooms,
            timelines: BTreeMap::new(),
            online: BTreeMap::new(),
            me: None,
            limits: Limits::default(),
            generation: 0,
            failed_sends: 0,
        }
    }

    fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event);
    }

    /// Connects, serves, and reconnects with backoff until refused or told to stop.
    pub(crate) async fn run(mut self) {
        let restored: Vec<OutboxEntry> = self.outbox.entries().cloned().collect();
        for entry in restored {
            self.emit(ClientEvent::Pending(entry));
        }
        self.emit(ClientEvent::State(ConnectionState::Connecting));
        let mut attempt = 0;
        loop {
            let end = match self.connect().await {
                Ok(live) => self.serve(live).await,
                Err(end) => end,
            };
            let reason = match end {
                End::Stopped => DisconnectReason::Closed,
                // Not a loss: no offline countdown, a connection being made.
                End::Reconnect => {
                    attempt = 0;
                    self.emit(ClientEvent::State(ConnectionState::Connecting));
                    continue;
                }
                // Refused for now (too many new users from this address, too many wrong codes):
                // try again once the server says it may succeed, not sooner.
                End::Refused(body) if body.code.is_retryable() => {
                    tracing::info!(%body, "connection refused for now");
                    attempt += 1;
                    let delay = body.retry_after_ms.map_or_else(
                        || self.config.backoff.delay(attempt),
                        |millis| Duration::from_millis(millis).max(self.config.backoff.initial),
                    );
                    self.emit(ClientEvent::State(ConnectionState::Reconnecting {
                        attempt,
                        delay,
                    }));
                    if self.wait_offline(delay).await {
                        continue;
                    }
                    DisconnectReason::Closed
                }
                End::Refused(body) => {
                    // New credentials asked for while these were refused: try them, rather
                    // than stop with the command unread.
                    if self.take_queued_credentials() {
                        attempt = 0;
                        self.emit(ClientEvent::State(ConnectionState::Connecting));
                        continue;
                    }
                    self.emit(ClientEvent::Error(ClientError::Refused(body.clone())));
                    DisconnectReason::Refused(body)
                }
                End::Lost {
                    reason,
                    was_connected,
                } => {
                    tracing::info!(%reason, "connection lost");
                    if was_connected {
                        attempt = 0;
                        self.emit(ClientEvent::State(ConnectionState::Disconnected {
                            reason: DisconnectReason::Lost(reason),
                        }));
                    }
                    attempt += 1;
                    let delay = self.config.backoff.delay(attempt);
                    self.emit(ClientEvent::State(ConnectionState::Reconnecting {
                        attempt,
                        delay,
                    }));
                    if self.wait_offline(delay).await {
                        continue;
                    }
                    DisconnectReason::Closed
                }
            };
            self.emit(ClientEvent::State(ConnectionState::Disconnected { reason }));
            return;
        }
    }

    /// Waits `delay` while handling commands offline; `false` when told to stop.
    async fn wait_offline(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return true,
                command = self.commands.recv() => match command {
                    // Try now rather than at the end of the backoff.
                    Some(Command::CheckNow) => return true,
                    Some(Command::ReconnectAs { name, join_code }) => {
                        self.set_credentials(name, join_code);
                        return true;
                    }
                    command => {
                        if !self.offline(command) {
                            return false;
                        }
                    }
                },
                // Late signals of connections given up on: drop them.
                Some(_) = self.signals.recv() => {}
            }
        }
    }

    /// Handles a command while not connected; `false` when told to stop.
    fn offline(&mut self, command: Option<Command>) -> bool {
        match command {
            None | Some(Command::Disconnect) => return false,
            Some(Command::Send(entry)) => self.queue(entry),
            Some(Command::History { .. }) => {
                self.emit(ClientEvent::Error(ClientError::NotConnected))
            }
            Some(Command::Join(room)) => {
                self.rooms.insert(room);
            }
            Some(Command::Leave(room)) => {
                self.rooms.remove(&room);
                self.emit(ClientEvent::Left { room });
            }
            Some(Command::FindRooms { .. }) => {
                self.emit(ClientEvent::Error(ClientError::NotConnected))
            }
            Some(Command::ReconnectAs { name, join_code }) => {
                self.set_credentials(name, join_code);
            }
            Some(Command::Typing { .. } | Command::LoadMoreOnline(_) | Command::CheckNow) => {}
        }
        true
    }

    /// Handles the commands already queued; `true` if one asked for new credentials.
    fn take_queued_credentials(&mut self) -> bool {
        let mut renewed = false;
        while let Ok(command) = self.commands.try_recv() {
            renewed |= matches!(command, Command::ReconnectAs { .. });
            // A queued Disconnect still wins: the stream ends as asked.
            if !self.offline(Some(command)) {
                return false;
            }
        }
        renewed
    }

    fn set_credentials(&mut self, name: Option<String>, join_code: Option<String>) {
        self.config.name = name;
        self.config.join_code = join_code;
    }

    fn queue(&mut self, entry: OutboxEntry) {
        if let Err(e) = self.outbox.push(entry.clone()) {
            self.emit(ClientEvent::Error(e));
        }
        self.emit(ClientEvent::Pending(entry));
    }

    fn auth(&self) -> Value {
        payload(HandshakeAuth {
            protocol: Some(causerie_protocol::PROTOCOL_VERSION),
            name: self.config.name.clone(),
            token: self.token.clone(),
            code: self.config.join_code.clone(),
        })
    }

    /// Opens a connection and waits for its `welcome`.
    async fn connect(&mut self) -> Result<Live, End> {
        self.generation += 1;
        let generation = self.generation;
        let timeout = self.config.request_timeout;
        let opening = Connection::open(
            &self.url,
            self.auth(),
            self.tls.clone(),
            generation,
            self.signal_sender.clone(),
        );
        let connection = match tokio::time::timeout(timeout, opening).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => return Err(lost(e, false)),
            Err(_) => return Err(lost("connecting timed out", false)),
        };
        let deadline = Instant::now() + timeout;
        // A room's messages can reach the socket before its welcome (the server subscribes it,
        // then reads the history it puts in the welcome): kept, and handled after the welcome.
        let mut early = Vec::new();
        let welcome = loop {
            tokio::select! {
                Some(tagged) = self.signals.recv() => {
                    if tagged.generation != generation {
                        continue;
                    }
                    match tagged.signal {
                        Signal::Event { name, data } if name == event::WELCOME => break data,
                        signal @ Signal::Event { .. } => early.push(signal),
                        Signal::Error(text) => {
                            connection.close();
                            return Err(refusal(&text).map_or_else(|| lost(text, false), End::Refused));
                        }
                        Signal::Closed => {
                            connection.close();
                            return Err(lost("the server closed the connection", false));
                        }
                        _ => {}
                    }
                }
                command = self.commands.recv() => {
                    // New credentials: this handshake used the old ones.
                    let again = matches!(command, Some(Command::ReconnectAs { .. }));
                    if !self.offline(command) {
                        connection.close();
                        return Err(End::Stopped);
                    }
                    if again {
                        connection.close();
                        return Err(End::Reconnect);
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    connection.close();
                    return Err(lost("no welcome from the server", false));
                }
            }
        };
        let Ok(welcome) = serde_json::from_value::<Welcome>(welcome) else {
            connection.close();
            return Err(lost("the server's welcome has an unknown shape", false));
        };
        let mut live = Live {
            connection,
            generation,
            joined: HashSet::from([DEFAULT_ROOM.to_owned()]),
            pages: PageQueue::default(),
            in_flight: None,
            acked: HashSet::new(),
            paused_until: None,
            rejoin_at: BTreeMap::new(),
            join_failures: BTreeMap::new(),
            ping: None,
            next_ping: Instant::now() + self.config.liveness_interval,
            pings_sent: 0,
            typing: HashSet::new(),
        };
        self.welcomed(&mut live, welcome)
            .await
            .map_err(|e| lost(e, true))?;
        for signal in early {
            self.on_signal(&mut live, signal)
                .await
                .map_err(|e| lost(e, true))?;
        }
        Ok(live)
    }

    async fn welcomed(&mut self, live: &mut Live, welcome: Welcome) -> Result<(), String> {
        tracing::info!(user = %welcome.user.id, "connected");
        self.me = Some(welcome.user.clone());
        self.token = Some(welcome.token.clone());
        self.limits = welcome.limits.clone();
        self.emit(ClientEvent::State(ConnectionState::Connected));
        self.emit(ClientEvent::Welcome(Session {
            user: welcome.user,
            token: welcome.token,
            rooms: welcome.rooms,
            rooms_next: welcome.rooms_next,
            limits: welcome.limits,
            server: welcome.server,
        }));
        self.online_page(
            DEFAULT_ROOM,
            welcome.online,
            welcome.online_count,
            welcome.online_next,
        );
        self.take_page(live, DEFAULT_ROOM, welcome.history, welcome.head);
        for room in self.rooms.iter().filter(|r| *r != DEFAULT_ROOM) {
            live.pages.push(PageRequest::Join(room.clone()));
        }
        Ok(())
    }

    /// Serves a welcomed connection until it is lost or the client stops.
    async fn serve(&mut self, mut live: Live) -> End {
        loop {
            let step = async {
                self.dispatch(&mut live).await?;
                self.ask_for_pages(&mut live).await?;
                let wake = live.next_wake();
                tokio::select! {
                    command = self.commands.recv() => self.online(&mut live, command).await,
                    Some(tagged) = self.signals.recv() => {
                        if tagged.generation == live.generation {
                            self.on_signal(&mut live, tagged.signal).await?;
                        }
                        Ok(Flow::Continue)
                    }
                    () = tokio::time::sleep_until(wake) => self.on_timer(&mut live).await.map(|()| Flow::Continue),
                }
            };
            match step.await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Reconnect) => {
                    live.connection.close();
                    return End::Reconnect;
                }
                Ok(Flow::Stop) => {
                    live.connection.close();
                    return End::Stopped;
                }
                Err(reason) => {
                    live.connection.close();
                    return lost(reason, true);
                }
            }
        }
    }

    async fn request(
        &self,
        live: &Live,
        event: &str,
        data: impl Serialize,
        request: Request,
    ) -> Result<(), String> {
        live.connection
            .request(event, payload(data), request, self.config.request_timeout)
            .await
    }

    /// Sends the next join or catch-up request, if none is out.
    async fn ask_for_pages(&mut self, live: &mut Live) -> Result<(), String> {
        let Some(page) = live
            .pages
            .next_to_send(Instant::now(), self.config.request_timeout)
        else {
            return Ok(());
        };
        match page {
            PageRequest::Join(room) => {
                let data = RoomRequest { room: room.clone() };
                self.request(live, event::JOIN, data, Request::Join(room))
                    .await
            }
            PageRequest::CatchUp(room) => {
                let after = self
                    .timelines
                    .get(&room)
                    .map_or(0, Timeline::last_delivered);
                let data = HistoryRequest {
                    room: Some(room.clone()),
                    after: Some(after),
                    before: None,
                    limit: Some(CATCH_UP_PAGE),
                };
                let request = Request::History {
                    room,
                    catch_up: true,
                };
                self.request(live, event::HISTORY, data, request).await
            }
            PageRequest::Online(room) => {
                let data = WhoRequest {
                    room: room.clone(),
                    after: None,
                    limit: Some(MAX_KNOWN_PAGE),
                };
                let request = Request::Who { room, more: false };
                self.request(live, event::WHO, data, request).await
            }
            PageRequest::MoreOnline(room) => {
                let after = self.online.get(&room).and_then(OnlineView::next);
                let data = WhoRequest {
                    room: room.clone(),
                    after: after.map(str::to_owned),
                    limit: Some(MAX_KNOWN_PAGE),
                };
                let request = Request::Who { room, more: true };
                self.request(live, event::WHO, data, request).await
            }
        }
    }

    /// Sends the oldest unacked outbox entry, one at a time so that the user's messages keep the
    /// order they were typed in.
    async fn dispatch(&mut self, live: &mut Live) -> Result<(), String> {
        if live.in_flight.is_some() || live.paused_until.is_some() {
            return Ok(());
        }
        let entry = loop {
            let Some(entry) = self
                .outbox
                .entries()
                .find(|e| !live.acked.contains(&e.local_id))
                .cloned()
            else {
                return Ok(());
            };
            if self.rooms.contains(&entry.room) && !live.joined.contains(&entry.room) {
                return Ok(()); // its room's join is on its way
            }
            // Refused here as the server would refuse it (its limits came with the welcome): no
            // round trip for a message that cannot be sent. The next one goes at once.
            match self.limits.check_message(&entry.text) {
                Ok(()) => break entry,
                Err(error) => {
                    let local_id = entry.local_id;
                    self.forget(&local_id);
                    self.emit(ClientEvent::Failed { local_id, error });
                }
            }
        };
        let data = SendMessage {
            id: entry.local_id.as_str().to_owned(),
            room: Some(entry.room.clone()),
            text: entry.text.clone(),
        };
        self.request(
            live,
            event::MESSAGE,
            data,
            Request::Send(entry.local_id.clone()),
        )
        .await?;
        live.in_flight = Some((entry.local_id, Instant::now() + self.config.request_timeout));
        Ok(())
    }

    /// Handles a command while connected.
    async fn online(&mut self, live: &mut Live, command: Option<Command>) -> Result<Flow, String> {
        match command {
            None | Some(Command::Disconnect) => return Ok(Flow::Stop),
            Some(Command::ReconnectAs { name, join_code }) => {
                self.set_credentials(name, join_code);
                return Ok(Flow::Reconnect);
            }
            Some(Command::Send(entry)) => {
                let room = entry.room.clone();
                self.queue(entry);
                // Sent, so no longer typing: as every chat app shows it.
                if live.typing.remove(&room) {
                    let data = payload(TypingRequest {
                        room,
                        typing: false,
                    });
                    live.connection.emit(event::TYPING, data).await?;
                }
            }
            Some(Command::History { room, before }) => {
                // Below what was handed out already: the page and its `hasMore` are then exact.
                let shown_from = self.timelines.get(&room).and_then(Timeline::shown_from);
                let before = match (before, shown_from) {
                    (Some(before), Some(from)) => Some(before.min(from)),
                    (None, from) => from,
                    (before, None) => before,
                };
                let data = HistoryRequest {
                    room: Some(room.clone()),
                    after: None,
                    before,
                    limit: Some(causerie_protocol::limits::DEFAULT_HISTORY_LIMIT),
                };
                self.request(
                    live,
                    event::HISTORY,
                    data,
                    Request::History {
                        room,
                        catch_up: false,
                    },
                )
                .await?;
            }
            Some(Command::Join(room)) => {
                self.rooms.insert(room.clone());
                live.pages.push(PageRequest::Join(room));
            }
            Some(Command::Leave(room)) => {
                self.rooms.remove(&room);
                self.online.remove(&room);
                live.joined.remove(&room);
                live.pages.forget_room(&room);
                live.rejoin_at.remove(&room);
                self.request(
                    live,
                    event::LEAVE,
                    RoomRequest { room: room.clone() },
                    Request::Leave(room),
                )
                .await?;
            }
            Some(Command::LoadMoreOnline(room)) => {
                let more = self.online.get(&room).and_then(OnlineView::next).is_some();
                if more && live.joined.contains(&room) {
                    live.pages.push(PageRequest::MoreOnline(room));
                }
            }
            Some(Command::FindRooms { prefix, after }) => {
                let data = RoomsRequest {
                    prefix: Some(prefix.clone()),
                    after,
                    limit: None,
                };
                self.request(live, event::ROOMS, data, Request::Rooms { prefix })
                    .await?;
            }
            Some(Command::CheckNow) => {
                if live.ping.is_none() {
                    self.ping(live).await?;
                }
            }
            Some(Command::Typing { room, typing }) => {
                if typing {
                    live.typing.insert(room.clone());
                } else {
                    live.typing.remove(&room);
                }
                live.connection
                    .emit(event::TYPING, payload(TypingRequest { room, typing }))
                    .await?;
            }
        }
        Ok(Flow::Continue)
    }

    async fn on_timer(&mut self, live: &mut Live) -> Result<(), String> {
        let now = Instant::now();
        if live.ping.is_some_and(|(_, deadline)| now >= deadline) {
            return Err("the server did not answer a ping".into());
        }
        if live.paused_until.is_some_and(|until| now >= until) {
            live.paused_until = None;
        }
        let due: Vec<String> = live
            .rejoin_at
            .iter()
            .filter(|&(_, at)| now >= *at)
            .map(|(room, _)| room.clone())
            .collect();
        for room in due {
            live.rejoin_at.remove(&room);
            if self.rooms.contains(&room) {
                live.pages.push(PageRequest::Join(room));
            }
        }
        if live.pages.expire(now) && live.ping.is_none() {
            // Asked again; and the connection checked meanwhile.
            self.ping(live).await?;
        }
        if live
            .in_flight
            .as_ref()
            .is_some_and(|(_, deadline)| now >= *deadline)
        {
            // Send it again (same id, so stored once) and check the connection meanwhile.
            live.in_flight = None;
            if live.ping.is_none() {
                self.ping(live).await?;
            }
        }
        if now >= live.next_ping && live.ping.is_none() {
            self.ping(live).await?;
        }
        Ok(())
    }

    async fn ping(&self, live: &mut Live) -> Result<(), String> {
        live.pings_sent += 1;
        let id = live.pings_sent;
        self.request(live, event::PING, PingRequest {}, Request::Ping(id))
            .await?;
        let now = Instant::now();
        live.ping = Some((id, now + self.config.request_timeout));
        live.next_ping = now + self.config.liveness_interval;
        Ok(())
    }

    async fn on_signal(&mut self, live: &mut Live, signal: Signal) -> Result<(), String> {
        match signal {
            Signal::Event { name, data } => match name.as_str() {
                event::MESSAGE => {
                    if let Ok(message) = serde_json::from_value::<Message>(data) {
                        let room = message.room.clone();
                        self.deliver(message);
                        self.catch_up_if_needed(live, &room);
                    }
                }
                event::PRESENCE => {
                    if let Ok(presence) = serde_json::from_value::<Presence>(data) {
                        let room = presence.room.clone();
                        // A room not joined yet: its join's first page will say who is there.
                        let refresh = self.online.get_mut(&room).map(|view| view.apply(&presence));
                        self.emit(ClientEvent::Presence(presence));
                        if let Some(refresh) = refresh {
                            if refresh {
                                live.pages.push(PageRequest::Online(room.clone()));
                            }
                            self.emit_online(&room);
                        }
                    }
                }
                event::TYPING => {
                    if let Ok(typing) = serde_json::from_value(data) {
                        self.emit(ClientEvent::Typing(typing));
                    }
                }
                _ => {}
            },
            // A transport hiccup may or may not have killed the connection: ask it.
            Signal::Error(text) => {
                tracing::debug!(%text, "transport error");
                if live.ping.is_none() {
                    self.ping(live).await?;
                }
            }
            Signal::Closed => return Err("the server closed the connection".into()),
            Signal::Ack { request, data } => self.on_ack(live, request, data).await?,
        }
        Ok(())
    }

    async fn on_ack(
        &mut self,
        live: &mut Live,
        request: Request,
        data: Value,
    ) -> Result<(), String> {
        // A late answer to a join or a page asked again since: the new answer will do.
        let page = match &request {
            Request::Join(room) => Some(PageRequest::Join(room.clone())),
            Request::History {
                room,
                catch_up: true,
            } => Some(PageRequest::CatchUp(room.clone())),
            Request::Who { room, more: false } => Some(PageRequest::Online(room.clone())),
            Request::Who { room, more: true } => Some(PageRequest::MoreOnline(room.clone())),
            _ => None,
        };
        if page.is_some_and(|page| !live.pages.answered(&page)) {
            return Ok(());
        }
        match request {
            Request::Ping(id) => {
                if live.ping.is_some_and(|(expected, _)| expected == id)
                    && parse::<Pong>(data).is_some()
                {
                    live.ping = None;
                }
            }
            Request::Send(local_id) => self.on_send_ack(live, local_id, data).await?,
            Request::Join(room) => match parse::<Joined>(data) {
                Some(Ok(joined)) => {
                    live.joined.insert(room.clone());
                    live.join_failures.remove(&room);
                    self.emit(ClientEvent::Joined { room: room.clone() });
                    self.online_page(
                        &room,
                        joined.online,
                        joined.online_count,
                        joined.online_next,
                    );
                    self.take_page(live, &room, joined.history, joined.head);
                }
                // The server could not do it now (its store failing, a limit): the user is still
                // in the room, and it is joined again after a pause.
                Some(Err(error)) if error.code.is_retryable() => {
                    let failures = live.join_failures.entry(room.clone()).or_insert(0);
                    *failures = failures.saturating_add(1);
                    let at = Instant::now() + self.config.backoff.delay(*failures);
                    live.rejoin_at.insert(room, at);
                }
                Some(Err(error)) => {
                    self.rooms.remove(&room);
                    self.emit(ClientEvent::Error(ClientError::Rejected(error)));
                }
                None => {}
            },
            Request::Leave(room) => self.emit(ClientEvent::Left { room }),
            Request::Who { room, more } => {
                if let Some(Ok(page)) = parse::<WhoPage>(data)
                    && let Some(view) = self.online.get_mut(&room)
                {
                    if more {
                        view.extend(page);
                    } else {
                        view.reset(page.users, page.count, page.next);
                    }
                    self.emit_online(&room);
                }
            }
            Request::Rooms { prefix } => match parse::<RoomsPage>(data) {
                Some(Ok(page)) => self.emit(ClientEvent::Rooms {
                    prefix,
                    rooms: page.rooms,
                    next: page.next,
                }),
                Some(Err(error)) => self.emit(ClientEvent::Error(ClientError::Rejected(error))),
                None => {}
            },
            Request::History {
                room,
                catch_up: true,
            } => {
                match parse::<HistoryPage>(data) {
                    Some(Ok(page)) => {
                        for message in page.messages {
                            self.deliver(message);
                        }
                        // Seqs have no gaps, so a gap left after the last page would never
                        // fill: only `hasMore` asks for another.
                        if page.has_more && self.rooms.contains(&room) {
                            live.pages.push(PageRequest::CatchUp(room));
                        }
                    }
                    // Refused (the server failing for now, a limit): asked again later, as
                    // after an unanswered request.
                    Some(Err(error)) if error.code.is_retryable() => {
                        live.pages.push(PageRequest::CatchUp(room));
                    }
                    _ => {}
                }
            }
            Request::History {
                room,
                catch_up: false,
            } => match parse::<HistoryPage>(data) {
                Some(Ok(mut page)) => {
                    let timeline = self.timelines.entry(room).or_default();
                    page.messages = timeline.older(std::mem::take(&mut page.messages));
                    self.emit(ClientEvent::History(page));
                }
                Some(Err(error)) => self.emit(ClientEvent::Error(ClientError::Rejected(error))),
                None => {}
            },
        }
        Ok(())
    }

    async fn on_send_ack(
        &mut self,
        live: &mut Live,
        local_id: LocalId,
        data: Value,
    ) -> Result<(), String> {
        let Some(reply) = parse::<MessageAccepted>(data) else {
            return Ok(()); // not this request's answer: the timeout resends it
        };
        if live
            .in_flight
            .as_ref()
            .is_some_and(|(id, _)| *id == local_id)
        {
            live.in_flight = None;
        }
        match reply {
            Ok(MessageAccepted { message }) if message.client_id == local_id.as_str() => {
                self.failed_sends = 0;
                live.acked.insert(local_id.clone());
                let delivered = !self.rooms.contains(&message.room)
                    || self
                        .timelines
                        .get(&message.room)
                        .is_some_and(|t| t.is_past(message.seq));
                if delivered {
                    // Still pending means its seq went by before this client started (or its room
                    // was left): confirm it here, since no timeline will. Not pending means a
                    // catch-up page already delivered and confirmed it (this was a resend's ack).
                    if self.outbox.contains(local_id.as_str()) {
                        self.forget(&local_id);
                        if let Some(timeline) = self.timelines.get_mut(&message.room) {
                            timeline.shown(message.seq);
                        }
                        self.emit(ClientEvent::Message {
                            message,
                            confirms: Some(local_id),
                        });
                    }
                } else {
                    let room = message.room.clone();
                    self.deliver(message);
                    self.catch_up_if_needed(live, &room);
                }
            }
            Ok(_) => {}
            // The server could not store it (a full disk, a lock): back off, as from an outage,
            // so that a crowd of clients does not resend in lockstep while it recovers.
            Err(error) if error.code == ErrorCode::Internal => {
                self.failed_sends = self.failed_sends.saturating_add(1);
                let delay = self.config.backoff.delay(self.failed_sends);
                live.paused_until = Some(Instant::now() + delay);
            }
            Err(error) if error.code == ErrorCode::RateLimited => {
                let wait = error
                    .retry_after_ms
                    .map_or_else(|| self.retry_delay(), Duration::from_millis);
                live.paused_until = Some(Instant::now() + wait);
            }
            Err(error) => {
                self.forget(&local_id);
                self.emit(ClientEvent::Failed { local_id, error });
            }
        }
        Ok(())
    }

    /// Starts a room's view of who is online over from a first page, and tells the user.
    fn online_page(&mut self, room: &str, users: Vec<User>, count: u32, next: Option<String>) {
        self.online
            .entry(room.to_owned())
            .or_default()
            .reset(users, count, next);
        self.emit_online(room);
    }

    fn emit_online(&self, room: &str) {
        if let Some(view) = self.online.get(room) {
            self.emit(ClientEvent::Online {
                room: room.to_owned(),
                users: view.users(),
                count: view.count(),
            });
        }
    }

    /// How long to wait after `rate_limited` when the server does not say: one token of its rate.
    fn retry_delay(&self) -> Duration {
        let per_second = self.limits.rate_limit_per_second.unwrap_or(1).max(1);
        (Duration::from_secs(1) / per_second).max(Duration::from_millis(100))
    }

    fn forget(&mut self, local_id: &LocalId) {
        if let Err(e) = self.outbox.remove(local_id.as_str()) {
            self.emit(ClientEvent::Error(e));
        }
    }

    /// Passes the latest page of a room just (re)joined through its timeline, which starts there
    /// if it had not started, and catches up if the room's `head` is beyond what was delivered.
    fn take_page(&mut self, live: &mut Live, room: &str, messages: Vec<Message>, head: u64) {
        if !self.rooms.contains(room) {
            return;
        }
        let start = messages.first().map_or(head.saturating_add(1), |m| m.seq);
        let ready = self
            .timelines
            .entry(room.to_owned())
            .or_default()
            .start_at(start);
        self.emit_delivered(ready);
        for message in messages {
            self.deliver(message);
        }
        let behind = self.timelines.get(room).is_some_and(|t| t.is_behind(head));
        if behind {
            live.pages.push(PageRequest::CatchUp(room.to_owned()));
        }
        self.catch_up_if_needed(live, room);
    }

    /// Emits what the room's timeline lets through.
    fn deliver(&mut self, message: Message) {
        if !self.rooms.contains(&message.room) {
            return;
        }
        let ready = self
            .timelines
            .entry(message.room.clone())
            .or_default()
            .accept(message);
        self.emit_delivered(ready);
    }

    /// Emits delivered messages in order; each of the user's own pending messages is confirmed by
    /// its server copy, whichever way it arrived.
    fn emit_delivered(&mut self, ready: Vec<Message>) {
        let me = self.me.as_ref().map(|u| u.id.clone());
        for message in ready {
            let own = me.as_deref() == Some(message.author.id.as_str());
            let confirms = (own && self.outbox.contains(&message.client_id))
                .then(|| LocalId::from(message.client_id.as_str()));
            if let Some(local_id) = &confirms {
                self.forget(local_id);
            }
            self.emit(ClientEvent::Message { message, confirms });
        }
    }

    /// Asks for a catch-up page if the room's timeline waits behind a gap.
    fn catch_up_if_needed(&mut self, live: &mut Live, room: &str) {
        let gap =
            self.rooms.contains(room) && self.timelines.get(room).is_some_and(Timeline::has_gap);
        if gap {
            live.pages.push(PageRequest::CatchUp(room.to_owned()));
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
