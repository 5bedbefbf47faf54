//! `causerie-bench`: runs Causerie and its peers one after another on this machine, under the
//! same load, and writes the JSON, the Markdown tables and the SVG chart. See `bench/README.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use causerie_bench::abuse;
use causerie_bench::nodes::{self, Topology};
use causerie_bench::peer::{self, Paths, Peer, RunningPeer};
use causerie_bench::report::{self, Ingest, LoadCheck, Machine, Report, Run};
use causerie_bench::scenario::{self, Load, Protocol, Settings};
use causerie_bench::stats::Steps;
use clap::Parser;
use procfs::Current;

/// Benchmarks Causerie's server, with its own clients and with the seed protocol's, against Node
/// socket.io, Flask-SocketIO and a bare socketioxide server. Without flags it runs a quick set
/// (100 and 1,000 clients, once) into target/bench/results; `--full` runs 100, 1,000 and 10,000
/// clients three times, the abuse scenario and the load generator's check, and publishes into
/// bench/results and bench/README.md.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// The full benchmark: 100, 1,000 and 10,000 clients, 3 repeats, results published.
    #[arg(long)]
    full: bool,
    /// Client counts to run [default: 100,1000; with --full 100,1000,10000].
    #[arg(long, value_delimiter = ',')]
    clients: Vec<usize>,
    /// Servers to run, in this order.
    #[arg(long, value_delimiter = ',', default_values_t = Peer::ALL.map(|p| format!("{p:?}").to_lowercase()))]
    peers: Vec<String>,
    /// Protocols the clients speak (Causerie's own runs against Causerie only).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Protocol::Causerie, Protocol::Seed])]
    protocols: Vec<Protocol>,
    /// Seconds each try of a load step sends.
    #[arg(long, default_value_t = 2.0)]
    step_secs: f64,
    /// Seconds the highest rate held is sent again to confirm it [default: 5; with --full 30].
    #[arg(long)]
    confirm_secs: Option<f64>,
    /// Times the whole set runs, for the median and the range [default: 1; with --full 3].
    #[arg(long)]
    repeats: Option<usize>,
    /// Senders in the durable-ingest scenario.
    #[arg(long, default_value_t = 1000)]
    ingest_senders: usize,
    /// Scenarios to run (hold always runs before fan-out and storm).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Scenario::ALL)]
    scenarios: Vec<Scenario>,
    /// Attacks the abuse scenario runs, by name ("history", "guest flood"...) [default: all].
    #[arg(long, value_delimiter = ',')]
    attacks: Vec<String>,
    /// Leave every process on every core (by default the server gets the last core and the load
    /// generator the others, so neither starves the other).
    #[arg(long)]
    no_pin: bool,
    /// Give the load generator every core, the server's included (the server stays pinned): the
    /// check that more cores for the load do not change the figures.
    #[arg(long)]
    share_server_core: bool,
    /// Render the tables and chart again from a run's results.json, beside it (with --full,
    /// into bench/README.md too), without running anything.
    #[arg(long, value_name = "RESULTS_JSON")]
    replot: Option<PathBuf>,
    /// Where to write the results [default: target/bench/results; with --full bench/results].
    #[arg(long)]
    out: Option<PathBuf>,
}

/// A scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Scenario {
    /// Connect N clients: connections/s, welcome latency, memory per connection, presence.
    Hold,
    /// One sender at rising rates.
    FanOut,
    /// Every client sending in turn at rising rates.
    Storm,
    /// Causerie's acked, durable messages from many senders.
    Ingest,
    /// Each attack on Causerie while 100 normal clients chat.
    Abuse,
    /// Causerie clients' fan-out and durable ingest on one node on SQLite, one on PostgreSQL,
    /// and two on PostgreSQL + Redis.
    Nodes,
}

impl Scenario {
    const ALL: [Scenario; 6] = [
        Self::Hold,
        Self::FanOut,
        Self::Storm,
        Self::Ingest,
        Self::Abuse,
        Self::Nodes,
    ];
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let peers = cli
        .peers
        .iter()
        .map(|p| <Peer as clap::ValueEnum>::from_str(p, true).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // 10,000 clients need 10,000 descriptors, here and in the server, which inherits the limit;
    // many systems start with a soft limit of 1,024.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 10_000 + 1_000 => {
            eprintln!("warning: only {limit} file descriptors allowed; 10,000 clients need more");
        }
        Ok(_) => {}
        Err(e) => eprintln!("warning: cannot raise the file descriptor limit: {e}"),
    }
    // Pin before the runtime starts: its threads inherit the main thread's cores.
    let (server_cpus, load_cores) = pin(cli.no_pin, cli.share_server_core);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(load_cores)
        .enable_all()
        .build()?;
    runtime.block_on(run(cli, peers, server_cpus, load_cores))
}

