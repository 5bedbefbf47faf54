//! The servers under test, each speaking the seed protocol (Causerie its own as well): how the
//! harness installs and starts them, as people run them. Every one prints
//! `listening on http://ADDRESS` when it starts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// A server under test.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Peer {
    /// `causerie-server`: durable SQLite history on, flood control and per-address caps off.
    Causerie,
    /// A bare socketioxide broadcast server with stock settings (`bench/peers/socketioxide`).
    Socketioxide,
    /// Node's reference `socket.io` server (`bench/peers/node`).
    Node,
    /// Flask-SocketIO as the old server ran: `socketio.run`, Werkzeug, threading mode
    /// (`bench/peers/flask`).
    Flask,
}

impl Peer {
    /// Every peer, in the order they run.
    pub const ALL: [Peer; 4] = [Peer::Causerie, Peer::Socketioxide, Peer::Node, Peer::Flask];

    /// The name in tables and charts.
    pub fn label(self) -> &'static str {
        match self {
            Peer::Causerie => "Causerie",
            Peer::Socketioxide => "bare socketioxide",
            Peer::Node => "Node socket.io",
            Peer::Flask => "Flask-SocketIO",
        }
    }
}

/// Where the harness finds the repository, the release binaries, and its own scratch space.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The repository's root.
    pub repo: PathBuf,
    /// The directory holding `causerie-server` and `bench-socketioxide` (the harness's own).
    pub bins: PathBuf,
    /// Scratch space: the Python environment, server logs, data directories.
    pub work: PathBuf,
}

impl Paths {
    /// The repository this crate was built from, and the binaries beside the running harness.
    pub fn discover() -> anyhow::Result<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .context("finding the repository")?;
        let exe = std::env::current_exe().context("finding the harness's binary")?;
        let bins = exe
            .parent()
            .context("the harness's binary has a directory")?
            .to_owned();
        let work = repo.join("target/bench");
        Ok(Self { repo, bins, work })
    }

    fn peers(&self) -> PathBuf {
        self.repo.join("bench/peers")
    }

    fn flask_python(&self) -> PathBuf {
        self.work.join("flask-venv/bin/python")
    }
}

/// Installs what `peer` needs, once: Node's packages from the lock file, Flask-SocketIO into a
/// virtual environment from the pinned requirements. The Rust servers must already be built.
pub async fn install(peer: Peer, paths: &Paths) -> anyhow::Result<()> {
    match peer {
        Peer::Causerie | Peer::Socketioxide => {
            let bin = paths.bins.join(binary(peer));
            if !bin.exists() {
                bail!("{} is missing: ./x bench builds it", bin.display());
            }
        }
        Peer::Node => {
            let dir = paths.peers().join("node");
            if !dir.join("node_modules").exists() {
                run(tokio::process::Command::new("npm")
                    .arg("ci")
                    .current_dir(&dir))
                .await?;
            }
        }
        Peer::Flask => {
            let requirements = paths.peers().join("flask/requirements.txt");
            let wanted = tokio::fs::read_to_string(&requirements).await?;
            let installed = paths.work.join("flask-venv/installed.txt");
            if tokio::fs::read_to_string(&installed).await.ok().as_deref() == Some(&wanted) {
                return Ok(());
            }
            tokio::fs::create_dir_all(&paths.work).await?;
            run(tokio::process::Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(paths.work.join("flask-venv")))
            .await?;
            run(tokio::process::Command::new(paths.flask_python())
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(&requirements))
            .await?;
            tokio::fs::write(&installed, wanted).await?;
        }
    }
    Ok(())
}

/// The version of each peer's server library, for the report.
pub async fn version(peer: Peer, paths: &Paths) -> String {
    let read = |path: PathBuf| async move { tokio::fs::read_to_string(path).await.ok() };
    let found = match peer {
        Peer::Causerie => Some(env!("CARGO_PKG_VERSION").to_owned()),
        Peer::Socketioxide => read(paths.repo.join("Cargo.lock")).await.and_then(|lock| {
            let at = lock.find("name = \"socketioxide\"\nversion = \"")?;
            let rest = &lock[at + "name = \"socketioxide\"\nversion = \"".len()..];
            Some(rest[..rest.find('"')?].to_owned())
        }),
        Peer::Node => read(
            paths
                .peers()
                .join("node/node_modules/socket.io/package.json"),
        )
        .await
        .and_then(|json| serde_json::from_str::<serde_json::Value>(&json).ok())
        .and_then(|json| json["version"].as_str().map(str::to_owned)),
        Peer::Flask => read(paths.peers().join("flask/requirements.txt"))
            .await
            .and_then(|reqs| {
                reqs.lines()
                    .find_map(|l| l.strip_prefix("Flask-SocketIO=="))
                    .map(str::to_owned)
            }),
    };
    found.unwrap_or_else(|| "unknown".to_owned())
}

