//! Who is online across the nodes of a cluster, kept in Redis.
//!
//! Each node keeps its own connections in its [`Registry`], and tells Redis each user's first
//! connection to a room on the node and their last one gone ([`Transition`]). Redis holds, for
//! each room, on how many nodes each user is online and the users by name (for pages), and for
//! each node what it holds there. So `who`, `welcome` and `join` list the whole cluster, a user
//! on two nodes counts once, and a change is told to the room by the node where it happened,
//! checked against Redis just before (another node may have told the opposite since).
//!
//! Each node beats every [`BEAT`]; a node silent for [`EXPIRY`] (killed, or cut off from Redis)
//! is forgotten by the next node that beats, which tells its rooms that its users left. A node
//! that finds itself forgotten, or that could not tell Redis a change, starts over from its
//! registry, and its rooms are sent their count and first page, which replace what their members
//! list. While Redis cannot be reached, pages list this node's users, and rooms are told nothing
//! until it can.
//!
//! Every change is one Lua script, so that two nodes never see half of another's: scripts run
//! one at a time in Redis, each bounded (at most [`MOST_FORGOTTEN`] entries of a node at once).
//! Redis Cluster is not supported: the scripts reach keys they are not given.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use causerie_protocol::limits::DEFAULT_ONLINE_PAGE;
use causerie_protocol::{Presence, User};
use redis::aio::ConnectionManager;
use redis::{Script, Value};
use tokio::sync::{mpsc, oneshot};

use crate::presence::{Changes, OnlinePage, Registry, Transition, flush_interval};

/// How often a node tells Redis it is alive, and forgets nodes that stopped.
pub const BEAT: Duration = Duration::from_secs(1);
/// How long a node may stay silent before its users count as gone: long enough for a slow beat
/// or a short outage, short enough that a killed node's users do not linger.
pub const EXPIRY: Duration = Duration::from_secs(10);
/// [`EXPIRY`] as the scripts take it.
const EXPIRY_MS: u64 = EXPIRY.as_millis() as u64;
/// How long no node at all may beat before Redis counts as having been away (see
/// [`BEAT_SCRIPT`]), in ms: a few beats.
const CLUSTER_SILENT_MS: u64 = 3 * BEAT.as_millis() as u64;
/// How long one round of requests to Redis may take (the presence connection's own timeout,
/// apart from the heartbeat's: a long round must not make Redis look unreachable).
pub(super) const ROUND_TIMEOUT: Duration = Duration::from_secs(5);
/// Most requests sent to Redis in one round (one pipeline).
const MAX_ROUND: usize = 512;
/// Most entries of a node forgotten by one script: a big node's are forgotten over several.
const MOST_FORGOTTEN: usize = 2000;
/// How long what a start-over kept aside outlives it, should the node stop mid-way.
const KEEP_SECONDS: i64 = 60;
/// Most rooms told their changes in one flush: the others wait for the next (a node that came
/// back from an outage has every room to tell).
const MOST_ROOMS_TOLD: usize = 256;
/// How long a page waits for Redis before the node lists its own users instead.
const PAGE_TIMEOUT: Duration = Duration::from_secs(1);

/// Shared by every script: the keys, and how a node's connection leaves.
///
/// - `causerie:online:<room>`: hash, user id to the number of nodes they are online on there;
/// - `causerie:names:<room>`: hash, user id to their name;
/// - `causerie:order:<room>`: sorted set of `name NUL id`, all of score 0, in name order;
/// - `causerie:node:<node>`: set of `room NUL id`, what a node holds;
/// - `causerie:keep:<node>`: the same, of what its start-over told so far (see
///   `Sharing::replace_in_redis`);
/// - `causerie:nodes`: sorted set of nodes by their last beat, in ms of Redis's clock;
/// - `causerie:last-beat`: when any node last beat;
/// - `causerie:sweep-after`: until then, no node is forgotten (see [`BEAT_SCRIPT`]).
const COMMON: &str = r"
local function online_key(room) return 'causerie:online:' .. room end
local function names_key(room) return 'causerie:names:' .. room end
local function order_key(room) return 'causerie:order:' .. room end
local function node_key(node) return 'causerie:node:' .. node end
local NODES = 'causerie:nodes'
local LAST_BEAT = 'causerie:last-beat'
local SWEEP_AFTER = 'causerie:sweep-after'

