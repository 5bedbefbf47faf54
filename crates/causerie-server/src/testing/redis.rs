//! A Redis server of the tests' own, on a free loopback port, started from the Debian package's
//! `redis-server` (`./x test` installs it). It keeps its data only when told (`save`), as a
//! Redis that persists it does.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::PATIENCE;

/// A Redis server for tests.
pub struct TestRedis {
    port: u16,
    server: Option<Child>,
    /// Its working directory, where `save` writes the snapshot a restart loads.
    dir: tempfile::TempDir,
    /// The process `freeze` stopped, for `thaw`.
    frozen: Option<u32>,
}

impl TestRedis {
    /// Starts a new server: one per cluster a test runs (nodes on one Redis hear each other's
    /// broadcasts, whatever database they name). Fails the test, saying why, when Redis is not
    /// installed.
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Self {
            port,
            server: None,
            dir: tempfile::tempdir().expect("a temp dir"),
            frozen: None,
        };
        redis.resume();
        redis
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it at once (SIGKILL): every connection to it breaks.
    pub fn kill(&mut self) {
        // A frozen one would take SIGKILL too, but nothing else; and this may run in a panic.
        if let Some(pid) = self.frozen.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .status();
        }
        if let Some(mut server) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &server.id().to_string()])
                .status();
            let _ = server.wait();
        }
    }

    /// Writes a snapshot of everything it holds (`SAVE`), which it loads when it starts again:
    /// as a Redis that persists its data comes back from a restart.
    pub fn save(&self) {
        let _: () = redis::cmd("SAVE")
            .query(&mut self.connection())
            .expect("SAVE answers");
    }

    /// Freezes it (SIGSTOP), as a stalled machine would: its connections stay open, and the
    /// system still takes what is sent on them, but nothing is answered until [`Self::thaw`].
    pub fn freeze(&mut self) {
        assert!(self.frozen.is_none(), "freeze() needs a running server");
        let pid = self.pid();
        signal("-STOP", pid);
        self.frozen = Some(pid);
    }

    /// Lets a frozen server go on (SIGCONT) with what it was sent meanwhile.
    pub fn thaw(&mut self) {
        let pid = self.frozen.take().expect("thaw() needs a frozen server");
        signal("-CONT", pid);
    }

    /// The server's process id, as it tells it.
    fn pid(&self) -> u32 {
        let info: String = redis::cmd("INFO")
            .arg("server")
            .query(&mut self.connection())
            .expect("INFO answers");
        info.lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
            .expect("INFO tells the process id")
    }

    /// A connection of the test's own, which gives up after [`PATIENCE`].
    fn connection(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("a Redis URL");
        let connection = client
            .get_connection_with_timeout(PATIENCE)
            .expect("connects to Redis");
        connection
            .set_read_timeout(Some(PATIENCE))
            .expect("sets a timeout");
        connection
    }

    /// Starts it again on the same port, and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.server.is_none(), "resume() needs a stopped server");
        // The shell stops the server once the test process is gone (a test binary's shared
        // server is never dropped), or at once when told to (SIGTERM: `kill`).
        let script = format!(
            "redis-server --bind 127.0.0.1 --port {port} --save '' --appendonly no \
             --dir '{dir}' --protected-mode no >/dev/null & pid=$!; trap 'kill -9 $pid; wait $pid; exit' TERM; \
             while kill -0 {parent} 2>/dev/null && kill -0 $pid 2>/dev/null; do sleep 0.2; done; \
             kill -9 $pid 2>/dev/null; wait $pid",
            port = self.port,
            dir = self.dir.path().display(),
            parent = std::process::id(),
        );
        assert!(
            Command::new("redis-server")
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success()),
            "redis-server is not installed: `./x test` installs it (apt-get install redis-server)"
        );
        let server = Command::new("sh")
            .args(["-c", &script])
            .spawn()
            .expect("starts redis-server");
        self.server = Some(server);
        let ready = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(ready.elapsed() < PATIENCE, "Redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` (`-STOP`, `-CONT`) to the process `pid`.
fn signal(signal: &str, pid: u32) {
    let sent = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
    assert!(
        sent.is_ok_and(|status| status.success()),
        "kill {signal} {pid}"
    );
}
