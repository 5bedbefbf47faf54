//! The store's suite on a real database: group commit, gap-free seqs, idempotency, history
//! slices, markers. Each test of the suite runs on every kind of store (`suite!` below, one
//! module per kind); then what only SQLite has (its WAL).

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use causerie_protocol::User;
use causerie_server::store::{HistoryQuery, NewMessage, PostgresStore, SqliteStore, Store};
use causerie_server::testing::TestPostgres;

/// A kind of store, on a database of its own that outlives each store opened on it: reopening
/// is part of the suite.
#[async_trait]
trait Backend: Send + Sync {
    async fn open(&self) -> Arc<dyn Store>;
}

/// SQLite, in a file of a temporary directory.
struct Sqlite(tempfile::TempDir);

impl Sqlite {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("temp dir"))
    }

    fn path(&self) -> PathBuf {
        self.0.path().join("chat.sqlite3")
    }
}

#[async_trait]
impl Backend for Sqlite {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path()).await.expect("opens"))
    }
}

/// PostgreSQL, in a database of its own on the tests' server.
struct Postgres(String);

impl Postgres {
    async fn new() -> Self {
        Self(TestPostgres::shared().create_database().await)
    }
}

#[async_trait]
impl Backend for Postgres {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(PostgresStore::connect(&self.0).await.expect("connects"))
    }
}

/// Each test of the suite, as a test per kind of store.
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(&super::Sqlite::new()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(&super::Postgres::new().await).await;
                }
            )*
        }
    };
}

suite!(
    concurrent_appends_share_commits_and_get_gap_free_seqs,
    the_same_author_and_client_id_is_stored_once_even_in_one_batch,
    rooms_count_their_own_seqs_and_survive_reopening,
    a_page_of_long_messages_is_bounded_in_bytes_and_says_there_is_more,
    rooms_page_by_name_and_by_prefix_without_wildcards,
    closing_commits_every_write_already_queued_and_refuses_later_ones,
    unread_counts_others_messages_after_the_marker_up_to_the_bound,
);

fn message(author: &str, client_id: &str, room: &str) -> NewMessage {
    NewMessage {
        client_id: client_id.to_owned(),
        room: room.to_owned(),
        author: User {
            id: author.to_owned(),
            name: author.to_owned(),
        },
        text: format!("text of {client_id}"),
        reply_to: None,
        mentions: Vec::new(),
    }
}

async fn concurrent_appends_share_commits_and_get_gap_free_seqs(backend: &dyn Backend) {
    let store = backend.open().await;
    let commits_before = store.commits();
    let appends = (0..500).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append(message(
                    &format!("u{}", i % 50),
                    &format!("c{i}"),
                    "general",
                ))
                .await
        })
    });
    let mut seqs = Vec::new();
    for append in futures_util::future::join_all(appends).await {
        let appended = append.expect("task runs").expect("append succeeds");
        assert!(!appended.duplicate);
        seqs.push(appended.message.seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=500).collect::<Vec<u64>>());
    let commits = store.commits() - commits_before;
    assert!(
        commits < 500 / 2,
        "500 concurrent appends took {commits} commits"
    );
}

async fn the_same_author_and_client_id_is_stored_once_even_in_one_batch(backend: &dyn Backend) {
    let store = backend.open().await;
    let appends = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.append(message("ada", "same", "general")).await })
    });
    let results: Vec<_> = futures_util::future::join_all(appends)
        .await
        .into_iter()
        .map(|r| r.expect("task runs").expect("append succeeds"))
        .collect();
    assert_eq!(results.iter().filter(|r| !r.duplicate).count(), 1);
    assert!(results.iter().all(|r| r.message == results[0].message));
    // Another author may use the same client id.
    let other = store
        .append(message("bob", "same", "general"))
        .await
        .expect("appends");
    assert!(!other.duplicate);
    assert_eq!(other.message.seq, 2);
}