local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- Whether `node` beat within `expiry` ms: one silent longer is being forgotten, even if no
-- node has swept it yet, and may add nothing.
local function alive(node, expiry)
  local beat = redis.call('ZSCORE', NODES, node)
  return beat and now_ms() - tonumber(beat) < expiry
end

local function depart(node, room, id)
  if redis.call('SREM', node_key(node), room .. '\0' .. id) == 0 then return false end
  if redis.call('HINCRBY', online_key(room), id, -1) > 0 then return false end
  redis.call('HDEL', online_key(room), id)
  local name = redis.call('HGET', names_key(room), id) or ''
  redis.call('HDEL', names_key(room), id)
  redis.call('ZREM', order_key(room), name .. '\0' .. id)
  return name
end

-- Forgets up to `most` of `entries` of `node`, adding `room id name` to `gone` for each user
-- who left the cluster with them.
local function forget_entries(node, entries, most, gone)
  for i = 1, math.min(#entries, most) do
    local entry = entries[i]
    local cut = string.find(entry, '\0', 1, true)
    local ok, name = false, false
    if cut then
      -- Caught: an entry whose keys someone else changed must not stop every node's beat.
      ok, name = pcall(depart, node, string.sub(entry, 1, cut - 1), string.sub(entry, cut + 1))
    end
    if ok and name then
      table.insert(gone, string.sub(entry, 1, cut - 1))
      table.insert(gone, string.sub(entry, cut + 1))
      table.insert(gone, name)
    elseif not ok then
      redis.call('SREM', node_key(node), entry)
    end
  end
end

-- Forgets up to `most` entries of `node`, adding `room id name` to `gone` for each user who
-- left the cluster with them; returns how many entries are left.
local function forget(node, gone, most)
  forget_entries(node, redis.call('SRANDMEMBER', node_key(node), most), most, gone)
  return redis.call('SCARD', node_key(node))
end
";

/// `node room id name expiry_ms`: the user is online in the room on the node, under that name.
/// Returns `{0, ''}` if the cluster knew it already, `{1, ''}` if they arrived, `{2, old name}`
/// if they are listed under a new name, `{-1, ''}` if the node is not alive in Redis (forgotten,
/// or being forgotten: it must start over, not add to what another node is emptying).
const ARRIVE: &str = r"
local node, room, id, name = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if not alive(node, tonumber(ARGV[5])) then return {-1, ''} end
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

/// `node room id expiry_ms`: the user's last connection in the room on the node is gone.
/// Returns `{1, name}` if it was their last in the cluster, `{0, ''}` otherwise, `{-1, ''}` if
/// the node is not alive in Redis.
const DEPART: &str = r"
if not alive(ARGV[1], tonumber(ARGV[4])) then return {-1, ''} end
local name = depart(ARGV[1], ARGV[2], ARGV[3])
if name then return {1, name} end
return {0, ''}
";

/// `node expiry_ms most gap_ms`: the node is alive; of the nodes silent for longer, one is
/// forgotten (`most` of its entries at a time). Returns whether Redis knew the node alive (not
/// silent for the expiry: others may have started forgetting it), and `room id name` for each
/// user who left with what was forgotten.
///
/// When no node at all beat for `gap_ms`, Redis was away rather than the nodes (stalled, or cut
/// off from all of them): every node gets a whole expiry to beat again before any is forgotten.
/// Otherwise, after an outage longer than the expiry, the first node to beat would forget the
/// others, and their rooms would be told that everyone on them left, then came back.
const BEAT_SCRIPT: &str = r"
local expiry = tonumber(ARGV[2])
local known = alive(ARGV[1], expiry)
local now = now_ms()
redis.call('ZADD', NODES, now, ARGV[1])
local last = tonumber(redis.call('GET', LAST_BEAT) or now)
redis.call('SET', LAST_BEAT, now)
local sweep_after = tonumber(redis.call('GET', SWEEP_AFTER)) or 0
-- Never further than an expiry away, whatever Redis's clock did.
if now - last > tonumber(ARGV[4]) or sweep_after > now + expiry then
  sweep_after = now + expiry
  redis.call('SET', SWEEP_AFTER, sweep_after)
end
local gone = {}
if now >= sweep_after then
  local dead = redis.call('ZRANGEBYSCORE', NODES, '-inf', now - expiry, 'LIMIT', 0, 1)
  if dead[1] and dead[1] ~= ARGV[1] then
    if forget(dead[1], gone, tonumber(ARGV[3])) == 0 then redis.call('ZREM', NODES, dead[1]) end
  end
end
return {known and 1 or 0, gone}
";

/// `node keep kept most expiry_ms`: forgets up to `most` of what the node holds that its
/// start-over did not keep (in the set `keep`, of `kept` entries), and drops that set once none
/// is left. Returns how many are left, and `room id name` for each user who left the cluster
/// with them; `{-1, {}}` if the node is not alive or `keep` is not whole (it expired, or Redis
/// lost it): forgetting then would forget who is online.
const FORGET_UNKEPT: &str = r"
local node, keep, most = ARGV[1], ARGV[2], tonumber(ARGV[4])
if not alive(node, tonumber(ARGV[5])) or redis.call('SCARD', keep) ~= tonumber(ARGV[3]) then
  return {-1, {}}
end
redis.call('ZADD', NODES, now_ms(), node)
local unkept = redis.call('SDIFF', node_key(node), keep)
local gone = {}
forget_entries(node, unkept, most, gone)
local left = math.max(#unkept - most, 0)
if left == 0 then redis.call('DEL', keep) end
return {left, gone}
";

/// `node`: the node stops; the next node to beat forgets it, and tells its rooms who left.
const LEAVE: &str = r"
redis.call('ZADD', NODES, 0, ARGV[1])
";

/// `room after limit id...`: how many are online in the room, up to `limit + 1` of them by name
/// after the cursor `after` (`name NUL id`, or empty for the first), none for a limit of 0, and
/// whether each user `id` is online there.
const ROOM: &str = r"
local key = order_key(ARGV[1])
local page = {}
local limit = tonumber(ARGV[3])
if limit > 0 then
  local from = '-'
  if ARGV[2] ~= '' then from = '(' .. ARGV[2] end
  page = redis.call('ZRANGEBYLEX', key, from, '+', 'LIMIT', 0, limit + 1)
end
local online = {}
for i = 4, #ARGV do
  table.insert(online, redis.call('HEXISTS', online_key(ARGV[1]), ARGV[i]))
end
return {redis.call('ZCARD', key), page, online}
";

/// The scripts, each with the common part before it.
struct Scripts {
    arrive: Script,
    depart: Script,
    beat: Script,
    forget_unkept: Script,
    leave: Script,
    room: Script,
    /// Whether Redis has them: after an error (a restarted Redis forgets them), they are loaded
    /// again before the next round.
    loaded: bool,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{COMMON}\n{body}"));
        Self {
            arrive: script(ARRIVE),
            depart: script(DEPART),
            beat: script(BEAT_SCRIPT),
            forget_unkept: script(FORGET_UNKEPT),
            leave: script(LEAVE),
            room: script(ROOM),
            loaded: false,
        }
    }

    /// A pipeline, which first loads every script if Redis may not have them.
    fn pipeline(&self) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        if !self.loaded {
            for script in [
                &self.arrive,
                &self.depart,
                &self.beat,
                &self.forget_unkept,
                &self.leave,
                &self.room,
            ] {
                pipe.load_script(script).ignore();
            }
        }
        pipe
    }
}

