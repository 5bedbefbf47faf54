//! Several nodes: in-process servers sharing one PostgreSQL database and one Redis, each with its
//! own clients. A message committed on one node reaches the clients of the other; while Redis is
//! gone each node goes on for its own clients, and the others' clients learn they are behind from
//! the next message's seq.

mod support;

use causerie_server::testing::{TestHaproxy, TestPostgres, TestRedis, metric, until_metric};
use serde_json::{Value, json};
use std::time::Duration;

use support::{ServerProcess, TestClient, TestServer, auth, eventually, http};

/// A node of a cluster on `database_url` and `redis_url`.
async fn node(database_url: &str, redis_url: &str) -> TestServer {
    TestServer::start_node(database_url, redis_url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_two_nodes_chat_and_a_token_works_on_either() {
    let database = TestPostgres::shared().create_database().await;
    // A Redis of its own: nodes on one Redis share their broadcasts, whatever their database.
    let redis = TestRedis::start();
    let (a, b) = (
        node(&database, &redis.url()).await,
        node(&database, &redis.url()).await,
    );
    let (mut ada, welcome) = TestClient::join(&a.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&b.url(), auth("Bob")).await;

    let sent = ada
        .send_ok("hello-bob", "general", "hello from node A")
        .await;
    let got = bob.next_message().await;
    assert_eq!((got.id, got.seq), (sent.id, sent.seq));
    assert_eq!(ada.next_message().await.seq, sent.seq);
    let reply = bob.send_ok("hello-ada", "general", "and from node B").await;
    assert_eq!(reply.seq, sent.seq + 1, "seqs count on across nodes");
    assert_eq!(ada.next_message().await.id, reply.id);

    // Ada's token, from node A, brings her back as herself on node B.
    let mut back = auth("Ada");
    back["token"] = json!(welcome.token);
    let (mut ada_on_b, again) = TestClient::join(&b.url(), back).await;
    assert_eq!(again.user.id, welcome.user.id);

    // What concerns her devices reaches them on either node: her read marker...
    let read = ada
        .request("read", json!({"room": "general", "seq": reply.seq}))
        .await;
    assert_eq!(read["ok"], true, "{read}");
    let told = ada_on_b.next("read").await;
    assert_eq!(told["seq"], reply.seq, "{told}");
    // ...and a direct conversation Bob opens from node B, on both of hers.
    let opened = bob
        .request("direct", json!({"user": welcome.user.id}))
        .await;
    assert_eq!(opened["ok"], true, "{opened}");
    for device in [&mut ada, &mut ada_on_b] {
        let direct = device.next("direct").await;
        assert_eq!(direct["room"], opened["room"], "{direct}");
    }
}

/// The next `presence` for `room` that tells `name` arrived (`joined`) or left (`left`), skipping
/// others, within `within`.
async fn told(client: &mut TestClient, change: &str, name: &str, within: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let presence = client
            .next_within("presence", left)
            .await
            .unwrap_or_else(|| panic!("never told that {name} {change}"));
        let mut listed = presence[change].as_array().into_iter().flatten();
        if listed.any(|user| user["name"] == name) {
            return presence;
        }
    }
}

/// Applies a `presence` event to a list of who is online (by name), as a client does.
fn apply(listed: &mut Vec<String>, presence: &Value) {
    if presence["truncated"] == true {
        *listed = names(&presence["online"])
            .into_iter()
            .map(str::to_owned)
            .collect();
        return;
    }
    let left = names(&presence["left"]);
    listed.retain(|name| !left.contains(&name.as_str()));
    for name in names(&presence["joined"]) {
        if !listed.iter().any(|listed| listed == name) {
            listed.push(name.to_owned());
        }
    }
    listed.sort();
}

/// The names in a page of who is online.
fn names(users: &Value) -> Vec<&str> {
    let users = users.as_array().into_iter().flatten();
    users.filter_map(|user| user["name"].as_str()).collect()
}

/// Who is online is the cluster's: every node lists the users of all, someone on two nodes counts
/// once, each arrival and departure reaches the members on every node, and the users of a node
/// that stops, or is killed, leave with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_is_online_is_the_same_on_every_node() {
    let database = TestPostgres::shared().create_database().await;
    let redis = TestRedis::start();
    let (a, mut b) = (
        node(&database, &redis.url()).await,
        node(&database, &redis.url()).await,
    );
    let (mut ada, ada_welcome) = TestClient::join(&a.url(), auth("Ada")).await;
    let (bob, welcome) = TestClient::join(&b.url(), auth("Bob")).await;
    assert_eq!(welcome.online_count, 2, "{:?}", welcome.online);
    let online: Vec<&str> = welcome.online.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(online, ["Ada", "Bob"]);
    let arrived = told(&mut ada, "joined", "Bob", support::PATIENCE).await;
    assert_eq!(arrived["count"], 2, "{arrived}");

    // Ada on node B too, with her token: still one of two.
    let mut again = auth("Ada");
    again["token"] = json!(ada_welcome.token);
    let (ada_on_b, _) = TestClient::join(&b.url(), again).await;
    let who = bob.request("who", json!({"room": "general"})).await;
    assert_eq!(
        (who["count"].as_u64(), names(&who["users"])),
        (Some(2), vec!["Ada", "Bob"])
    );
    // Pages across nodes go on where the last ended.
    let first = ada
        .request("who", json!({"room": "general", "limit": 1}))
        .await;
    assert_eq!(names(&first["users"]), ["Ada"], "{first}");
    let rest = ada
        .request("who", json!({"room": "general", "after": first["next"]}))
        .await;
    assert_eq!(names(&rest["users"]), ["Bob"], "{rest}");
    // Her connection on node B goes: she is still online on node A, so nobody hears she left.
    ada_on_b.disconnect().await;

    // Bob leaves node B: Ada hears it on node A.
    bob.disconnect().await;
    let left = told(&mut ada, "left", "Bob", support::PATIENCE).await;
    assert_eq!(left["count"], 1, "{left}");
    assert!(names(&left["left"]) == ["Bob"], "Ada left nowhere: {left}");

    // Cy on node B, which stops as a server does on SIGTERM: its users are told gone at once,
    // well before a silent node's expiry.
    let (_cy, _) = TestClient::join(&b.url(), auth("Cy")).await;
    told(&mut ada, "joined", "Cy", support::PATIENCE).await;
    let stopping = tokio::time::Instant::now();
    b.stop().await;
    told(&mut ada, "left", "Cy", support::PATIENCE).await;
    let expiry = causerie_server::cluster::presence::EXPIRY;
    assert!(
        stopping.elapsed() < expiry,
        "told only once the node expired"
    );

    // Dan on a node that is killed: his user leaves once the node is found silent.
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut c = node_process(dir.path(), &database, &redis.url());
    let (_dan, _) = TestClient::join(&c.url(), auth("Dan")).await;
    told(&mut ada, "joined", "Dan", support::PATIENCE).await;
    c.kill();
    let left = told(&mut ada, "left", "Dan", expiry + support::PATIENCE).await;
    assert_eq!(left["count"], 1, "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_node_serves_its_own_clients_and_the_others_catch_up_after() {
    let database = TestPostgres::shared().create_database().await;
    let mut redis = TestRedis::start();
    let (a, b) = (
        node(&database, &redis.url()).await,
        node(&database, &redis.url()).await,
    );
    let (ada, _) = TestClient::join(&a.url(), auth("Ada")).await;
    let (mut ann, _) = TestClient::join(&a.url(), auth("Ann")).await;
    let (mut bob, bob_welcome) = TestClient::join(&b.url(), auth("Bob")).await;
    let first = ada.send_ok("first", "general", "all of us").await;
    assert_eq!(bob.next_message().await.id, first.id);

    redis.kill();
    // Who is online is, meanwhile, each node's own.
    let who = bob.request("who", json!({"room": "general"})).await;
    assert_eq!(names(&who["users"]), ["Bob"], "{who}");
    // Committed and acked, and delivered on node A, though node B cannot be told.
    let alone = ada.send_ok("alone", "general", "node A only").await;
    assert_eq!(ann.next_message().await.id, first.id);
    assert_eq!(ann.next_message().await.id, alone.id);
    bob.expect_no("message").await;
    let local_only = metric(a.address, "causerie_broadcasts_local_only_total").await;
    assert!(local_only >= 1, "{local_only}");

    // The outage lasts until both nodes have noticed it, or it could fall between two beats.
    until_metric(a.address, "causerie_redis_reachable", 0).await;
    until_metric(b.address, "causerie_redis_reachable", 0).await;
    // Ann leaves meanwhile: Redis cannot be told, and the restarted one will not know her.
    ann.disconnect().await;
    redis.resume();
    // Once Redis answers again, the nodes tell their rooms their latest seqs: Bob learns he is
    // behind though nothing more is sent.
    let head = bob.next("head").await;
    assert_eq!(
        (&head["room"], &head["seq"]),
        (&json!("general"), &json!(alone.seq))
    );
    // Once Redis is back, the next message reaches node B again; its seq skips the one Bob
    // missed, which tells his client to catch up, and the catch-up has it.
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    let mut n = 0;
    let next = loop {
        n += 1;
        let sent = ada.send_ok(&format!("after-{n}"), "general", "back").await;
        if let Ok(got) = tokio::time::timeout(support::QUIET, bob.next_message()).await {
            break (sent, got);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node B never heard again"
        );
    };
    let (sent, got) = next;
    assert_eq!(got.id, sent.id);
    assert!(
        got.seq > alone.seq,
        "Bob's next message skips what he missed"
    );
    let page = bob
        .request("history", json!({"room": "general", "after": first.seq}))
        .await;
    assert_eq!(page["ok"], true, "{page}");
    assert_eq!(page["messages"][0]["id"], alone.id.as_str(), "{page}");

    // The restarted Redis lost who was online: each node tells it again, and it is whole, Ann
    // gone. Bob's list (his welcome's, kept by the events as a client keeps it) ends the same.
    let mut roster = Roster::default();
    roster.follow("general", &bob_welcome.online);
    assert_eq!(roster.listed("general"), ["Ada", "Ann", "Bob"]);
    roster.until(&mut bob, "general", &["Ada", "Bob"]).await;
    eventually("who lists Ada and Bob", async || {
        let who = bob.request("who", json!({"room": "general"})).await;
        names(&who["users"]) == ["Ada", "Bob"]
    })
    .await;
}

/// A Redis that stops answering without closing its connections (a stalled machine, a long
/// fork), for longer than a node's expiry: each node goes on alone once it finds Redis silent,
/// and once it answers again the cluster is whole. The other node's clients have what was sent
/// meanwhile, who is online agrees, and nobody who stayed online is told gone or back: every
/// node was as silent as Redis, so none is taken for dead. A quiet room, where nothing changed
/// meanwhile, shows it best (in a room that changed, the page sent after the outage replaces
/// the changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_frozen_past_the_expiry_leaves_the_cluster_whole_once_it_answers() {
    let database = TestPostgres::shared().create_database().await;
    let mut redis = TestRedis::start();
    let (a, b) = (
        node(&database, &redis.url()).await,
        node(&database, &redis.url()).await,
    );
    let (mut ada, ada_welcome) = TestClient::join(&a.url(), auth("Ada")).await;
    let (mut ann, _) = TestClient::join(&a.url(), auth("Ann")).await;
    let (mut bob, bob_welcome) = TestClient::join(&b.url(), auth("Bob")).await;
    let mut ada_roster = Roster::joining_quiet(&ada, &ada_welcome).await;
    let mut bob_roster = Roster::joining_quiet(&bob, &bob_welcome).await;
    for (client, roster) in [(&mut ada, &mut ada_roster), (&mut bob, &mut bob_roster)] {
        roster
            .until(client, "general", &["Ada", "Ann", "Bob"])
            .await;
        roster.until(client, "quiet", &["Ada", "Bob"]).await;
        roster.forget_changes();
    }
    let first = ada.send_ok("first", "general", "all of us").await;
    assert_eq!(bob.next_message().await.id, first.id);

    redis.freeze();
    let frozen_at = tokio::time::Instant::now();
    // Sent before the nodes find Redis silent: delivered on node A once the publish gives up.
    let frozen = ada.send_ok("frozen", "general", "as Redis froze").await;
    assert_eq!(ann.next_message().await.id, first.id);
    assert_eq!(ann.next_message().await.id, frozen.id);
    until_metric(a.address, "causerie_redis_reachable", 0).await;
    until_metric(b.address, "causerie_redis_reachable", 0).await;
    // Known down: node A delivers at once, a newcomer on node B is welcomed with all that is
    // committed, and who is online is each node's own.
    let alone = ada.send_ok("alone", "general", "still no Redis").await;
    assert_eq!(ann.next_message().await.id, alone.id);
    let (mut cy, cy_welcome) = TestClient::join(&b.url(), auth("Cy")).await;
    assert_eq!(cy_welcome.head, alone.seq, "{cy_welcome:?}");
    let who = bob.request("who", json!({"room": "general"})).await;
    assert_eq!(names(&who["users"]), ["Bob", "Cy"], "{who}");
    // Ann leaves meanwhile, which Redis is told only once it answers again.
    ann.disconnect().await;
    let expiry = causerie_server::cluster::presence::EXPIRY;
    tokio::time::sleep_until(frozen_at + expiry + Duration::from_secs(2)).await;
    redis.thaw();

    // Bob has what was sent meanwhile (the broadcast Redis held, or his room's head, from which
    // his client catches up), and his list ends as the cluster's: Ann gone, Cy there.
    let mut heard = vec![];
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    while !heard.contains(&alone.seq) || bob_roster.listed("general") != ["Ada", "Bob", "Cy"] {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(received) = bob.next_of(&["message", "head", "presence"], left).await else {
            panic!("Bob heard seqs {heard:?}, and lists {bob_roster:?}");
        };
        match received.event.as_str() {
            "presence" => bob_roster.apply(&received.data),
            _ => heard.push(received.data["seq"].as_u64().expect("a seq")),
        }
    }
    let page = bob
        .request("history", json!({"room": "general", "after": first.seq}))
        .await;
    let ids: Vec<&str> = page["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|message| message["id"].as_str())
        .collect();
    assert_eq!(ids, [frozen.id.as_str(), alone.id.as_str()], "{page}");
    ada_roster
        .until(&mut ada, "general", &["Ada", "Bob", "Cy"])
        .await;
    for client in [&ada, &cy] {
        eventually("who lists Ada, Bob and Cy", async || {
            let who = client.request("who", json!({"room": "general"})).await;
            names(&who["users"]) == ["Ada", "Bob", "Cy"]
        })
        .await;
    }

    // Broadcasts cross again, both ways; meanwhile nobody was told that someone who stayed
    // online left or came back.
    let from_a = ada.send_ok("from-a", "general", "back to normal").await;
    bob_roster.until_message(&mut bob, &from_a.id).await;
    let from_b = cy.send_ok("from-b", "general", "and here").await;
    ada_roster.until_message(&mut ada, &from_b.id).await;
    // Cy's own node tells him too (after what Redis held of the outage).
    while cy.next_message().await.id != from_a.id {}
    for (client, roster) in [("Ada", &ada_roster), ("Bob", &bob_roster)] {
        let general = &roster.rooms["general"];
        let (left, joined) = (&general.left, &general.joined);
        assert!(
            left.iter().all(|name| name == "Ann"),
            "{client} told {left:?} left"
        );
        assert!(
            joined.iter().all(|name| name == "Cy"),
            "{client} told {joined:?} joined"
        );
        let quiet = &roster.rooms["quiet"];
        assert_eq!(
            quiet.listed,
            ["Ada", "Bob"],
            "{client}'s list of the quiet room"
        );
        assert!(quiet.left.is_empty(), "{client} told {:?} left", quiet.left);
        assert!(
            quiet.joined.is_empty(),
            "{client} told {:?} joined",
            quiet.joined
        );
    }
}

/// A Redis that keeps its data, back from a restart longer than a node's expiry (a crash and a
/// slow start, a failover): it holds each node's last beat from before, long past. Every node
/// was as cut off as Redis, so none is taken for dead: nobody who stayed online is told gone,
/// in any room, and the cluster chats on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_back_from_its_snapshot_past_the_expiry_takes_no_node_for_dead() {
    let database = TestPostgres::shared().create_database().await;
    let mut redis = TestRedis::start();
    let a = node(&database, &redis.url()).await;
    // Nodes started apart beat apart, as they do in production.
    let beat = causerie_server::cluster::presence::BEAT;
    tokio::time::sleep(beat / 2).await;
    let b = node(&database, &redis.url()).await;
    let (mut ada, ada_welcome) = TestClient::join(&a.url(), auth("Ada")).await;
    let (mut bob, bob_welcome) = TestClient::join(&b.url(), auth("Bob")).await;
    let mut ada_roster = Roster::joining_quiet(&ada, &ada_welcome).await;
    let mut bob_roster = Roster::joining_quiet(&bob, &bob_welcome).await;
    for (client, roster) in [(&mut ada, &mut ada_roster), (&mut bob, &mut bob_roster)] {
        roster.until(client, "general", &["Ada", "Bob"]).await;
        roster.until(client, "quiet", &["Ada", "Bob"]).await;
    }

    redis.save();
    redis.kill();
    let stopped = tokio::time::Instant::now();
    until_metric(a.address, "causerie_redis_reachable", 0).await;
    until_metric(b.address, "causerie_redis_reachable", 0).await;
    let expiry = causerie_server::cluster::presence::EXPIRY;
    tokio::time::sleep_until(stopped + expiry + Duration::from_secs(1)).await;
    redis.resume();
    until_metric(a.address, "causerie_redis_reachable", 1).await;
    until_metric(b.address, "causerie_redis_reachable", 1).await;

    // Whatever the nodes tell their rooms as they take up again, until the nodes may be
    // forgotten again (a node wrongly taken for dead then would be told gone too).
    let watched = expiry + 2 * beat;
    tokio::join!(
        ada_roster.during(&mut ada, watched),
        bob_roster.during(&mut bob, watched)
    );
    for (client, roster) in [("Ada", &ada_roster), ("Bob", &bob_roster)] {
        for room in ["general", "quiet"] {
            let listed = &roster.rooms[room];
            assert_eq!(listed.listed, ["Ada", "Bob"], "{client}'s list of {room}");
            assert!(
                listed.left.is_empty(),
                "{client} lost {:?} in {room}",
                listed.left
            );
        }
    }
    let from_a = ada.send_ok("from-a", "quiet", "still here").await;
    bob_roster.until_message(&mut bob, &from_a.id).await;
    let from_b = bob.send_ok("from-b", "quiet", "me too").await;
    ada_roster.until_message(&mut ada, &from_b.id).await;
}

