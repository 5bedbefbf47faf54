//! A local cluster for trying several nodes (`./x cluster`): PostgreSQL and Redis in temporary
//! directories on loopback ports, `--nodes` server nodes (2 by default) sharing them and one
//! secret key, and HAProxy in front on `--bind`. The other flags go to every node. It prints
//! `listening on http://ADDRESS` (HAProxy's) as the server does, and stops everything on Ctrl-C
//! or SIGTERM. The history is kept in `--data-dir` if given (with each node's files), else it goes
//! with a temporary directory.
//!
//! Built from the launchers the tests use (`causerie_server::testing`): not for production (see
//! the README's "Running several nodes").

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use causerie_server::testing::{TestHaproxy, TestPostgres, TestRedis, watched};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let nodes: usize = take_flag(&mut args, "--nodes")
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(2);
    anyhow::ensure!((1..=16).contains(&nodes), "--nodes is 1 to 16");
    let bind: SocketAddr = take_flag(&mut args, "--bind")
        .unwrap_or_else(|| "127.0.0.1:3000".into())
        .parse()?;
    let kept_dir = take_flag(&mut args, "--data-dir").map(PathBuf::from);
    let temp_dir = tempfile::tempdir()?;
    let data_dir = kept_dir
        .clone()
        .unwrap_or_else(|| temp_dir.path().to_owned());
    if !args.iter().any(|arg| arg == "--secret-key") {
        // One key for the cluster, so that a token from one node works on all.
        let key: String = (0..4)
            .map(|_| uuid::Uuid::new_v4().simple().to_string())
            .collect();
        args.extend(["--secret-key".into(), key]);
    }

    // With `--data-dir`, the history is kept there for the next run.
    let postgres = match &kept_dir {
        Some(dir) => TestPostgres::start_in(&dir.join("postgres")),
        None => TestPostgres::start(),
    };
    let database_url = postgres.database("causerie").await;
    let redis = TestRedis::start();
    eprintln!("PostgreSQL: {database_url}\nRedis: {}", redis.url());
    let server = std::env::current_exe()?.with_file_name("causerie-server");
    let mut children = Vec::new();
    let mut addresses = Vec::new();
    for i in 0..nodes {
        let (child, address) = start_node(
            &server,
            &data_dir.join(format!("node{i}")),
            &args,
            &database_url,
            &redis.url(),
        )?;
        eprintln!("node{i}: http://{address}");
        children.push(child);
        addresses.push(address);
    }
    let haproxy = TestHaproxy::start(bind, &addresses);
    println!("listening on {}", haproxy.url());

    shutdown_signal().await;
    for child in &mut children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
    }
    for mut child in children {
        let _ = child.wait();
    }
    drop((haproxy, redis, postgres));
    Ok(())
}

/// Removes `--flag VALUE` from `args`, and returns the value.
fn take_flag(args: &mut Vec<String>, flag: &str) -> Option<String> {
    let at = args.iter().position(|arg| arg == flag)?;
    args.remove(at);
    (at < args.len()).then(|| args.remove(at))
}

/// Starts a node on a free loopback port and returns it with its address, read from its first
/// line.
fn start_node(
    server: &std::path::Path,
    data_dir: &std::path::Path,
    args: &[String],
    database_url: &str,
    redis_url: &str,
) -> anyhow::Result<(Child, SocketAddr)> {
    let mut node = Command::new(server);
    node.args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(["--database-url", database_url, "--redis-url", redis_url])
        .args(args);
    // Watched: a launcher killed midway leaves no node behind.
    let mut child = watched(&node).stdout(Stdio::piped()).spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut line = String::new();
    std::io::BufReader::new(stdout).read_line(&mut line)?;
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .and_then(|address| address.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("a node did not start: {line:?}"))?;
    Ok((child, address))
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match &mut terminate {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}
