//! Who is online across the nodes of a cluster, kept in Redis.
//!
//! Each node keeps its own connections in its [`Registry`], and tells Redis each user's first
//! connection to a room on the node and their last one gone ([`Transition`]). Redis holds, for
//! each room, on how many nodes each user is online and the users by name (for pages), and for
//! each node what it holds there. So `who`, `welcome` and `join` list the whole cluster, a user
//! on two nodes counts once, and a change is told to the room by the node where it happened.
//!
//! Each node beats every [`BEAT`]; a node silent for [`EXPIRY`] (killed, or cut off from Redis)
//! is forgotten by the next node that beats, which tells its rooms that its users left. A node
//! that finds itself forgotten, or that could not tell Redis a change, starts over from its
//! registry. While Redis cannot be reached, pages list this node's users, and rooms are told
//! nothing until it can.
//!
//! Every change is one Lua script, so that two nodes never see half of another's: scripts run
//! one at a time in Redis.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use causerie_protocol::limits::DEFAULT_ONLINE_PAGE;
use causerie_protocol::{Presence, User};
use redis::aio::ConnectionManager;
use redis::{Script, Value};
use tokio::sync::{mpsc, oneshot};

use crate::presence::{OnlinePage, Registry, Transition, Untold};

/// How often a node tells Redis it is alive, and forgets nodes that stopped.
pub const BEAT: Duration = Duration::from_secs(1);
/// How long a node may stay silent before its users count as gone: long enough for a slow beat
/// or a short outage, short enough that a killed node's users do not linger.
pub const EXPIRY: Duration = Duration::from_secs(10);
/// How long one round of requests to Redis may take before the node counts its presence there
/// as unknown (and starts over).
const ROUND_TIMEOUT: Duration = Duration::from_secs(5);
/// Most requests sent to Redis in one round (one pipeline).
const MAX_ROUND: usize = 512;

/// Shared by every script: the keys, and how a node's connection leaves.
///
/// - `causerie:online:<room>`: hash, user id to the number of nodes they are online on there;
/// - `causerie:names:<room>`: hash, user id to their name;
/// - `causerie:order:<room>`: sorted set of `name NUL id`, all of score 0, in name order;
/// - `causerie:node:<node>`: set of `room NUL id`, what a node holds;
/// - `causerie:nodes`: sorted set of nodes by their last beat, in ms of Redis's clock.
const COMMON: &str = r"
local function online_key(room) return 'causerie:online:' .. room end
local function names_key(room) return 'causerie:names:' .. room end
local function order_key(room) return 'causerie:order:' .. room end
local function node_key(node) return 'causerie:node:' .. node end
local NODES = 'causerie:nodes'

local function depart(node, room, id)
  if redis.call('SREM', node_key(node), room .. '\0' .. id) == 0 then return false end
  if redis.call('HINCRBY', online_key(room), id, -1) > 0 then return false end
  redis.call('HDEL', online_key(room), id)
  local name = redis.call('HGET', names_key(room), id) or ''
  redis.call('HDEL', names_key(room), id)
  redis.call('ZREM', order_key(room), name .. '\0' .. id)
  return name
end

local function forget(node, gone)
  for _, entry in ipairs(redis.call('SMEMBERS', node_key(node))) do
    local cut = string.find(entry, '\0', 1, true)
    local room, id = string.sub(entry, 1, cut - 1), string.sub(entry, cut + 1)
    local name = depart(node, room, id)
    if name then
      table.insert(gone, room)
      table.insert(gone, id)
      table.insert(gone, name)
    end
  end
  redis.call('DEL', node_key(node))
end
";

/// `node room id name`: the user is online in the room on the node, under that name. Returns
/// `{0, ''}` if the cluster knew it already, `{1, ''}` if they arrived, `{2, old name}` if they
/// are listed under a new name.
const ARRIVE: &str = r"
local node, room, id, name = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if redis.call('SADD', node_key(node), room .. '\0' .. id) == 1 then
  redis.call('HINCRBY', online_key(room), id, 1)
end
local before = redis.call('HGET', names_key(room), id)
if before == name then return {0, ''} end
redis.call('HSET', names_key(room), id, name)
redis.call('ZADD', order_key(room), 0, name .. '\0' .. id)
if before then
  redis.call('ZREM', order_key(room), before .. '\0' .. id)
  return {2, before}
end
return {1, ''}
";

/// `node room id`: the user's last connection in the room on the node is gone. Returns
/// `{1, name}` if it was their last in the cluster, `{0, ''}` otherwise.
const DEPART: &str = r"
local name = depart(ARGV[1], ARGV[2], ARGV[3])
if name then return {1, name} end
return {0, ''}
";