/// Gives the server the last core and the load generator the rest (every core, with
/// `share`); returns the server's cores (as a `taskset` list) and how many cores the load
/// generator has.
fn pin(no_pin: bool, share: bool) -> (Option<String>, usize) {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let all = cores.len().max(1);
    if no_pin || cores.len() < 2 {
        return (None, all);
    }
    let (load, server) = if share {
        (&cores[..], &cores[cores.len() - 1..])
    } else {
        cores.split_at(cores.len() - 1)
    };
    // Pinning the main thread now pins the runtime's threads, which inherit it when created.
    let list = load
        .iter()
        .map(|c| c.id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let pinned = std::process::Command::new("taskset")
        .args(["-p", "-c", &list, &std::process::id().to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !pinned {
        return (None, all);
    }
    (Some(server[0].id.to_string()), load.len())
}

async fn run(
    cli: Cli,
    peers: Vec<Peer>,
    server_cpus: Option<String>,
    load_cores: usize,
) -> anyhow::Result<()> {
    let paths = Paths::discover()?;
    if let Some(json) = &cli.replot {
        let report: Report = serde_json::from_str(&tokio::fs::read_to_string(json).await?)
            .with_context(|| format!("reading {}", json.display()))?;
        let out = json.parent().context("the JSON file has a directory")?;
        return render(&report, out, cli.full.then_some(&paths)).await;
    }
    let sizes = match (&cli.clients[..], cli.full) {
        ([], false) => vec![100, 1000],
        ([], true) => vec![100, 1000, 10_000],
        (sizes, _) => sizes.to_vec(),
    };
    let settings = Settings {
        step: Duration::from_secs_f64(cli.step_secs),
        confirm: Duration::from_secs_f64(cli.confirm_secs.unwrap_or(if cli.full {
            30.0
        } else {
            5.0
        })),
        drain: Duration::from_secs(3),
        settle: Duration::from_secs(if cli.full { 3 } else { 2 }),
        connect_concurrency: 100,
        connect_timeout: Duration::from_secs(20),
        min_messages: 5,
        repeats: cli.repeats.unwrap_or(if cli.full { 3 } else { 1 }).max(1),
        load_cores,
    };
    let out = cli.out.clone().unwrap_or_else(|| {
        if cli.full {
            paths.repo.join("bench/results")
        } else {
            paths.work.join("results")
        }
    });

    for &peer in &peers {
        eprintln!("installing {}", peer.label());
        peer::install(peer, &paths)
            .await
            .with_context(|| format!("installing {}", peer.label()))?;
    }
    let machine = machine(&paths, &peers, server_cpus.as_deref(), load_cores).await;
    let started = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();

    // Causerie's own clients first: they are what people run.
    let mut configs = Vec::new();
    if peers.contains(&Peer::Causerie) && cli.protocols.contains(&Protocol::Causerie) {
        configs.push((Peer::Causerie, Protocol::Causerie));
    }
    if cli.protocols.contains(&Protocol::Seed) {
        configs.extend(peers.iter().map(|&p| (p, Protocol::Seed)));
    }
    let broadcast: Vec<Scenario> = [Scenario::Hold, Scenario::FanOut, Scenario::Storm]
        .into_iter()
        .filter(|s| cli.scenarios.contains(s))
        .collect();
    let causerie = peers.contains(&Peer::Causerie);
    let mut report = Report {
        started,
        machine,
        settings: settings.clone(),
        runs: Vec::new(),
        ingest: Vec::new(),
        abuse: Vec::new(),
        nodes: Vec::new(),
        load_check: None,
    };
    for repeat in 0..settings.repeats {
        eprintln!("repeat {} of {}", repeat + 1, settings.repeats);
        // Interleaved: every server at one size before the next size, so a drift in the machine's
        // speed touches them alike.
        let mut gave_up = Vec::new();
        for &clients in sizes.iter().filter(|_| !broadcast.is_empty()) {
            for &config in &configs {
                let (peer, protocol) = config;
                if gave_up.contains(&config) {
                    eprintln!(
                        "{} with {} at {clients}: skipped, it did not hold fewer",
                        peer.label(),
                        protocol.label()
                    );
                    continue;
                }
                eprintln!("{} with {} at {clients}", peer.label(), protocol.label());
                let mut run = run_one(
                    config,
                    clients,
                    &broadcast,
                    &paths,
                    server_cpus.as_deref(),
                    &settings,
                )
                .await?;
                run.repeat = repeat;
                if run.hold.connected < clients {
                    gave_up.push(config);
                }
                report.runs.push(run);
            }
        }
        if causerie && cli.ingest_senders > 0 && cli.scenarios.contains(&Scenario::Ingest) {
            eprintln!("Causerie durable ingest, {} senders", cli.ingest_senders);
            report.ingest.push(
                ingest(
                    cli.ingest_senders,
                    &paths,
                    server_cpus.as_deref(),
                    &settings,
                )
                .await?,
            );
        }
        if causerie && cli.scenarios.contains(&Scenario::Nodes) {
            // At 1,000 clients, or the largest size asked for below that.
            let clients = sizes
                .iter()
                .copied()
                .filter(|&n| n <= 1000)
                .max()
                .unwrap_or(1000);
            for topology in Topology::ALL {
                eprintln!("Causerie on {}, {clients} clients", topology.label());
                let mut run = nodes::run(
                    topology,
                    clients,
                    cli.ingest_senders,
                    &paths,
                    server_cpus.as_deref(),
                    &settings,
                )
                .await?;
                run.repeat = repeat;
                report.nodes.push(run);
            }
        }
        if causerie && cli.scenarios.contains(&Scenario::Abuse) {
            eprintln!("Causerie under abuse");
            report
                .abuse
                .push(abuse::run(&paths, server_cpus.as_deref(), &settings, &cli.attacks).await?);
        }
    }
    // The check compares with this run's fan-out of Causerie clients at 1,000: without one,
    // there is nothing to compare.
    let comparable = cli.scenarios.contains(&Scenario::FanOut)
        && sizes.contains(&1000)
        && cli.protocols.contains(&Protocol::Causerie)
        && peers.contains(&Peer::Causerie);
    if cli.full && comparable && !cli.share_server_core && server_cpus.is_some() {
        report.load_check = load_check(&cli, &paths, load_cores).await;
    }
    tokio::fs::create_dir_all(&out).await?;
    tokio::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&report)?,
    )
    .await?;
    render(&report, &out, cli.full.then_some(&paths)).await
}

/// Runs Causerie clients' fan-out at 1,000 clients again in a child harness whose load
/// generator has every core, the server's included: if the figures move, the load generator
/// limited the main run.
async fn load_check(cli: &Cli, paths: &Paths, main_cores: usize) -> Option<LoadCheck> {
    eprintln!("load generator check: Causerie clients' fan-out at 1000, the load on every core");
    let out = paths.work.join("load-check");
    let exe = std::env::current_exe().ok()?;
    // This process is pinned to the load's cores, and a child inherits that: give it every core
    // the machine has, so that it can take the server's too.
    let online = tokio::fs::read_to_string("/sys/devices/system/cpu/online")
        .await
        .ok()?;
    let status = tokio::process::Command::new("taskset")
        .args(["-c", online.trim()])
        .arg(exe)
        .args([
            "--share-server-core",
            "--clients",
            "1000",
            "--peers",
            "causerie",
        ])
        .args(["--protocols", "causerie", "--scenarios", "hold,fan-out"])
        .args(["--repeats", "1", "--step-secs", &cli.step_secs.to_string()])
        .args(["--confirm-secs", "30", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .status()
        .await
        .ok()?;
    if !status.success() {
        eprintln!("load generator check failed: {status}");
        return None;
    }
    let json = tokio::fs::read_to_string(out.join("results.json"))
        .await
        .ok()?;
    let check: Report = serde_json::from_str(&json).ok()?;
    Some(LoadCheck {
        main_cores,
        check_cores: check.settings.load_cores,
        runs: check.runs,
    })
}

/// Writes the Markdown tables and the chart into `out`, and into `bench/README.md` when
/// `publish_in` is given.
async fn render(report: &Report, out: &Path, publish_in: Option<&Paths>) -> anyhow::Result<()> {
    let markdown = report::markdown(report);
    tokio::fs::write(out.join("results.md"), &markdown).await?;
    report::chart(report, &out.join("fan-out.svg"))?;
    if let Some(paths) = publish_in {
        publish(paths, &markdown).await?;
    }
    println!("{markdown}");
    eprintln!("results in {}", out.display());
    Ok(())
}

/// One server and protocol at one client count: hold, then the fan-out and storm ladders on the
/// same clients.
async fn run_one(
    (peer, protocol): (Peer, Protocol),
    clients: usize,
    scenarios: &[Scenario],
    paths: &Paths,
    cpus: Option<&str>,
    settings: &Settings,
) -> anyhow::Result<Run> {
    let server = RunningPeer::start(peer, paths, cpus).await?;
    // Room for two ladders of three tries a rate and their confirming runs.
    let steps = Arc::new(Steps::new(256, 4));
    let (hold, group) = scenario::hold(
        std::slice::from_ref(&server.url),
        server.pid,
        clients,
        protocol,
        &steps,
        settings,
    )
    .await;
    eprintln!(
        "  hold: {}/{} welcomed, {:.0}/s, welcome p99 {:.1} ms, {:.1} KB per connection, welcome {:.0} B, presence {:.1} B per arrival per member{}, CPU: server {:.2} load {:.2}{}",
        hold.connected,
        clients,
        hold.connects_per_s,
        hold.welcome_p99_ms,
        hold.rss_per_connection_kb,
        hold.welcome_bytes,
        hold.presence_bytes_per_arrival_member,
        if hold.history_page_bytes.is_nan() {
            String::new()
        } else {
            format!(
                ", +{:.1} KB per connection after a {:.0} B history page",
                hold.rss_after_history_page_kb, hold.history_page_bytes
            )
        },
        hold.server_cpu_cores,
        hold.load_cpu_cores,
        hold.first_error
            .as_deref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    );
    let mut run = Run {
        repeat: 0,
        peer,
        protocol,
        clients,
        hold,
        fan_out: None,
        storm: None,
    };
    if group.senders.len() == clients {
        let rates = scenario::ladder_rates(clients);
        let fan_out = Load {
            pid: server.pid,
            senders: &group.senders[..1],
            recipients: clients,
            steps: steps.clone(),
            kind: protocol.into(),
        };
        if scenarios.contains(&Scenario::FanOut) {
            eprintln!("  fan-out");
            run.fan_out = Some(
                scenario::ladder(&fan_out, &rates, scenario::FAN_OUT_P99_LIMIT, settings).await,
            );
        }
        if scenarios.contains(&Scenario::Storm) {
            eprintln!("  storm");
            let storm = Load {
                senders: &group.senders,
                ..fan_out
            };
            run.storm =
                Some(scenario::ladder(&storm, &rates, scenario::FAN_OUT_P99_LIMIT, settings).await);
        }
    }
    drop(group);
    server.stop().await;
    Ok(run)
}

/// Causerie alone: senders each in a room of their own, acked messages at rising rates.
async fn ingest(
    senders: usize,
    paths: &Paths,
    cpus: Option<&str>,
    settings: &Settings,
) -> anyhow::Result<Ingest> {
    let server = RunningPeer::start(Peer::Causerie, paths, cpus).await?;
    let urls = std::slice::from_ref(&server.url);
    let (senders, ladder) = scenario::ingest(urls, server.pid, senders, settings).await?;
    server.stop().await;
    Ok(Ingest { senders, ladder })
}

async fn machine(
    paths: &Paths,
    peers: &[Peer],
    server_cpus: Option<&str>,
    load_cores: usize,
) -> Machine {
    let cpu = procfs::CpuInfo::current()
        .ok()
        .and_then(|info| info.model_name(0).map(str::to_owned))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = procfs::CpuInfo::current()
        .map(|info| info.num_cores())
        .unwrap_or(0);
    let memory_gib = procfs::Meminfo::current()
        .map(|m| m.mem_total as f64 / (1u64 << 30) as f64)
        .unwrap_or(f64::NAN);
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let distro = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap_or("Linux")
        .trim_matches('"')
        .to_owned();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let pinning = match server_cpus {
        Some(cpus) => format!(
            "each server pinned to core {cpus}, the load generator to the other {load_cores}"
        ),
        None => "no pinning".to_owned(),
    };
    let mut software = Vec::new();
    for &peer in peers {
        software.push((peer.label().to_owned(), peer::version(peer, paths).await));
    }
    for (name, program, arg) in [
        ("node", "node", "--version"),
        ("python", "python3", "--version"),
    ] {
        if let Ok(out) = tokio::process::Command::new(program)
            .arg(arg)
            .output()
            .await
        {
            let printed = String::from_utf8_lossy(&out.stdout);
            let printed = printed.trim();
            let version = printed
                .strip_prefix('v')
                .or_else(|| printed.strip_prefix("Python "))
                .unwrap_or(printed);
            software.push((name.to_owned(), version.to_owned()));
        }
    }
    Machine {
        cpu,
        cores,
        memory_gib,
        os: format!("{distro}, Linux {}", kernel.trim()),
        pinning,
        software,
    }
}

/// Replaces the results section of `bench/README.md` with this run's.
async fn publish(paths: &Paths, markdown: &str) -> anyhow::Result<()> {
    const START: &str = "<!-- results:start -->";
    const END: &str = "<!-- results:end -->";
    let readme = paths.repo.join("bench/README.md");
    let text = tokio::fs::read_to_string(&readme).await?;
    let (Some(start), Some(end)) = (text.find(START), text.find(END)) else {
        anyhow::bail!("bench/README.md has no {START} ... {END} section");
    };
    let updated = format!(
        "{}{START}\n{markdown}\n![p99 fan-out latency against load](results/fan-out.svg)\n{}",
        &text[..start],
        &text[end..]
    );
    tokio::fs::write(&readme, updated).await?;
    Ok(())
}