/// Who is online in the rooms a client follows, as it keeps it from its `welcome`, its `join`
/// acks and the `presence` events, with who its lists gained and lost.
#[derive(Debug, Default)]
struct Roster {
    rooms: std::collections::HashMap<String, Listed>,
}

#[derive(Debug, Default)]
struct Listed {
    listed: Vec<String>,
    joined: Vec<String>,
    left: Vec<String>,
}

impl Roster {
    /// Follows `general` from `client`'s `welcome`, and joins it to a room of its own, `quiet`.
    async fn joining_quiet(client: &TestClient, welcome: &causerie_protocol::Welcome) -> Self {
        let mut roster = Self::default();
        roster.follow("general", &welcome.online);
        let joined = client.request("join", json!({"room": "quiet"})).await;
        let online: Vec<causerie_protocol::User> =
            serde_json::from_value(joined["online"].clone()).expect("a page");
        roster.follow("quiet", &online);
        roster
    }

    fn follow(&mut self, room: &str, online: &[causerie_protocol::User]) {
        let listed = online.iter().map(|user| user.name.clone()).collect();
        let listed = Listed {
            listed,
            ..Listed::default()
        };
        self.rooms.insert(room.to_owned(), listed);
    }

    fn listed(&self, room: &str) -> &[String] {
        self.rooms.get(room).map_or(&[], |room| &room.listed)
    }

