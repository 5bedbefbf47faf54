//! One model for every request a client makes, so that each costs the server a bounded amount.
//!
//! Each kind of request ([`Action`]) has a quota, a sustained rate and a burst, kept per
//! connection, and for messages and room creation per user too (a user's connections share it).
//! A request over quota is refused with `rate_limited` and how long to wait; a typing notice over
//! quota is dropped. Per client address, new guest identities are limited too (every connection
//! without a token is a new user, which would otherwise make per-user quotas free to escape), and
//! wrong join codes lock the address out for a time that doubles with each failure.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use causerie_protocol::ErrorBody;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use socketioxide::socket::Sid;

use crate::config::{EventLimits, Limit, RateLimit};

/// What a client asks the server to do, each kind with its own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `message`.
    Message,
    /// `join` and `leave`.
    Membership,
    /// `history`.
    History,
    /// `who`.
    Who,
    /// `rooms`.
    Rooms,
    /// `ping`.
    Ping,
    /// `typing`.
    Typing,
    /// `read`.
    Read,
    /// `search`.
    Search,
    /// A `join` that creates a room (per user and per client address).
    CreateRoom,
    /// A connection with a token, per user (without one, a connection is a new guest: see
    /// [`Limiter::new_guest`]).
    Connect,
}

impl Action {
    /// What is limited, for the explanation of a refusal.
    fn what(self) -> &'static str {
        match self {
            Self::Message => "messages",
            Self::Membership => "joins and leaves",
            Self::History => "history requests",
            Self::Who => "who requests",
            Self::Rooms => "rooms requests",
            Self::Ping => "pings",
            Self::Typing => "typing notices",
            Self::Read => "read markers",
            Self::Search => "searches",
            Self::CreateRoom => "new rooms",
            Self::Connect => "connections",
        }
    }
}

/// Failed join codes from one address.
#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    blocked_until: Option<Instant>,
}

/// Join codes an address may get wrong before it is locked out.
const FREE_JOIN_CODE_FAILURES: u32 = 5;
/// The longest lockout after failed join codes.
const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered for failed join codes before the map is swept of unblocked ones.
const MAX_REMEMBERED_ADDRESSES: usize = 100_000;

/// The server's quotas and their state.
pub struct Limiter {
    per_connection: HashMap<Action, DefaultKeyedRateLimiter<Sid>>,
    per_user: HashMap<Action, DefaultKeyedRateLimiter<String>>,
    per_address: HashMap<Action, DefaultKeyedRateLimiter<IpAddr>>,
    new_guests: Option<DefaultKeyedRateLimiter<IpAddr>>,
    join_code_failures: Mutex<HashMap<IpAddr, Failures>>,
}

fn quota(limit: Limit) -> Quota {
    Quota::with_period(limit.every)
        .expect("limits are built with a period above zero")
        .allow_burst(limit.burst)
}

fn refused(
    action: Action,
    not_until: governor::NotUntil<governor::clock::QuantaInstant>,
) -> ErrorBody {
    ErrorBody::rate_limited(
        action.what(),
        not_until.wait_time_from(DefaultClock::default().now()),
    )
}

