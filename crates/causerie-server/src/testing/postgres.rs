//! A PostgreSQL server of the tests' own: a new cluster in a temporary directory, listening on a
//! free loopback port, started from the Debian packages' binaries (`./x test` installs them).
//! As root (CI), it runs as the `postgres` user: PostgreSQL refuses to run as root.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{PATIENCE, running_as_root, shell_words};

/// The PostgreSQL server of a test binary's tests.
pub struct TestPostgres {
    dir: Dir,
    bin: PathBuf,
    port: u16,
    /// The shell that runs the server and stops it when the test process ends.
    server: Option<Child>,
    /// Whether it syncs its writes to disk, as in production (not for tests: they need not
    /// survive the machine, and run faster without).
    durable: bool,
}

impl TestPostgres {
    /// The server shared by the tests of this test binary, started by the first one to ask.
    /// Each test takes a database of its own ([`TestPostgres::create_database`]).
    pub fn shared() -> &'static Self {
        static SHARED: OnceLock<TestPostgres> = OnceLock::new();
        SHARED.get_or_init(Self::start)
    }

    /// Starts a new server (a test that stops and starts it wants one of its own). Fails the
    /// test, saying why, when PostgreSQL is not installed.
    pub fn start() -> Self {
        Self::start_at(Dir::Temp(tempfile::tempdir().expect("temp dir")), false)
    }

    /// Like [`TestPostgres::start`], but syncing its writes to disk as a production server does:
    /// for measurements (the benchmark), where durability must cost what it costs.
    pub fn start_durable() -> Self {
        Self::start_at(Dir::Temp(tempfile::tempdir().expect("temp dir")), true)
    }

    /// Starts a server whose files are kept in `dir` (created, or reused as a former run left
    /// it): for a local cluster whose history outlives it.
    /// As root, PostgreSQL runs as `postgres`, which must pass through `dir`'s parent: that one
    /// is made traversable by others (not readable).
    pub fn start_in(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("creates the PostgreSQL directory");
        if let (true, Some(parent)) = (running_as_root(), dir.parent()) {
            use std::os::unix::fs::PermissionsExt;
            let mut permissions = std::fs::metadata(parent).expect("its parent").permissions();
            permissions.set_mode(permissions.mode() | 0o001);
            std::fs::set_permissions(parent, permissions).expect("makes its parent traversable");
        }
        Self::start_at(Dir::Kept(dir.to_owned()), false)
    }

    fn start_at(dir: Dir, durable: bool) -> Self {
        let bin = binaries();
        if running_as_root() {
            let (uid, gid) = postgres_user();
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let data = dir.path().join("data");
        let port = free_port();
        let mut postgres = Self {
            dir,
            bin,
            port,
            server: None,
            durable,
        };
        if !data.join("PG_VERSION").exists() {
            postgres.init(&data);
        }
        postgres.resume();
        postgres
    }

    fn init(&self, data: &Path) {
        let bin = &self.bin;
        let initdb = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .stdout(Stdio::null())
            .output()
            .expect("runs initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
    }

    /// The URL of the database `name`, created if it does not exist.
    pub async fn database(&self, name: &str) -> String {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .expect("connects to PostgreSQL");
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_optional(&mut admin)
                .await
                .expect("lists the databases");
        if exists.is_none() {
            sqlx::query(&format!("CREATE DATABASE \"{}\"", name.replace('"', "")))
                .execute(&mut admin)
                .await
                .expect("creates a database");
        }
        self.url(name)
    }

    /// The URL of a new, empty database on it.
    pub async fn create_database(&self) -> String {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        self.database(&name).await
    }

    /// The URL of database `name` on it.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Stops it at once, as a crash would (SIGQUIT: no checkpoint; it recovers from its WAL
    /// when started again).
    pub fn kill(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &server.id().to_string()])
                .status();
            let _ = server.wait();
        }
    }

    /// Starts it again on the same port and data, and waits until it accepts connections.
    pub fn resume(&mut self) {
        assert!(self.server.is_none(), "resume() needs a stopped server");
        let data = self.dir.path().join("data");
        let postgres = self.bin.join("postgres");
        // The shell stops the server at once when told to (SIGTERM: `kill`), and once the test
        // process is gone (a test binary's shared server is never dropped), then removes its
        // directory, which a dropped `TempDir` would have.
        let watchdog = format!(
            "{} & pid=$!; trap 'kill -QUIT $pid; wait $pid; exit' TERM; \
             while kill -0 {parent} 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 0.2; done; \
             kill -INT $pid 2>/dev/null; wait $pid; {cleanup}",
            shell_words(as_postgres(&postgres).arg("-D").arg(&data).args([
                "-p",
                &self.port.to_string(),
                "-k",
                &self.dir.path().display().to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                if self.durable {
                    "fsync=on"
                } else {
                    "fsync=off"
                },
            ])),
            parent = std::process::id(),
            // A temporary directory goes with the test process, even one killed.
            cleanup = match &self.dir {
                Dir::Temp(dir) => format!(
                    "kill -0 {} 2>/dev/null || rm -rf {}",
                    std::process::id(),
                    shell_words(&Command::new(dir.path()))
                ),
                Dir::Kept(_) => ":".to_owned(),
            },
        );
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        self.server = Some(
            Command::new("sh")
                .args(["-c", &watchdog])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starts postgres"),
        );
        let ready = Instant::now();
        loop {
            let status = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .expect("runs pg_isready");
            if status.success() {
                break;
            }
            assert!(
                ready.elapsed() < PATIENCE,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Where a server's files are.
enum Dir {
    /// Removed with the server.
    Temp(tempfile::TempDir),
    /// Kept for a later run.
    Kept(PathBuf),
}

impl Dir {
    fn path(&self) -> &Path {
        match self {
            Self::Temp(dir) => dir.path(),
            Self::Kept(dir) => dir,
        }
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The directory of PostgreSQL's server binaries: `CAUSERIE_POSTGRES_BIN`, or the newest
/// version the Debian packages installed.
fn binaries() -> PathBuf {
    if let Some(bin) = std::env::var_os("CAUSERIE_POSTGRES_BIN") {
        return bin.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `./x test` \
             installs it (apt-get install postgresql), or set CAUSERIE_POSTGRES_BIN"
        )
    })
}

/// `program`, run as the `postgres` user when the tests run as root.
fn as_postgres(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// The `postgres` user's uid and gid.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let output = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("runs id");
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("the postgres user exists (the Debian package creates it)")
    };
    (id("-u"), id("-g"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