/// `node expiry_ms`: the node is alive; nodes silent for longer are forgotten. Returns whether
/// Redis knew the node, and `room id name` for each user who left with the nodes forgotten.
const BEAT_SCRIPT: &str = r"
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local known = redis.call('ZADD', NODES, now, ARGV[1]) == 0
local gone = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', NODES, '-inf', now - tonumber(ARGV[2]))) do
  forget(node, gone)
  redis.call('ZREM', NODES, node)
end
return {known and 1 or 0, gone}
";

/// `node`: forgets what the node holds. Returns `room id name` for each user who left the
/// cluster with it.
const FORGET: &str = r"
local gone = {}
forget(ARGV[1], gone)
return gone
";

/// `node`: the node stops; the next node to beat forgets it, and tells its rooms who left.
const LEAVE: &str = r"
redis.call('ZADD', NODES, 0, ARGV[1])
";

/// `room after limit`: how many are online in the room, and up to `limit + 1` of them by name
/// after the cursor `after` (`name NUL id`, or empty for the first page).
const PAGE: &str = r"
local key = order_key(ARGV[1])
local from = '-'
if ARGV[2] ~= '' then from = '(' .. ARGV[2] end
local page = redis.call('ZRANGEBYLEX', key, from, '+', 'LIMIT', 0, tonumber(ARGV[3]) + 1)
return {redis.call('ZCARD', key), page}
";

/// The scripts, each with the common part before it.
struct Scripts {
    arrive: Script,
    depart: Script,
    beat: Script,
    forget: Script,
    leave: Script,
    page: Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Self {
            arrive: script(ARRIVE),
            depart: script(DEPART),
            beat: script(BEAT_SCRIPT),
            forget: script(FORGET),
            leave: script(LEAVE),
            page: script(PAGE),
        }
    }

    /// A pipeline that first loads every script: Redis may have restarted since the last round,
    /// and forgotten them.
    fn pipeline(&self) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        for script in [
            &self.arrive,
            &self.depart,
            &self.beat,
            &self.forget,
            &self.leave,
            &self.page,
        ] {
            pipe.load_script(script).ignore();
        }
        pipe
    }
}

/// What the node asks of its presence task, in order.
enum Request {
    /// Tell Redis a change on this node.
    Transition(Transition),
    /// Pages of rooms: `(room, after, limit)` each.
    Pages {
        wanted: Vec<(String, Option<String>, usize)>,
        reply: oneshot::Sender<Option<Vec<OnlinePage>>>,
    },
    /// The server stops: tell the other nodes, and stop.
    Leave(oneshot::Sender<()>),
}

/// The presence the nodes of a cluster share, as one node sees it.
pub struct SharedPresence {
    requests: mpsc::UnboundedSender<Request>,
    untold: Arc<Untold>,
}

impl SharedPresence {
    /// Starts sharing the presence `registry` keeps, over `connection`, as node `node`: each
    /// later change there is told to Redis in order, by a task that runs while this lives.
    pub(super) fn start(
        connection: ConnectionManager,
        shared: Arc<super::Shared>,
        node: String,
        registry: &Arc<Registry>,
    ) -> Self {
        let (requests, received) = mpsc::unbounded_channel();
        let told = requests.clone();
        // Unbounded, as the registry must not block: each request is a change of a connection,
        // which quotas bound, and the task takes up to `MAX_ROUND` of them per round trip.
        registry.tell(move |transition| {
            let _ = told.send(Request::Transition(transition));
        });
        let untold = Arc::new(Untold::default());
        let task = Task {
            connection,
            shared,
            node,
            scripts: Scripts::new(),
            registry: Arc::downgrade(registry),
            untold: untold.clone(),
            stale: true,
        };
        tokio::spawn(task.run(received));
        Self { requests, untold }
    }

    /// Up to `limit` people online in `room` across nodes, by name, after the cursor `after`;
    /// `None` while Redis cannot tell (the caller then lists this node's own).
    pub async fn page(
        &self,
        room: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Option<OnlinePage> {
        let after = after.map(|(name, id)| crate::presence::cursor(name, id));
        let mut pages = self.pages(vec![(room.to_owned(), after, limit)]).await?;
        pages.pop()
    }

    async fn pages(&self, wanted: Vec<(String, Option<String>, usize)>) -> Option<Vec<OnlinePage>> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request::Pages { wanted, reply }).ok()?;
        answer.await.ok().flatten()
    }

    /// Tells the other nodes that this one stops, and stops sharing.
    pub async fn leave(&self) {
        let (done, left) = oneshot::channel();
        if self.requests.send(Request::Leave(done)).is_ok() {
            let _ = left.await;
        }
    }

    /// The `presence` events due at `now` for the changes this node made: each with the room's
    /// count across nodes. None while Redis cannot tell the counts: they wait.
    pub async fn take_changes(&self, now: Instant) -> Vec<Presence> {
        let due = self.untold.due(now);
        if due.is_empty() {
            return Vec::new();
        }
        let wanted = due
            .iter()
            .map(|(room, first)| {
                let limit = if *first {
                    DEFAULT_ONLINE_PAGE as usize
                } else {
                    0
                };
                (room.clone(), None, limit)
            })
            .collect();
        let Some(pages) = self.pages(wanted).await else {
            return Vec::new();
        };
        due.into_iter()
            .zip(pages)
            .filter_map(|((room, _), page)| self.untold.take(&room, now, page))
            .collect()
    }
}