    fn apply(&mut self, presence: &Value) {
        let Some(room) = presence["room"]
            .as_str()
            .and_then(|room| self.rooms.get_mut(room))
        else {
            return;
        };
        // What the list shows: a user told arrived who is listed already, or told gone who is
        // not, changes nothing.
        let before = room.listed.clone();
        apply(&mut room.listed, presence);
        let arrived = room.listed.iter().filter(|name| !before.contains(name));
        room.joined.extend(arrived.cloned());
        let gone = before.iter().filter(|name| !room.listed.contains(name));
        room.left.extend(gone.cloned());
    }

    fn forget_changes(&mut self) {
        for room in self.rooms.values_mut() {
            room.joined.clear();
            room.left.clear();
        }
    }

    /// Applies `client`'s `presence` events until it lists `expected` in `room`.
    async fn until(&mut self, client: &mut TestClient, room: &str, expected: &[&str]) {
        let deadline = tokio::time::Instant::now() + support::PATIENCE;
        while self.listed(room) != expected {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(presence) = client.next_within("presence", left).await else {
                panic!("{room} stayed {:?}, not {expected:?}", self.listed(room));
            };
            self.apply(&presence);
        }
    }

    /// Applies `client`'s `presence` events for `how_long`.
    async fn during(&mut self, client: &mut TestClient, how_long: Duration) {
        let end = tokio::time::Instant::now() + how_long;
        let left = || end.saturating_duration_since(tokio::time::Instant::now());
        while let Some(presence) = client.next_within("presence", left()).await {
            self.apply(&presence);
        }
    }