impl Limiter {
    /// The quotas of `events` (none when `None`), with `messages` per user for messages.
    pub fn new(events: Option<&EventLimits>, messages: Option<RateLimit>) -> Self {
        let mut per_connection = HashMap::new();
        let mut per_user = HashMap::new();
        let mut per_address = HashMap::new();
        if let Some(messages) = messages {
            let quota = Quota::per_second(messages.per_second).allow_burst(messages.burst);
            per_user.insert(Action::Message, RateLimiter::keyed(quota));
        }
        let mut new_guests = None;
        if let Some(events) = events {
            for (action, limit) in [
                (Action::Membership, events.membership),
                (Action::History, events.history),
                (Action::Who, events.who),
                (Action::Rooms, events.rooms),
                (Action::Ping, events.ping),
                (Action::Typing, events.typing),
                (Action::Read, events.read),
                (Action::Search, events.search),
            ] {
                per_connection.insert(action, RateLimiter::keyed(quota(limit)));
            }
            per_user.insert(
                Action::CreateRoom,
                RateLimiter::keyed(quota(events.room_creation)),
            );
            per_user.insert(
                Action::Connect,
                RateLimiter::keyed(quota(events.connects_per_user)),
            );
            if let Some(limit) = events.room_creation_per_address {
                per_address.insert(Action::CreateRoom, RateLimiter::keyed(quota(limit)));
            }
            new_guests = events
                .new_guests_per_address
                .map(|limit| RateLimiter::keyed(quota(limit)));
        }
        Self {
            per_connection,
            per_user,
            per_address,
            new_guests,
            join_code_failures: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request of `action` by connection `sid` of user `user_id`, or refuses it.
    pub fn check(&self, action: Action, sid: Sid, user_id: &str) -> Result<(), ErrorBody> {
        if let Some(limiter) = self.per_connection.get(&action) {
            limiter.check_key(&sid).map_err(|e| refused(action, e))?;
        }
        if let Some(limiter) = self.per_user.get(&action) {
            // An allocation only for the actions limited per user (messages, new rooms).
            limiter
                .check_key(&user_id.to_owned())
                .map_err(|e| refused(action, e))?;
        }
        Ok(())
    }

    /// Counts a request of `action` from client address `address` (see
    /// [`crate::connections::client_address`]), for the actions also limited per address (new
    /// rooms: a room is stored for good, and guests are cheap), or refuses it.
    pub fn check_address(&self, action: Action, address: IpAddr) -> Result<(), ErrorBody> {
        match self.per_address.get(&action) {
            Some(limiter) => limiter.check_key(&address).map_err(|e| refused(action, e)),
            None => Ok(()),
        }
    }

    /// Counts a new guest identity from `address`, or refuses it.
    pub fn new_guest(&self, address: IpAddr) -> Result<(), ErrorBody> {
        match &self.new_guests {
            Some(limiter) => limiter.check_key(&address).map_err(|e| {
                ErrorBody::rate_limited(
                    "new guests from this address",
                    e.wait_time_from(DefaultClock::default().now()),
                )
            }),
            None => Ok(()),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.join_code_failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Refuses `address` while it is locked out for wrong join codes.
    pub fn join_code_allowed(&self, address: IpAddr, now: Instant) -> Result<(), ErrorBody> {
        let blocked_until = self
            .failures()
            .get(&address)
            .and_then(|failures| failures.blocked_until)
            .filter(|until| *until > now);
        match blocked_until {
            Some(until) => Err(ErrorBody::rate_limited(
                "wrong join codes from this address",
                until - now,
            )),
            None => Ok(()),
        }
    }

    /// A wrong join code from `address`: after a few, it is locked out for 1 s, then 2 s, 4 s...
    /// up to 15 minutes.
    pub fn join_code_failed(&self, address: IpAddr, now: Instant) {
        let mut failures = self.failures();
        if failures.len() >= MAX_REMEMBERED_ADDRESSES {
            failures.retain(|_, f| f.blocked_until.is_some_and(|until| until > now));
        }
        let entry = failures.entry(address).or_insert(Failures {
            count: 0,
            blocked_until: None,
        });
        entry.count = entry.count.saturating_add(1);
        if let Some(over) = entry.count.checked_sub(FREE_JOIN_CODE_FAILURES) {
            let lockout = Duration::from_secs(1)
                .saturating_mul(1 << over.min(20))
                .min(MAX_LOCKOUT);
            entry.blocked_until = Some(now + lockout);
        }
    }

    /// The right join code from `address`: its failures are forgotten.
    pub fn join_code_succeeded(&self, address: IpAddr) {
        self.failures().remove(&address);
    }

    /// Forgets the state of connections and users idle long enough to be back at full quota.
    pub fn forget_idle(&self) {
        for limiter in self.per_connection.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in self.per_user.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in self.per_address.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.new_guests {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

impl Limit {
    /// `per_second` requests a second, sustained, and `burst` at once.
    pub const fn per_second(per_second: u32, burst: u32) -> Self {
        Self {
            every: Duration::from_nanos(1_000_000_000 / per_second as u64),
            burst: match NonZeroU32::new(burst) {
                Some(burst) => burst,
                None => NonZeroU32::MIN,
            },
        }
    }

    /// `per_minute` requests a minute, sustained, and `burst` at once.
    pub const fn per_minute(per_minute: u32, burst: u32) -> Self {
        Self {
            every: Duration::from_nanos(60_000_000_000 / per_minute as u64),
            burst: match NonZeroU32::new(burst) {
                Some(burst) => burst,
                None => NonZeroU32::MIN,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid() -> Sid {
        Sid::new()
    }

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_rate() {
        let limiter = Limiter::new(Some(&EventLimits::default()), None);
        let socket = sid();
        let burst = EventLimits::default().ping.burst.get();
        for _ in 0..burst {
            limiter
                .check(Action::Ping, socket, "u")
                .expect("within the burst");
        }
        let refused = limiter.check(Action::Ping, socket, "u").expect_err("over");
        assert_eq!(refused.code, causerie_protocol::ErrorCode::RateLimited);
        assert!(refused.retry_after_ms.is_some_and(|ms| ms > 0));
        // Another connection has its own quota.
        limiter
            .check(Action::Ping, sid(), "u")
            .expect("its own quota");
    }

    #[test]
    fn messages_are_limited_per_user_across_connections() {
        let messages = RateLimit::default();
        let limiter = Limiter::new(None, Some(messages));
        for _ in 0..messages.burst.get() {
            limiter
                .check(Action::Message, sid(), "ada")
                .expect("within the burst");
        }
        assert!(limiter.check(Action::Message, sid(), "ada").is_err());
        assert!(limiter.check(Action::Message, sid(), "bob").is_ok());
    }

    #[test]
    fn without_limits_nothing_is_refused() {
        let limiter = Limiter::new(None, None);
        for _ in 0..10_000 {
            limiter
                .check(Action::Message, sid(), "ada")
                .expect("no limit");
        }
        limiter
            .new_guest("127.0.0.1".parse().expect("an address"))
            .expect("no limit");
    }

    #[test]
    fn wrong_join_codes_lock_an_address_out_for_longer_each_time() {
        let limiter = Limiter::new(Some(&EventLimits::default()), None);
        let attacker: IpAddr = "203.0.113.7".parse().expect("an address");
        let neighbour: IpAddr = "203.0.113.8".parse().expect("an address");
        let now = Instant::now();
        for _ in 0..FREE_JOIN_CODE_FAILURES - 1 {
            limiter.join_code_failed(attacker, now);
            limiter
                .join_code_allowed(attacker, now)
                .expect("a few mistakes are free");
        }
        limiter.join_code_failed(attacker, now);
        let locked = limiter
            .join_code_allowed(attacker, now)
            .expect_err("locked out");
        assert_eq!(locked.retry_after_ms, Some(1000));
        limiter
            .join_code_allowed(neighbour, now)
            .expect("others are not");
        limiter.join_code_failed(attacker, now + Duration::from_secs(1));
        let longer = limiter
            .join_code_allowed(attacker, now + Duration::from_secs(1))
            .expect_err("locked out again");
        assert_eq!(longer.retry_after_ms, Some(2000));
        limiter.join_code_succeeded(attacker);
        limiter
            .join_code_allowed(attacker, now)
            .expect("forgotten after a success");
    }

    #[test]
    fn new_guests_from_one_address_are_limited() {
        let limiter = Limiter::new(Some(&EventLimits::default()), None);
        let address: IpAddr = "198.51.100.1".parse().expect("an address");
        let burst = EventLimits::default()
            .new_guests_per_address
            .expect("on by default")
            .burst
            .get();
        for _ in 0..burst {
            limiter.new_guest(address).expect("within the burst");
        }
        assert!(limiter.new_guest(address).is_err());
    }
}