/// The task that talks to Redis for a node's presence.
struct Task {
    connection: ConnectionManager,
    /// Whether the heartbeat finds Redis unreachable: nothing then waits for it.
    shared: Arc<super::Shared>,
    node: String,
    scripts: Scripts,
    registry: Weak<Registry>,
    untold: Arc<Untold>,
    /// Whether Redis may not hold this node's presence as it is (at start, after a failed round,
    /// after Redis forgot the node): the next beat starts it over from the registry.
    stale: bool,
}

impl Task {
    async fn run(mut self, mut requests: mpsc::UnboundedReceiver<Request>) {
        let mut beats = tokio::time::interval(BEAT);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                request = requests.recv() => {
                    let Some(mut next) = request else { break };
                    let mut round = Vec::new();
                    let leaving = loop {
                        match next {
                            Request::Leave(done) => break Some(done),
                            request => round.push(request),
                        }
                        match requests.try_recv() {
                            Ok(request) if round.len() < MAX_ROUND => next = request,
                            Ok(request) => {
                                // For the next round.
                                self.serve(std::mem::take(&mut round)).await;
                                next = request;
                            }
                            Err(_) => break None,
                        }
                    };
                    self.serve(round).await;
                    if let Some(done) = leaving {
                        self.leave().await;
                        let _ = done.send(());
                        break;
                    }
                }
                _ = beats.tick() => self.beat().await,
            }
        }
    }

    /// Tells Redis a round of changes and answers its page requests. While this node's presence
    /// there is stale, changes wait for the next beat to start over, and pages are this node's.
    async fn serve(&mut self, round: Vec<Request>) {
        if round.is_empty() {
            return;
        }
        if self
            .shared
            .unreachable
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.stale = true;
        }
        if self.stale {
            return; // Dropping each reply answers `None`.
        }
        let mut pipe = self.scripts.pipeline();
        for request in &round {
            match request {
                Request::Transition(Transition::Arrived { room, user }) => {
                    pipe.invoke_script(
                        self.scripts
                            .arrive
                            .arg(&self.node)
                            .arg(room)
                            .arg(&user.id)
                            .arg(&user.name),
                    );
                }
                Request::Transition(Transition::Left { room, user }) => {
                    pipe.invoke_script(self.scripts.depart.arg(&self.node).arg(room).arg(&user.id));
                }
                Request::Leave(_) => {}
                Request::Pages { wanted, .. } => {
                    for (room, after, limit) in wanted {
                        pipe.invoke_script(
                            self.scripts
                                .page
                                .arg(room)
                                .arg(after.as_deref().unwrap_or(""))
                                .arg(*limit),
                        );
                    }
                }
            }
        }
        let answers = match self.query(&pipe).await {
            Ok(answers) => answers,
            Err(error) => {
                tracing::warn!(%error, "presence could not be shared through Redis");
                self.stale = true;
                return;
            }
        };
        let mut answers = answers.into_iter();
        for request in round {
            match request {
                Request::Transition(transition) => {
                    let Some(answer) = answers.next() else { break };
                    if let Err(error) = self.record(transition, answer) {
                        tracing::warn!(%error, "a presence change Redis answered oddly");
                        self.stale = true;
                    }
                }
                Request::Leave(_) => {}
                Request::Pages { wanted, reply } => {
                    let pages: Result<Vec<_>, _> = wanted
                        .iter()
                        .map(|(_, _, limit)| page_of(answers.next(), *limit))
                        .collect();
                    let _ = reply.send(pages.ok());
                }
            }
        }
    }

    /// Records a change Redis accepted, if the cluster sees one.
    fn record(&self, transition: Transition, answer: Value) -> redis::RedisResult<()> {
        let (outcome, name): (u8, String) = redis::from_redis_value(answer)?;
        match (transition, outcome) {
            (Transition::Arrived { room, user }, 1) => {
                self.untold.record(&room, |changes| changes.joined(&user));
            }
            (Transition::Arrived { room, user }, 2) => {
                let before = User {
                    id: user.id.clone(),
                    name,
                };
                self.untold
                    .record(&room, |changes| changes.renamed(&before, &user));
            }
            (Transition::Left { room, user }, 1) => {
                let user = User { name, ..user };
                self.untold.record(&room, |changes| changes.left(&user));
            }
            _ => {}
        }
        Ok(())
    }

    /// Tells Redis this node is alive, records who left with the nodes it forgot, and starts this
    /// node's presence over if it is stale.
    async fn beat(&mut self) {
        let mut pipe = self.scripts.pipeline();
        pipe.invoke_script(
            self.scripts
                .beat
                .arg(&self.node)
                .arg(EXPIRY.as_millis() as u64),
        );
        let beat = self.query(&pipe).await.and_then(|mut answers| {
            let answer = answers.pop().unwrap_or(Value::Nil);
            Ok(redis::from_redis_value::<(u8, Vec<String>)>(answer)?)
        });
        match beat {
            Ok((known, gone)) => {
                self.gone(&gone);
                if known == 0 {
                    // New, or forgotten: a restarted Redis, or a beat late by the expiry.
                    self.stale = true;
                }
            }
            Err(error) => {
                if !self.stale {
                    tracing::warn!(%error, "presence could not be shared through Redis");
                }
                self.stale = true;
                return;
            }
        }
        if self.stale {
            match self.start_over().await {
                Ok(()) => self.stale = false,
                Err(error) => tracing::warn!(%error, "presence could not be shared through Redis"),
            }
        }
    }

    /// Replaces what Redis holds of this node with what its registry holds now. Changes that
    /// were queued meanwhile are told after, and each script is idempotent, so they agree.
    async fn start_over(&mut self) -> redis::RedisResult<()> {
        let Some(registry) = self.registry.upgrade() else {
            return Ok(());
        };
        let online = registry.snapshot();
        let mut pipe = self.scripts.pipeline();
        pipe.invoke_script(&self.scripts.forget.arg(&self.node));
        for (room, user) in &online {
            pipe.invoke_script(
                self.scripts
                    .arrive
                    .arg(&self.node)
                    .arg(room)
                    .arg(&user.id)
                    .arg(&user.name),
            );
        }
        let mut answers = self.query(&pipe).await?.into_iter();
        let gone: Vec<String> = redis::from_redis_value(answers.next().unwrap_or(Value::Nil))?;
        self.gone(&gone);
        for ((room, user), answer) in online.into_iter().zip(answers) {
            self.record(Transition::Arrived { room, user }, answer)?;
        }
        Ok(())
    }

    /// Records who left the cluster: `room id name` each.
    fn gone(&self, gone: &[String]) {
        for left in gone.chunks_exact(3) {
            let user = User {
                id: left[1].clone(),
                name: left[2].clone(),
            };
            self.untold.record(&left[0], |changes| changes.left(&user));
        }
    }

    /// Tells the other nodes that this one stops: the next to beat tells its rooms who left
    /// (this node tells no room anything more). Otherwise they find out after [`EXPIRY`].
    async fn leave(&mut self) {
        let mut pipe = self.scripts.pipeline();
        pipe.invoke_script(&self.scripts.leave.arg(&self.node));
        if let Err(error) = self.query(&pipe).await {
            tracing::debug!(%error, "this node's presence stays in Redis until it expires");
        }
    }

    /// Sends a round, and waits for its answers at most [`ROUND_TIMEOUT`].
    async fn query(&mut self, pipe: &redis::Pipeline) -> redis::RedisResult<Vec<Value>> {
        match tokio::time::timeout(ROUND_TIMEOUT, pipe.query_async(&mut self.connection)).await {
            Ok(answers) => answers,
            Err(_) => Err(super::unreachable()),
        }
    }
}

/// A page from Redis's answer to [`PAGE`]: the count, and up to `limit + 1` of `name NUL id`.
fn page_of(answer: Option<Value>, limit: usize) -> redis::RedisResult<OnlinePage> {
    let (count, mut members): (u32, Vec<String>) =
        redis::from_redis_value(answer.unwrap_or(Value::Nil))?;
    let more = members.len() > limit;
    members.truncate(limit);
    let users: Vec<User> = members
        .iter()
        .filter_map(|member| crate::presence::parse_cursor(member))
        .map(|(name, id)| User {
            id: id.to_owned(),
            name: name.to_owned(),
        })
        .collect();
    let next = more.then(|| members.last().cloned()).flatten();
    Ok(OnlinePage { users, count, next })
}
