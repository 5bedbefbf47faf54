//! The supervisor: the one task that does the client's I/O. It connects, feeds what the user and
//! the server say into [`ChatState`], and performs the [`Effect`]s that come out: events to the
//! user, requests to the server, changes to the outbox file. Every decision is in `state` and the
//! machines it composes; this file only waits and moves things along.

use std::time::Duration;

use causerie_protocol::{Welcome, event};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::ClientConfig;
use crate::connection::{Connection, Outgoing, Signal, Tagged, TransportError, refusal};
use crate::event::{ClientEvent, ConnectionState, DisconnectReason};
use crate::outbox::OutboxWriter;
use crate::reconnect::{End, Lost, Next, Reconnection};
use crate::state::{ChatState, Command, Control, Effect};

pub(crate) struct Supervisor {
    state: ChatState,
    reconnection: Reconnection,
    url: String,
    /// For `https://` servers, by both transports.
    tls: Option<native_tls::TlsConnector>,
    request_timeout: Duration,
    commands: mpsc::UnboundedReceiver<Command>,
    signal_sender: mpsc::UnboundedSender<Tagged>,
    signals: mpsc::UnboundedReceiver<Tagged>,
    events: mpsc::UnboundedSender<ClientEvent>,
    /// `None` for an outbox kept in memory only.
    outbox: Option<OutboxWriter>,
    /// Tags each connection's signals, so that a late one from a connection given up on is
    /// ignored.
    generation: u64,
}

impl Supervisor {
    pub(crate) fn new(
        state: ChatState,
        config: &ClientConfig,
        url: String,
        tls: Option<native_tls::TlsConnector>,
        outbox: Option<OutboxWriter>,
        commands: mpsc::UnboundedReceiver<Command>,
        events: mpsc::UnboundedSender<ClientEvent>,
    ) -> Self {
        let (signal_sender, signals) = mpsc::unbounded_channel();
        Self {
            state,
            reconnection: Reconnection::new(config.backoff),
            url,
            tls,
            request_timeout: config.request_timeout,
            commands,
            signal_sender,
            signals,
            events,
            outbox,
            generation: 0,
        }
    }

    /// Connects, serves, and reconnects with backoff until refused or told to stop.
    pub(crate) async fn run(mut self) {
        self.perform_offline(); // the restored messages, and "connecting"
        loop {
            let end = match self.connect().await {
                Ok(connection) => self.serve(connection).await,
                Err(end) => end,
            };
            // New credentials asked for while these were refused: try them, rather than stop
            // with the command unread.
            let end = match end {
                End::Refused(body) if !body.code.is_retryable() => {
                    if self.take_queued_credentials() {
                        End::Reconnect
                    } else {
                        End::Refused(body)
                    }
                }
                end => end,
            };
            // What ending the connection changed (no one is typing any more) goes out first.
            self.perform_offline();
            if let End::Lost { lost, .. } = &end {
                tracing::info!(%lost, "connection lost");
            }
            let (events, next) = self.reconnection.after(end);
            for event in events {
                self.emit(event);
            }
            match next {
                Next::Connect => {}
                Next::Wait(delay) if self.wait_offline(delay).await => {}
                Next::Wait(_) => {
                    self.emit(ClientEvent::State(ConnectionState::Disconnected {
                        reason: DisconnectReason::Closed,
                    }));
                    return;
                }
                Next::Stop => return,
            }
        }
    }