    /// Applies `client`'s `presence` events until the message `id` arrives, skipping others.
    async fn until_message(&mut self, client: &mut TestClient, id: &str) {
        let deadline = tokio::time::Instant::now() + support::PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(received) = client.next_of(&["message", "presence"], left).await else {
                panic!("message {id} never arrived");
            };
            if received.event == "presence" {
                self.apply(&received.data);
            } else if received.data["id"] == id {
                return;
            }
        }
    }
}

/// Whoever can publish on Redis can send a node requests no node sends: a broadcast of binary
/// data (which the adapter cannot encode, and would panic on), a remote disconnect of a room's
/// sockets, or bytes that are no request. The node drops them, keeps its clients, and goes on
/// hearing the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_no_node_sends_is_dropped_and_the_node_goes_on_hearing() {
    use socketioxide_core::adapter::BroadcastOptions;
    use socketioxide_core::adapter::remote_packet::{RequestOut, RequestTypeOut};
    use socketioxide_core::packet::Packet;
    use socketioxide_core::{Uid, Value};

    let database = TestPostgres::shared().create_database().await;
    // A Redis of its own: nodes on one Redis share their broadcasts, whatever their database.
    let redis = TestRedis::start();
    let (a, b) = (
        node(&database, &redis.url()).await,
        node(&database, &redis.url()).await,
    );
    let (ada, _) = TestClient::join(&a.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&b.url(), auth("Bob")).await;

    let packet = Packet::event("/", Value::Bytes(vec![1, 2, 3].into()));
    let mut options = BroadcastOptions::default();
    options.rooms.push("room:general".into());
    let binary = RequestOut::new(Uid::new(), RequestTypeOut::Broadcast(&packet), &options);
    let binary = rmp_serde::to_vec(&binary).expect("encodes");
    let disconnect = RequestOut::new(Uid::new(), RequestTypeOut::DisconnectSockets, &options);
    let disconnect = rmp_serde::to_vec(&disconnect).expect("encodes");
    let client = redis::Client::open(redis.url()).expect("a Redis URL");
    let mut publisher = client
        .get_multiplexed_async_connection()
        .await
        .expect("connects to Redis");
    for hostile in [binary, disconnect, b"not a request".to_vec()] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("socket.io-request#/#")
            .arg(hostile)
            .query_async(&mut publisher)
            .await
            .expect("publishes");
    }
    let sent = ada.send_ok("after", "general", "still there?").await;
    assert_eq!(bob.next_message().await.id, sent.id);
}