/// What a room is asked for: a page (`limit` people after `after`), and whether each of `users`
/// is online.
struct RoomQuery {
    room: String,
    after: Option<String>,
    limit: usize,
    users: Vec<String>,
}

/// What Redis answered of a room.
struct RoomAnswer {
    page: OnlinePage,
    /// Each user asked about, and whether they are online there.
    online: HashMap<String, bool>,
}

/// What the node asks of its presence task, in order.
enum PresenceRequest {
    /// Tell Redis a change on this node.
    Transition(Transition),
    /// Rooms, as Redis has them.
    Rooms {
        queries: Vec<RoomQuery>,
        reply: oneshot::Sender<Option<Vec<RoomAnswer>>>,
    },
}

/// The presence the nodes of a cluster share, as one node sees it.
pub struct SharedPresence {
    requests: mpsc::UnboundedSender<PresenceRequest>,
    /// Apart from the requests, so that leaving waits for none of them.
    leave: mpsc::Sender<oneshot::Sender<()>>,
    untold: Arc<Untold>,
    /// Whether the heartbeat finds Redis unreachable: then nothing asks it anything.
    shared: Arc<super::Shared>,
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
        let (leave, leaving) = mpsc::channel(1);
        let told = requests.clone();
        // Unbounded, as the registry must not block: each request is a change of a connection,
        // which quotas bound, and the task takes up to `MAX_ROUND` of them per round trip.
        registry.tell(move |transition| {
            let _ = told.send(PresenceRequest::Transition(transition));
        });
        let untold = Arc::new(Untold::default());
        let seen_disconnections = shared.disconnections.load(Ordering::Relaxed);
        let sharing = Sharing {
            connection,
            shared: shared.clone(),
            node,
            scripts: Scripts::new(),
            registry: Arc::downgrade(registry),
            untold: untold.clone(),
            stale: true,
            dropped_rooms: HashSet::new(),
            seen_disconnections,
        };
        tokio::spawn(sharing.run(received, leaving));
        Self {
            requests,
            leave,
            untold,
            shared,
        }
    }

    /// Up to `limit` people online in `room` across nodes, by name, after the cursor `after`;
    /// `None` while Redis cannot tell, within [`PAGE_TIMEOUT`] (the caller then lists this
    /// node's own).
    pub async fn page(
        &self,
        room: &str,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> Option<OnlinePage> {
        let query = RoomQuery {
            room: room.to_owned(),
            after: after.map(|(name, id)| crate::presence::cursor(name, id)),
            limit,
            users: Vec::new(),
        };
        let answers = tokio::time::timeout(PAGE_TIMEOUT, self.rooms(vec![query])).await;
        answers.ok().flatten()?.pop().map(|answer| answer.page)
    }

    /// What Redis holds of these rooms; `None` at once while it is known unreachable (a Redis
    /// that stalls would hold every asker up to the round's timeout).
    async fn rooms(&self, queries: Vec<RoomQuery>) -> Option<Vec<RoomAnswer>> {
        if self.shared.unreachable() {
            return None;
        }
        let (reply, answer) = oneshot::channel();
        let request = PresenceRequest::Rooms { queries, reply };
        self.requests.send(request).ok()?;
        answer.await.ok().flatten()
    }

    /// Tells the other nodes that this one stops (they tell its rooms that its users left), and
    /// stops sharing: the changes made after are this node's own.
    pub async fn leave(&self) {
        let (done, left) = oneshot::channel();
        if self.leave.send(done).await.is_ok() {
            let _ = left.await;
        }
    }

    /// Has `room` sent its count and first page at the next flush, which replace what its
    /// members list: after an outage, presence events may have been missed both ways.
    pub fn tell_everything(&self, room: &str) {
        self.untold.record(room, Changes::everything);
    }

    /// The `presence` events due at `now` for the changes this node made, each checked against
    /// Redis and with the room's count across nodes. None while Redis cannot tell: they wait.
    pub async fn take_changes(&self, now: Instant) -> Vec<Presence> {
        let due = self.untold.due(now);
        if due.is_empty() {
            return Vec::new();
        }
        let queries = due
            .iter()
            .map(|due| RoomQuery {
                room: due.room.clone(),
                after: None,
                limit: if due.first_page {
                    DEFAULT_ONLINE_PAGE as usize
                } else {
                    0
                },
                users: due.users.clone(),
            })
            .collect();
        let Some(answers) = self.rooms(queries).await else {
            return Vec::new();
        };
        due.into_iter()
            .zip(answers)
            .filter_map(|(due, answer)| self.untold.take(&due, now, answer))
            .collect()
    }
}