    /// Opens a connection and waits for its `welcome`.
    async fn connect(&mut self) -> Result<Connection, End> {
        self.generation += 1;
        let auth = serde_json::to_value(self.state.auth())
            .expect("the handshake is a plain struct, always serializable");
        let opening = Connection::open(
            &self.url,
            auth,
            self.tls.clone(),
            self.generation,
            self.signal_sender.clone(),
        );
        let connection = match tokio::time::timeout(self.request_timeout, opening).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => return Err(lost(e.into(), false)),
            Err(_) => return Err(lost(Lost::ConnectTimedOut, false)),
        };
        match self.handshake(&connection).await {
            Ok(()) => Ok(connection),
            Err(end) => {
                connection.close();
                self.state.disconnected(); // if it was welcomed before it failed
                Err(end)
            }
        }
    }

    /// Waits for the connection's `welcome`, handling commands meanwhile.
    async fn handshake(&mut self, connection: &Connection) -> Result<(), End> {
        let deadline = Instant::now() + self.request_timeout;
        // A room's messages can reach the socket before its welcome (the server subscribes it,
        // then reads the history it puts in the welcome): kept, and handled after the welcome.
        let mut early = Vec::new();
        let welcome = loop {
            tokio::select! {
                Some(tagged) = self.signals.recv() => {
                    if tagged.generation != self.generation {
                        continue;
                    }
                    match tagged.signal {
                        Signal::Event { name, data } if name == event::WELCOME => break data,
                        signal @ Signal::Event { .. } => early.push(signal),
                        Signal::Error(text) => {
                            return Err(refusal(&text).map_or_else(
                                || lost(TransportError::from(text).into(), false),
                                End::Refused,
                            ));
                        }
                        Signal::Closed => return Err(lost(Lost::Closed, false)),
                        Signal::Ack { .. } => {}
                    }
                }
                command = self.commands.recv() => {
                    let command = command.unwrap_or(Command::Disconnect);
                    let control = self.state.on_command(command, Instant::now());
                    self.perform_offline();
                    match control {
                        Control::Stop => return Err(End::Stopped),
                        // This handshake used the old credentials.
                        Control::Reconnect => return Err(End::Reconnect),
                        Control::Continue | Control::CheckNow => {}
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Err(lost(Lost::NoWelcome, false));
                }
            }
        };
        let welcome = serde_json::from_value::<Welcome>(welcome)
            .map_err(|_| lost(Lost::UnknownWelcome, false))?;
        let now = Instant::now();
        self.state.welcomed(welcome, now);
        for signal in early {
            self.on_signal(signal, now).map_err(|lost| End::Lost {
                lost,
                was_connected: true,
            })?;
        }
        self.perform(connection)
            .await
            .map_err(|e| lost(e.into(), true))
    }

    /// Serves a welcomed connection until it is lost or the client stops.
    async fn serve(&mut self, connection: Connection) -> End {
        let end = loop {
            if let Err(e) = self.perform(&connection).await {
                break lost(e.into(), true);
            }
            let wake = self.state.next_wake().unwrap_or_else(Instant::now);
            let step = tokio::select! {
                command = self.commands.recv() => {
                    let command = command.unwrap_or(Command::Disconnect);
                    match self.state.on_command(command, Instant::now()) {
                        Control::Stop => break End::Stopped,
                        Control::Reconnect => break End::Reconnect,
                        Control::Continue | Control::CheckNow => Ok(()),
                    }
                }
                Some(tagged) = self.signals.recv() => {
                    if tagged.generation == self.generation {
                        self.on_signal(tagged.signal, Instant::now())
                    } else {
                        Ok(())
                    }
                }
                () = tokio::time::sleep_until(wake) => {
                    self.state.on_timer(Instant::now()).map_err(Lost::from)
                }
            };
            if let Err(lost) = step {
                break End::Lost {
                    lost,
                    was_connected: true,
                };
            }
        };
        connection.close();
        self.state.disconnected();
        // What the last input asked for still goes to the user and the outbox file.
        self.perform_offline();
        end
    }

    fn on_signal(&mut self, signal: Signal, now: Instant) -> Result<(), Lost> {
        match signal {
            Signal::Event { name, data } => self.state.on_event(&name, data, now),
            Signal::Ack { request, data } => self.state.on_ack(request, data, now),
            Signal::Error(text) => {
                tracing::debug!(%text, "transport error");
                self.state.on_transport_error(now);
            }
            Signal::Closed => return Err(Lost::Closed),
        }
        Ok(())
    }

    /// Waits `delay` while handling commands offline; `false` when told to stop.
    async fn wait_offline(&mut self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(until) => return true,
                command = self.commands.recv() => {
                    let command = command.unwrap_or(Command::Disconnect);
                    let control = self.state.on_command(command, Instant::now());
                    self.perform_offline();
                    match control {
                        Control::Continue => {}
                        // Try now rather than at the end of the backoff.
                        Control::CheckNow | Control::Reconnect => return true,
                        Control::Stop => return false,
                    }
                }
                // Late signals of connections given up on: drop them.
                Some(_) = self.signals.recv() => {}
            }
        }
    }

    /// Handles the commands already queued; `true` if one asked for new credentials (and none
    /// to stop: a queued `disconnect` still wins, and the stream ends as asked).
    fn take_queued_credentials(&mut self) -> bool {
        let mut renewed = false;
        while let Ok(command) = self.commands.try_recv() {
            let control = self.state.on_command(command, Instant::now());
            self.perform_offline();
            match control {
                Control::Stop => return false,
                Control::Reconnect => renewed = true,
                Control::Continue | Control::CheckNow => {}
            }
        }
        renewed
    }

    /// Performs what the state asks for on a welcomed connection.
    /// A send that fails ends the sending, not the rest: the events and outbox changes after it
    /// are still performed (the connection is lost, and what was asked of it is asked again on
    /// the next one).
    async fn perform(&mut self, connection: &Connection) -> Result<(), TransportError> {
        let mut failed = None;
        for effect in self.state.take_effects(Instant::now()) {
            if let Some(outgoing) = self.perform_locally(effect)
                && failed.is_none()
                && let Err(e) = connection.send(&outgoing, self.request_timeout).await
            {
                failed = Some(e);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Performs what the state asks for while not connected (it asks to send nothing then).
    fn perform_offline(&mut self) {
        for effect in self.state.take_effects(Instant::now()) {
            if let Some(outgoing) = self.perform_locally(effect) {
                tracing::debug!(?outgoing, "not sent: not connected");
            }
        }
    }

    /// Performs an effect that needs no connection; gives back what is to be sent.
    fn perform_locally(&self, effect: Effect) -> Option<Outgoing> {
        match effect {
            Effect::Emit(event) => self.emit(event),
            Effect::Save(change) => {
                if let Some(outbox) = &self.outbox {
                    outbox.write(change);
                }
            }
            Effect::Send(outgoing) => return Some(outgoing),
        }
        None
    }

    fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event);
    }
}

fn lost(lost: Lost, was_connected: bool) -> End {
    End::Lost {
        lost,
        was_connected,
    }
}