/// A node of a cluster on `database_url` and `redis_url`, in a process of its own (to be killed),
/// its files in `dir`.
fn node_process(dir: &std::path::Path, database_url: &str, redis_url: &str) -> ServerProcess {
    let secret = causerie_server::testing::CLUSTER_SECRET_KEY;
    let flags = [
        "--database-url",
        database_url,
        "--redis-url",
        redis_url,
        "--secret-key",
        secret,
    ];
    ServerProcess::start(dir, "127.0.0.1:0", &flags)
}

/// Two node processes on one database and one Redis, behind HAProxy, as deployed
/// (`testing::haproxy`). Stopped in this order when dropped.
struct Deployed {
    nodes: [ServerProcess; 2],
    haproxy: TestHaproxy,
    _redis: TestRedis,
    _dirs: [tempfile::TempDir; 2],
}

impl Deployed {
    async fn start() -> Self {
        let database = TestPostgres::shared().create_database().await;
        let redis = TestRedis::start();
        let dirs = [
            tempfile::tempdir().expect("a dir"),
            tempfile::tempdir().expect("a dir"),
        ];
        let nodes = [
            node_process(dirs[0].path(), &database, &redis.url()),
            node_process(dirs[1].path(), &database, &redis.url()),
        ];
        let addresses = [nodes[0].address, nodes[1].address];
        let haproxy = TestHaproxy::start("127.0.0.1:0".parse().expect("an address"), &addresses);
        Self {
            nodes,
            haproxy,
            _redis: redis,
            _dirs: dirs,
        }
    }