/// The changes this node made to rooms, until it tells them: each node tells the rooms what
/// changed there across nodes through it (the first connection of a user anywhere, the last one
/// gone), at the pace of [`flush_interval`] for the room's size across nodes.
#[derive(Debug, Default)]
struct Untold {
    rooms: Mutex<HashMap<String, UntoldRoom>>,
}

#[derive(Debug, Default)]
struct UntoldRoom {
    changes: Changes,
    /// When this node last told the room.
    told_at: Option<Instant>,
    /// How many were online across nodes then: how often it may be told.
    count: u32,
}

/// A room due to be told its changes.
struct Due {
    room: String,
    /// Whether it needs its first page (too many changes to list).
    first_page: bool,
    /// The users its changes list, to check.
    users: Vec<String>,
}

impl Untold {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, UntoldRoom>> {
        self.rooms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record(&self, room: &str, change: impl FnOnce(&mut Changes)) {
        change(&mut self.lock().entry(room.to_owned()).or_default().changes);
    }

    /// The rooms due to be told at `now`; rooms with nothing left to tell are forgotten once
    /// their pace allows another event.
    fn due(&self, now: Instant) -> Vec<Due> {
        let mut due = Vec::new();
        self.lock().retain(|room, untold| {
            let paced = untold.told_at.is_none_or(|at| {
                now.saturating_duration_since(at) >= flush_interval(untold.count as usize)
            });
            if !paced {
                return true;
            }
            if untold.changes.is_empty() {
                return false;
            }
            if due.len() == MOST_ROOMS_TOLD {
                return true;
            }
            let (mut users, left) = untold.changes.listed();
            users.extend(left);
            due.push(Due {
                room: room.clone(),
                first_page: untold.changes.truncated(),
                users,
            });
            true
        });
        due
    }