async fn rooms_count_their_own_seqs_and_survive_reopening(backend: &dyn Backend) {
    {
        let store = backend.open().await;
        store.create_room("b-side").await.expect("creates");
        for i in 0..3 {
            store
                .append(message("ada", &format!("g{i}"), "general"))
                .await
                .expect("appends");
        }
        let first = store
            .append(message("ada", "b0", "b-side"))
            .await
            .expect("appends");
        assert_eq!(first.message.seq, 1);
        store.close().await;
        assert!(
            store
                .append(message("ada", "late", "general"))
                .await
                .is_err()
        );
    }
    let store = backend.open().await;
    let rooms = store.rooms_page("", "", 10).await.expect("rooms");
    assert_eq!(rooms.rooms, ["b-side", "general"]);
    assert_eq!(store.room_count().await.expect("counts"), 2);
    let next = store
        .append(message("ada", "g3", "general"))
        .await
        .expect("appends");
    assert_eq!(next.message.seq, 4);
    let page = store
        .history(
            "general",
            HistoryQuery {
                after: Some(1),
                before: Some(4),
                around: None,
                limit: 10,
            },
        )
        .await
        .expect("reads");
    assert_eq!(
        page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [2, 3]
    );
    assert!(!page.has_more);
    store.close().await;
}

#[tokio::test]
async fn the_database_runs_in_wal_mode() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chat.sqlite3");
    let store = SqliteStore::open(&path).await.expect("opens");
    store
        .append(message("ada", "c", "general"))
        .await
        .expect("appends");
    assert!(
        dir.path().join("chat.sqlite3-wal").exists(),
        "a WAL file beside the database"
    );
    store.close().await;
}

#[tokio::test]
async fn the_wal_is_copied_into_the_database_in_the_background() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chat.sqlite3");
    let store = SqliteStore::open(&path).await.expect("opens");
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    // Let the checkpoint of what `open` wrote pass, then write far less than SQLite's automatic
    // checkpoint threshold (1,000 pages): only a background checkpoint moves it into the file.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let before = size();
    for i in 0..200 {
        store
            .append(message("ada", &format!("c-{i}"), "general"))
            .await
            .expect("appends");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while size() <= before && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        size() > before,
        "the database file grew from {before} bytes"
    );
    store.close().await;
}

async fn a_page_of_long_messages_is_bounded_in_bytes_and_says_there_is_more(backend: &dyn Backend) {
    let store = backend.open().await;
    // Control characters are written as 6-byte escapes: about 24 KB of JSON each.
    for i in 0..80 {
        store
            .append(NewMessage {
                text: "\u{1}".repeat(4000),
                ..message("ada", &format!("c{i}"), "general")
            })
            .await
            .expect("appends");
    }
    let json_bytes = |messages: &[causerie_protocol::Message]| {
        serde_json::to_vec(messages).expect("serializes").len()
    };
    let latest = store
        .history(
            "general",
            HistoryQuery {
                limit: 200,
                ..HistoryQuery::default()
            },
        )
        .await
        .expect("reads");
    assert!(latest.has_more);
    assert!(json_bytes(&latest.messages) <= causerie_server::store::MAX_PAGE_BYTES);
    assert_eq!(
        latest.messages.last().map(|m| m.seq),
        Some(80),
        "the newest are kept"
    );
    // Catching up page by page reaches every message, in order.
    let mut seqs = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .history(
                "general",
                HistoryQuery {
                    after: Some(after),
                    limit: 200,
                    ..HistoryQuery::default()
                },
            )
            .await
            .expect("reads");
        assert!(json_bytes(&page.messages) <= causerie_server::store::MAX_PAGE_BYTES);
        after = page.messages.last().map_or(after, |m| m.seq);
        seqs.extend(page.messages.iter().map(|m| m.seq));
        if !page.has_more {
            break;
        }
    }
    assert_eq!(seqs, (1..=80).collect::<Vec<u64>>());
    store.close().await;
}