    fn addresses(&self) -> [std::net::SocketAddr; 2] {
        [self.nodes[0].address, self.nodes[1].address]
    }
}

/// Two node processes behind HAProxy, as deployed (`testing::haproxy`): clients land on both
/// nodes and chat; a node killed with SIGKILL loses nothing it acked, and its client comes back
/// through HAProxy to the other node, where a resend of an acked message is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_the_clients_of_a_killed_node_carry_on_on_the_other() {
    use rust_socketio::TransportType::Websocket;

    let mut cluster = Deployed::start().await;
    let (addresses, haproxy) = (cluster.addresses(), &cluster.haproxy);

    let mut ada = TestClient::connect_over(&haproxy.url(), auth("Ada"), Websocket).await;
    let welcome = ada.expect_welcome().await;
    let ada_node = usize::from(metric(addresses[0], "causerie_connections").await == 0);
    let mut bob = TestClient::connect_over(&haproxy.url(), auth("Bob"), Websocket).await;
    bob.expect_welcome().await;
    // HAProxy spreads them: one on each node.
    let counts = [
        metric(addresses[0], "causerie_connections").await,
        metric(addresses[1], "causerie_connections").await,
    ];
    assert_eq!(counts, [1, 1]);

    let acked = ada.send_ok("before-the-kill", "general", "one").await;
    assert_eq!(bob.next_message().await.id, acked.id);

    cluster.nodes[ada_node].kill();
    // Back through HAProxy, which sends her to the node still alive, as herself.
    let mut back = auth("Ada");
    back["token"] = json!(welcome.token);
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    let (again, ada) = loop {
        let mut client = TestClient::connect_over(&haproxy.url(), back.clone(), Websocket).await;
        if let Some(welcome) = client.next_within("welcome", support::QUIET).await {
            break (welcome, client);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Ada never came back"
        );
    };
    assert_eq!(
        metric(addresses[1 - ada_node], "causerie_connections").await,
        2
    );
    assert_eq!(again["user"]["id"], json!(welcome.user.id));
    // A resend of what was acked is the same message, stored once; the conversation goes on.
    let resent = ada.send_ok("before-the-kill", "general", "one").await;
    assert_eq!((resent.id, resent.seq), (acked.id.clone(), acked.seq));
    let after = ada.send_ok("after-the-kill", "general", "two").await;
    assert_eq!(bob.next_message().await.id, after.id);
    let page = bob.request("history", json!({"room": "general"})).await;
    let ids: Vec<&str> = page["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [acked.id.as_str(), after.id.as_str()], "{page}");
}

