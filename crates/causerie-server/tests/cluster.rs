//! Several nodes: in-process servers sharing one PostgreSQL database and one Redis, each with its
//! own clients. A message committed on one node reaches the clients of the other; while Redis is
//! gone each node goes on for its own clients, and the others' clients learn they are behind from
//! the next message's seq.

mod support;

use causerie_server::ServerConfig;
use causerie_server::testing::{TestPostgres, TestRedis};
use serde_json::json;
use support::{TestClient, TestServer, auth, http};

/// A node of a cluster on `database_url` and `redis_url`.
async fn node(database_url: &str, redis_url: &str) -> TestServer {
    let (database_url, redis_url) = (database_url.to_owned(), redis_url.to_owned());
    TestServer::start_with(move |config| ServerConfig {
        database_url: Some(database_url),
        redis_url: Some(redis_url),
        // One secret key for the cluster: a token from one node works on the other.
        secret_key: Some("0123456789abcdef".repeat(4)),
        ..config
    })
    .await
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
    let (mut bob, _) = TestClient::join(&b.url(), auth("Bob")).await;
    let first = ada.send_ok("first", "general", "all of us").await;
    assert_eq!(bob.next_message().await.id, first.id);

    redis.kill();
    // Committed and acked, and delivered on node A, though node B cannot be told.
    let alone = ada.send_ok("alone", "general", "node A only").await;
    assert_eq!(ann.next_message().await.id, first.id);
    assert_eq!(ann.next_message().await.id, alone.id);
    bob.expect_no("message").await;
    let (_, metrics) = http(a.address, "GET", "/metrics", b"").await;
    let local_only: u64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("causerie_broadcasts_local_only_total "))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no count of local-only broadcasts: {metrics}"));
    assert!(local_only >= 1, "{metrics}");

    redis.resume();
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