async fn rooms_page_by_name_and_by_prefix_without_wildcards(backend: &dyn Backend) {
    let store = backend.open().await;
    for room in [
        "rust",
        "rust-fr",
        "rust_en",
        "rustacean",
        "ruby",
        "r_st",
        "zz",
    ] {
        store.create_room(room).await.expect("creates");
    }
    let first = store.rooms_page("", "", 3).await.expect("pages");
    assert_eq!(first.rooms, ["general", "r_st", "ruby"]);
    assert!(first.has_more);
    let next = store.rooms_page("", "ruby", 3).await.expect("pages");
    assert_eq!(next.rooms, ["rust", "rust-fr", "rust_en"]);
    let rust = store.rooms_page("rust", "", 10).await.expect("searches");
    assert_eq!(rust.rooms, ["rust", "rust-fr", "rust_en", "rustacean"]);
    assert!(!rust.has_more);
    // `_` is a letter here, not LIKE's wildcard.
    let underscore = store.rooms_page("r_", "", 10).await.expect("searches");
    assert_eq!(underscore.rooms, ["r_st"]);
    assert!(store.room_exists("ruby").await.expect("reads"));
    assert!(!store.room_exists("python").await.expect("reads"));
    store.close().await;
}

async fn closing_commits_every_write_already_queued_and_refuses_later_ones(backend: &dyn Backend) {
    let store = backend.open().await;
    let appends: Vec<_> = (0..300)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(message("ada", &format!("c{i}"), "general"))
                    .await
            })
        })
        .collect();
    // Closes while the appends are still being queued and committed.
    tokio::task::yield_now().await;
    store.close().await;
    let late = store.append(message("ada", "after", "general")).await;
    assert!(
        matches!(late, Err(causerie_server::store::StoreError::Closed)),
        "{late:?}"
    );
    let mut acked = Vec::new();
    for append in futures_util::future::join_all(appends).await {
        match append.expect("task runs") {
            Ok(appended) => acked.push(appended.message.client_id),
            Err(causerie_server::store::StoreError::Closed) => {}
            Err(other) => panic!("neither stored nor refused as closed: {other}"),
        }
    }
    assert!(
        !acked.is_empty(),
        "writes queued before closing are committed"
    );

    let reopened = backend.open().await;
    let stored = reopened
        .history(
            "general",
            HistoryQuery {
                before: None,
                after: Some(0),
                around: None,
                limit: 500,
            },
        )
        .await
        .expect("reads");
    let mut stored: Vec<String> = stored.messages.into_iter().map(|m| m.client_id).collect();
    stored.sort();
    acked.sort();
    assert_eq!(
        stored, acked,
        "every acked write is on disk, and nothing else"
    );
    reopened.close().await;
}

async fn unread_counts_others_messages_after_the_marker_up_to_the_bound(backend: &dyn Backend) {
    use causerie_protocol::limits::MAX_UNREAD_COUNTED;
    let store = backend.open().await;
    let own = store
        .append(message("ada", "a1", "general"))
        .await
        .expect("appends");
    // No marker yet.
    let fresh = store
        .read_state("ada", "general", own.message.seq)
        .await
        .expect("reads");
    assert_eq!(fresh, None);

    let marked = store.mark_read("ada", "general", 0).await.expect("marks");
    assert_eq!((marked.seq, marked.moved), (0, true));
    let appends =
        (0..=MAX_UNREAD_COUNTED).map(|i| store.append(message("bob", &format!("b{i}"), "general")));
    for appended in futures_util::future::join_all(appends).await {
        appended.expect("appends");
    }
    let head = store
        .head("general")
        .await
        .expect("reads")
        .expect("the room exists");
    assert_eq!(head, u64::from(MAX_UNREAD_COUNTED) + 2);
    let state = store
        .read_state("ada", "general", head)
        .await
        .expect("reads")
        .expect("a marker");
    // The scan stops at MAX_UNREAD_COUNTED messages after the marker (Ada's own among them):
    // "at least that many", not the exact count of others' it did not finish.
    assert_eq!((state.seq, state.unread), (0, MAX_UNREAD_COUNTED));

    // Forward only: an older marker leaves it where it is.
    store.mark_read("ada", "general", 10).await.expect("marks");
    let back = store.mark_read("ada", "general", 5).await.expect("marks");
    assert_eq!((back.seq, back.moved), (10, false));
    let state = store
        .read_state("ada", "general", head)
        .await
        .expect("reads")
        .expect("a marker");
    assert_eq!(state.unread, u32::try_from(head - 10).expect("small"));
}