/// Messages each sender of the kill test sends, one after the other.
const MESSAGES_PER_SENDER: usize = 30;

/// One sender behind the load balancer: sends its messages in order, each until acked, and
/// after a lost connection or a missing ack connects again (as itself) and resends the same
/// `id`, as a client's outbox does. Returns the acked messages: `(client id, message id)`.
async fn send_until_acked(url: String, sender: usize) -> Vec<(String, String)> {
    use rust_socketio::TransportType::Websocket;
    let mut auth = auth(&format!("Sender{sender}"));
    let mut client: Option<TestClient> = None;
    let mut acked = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for n in 0..MESSAGES_PER_SENDER {
        let id = format!("s{sender}-{n}");
        loop {
            assert!(tokio::time::Instant::now() < deadline, "{id} never acked");
            if client.is_none() {
                let Some(mut connected) =
                    TestClient::try_connect_over(&url, auth.clone(), Websocket).await
                else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                match connected.next_within("welcome", support::PATIENCE).await {
                    Some(welcome) => auth["token"] = welcome["token"].clone(),
                    None => continue,
                }
                client = Some(connected);
            }
            let Some(connected) = &client else { continue };
            let message = json!({"id": id, "room": "general", "text": format!("message {n}")});
            let ack = connected
                .try_request("message", message, Duration::from_secs(2))
                .await;
            match ack {
                Some(ack) if ack["ok"] == true => {
                    let stored = ack["message"]["id"].as_str().expect("an id").to_owned();
                    acked.push((id, stored));
                    break;
                }
                // Refused (the node shutting down) or unanswered (the node gone): again, on a
                // new connection.
                _ => client = None,
            }
        }
    }
    acked
}

