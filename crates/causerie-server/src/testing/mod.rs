//! Test support: a real server in this process on a free loopback port with a temporary data dir,
//! for this crate's tests and for the tests of crates that talk to it (the client, the app); and
//! a PostgreSQL server of the tests' own ([`TestPostgres`]). `CAUSERIE_TEST_STORE=postgres` puts
//! every [`TestServer`] on PostgreSQL.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::ServerConfig;

mod haproxy;
mod postgres;
mod redis;

pub use haproxy::TestHaproxy;
pub use postgres::TestPostgres;
pub use redis::TestRedis;

/// How long a test waits for something that should happen.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A server running in this process on a free port, with its own data dir.
pub struct TestServer {
    /// Where it listens.
    pub address: SocketAddr,
    /// Its data dir: a temporary one, removed when dropped, unless the test chose one.
    data_dir: PathBuf,
    /// Kept so that a temporary data dir lives as long as the server.
    temporary: Option<tempfile::TempDir>,
    config: ServerConfig,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// The secret key of the tests' clusters: one for all their nodes, so that a token from one
/// works on the others.
pub const CLUSTER_SECRET_KEY: &str =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

impl TestServer {
    /// Starts a server with the defaults but no message rate limit, and no limits per client
    /// address (every test client comes from 127.0.0.1).
    pub async fn start() -> Self {
        Self::start_with(|config| config).await
    }

    /// Starts a server on SQLite whatever `CAUSERIE_TEST_STORE` says: for a test of the
    /// SQLite file itself (its locks, its disk, its bytes).
    pub async fn start_on_sqlite() -> Self {
        Self::start_with(on_sqlite).await
    }

    /// A node of a cluster: its history in the PostgreSQL database at `database_url`, delivery
    /// and presence through the Redis at `redis_url`, and the cluster's [`CLUSTER_SECRET_KEY`].
    pub async fn start_node(database_url: &str, redis_url: &str) -> Self {
        let (database_url, redis_url) = (database_url.to_owned(), redis_url.to_owned());
        Self::start_with(move |config| ServerConfig {
            database_url: Some(database_url),
            redis_url: Some(redis_url),
            secret_key: Some(CLUSTER_SECRET_KEY.to_owned()),
            ..config
        })
        .await
    }

    /// Starts a server with a config adjusted by `adjust`.
    pub async fn start_with(adjust: impl FnOnce(ServerConfig) -> ServerConfig) -> Self {
        let temporary = tempfile::tempdir().expect("creates a temp dir");
        let mut server = Self::start_in(temporary.path(), adjust).await;
        server.temporary = Some(temporary);
        server
    }

    /// Starts a server keeping its data in `data_dir` (left in place when dropped), with a
    /// config adjusted by `adjust`.
    pub async fn start_in(
        data_dir: &Path,
        adjust: impl FnOnce(ServerConfig) -> ServerConfig,
    ) -> Self {
        let database_url = match std::env::var("CAUSERIE_TEST_STORE").as_deref() {
            Ok("postgres") => Some(TestPostgres::shared().create_database().await),
            Ok("sqlite") | Err(_) => None,
            Ok(other) => panic!("CAUSERIE_TEST_STORE is sqlite or postgres, not {other:?}"),
        };
        let config = adjust(ServerConfig {
            database_url,
            rate_limit: None,
            event_limits: Some(crate::EventLimits {
                new_guests_per_address: None,
                room_creation_per_address: None,
                ..crate::EventLimits::default()
            }),
            max_connections_per_address: None,
            ..ServerConfig::new(data_dir)
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
        let address = listener.local_addr().expect("has an address");
        let mut server = Self {
            address,
            data_dir: data_dir.to_owned(),
            temporary: None,
            config,
            stop: None,
            task: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.config.clone();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(async move {
            crate::run(listener, config, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        }));
    }

    /// Its data dir.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Its database file.
    pub fn database(&self) -> PathBuf {
        self.data_dir.join(crate::DATABASE_FILE)
    }

    /// `http://address`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Stops the server gracefully and waits until it has closed its store.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("server stops in time")
                .expect("server task ends cleanly");
        }
    }

    /// Starts the server again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.resume().await;
    }

    /// Starts a stopped server again on the same port and data dir.
    pub async fn resume(&mut self) {
        assert!(self.task.is_none(), "resume() needs a stopped server");
        let listener = TcpListener::bind(self.address)
            .await
            .expect("binds the same port again");
        self.serve(listener);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// `config` on SQLite, whatever `CAUSERIE_TEST_STORE` says (see [`TestServer::start_on_sqlite`]).
pub fn on_sqlite(config: ServerConfig) -> ServerConfig {
    ServerConfig {
        database_url: None,
        ..config
    }
}

/// The value of the metric `name` that the server at `address` gives now (its `/metrics` line
/// `name value`); panics if it gives none.
pub async fn metric(address: std::net::SocketAddr, name: &str) -> u64 {
    let (_, metrics) = http(address, "GET", "/metrics", b"").await;
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

/// Waits until the metric `name` of the server at `address` is `value`; panics after
/// [`PATIENCE`].
pub async fn until_metric(address: std::net::SocketAddr, name: &str, value: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(address, name).await != value {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} never {value}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A raw HTTP/1.1 request over a real socket; returns the status code and the body.
pub async fn http(
    address: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: text/plain;charset=UTF-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("writes head");
    // The server may refuse before reading the whole body: a failed write is an answer too.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// A tmpfs of a chosen size, mounted for one test (the tests run as root) and unmounted when
/// dropped: a filesystem that really fills up.
pub struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None`, said on stderr, when not running as root (`./x test` runs as root in CI). As root,
    /// a mount that fails fails the test: it must not pass without having run.
    pub fn mount(bytes: u64) -> Option<Self> {
        if !running_as_root() {
            eprintln!("SKIPPED: the disk-full test mounts a tmpfs, which needs root");
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("runs mount");
        assert!(
            status.success(),
            "mounting a tmpfs as root failed: {status}"
        );
        Some(Self { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives it another size (more room, or less).
    pub fn resize(&self, bytes: u64) {
        let status = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(self.dir.path())
            .status()
            .expect("runs mount");
        assert!(status.success(), "remount failed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

/// A command line for `sh`, each word quoted.
pub(crate) fn shell_words(command: &std::process::Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| format!("'{}'", word.to_string_lossy().replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `command` run by a shell that ends it once this process is gone, even killed (it looks every
/// 0.2 s), and passes SIGTERM on to it, exiting with its status: a test or launcher killed
/// midway leaves no server behind. Its standard streams are the command's.
pub fn watched(command: &std::process::Command) -> std::process::Command {
    let script = format!(
        "{} & pid=$!; trap 'kill -TERM $pid; wait $pid; exit $?' TERM; \
         while kill -0 {parent} 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 0.2; done; \
         kill -9 $pid 2>/dev/null; wait $pid",
        shell_words(command),
        parent = std::process::id(),
    );
    let mut shell = std::process::Command::new("sh");
    shell.args(["-c", &script]);
    shell
}

/// Whether this process runs as root, from the kernel's own account of it.
pub fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}
