//! Reconnection: after a connection ends, what to tell the user and how long to wait before the
//! next attempt (exponential backoff with jitter, or the wait the server asked for).

use std::time::Duration;

use causerie_protocol::ErrorBody;

use crate::backoff::Backoff;
use crate::connection::TransportError;
use crate::error::ClientError;
use crate::event::{ClientEvent, ConnectionState, DisconnectReason};
use crate::liveness::Unanswered;

/// Why a connection was lost (or never made): the client tries again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Lost {
    /// The transport failed: connecting, or under a request.
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("connecting timed out")]
    ConnectTimedOut,
    #[error("no welcome from the server")]
    NoWelcome,
    #[error("the server's welcome has an unknown shape")]
    UnknownWelcome,
    #[error("the server closed the connection")]
    Closed,
    #[error(transparent)]
    Unanswered(#[from] Unanswered),
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    Lost {
        lost: Lost,
        was_connected: bool,
    },
    Refused(ErrorBody),
    /// Ended on purpose, to connect again at once (new credentials).
    Reconnect,
    Stopped,
}

/// What to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    Connect,
    /// Wait this long first (unless told to check now).
    Wait(Duration),
    Stop,
}

/// The attempts since the last connection that worked.
#[derive(Debug)]
pub(crate) struct Reconnection {
    backoff: Backoff,
    attempt: u32,
}

impl Reconnection {
    pub(crate) fn new(backoff: Backoff) -> Self {
        Self {
            backoff,
            attempt: 0,
        }
    }

    /// What follows `end`, and what to tell the user about it first.
    pub(crate) fn after(&mut self, end: End) -> (Vec<ClientEvent>, Next) {
        let state = |state| ClientEvent::State(state);
        match end {
            End::Stopped => {
                let closed = ConnectionState::Disconnected {
                    reason: DisconnectReason::Closed,
                };
                (vec![state(closed)], Next::Stop)
            }
            // Not a loss: no offline countdown, a connection being made.
            End::Reconnect => {
                self.attempt = 0;
                (vec![state(ConnectionState::Connecting)], Next::Connect)
            }
            // Refused for now (too many new users from this address, too many wrong codes):
            // try again once the server says it may succeed, not sooner.
            End::Refused(body) if body.code.is_retryable() => {
                self.attempt += 1;
                let delay = body.retry_after_ms.map_or_else(
                    || self.backoff.delay(self.attempt),
                    |millis| Duration::from_millis(millis).max(self.backoff.initial),
                );
                (vec![self.reconnecting(delay)], Next::Wait(delay))
            }
            End::Refused(body) => {
                let refused = ConnectionState::Disconnected {
                    reason: DisconnectReason::Refused(body.clone()),
                };
                let error = ClientEvent::Error(ClientError::Refused(body));
                (vec![error, state(refused)], Next::Stop)
            }
            End::Lost {
                lost,
                was_connected,
            } => {
                let mut events = Vec::new();
                if was_connected {
                    self.attempt = 0;
                    events.push(state(ConnectionState::Disconnected {
                        reason: DisconnectReason::Lost(lost.to_string()),
                    }));
                }
                self.attempt += 1;
                let delay = self.backoff.delay(self.attempt);
                events.push(self.reconnecting(delay));
                (events, Next::Wait(delay))
            }
        }
    }

    fn reconnecting(&self, delay: Duration) -> ClientEvent {
        ClientEvent::State(ConnectionState::Reconnecting {
            attempt: self.attempt,
            delay,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causerie_protocol::ErrorCode;

    fn lost(was_connected: bool) -> End {
        End::Lost {
            lost: Lost::Closed,
            was_connected,
        }
    }

    /// The attempt number and delay of a `Reconnecting` among `events`.
    fn reconnecting(events: &[ClientEvent]) -> (u32, Duration) {
        events
            .iter()
            .find_map(|event| match event {
                ClientEvent::State(ConnectionState::Reconnecting { attempt, delay }) => {
                    Some((*attempt, *delay))
                }
                _ => None,
            })
            .expect("a reconnecting state")
    }

    #[test]
    fn failed_attempts_wait_longer_each_time_within_the_backoff() {
        let backoff = Backoff::default();
        let mut reconnection = Reconnection::new(backoff);
        for expected in 1..=6 {
            let (events, next) = reconnection.after(lost(false));
            let (attempt, delay) = reconnecting(&events);
            assert_eq!(attempt, expected);
            assert_eq!(next, Next::Wait(delay));
            assert!(delay >= backoff.initial && delay <= backoff.ceiling(expected));
        }
    }

    #[test]
    fn losing_a_connection_that_worked_starts_counting_again_and_says_why() {
        let mut reconnection = Reconnection::new(Backoff::default());
        reconnection.after(lost(false));
        reconnection.after(lost(false));
        let (events, _) = reconnection.after(lost(true));
        assert_eq!(
            events[0],
            ClientEvent::State(ConnectionState::Disconnected {
                reason: DisconnectReason::Lost("the server closed the connection".into())
            })
        );
        assert_eq!(reconnecting(&events).0, 1);
    }

    #[test]
    fn a_refusal_for_now_waits_as_long_as_the_server_asks() {
        let mut reconnection = Reconnection::new(Backoff::default());
        let mut body = ErrorBody::new(ErrorCode::RateLimited, "too many new users");
        body.retry_after_ms = Some(7_000);
        let (events, next) = reconnection.after(End::Refused(body.clone()));
        assert_eq!(next, Next::Wait(Duration::from_secs(7)));
        assert_eq!(reconnecting(&events), (1, Duration::from_secs(7)));
        // Never sooner than the backoff's floor, whatever the server says.
        body.retry_after_ms = Some(1);
        let (_, next) = reconnection.after(End::Refused(body));
        assert_eq!(next, Next::Wait(Backoff::default().initial));
    }

    #[test]
    fn a_refusal_for_good_stops_with_the_servers_reason() {
        let mut reconnection = Reconnection::new(Backoff::default());
        let body = ErrorBody::new(ErrorCode::Unauthorized, "wrong code");
        let (events, next) = reconnection.after(End::Refused(body.clone()));
        assert_eq!(next, Next::Stop);
        assert_eq!(
            events,
            [
                ClientEvent::Error(ClientError::Refused(body.clone())),
                ClientEvent::State(ConnectionState::Disconnected {
                    reason: DisconnectReason::Refused(body)
                }),
            ]
        );
    }

    #[test]
    fn new_credentials_connect_at_once_without_an_outage() {
        let mut reconnection = Reconnection::new(Backoff::default());
        reconnection.after(lost(false));
        let (events, next) = reconnection.after(End::Reconnect);
        assert_eq!(next, Next::Connect);
        assert_eq!(events, [ClientEvent::State(ConnectionState::Connecting)]);
        let (events, _) = reconnection.after(lost(false));
        assert_eq!(reconnecting(&events).0, 1, "counting starts again");
    }
}