/// kill -9 of a node behind HAProxy while 20 clients send with acks and retries: nothing acked
/// is lost, nothing is stored twice, and the room's seqs stay gap-free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_20_senders_loses_nothing_acked_and_stores_nothing_twice() {
    let mut cluster = Deployed::start().await;
    let haproxy = &cluster.haproxy;

    let senders: Vec<_> = (0..20)
        .map(|sender| tokio::spawn(send_until_acked(haproxy.url(), sender)))
        .collect();
    // Mid-stream: once a third of the messages are acked, as counted by the survivor's store.
    let (mut watcher, _) = TestClient::join(&cluster.nodes[1].url(), auth("Watcher")).await;
    let mut seen = 0;
    while seen < 20 * MESSAGES_PER_SENDER / 3 {
        watcher.next_message().await;
        seen += 1;
    }
    cluster.nodes[0].kill();
    let mut acked = Vec::new();
    for sender in senders {
        acked.extend(sender.await.expect("a sender"));
    }
    assert_eq!(acked.len(), 20 * MESSAGES_PER_SENDER);

    // The room's whole log, from the surviving node.
    let mut stored: Vec<Value> = Vec::new();
    let mut after = 0;
    loop {
        let page = watcher
            .request(
                "history",
                json!({"room": "general", "after": after, "limit": 100}),
            )
            .await;
        assert_eq!(page["ok"], true, "{page}");
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        let Some(last) = messages.last() else { break };
        after = last["seq"].as_u64().expect("a seq");
        stored.extend(messages);
    }
    let seqs: Vec<u64> = stored.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    let mut ids: Vec<&str> = stored
        .iter()
        .filter_map(|m| m["clientId"].as_str())
        .collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), before, "a message stored twice");
    for (client_id, id) in &acked {
        let found = stored.iter().find(|m| m["clientId"] == client_id.as_str());
        assert_eq!(
            found.map(|m| &m["id"]),
            Some(&json!(id)),
            "acked {client_id} is not stored as acked"
        );
    }
    assert_eq!(stored.len(), acked.len(), "stored only what was sent");
}

/// PostgreSQL stopped under two nodes: neither acks what it cannot commit, both say why, and
/// both take messages again once it is back, without a restart, delivering across nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_two_nodes_refuses_then_both_recover_without_a_restart() {
    let mut postgres = TestPostgres::start();
    let database = postgres.create_database().await;
    let redis = TestRedis::start();
    let (a, b) = (
        node(&database, &redis.url()).await,
        node(&database, &redis.url()).await,
    );
    let (ada, _) = TestClient::join(&a.url(), auth("Ada")).await;
    let (mut bob, _) = TestClient::join(&b.url(), auth("Bob")).await;
    let first = ada.send_ok("first", "general", "before").await;
    assert_eq!(bob.next_message().await.id, first.id);

    postgres.kill();
    for (client, id) in [(&ada, "from-a"), (&bob, "from-b")] {
        let ack = client.send(id, "general", "while it is down").await;
        assert_eq!(support::error_code(&ack), "internal", "{ack}");
    }
    bob.expect_no("message").await;
    for server in [&a, &b] {
        let (status, body) = http(server.address, "GET", "/healthz", b"").await;
        assert_eq!(
            (status, body.trim()),
            (503, "degraded: database unreachable")
        );
    }

    postgres.resume();
    // Each node finds out by itself; the client resends with the same id, as an outbox does.
    let again = resend_until_ok(&ada, "from-a").await;
    assert_eq!(
        bob.next_message().await.id,
        again["message"]["id"].as_str().expect("an id")
    );
    let ack = resend_until_ok(&bob, "from-b").await;
    assert_eq!(
        ack["message"]["seq"],
        first.seq + 2,
        "gap-free after the outage"
    );
}

/// Resends the message `id` to `general` every 100 ms until it is acked `ok`, as an outbox
/// does; panics after [`support::PATIENCE`].
async fn resend_until_ok(client: &TestClient, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + support::PATIENCE;
    loop {
        let ack = client.send(id, "general", "while it is down").await;
        if ack["ok"] == true {
            return ack;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never took messages again: {ack}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