/// Two nodes on one PostgreSQL database, writing to the same rooms at once: seqs are assigned
/// in the committing transaction, so each room's run 1, 2, 3... whichever node stored what; a
/// message retried on the other node (same author, same client id) is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgres_database_share_gap_free_seqs_and_dedup() {
    let url = TestPostgres::shared().create_database().await;
    let nodes: Vec<Arc<dyn Store>> = vec![
        Arc::new(PostgresStore::connect(&url).await.expect("connects")),
        Arc::new(PostgresStore::connect(&url).await.expect("connects")),
    ];
    let rooms = ["general", "two"];
    for room in rooms {
        nodes[1].create_room(room).await.expect("creates");
    }
    // Every message is sent to both nodes at once, as a client whose first try reached node A
    // and whose retry reached node B.
    let sends = (0..200).flat_map(|i| {
        let room = rooms[i % 2];
        nodes.iter().map(move |node| {
            let node = node.clone();
            tokio::spawn(async move {
                node.append(message("ada", &format!("m{i}"), room))
                    .await
                    .expect("appends")
            })
        })
    });
    let mut by_client_id: std::collections::BTreeMap<String, Vec<_>> = Default::default();
    for send in futures_util::future::join_all(sends).await {
        let appended = send.expect("runs");
        by_client_id
            .entry(appended.message.client_id.clone())
            .or_default()
            .push(appended);
    }
    assert_eq!(by_client_id.len(), 200);
    for (client_id, both) in &by_client_id {
        assert_eq!(both.len(), 2);
        assert_eq!(
            both[0].message, both[1].message,
            "{client_id} is one message on both nodes"
        );
        assert_eq!(
            both.iter().filter(|a| a.duplicate).count(),
            1,
            "{client_id} is stored once and found once"
        );
    }
    for room in rooms {
        let mut seqs: Vec<u64> = by_client_id
            .values()
            .map(|both| &both[0].message)
            .filter(|m| m.room == room)
            .map(|m| m.seq)
            .collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=100).collect::<Vec<u64>>(), "{room}");
        for node in &nodes {
            assert_eq!(node.head(room).await.expect("reads"), Some(100));
        }
    }
    // Each node grouped its writes.
    for node in &nodes {
        assert!(node.commits() < 200, "{} commits", node.commits());
        node.close().await;
    }
}

/// The same author's change id sent to two nodes at once for messages of two rooms: the rooms'
/// locks do not hold one back for the other, so both may pass the check for an earlier change.
/// One is stored and the other refused as a reused id; neither fails its node's batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_id_raced_on_two_nodes_is_stored_once_and_fails_no_batch() {
    use causerie_server::store::{ChangeAction, ChangeRefusal, Changed, NewChange};
    let url = TestPostgres::shared().create_database().await;
    let nodes: Vec<Arc<dyn Store>> = vec![
        Arc::new(PostgresStore::connect(&url).await.expect("connects")),
        Arc::new(PostgresStore::connect(&url).await.expect("connects")),
    ];
    let rooms = ["one", "two"];
    for room in rooms {
        nodes[0].create_room(room).await.expect("creates");
        nodes[0]
            .append(message("ada", &format!("in-{room}"), room))
            .await
            .expect("appends");
    }
    for i in 0..20 {
        let races = nodes.iter().zip(rooms).map(|(node, room)| {
            let node = node.clone();
            tokio::spawn(async move {
                node.change(NewChange {
                    client_id: format!("raced-{i}"),
                    room: room.to_owned(),
                    author: User {
                        id: "ada".to_owned(),
                        name: "ada".to_owned(),
                    },
                    action: ChangeAction::Edit {
                        text: format!("edit {i}"),
                    },
                    target: 1,
                    edit_window: std::time::Duration::from_secs(60),
                })
                .await
            })
        });
        let outcomes: Vec<Changed> = futures_util::future::join_all(races)
            .await
            .into_iter()
            .map(|outcome| outcome.expect("runs").expect("no batch fails"))
            .collect();
        let stored = outcomes
            .iter()
            .filter(|c| {
                matches!(
                    c,
                    Changed::Stored {
                        duplicate: false,
                        ..
                    }
                )
            })
            .count();
        let refused = outcomes
            .iter()
            .filter(|c| matches!(c, Changed::Refused(ChangeRefusal::IdReused)))
            .count();
        assert_eq!((stored, refused), (1, 1), "{outcomes:?}");
    }
    for node in &nodes {
        node.close().await;
    }
}