fn binary(peer: Peer) -> &'static str {
    match peer {
        Peer::Socketioxide => "bench-socketioxide",
        _ => "causerie-server",
    }
}

async fn run(command: &mut tokio::process::Command) -> anyhow::Result<()> {
    let status = command
        .status()
        .await
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// A started server.
pub struct RunningPeer {
    child: tokio::process::Child,
    /// Its process id (the server itself, not a wrapper).
    pub pid: u32,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    _data: Option<tempfile::TempDir>,
}

/// Where a started server's log goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log {
    /// Into `work/logs/<peer>.log`.
    File,
    /// Into a pipe nobody reads, as a log collector that stalled: a server that waits for its
    /// log stops.
    Unread,
}

/// The flags that let one load generator be thousands of users on one machine without being
/// throttled: no flood limit, no cap on new guests or connections per address, and room for a
/// sender that outpaces the disk's commits (thousands of messages a second from one connection,
/// each in flight until committed).
pub const CAUSERIE_BENCH_FLAGS: [&str; 10] = [
    "--rate-limit",
    "0",
    "--new-guests-per-minute",
    "0",
    "--max-connections-per-address",
    "0",
    "--max-requests-in-flight",
    "4096",
    "--new-rooms-per-address-per-minute",
    "0",
];

impl RunningPeer {
    /// Starts `peer` on a free port, pinned to `cpus` (a `taskset` list) when given, with its
    /// output in `work/logs/<peer>.log`; returns once it accepts connections. Causerie runs
    /// with [`CAUSERIE_BENCH_FLAGS`].
    pub async fn start(peer: Peer, paths: &Paths, cpus: Option<&str>) -> anyhow::Result<Self> {
        Self::start_with(peer, paths, cpus, &CAUSERIE_BENCH_FLAGS, Log::File).await
    }

    /// The same, with `causerie_flags` for Causerie (beside its address and data directory)
    /// and its log going to `log`.
    pub async fn start_with(
        peer: Peer,
        paths: &Paths,
        cpus: Option<&str>,
        causerie_flags: &[&str],
        log: Log,
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let logs = paths.work.join("logs");
        tokio::fs::create_dir_all(&logs).await?;
        let log_path = logs.join(format!("{peer:?}.log").to_lowercase());
        let log_file = std::fs::File::create(&log_path)?;

        let mut data = None;
        let (program, args): (PathBuf, Vec<String>) = match peer {
            Peer::Causerie => {
                let dir = tempfile::tempdir_in(&paths.work)?;
                let mut args = vec![
                    "--bind".into(),
                    format!("127.0.0.1:{port}"),
                    "--data-dir".into(),
                    dir.path().display().to_string(),
                ];
                args.extend(causerie_flags.iter().map(|f| (*f).to_owned()));
                data = Some(dir);
                (paths.bins.join(binary(peer)), args)
            }
            Peer::Socketioxide => (paths.bins.join(binary(peer)), vec![]),
            Peer::Node => (
                "node".into(),
                vec![paths.peers().join("node/server.js").display().to_string()],
            ),
            Peer::Flask => (
                paths.flask_python(),
                vec![paths.peers().join("flask/server.py").display().to_string()],
            ),
        };
        // `taskset` replaces itself with the server, so the child's pid is the server's.
        let mut command = match cpus {
            Some(cpus) => {
                let mut command = tokio::process::Command::new("taskset");
                command.arg("-c").arg(cpus).arg(&program);
                command
            }
            None => tokio::process::Command::new(&program),
        };
        command
            .args(&args)
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        match log {
            Log::File => command.stderr(log_file.try_clone()?),
            // Kept open in the child handle and never read.
            Log::Unread => command.stderr(Stdio::piped()),
        };
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let pid = child.id().context("the server has a pid")?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .with_context(|| format!("{} did not start in 30 s", peer.label()))??
            .with_context(|| format!("{} exited; see {}", peer.label(), log_path.display()))?;
        let url = first
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line from {}: {first:?}", peer.label()))?
            .to_owned();
        // The rest of its output goes to the log: an unread pipe would fill and stall the server.
        let mut log_file = tokio::fs::File::from_std(log_file);
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = log_file.write_all(format!("{line}\n").as_bytes()).await;
            }
        });
        wait_for_port(port).await?;
        Ok(Self {
            child,
            pid,
            url,
            _data: data,
        })
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stops the server and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Some servers print their address before they bind it.
async fn wait_for_port(port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("nothing accepts connections on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