    /// The event that tells `due.room` its changes that Redis still bears out, now that its
    /// count (and first page, when asked for) are known. A room that needs its first page and
    /// was not asked for it (its changes grew meanwhile) waits for the next flush.
    fn take(&self, due: &Due, now: Instant, answer: RoomAnswer) -> Option<Presence> {
        let mut rooms = self.lock();
        let untold = rooms.get_mut(&due.room)?;
        if untold.changes.truncated() && !due.first_page {
            return None;
        }
        untold.changes.still_true(&answer.online);
        untold.told_at = Some(now);
        untold.count = answer.page.count;
        if untold.changes.is_empty() {
            return None;
        }
        let changes = std::mem::take(&mut untold.changes);
        let page = answer.page;
        Some(changes.told(&due.room, page.count, || page))
    }
}

/// The task that shares a node's presence through Redis.
struct Sharing {
    /// Its own connection, apart from the heartbeat's and the broadcasts'.
    connection: ConnectionManager,
    /// Whether the heartbeat finds Redis unreachable (nothing then waits for it), and how often
    /// the broadcasts' connection was lost.
    shared: Arc<super::Shared>,
    node: String,
    scripts: Scripts,
    registry: Weak<Registry>,
    untold: Arc<Untold>,
    /// Whether Redis may not hold this node's presence as it is (at start, after a failed round,
    /// after Redis forgot the node or lost its connection): it starts over before the next round.
    stale: bool,
    /// The rooms of changes not told to Redis while stale: told everything after the start-over.
    dropped_rooms: HashSet<String>,
    /// The broadcasts' connection's losses seen so far.
    seen_disconnections: u64,
}

impl Sharing {
    async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<PresenceRequest>,
        mut leave: mpsc::Receiver<oneshot::Sender<()>>,
    ) {
        let mut beats = tokio::time::interval(BEAT);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // In this order: leaving waits for nothing queued, and beats keep their turn (the
            // first one, at once, before any request).
            tokio::select! {
                biased;
                done = leave.recv() => {
                    self.leave().await;
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                    return;
                }
                _ = beats.tick() => self.beat().await,
                request = requests.recv() => {
                    let Some(first) = request else { break };
                    // One round per turn.
                    let mut round = vec![first];
                    while round.len() < MAX_ROUND {
                        match requests.try_recv() {
                            Ok(request) => round.push(request),
                            Err(_) => break,
                        }
                    }
                    self.serve(round).await;
                }
            }
        }
    }

    fn unreachable(&self) -> bool {
        self.shared.unreachable()
    }

    /// Marks this node's presence stale if Redis was lost since last looked.
    fn notice_disconnections(&mut self) {
        let disconnections = self.shared.disconnections.load(Ordering::Relaxed);
        if disconnections != self.seen_disconnections {
            self.seen_disconnections = disconnections;
            self.stale = true;
        }
    }

    /// Tells Redis a round of changes and answers its page requests. A stale presence is started
    /// over first; while it cannot be, changes are dropped (the start-over will tell them) and
    /// pages are this node's.
    async fn serve(&mut self, mut round: Vec<PresenceRequest>) {
        if round.is_empty() {
            return;
        }
        self.notice_disconnections();
        // A stale presence is started over by the next beat (at most one a second, never while
        // Redis is unreachable): meanwhile changes are dropped and pages are this node's.
        if self.stale || self.unreachable() {
            self.stale = true;
            for request in round {
                if let PresenceRequest::Transition(transition) = request {
                    self.drop_change(&transition);
                }
                // Dropping a reply answers `None`.
            }
            return;
        }
        // No one waits for these anymore (pages that timed out): not asked. Decided once, so
        // that the answers line up with the requests however late they come.
        round.retain(
            |request| !matches!(request, PresenceRequest::Rooms { reply, .. } if reply.is_closed()),
        );
        let mut pipe = self.scripts.pipeline();
        for request in &round {
            match request {
                PresenceRequest::Transition(transition) => {
                    self.add_transition(&mut pipe, transition)
                }
                PresenceRequest::Rooms { queries, .. } => {
                    for query in queries {
                        let mut invocation = self.scripts.room.prepare_invoke();
                        invocation
                            .arg(&query.room)
                            .arg(query.after.as_deref().unwrap_or(""))
                            .arg(query.limit);
                        for user in &query.users {
                            invocation.arg(user);
                        }
                        pipe.invoke_script(&invocation);
                    }
                }
            }
        }
        let mut answers = match self.query(&pipe).await {
            Ok(answers) => answers.into_iter(),
            Err(error) => {
                tracing::warn!(%error, "presence could not be shared through Redis");
                // Only changes make it stale: Redis may or may not have them. Reads just fail.
                for request in round {
                    if let PresenceRequest::Transition(transition) = request {
                        self.drop_change(&transition);
                    }
                }
                return;
            }
        };
        for request in round {
            match request {
                PresenceRequest::Transition(transition) => {
                    let answer = answers.next().unwrap_or(Value::Nil);
                    let room = transition.room().to_owned();
                    if !self.record(transition, answer) {
                        self.stale = true;
                        self.dropped_rooms.insert(room);
                    }
                }
                PresenceRequest::Rooms { queries, reply } => {
                    // Every answer is read, even after an odd one, so that the next requests
                    // read theirs.
                    let rooms: Vec<Option<RoomAnswer>> = queries
                        .into_iter()
                        .map(|query| room_answer(answers.next(), query))
                        .collect();
                    let rooms: Option<Vec<RoomAnswer>> = rooms.into_iter().collect();
                    let _ = reply.send(rooms);
                }
            }
        }
    }

    /// Adds a beat that forgets up to `most` entries of a dead node (see [`BEAT_SCRIPT`]).
    fn add_beat(&self, pipe: &mut redis::Pipeline, most: usize) {
        pipe.invoke_script(
            self.scripts
                .beat
                .arg(&self.node)
                .arg(EXPIRY_MS)
                .arg(most)
                .arg(CLUSTER_SILENT_MS),
        );
    }

    /// A change Redis may not have: the presence is stale, and the room will be told all.
    fn drop_change(&mut self, transition: &Transition) {
        self.stale = true;
        self.dropped_rooms.insert(transition.room().to_owned());
    }

    fn add_transition(&self, pipe: &mut redis::Pipeline, transition: &Transition) {
        match transition {
            Transition::Arrived { room, user } => {
                pipe.invoke_script(
                    self.scripts
                        .arrive
                        .arg(&self.node)
                        .arg(room)
                        .arg(&user.id)
                        .arg(&user.name)
                        .arg(EXPIRY_MS),
                );
            }
            Transition::Left { room, user } => {
                pipe.invoke_script(
                    self.scripts
                        .depart
                        .arg(&self.node)
                        .arg(room)
                        .arg(&user.id)
                        .arg(EXPIRY_MS),
                );
            }
        }
    }

    /// Records a change Redis accepted, if the cluster sees one; `false` if Redis refused it
    /// (it does not know this node) or answered oddly: the presence is then stale.
    fn record(&self, transition: Transition, answer: Value) -> bool {
        let Ok((outcome, name)) = redis::from_redis_value::<(i8, String)>(answer) else {
            return false;
        };
        match (transition, outcome) {
            (_, -1) => return false,
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
        true
    }

    /// Tells Redis this node is alive, records who left with what it forgot of dead nodes, and
    /// starts this node's presence over if it is stale. Even while the heartbeat finds Redis
    /// unreachable: that is the broadcasts' connection, and a node that stopped beating would
    /// be taken for dead.
    async fn beat(&mut self) {
        self.notice_disconnections();
        let mut pipe = self.scripts.pipeline();
        self.add_beat(&mut pipe, MOST_FORGOTTEN);
        let beat = self
            .query(&pipe)
            .await
            .and_then(|mut answers| beat_answer(answers.pop().unwrap_or(Value::Nil)));
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
        if self.stale && !self.unreachable() {
            self.start_over().await;
        }
    }

    /// Replaces what Redis holds of this node with what its registry holds now, a round at a
    /// time. The rooms hear the difference: who is told and was not there arrives, who was
    /// there and is not told leaves. Changes queued meanwhile are told after, and each script
    /// is idempotent, so they agree. Rooms whose changes were dropped while stale may have
    /// missed a departure no one can tell anymore (Redis lost it): they are sent their count
    /// and first page, which replace what their members list.
    async fn start_over(&mut self) {
        match self.replace_in_redis().await {
            Ok(()) => {
                self.stale = false;
                for room in self.dropped_rooms.drain() {
                    self.untold.record(&room, Changes::everything);
                }
            }
            Err(error) => tracing::debug!(%error, "presence could not be started over yet"),
        }
    }

    /// The start-over's rounds: first who is online here, told as arrivals (no change for who
    /// Redis holds already) and kept aside, then what Redis holds of this node and was not
    /// kept, forgotten. In that order, nobody still online is ever missing from Redis, where
    /// another node's check or page would find them gone.
    async fn replace_in_redis(&mut self) -> redis::RedisResult<()> {
        let Some(registry) = self.registry.upgrade() else {
            return Ok(());
        };
        let online = registry.snapshot();
        drop(registry);
        let keep = format!("causerie:keep:{}", self.node);
        let entry = |(room, user): &(String, User)| format!("{room}\0{}", user.id);
        // One entry per user and room (the registry lists each user of a room once).
        let kept = online.len();
        // At least one round, which beats and empties what an earlier start-over kept.
        let mut rounds: Vec<&[(String, User)]> = online.chunks(MAX_ROUND).collect();
        if rounds.is_empty() {
            rounds.push(&[]);
        }
        for (round, chunk) in rounds.into_iter().enumerate() {
            let mut pipe = self.scripts.pipeline();
            // Each round beats first: an arrival needs this node alive, and a long start-over
            // must not let it expire.
            self.add_beat(&mut pipe, 0);
            if round == 0 {
                pipe.del(&keep).ignore();
            }
            if !chunk.is_empty() {
                let entries: Vec<String> = chunk.iter().map(entry).collect();
                pipe.sadd(&keep, entries).ignore();
                // Gone with the node, should it stop mid-way.
                pipe.expire(&keep, KEEP_SECONDS).ignore();
            }
            let arrivals: Vec<Transition> = chunk
                .iter()
                .map(|(room, user)| Transition::Arrived {
                    room: room.clone(),
                    user: user.clone(),
                })
                .collect();
            for arrived in &arrivals {
                self.add_transition(&mut pipe, arrived);
            }
            let mut answers = self.query(&pipe).await?.into_iter();
            let beat = answers.next().unwrap_or(Value::Nil);
            let (known, _gone) = beat_answer(beat)?;
            // What Redis did is recorded whatever follows: a retry finds it done.
            let mut recorded = true;
            for (arrived, answer) in arrivals.into_iter().zip(answers) {
                recorded &= self.record(arrived, answer);
            }
            // Forgotten meanwhile (the first round finds this node silent, which is why it
            // starts over): others may be telling its rooms its users left. The next beat
            // starts over again, and tells them back.
            if !recorded || (round > 0 && known == 0) {
                return Err(forgotten());
            }
        }
        loop {
            let mut pipe = self.scripts.pipeline();
            pipe.invoke_script(
                self.scripts
                    .forget_unkept
                    .arg(&self.node)
                    .arg(&keep)
                    .arg(kept)
                    .arg(MOST_FORGOTTEN)
                    .arg(EXPIRY_MS),
            );
            let answer = self.query(&pipe).await?.pop().unwrap_or(Value::Nil);
            let (left, gone): (i64, Vec<String>) = redis::from_redis_value(answer)?;
            self.gone(&gone);
            match left {
                0 => return Ok(()),
                // Forgotten, or what was kept is lost: the next beat starts over again.
                ..0 => return Err(forgotten()),
                _ => {}
            }
        }
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

    /// Sends a round on the presence connection (whose response timeout is [`ROUND_TIMEOUT`]).
    async fn query(&mut self, pipe: &redis::Pipeline) -> redis::RedisResult<Vec<Value>> {
        let answers = pipe.query_async(&mut self.connection).await;
        self.scripts.loaded = answers.is_ok();
        answers
    }
}

/// A beat's answer: whether Redis knew the node alive, and `room id name` of who left.
fn beat_answer(answer: Value) -> redis::RedisResult<(u8, Vec<String>)> {
    Ok(redis::from_redis_value(answer)?)
}

/// The error of a start-over during which Redis forgot this node (it was silent too long).
fn forgotten() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(
        "Redis forgot this node during its start-over",
    ))
}

/// A room from Redis's answer to [`ROOM`]: the count, up to `limit + 1` of `name NUL id`, and
/// whether each user asked about is online.
fn room_answer(answer: Option<Value>, query: RoomQuery) -> Option<RoomAnswer> {
    let (count, mut members, online): (u32, Vec<String>, Vec<u8>) =
        redis::from_redis_value(answer.unwrap_or(Value::Nil)).ok()?;
    let more = members.len() > query.limit;
    members.truncate(query.limit);
    let users: Vec<User> = members
        .iter()
        .filter_map(|member| crate::presence::parse_cursor(member))
        .map(|(name, id)| User {
            id: id.to_owned(),
            name: name.to_owned(),
        })
        .collect();
    let next = more.then(|| members.last().cloned()).flatten();
    let online = query
        .users
        .into_iter()
        .zip(online.into_iter().map(|flag| flag == 1))
        .collect();
    Some(RoomAnswer {
        page: OnlinePage { users, count, next },
        online,
    })
}
