//! The run's results: the JSON kept for later, the Markdown tables people read, the SVG chart of
//! latency against load, and where Causerie stands against its targets. Every figure is given as
//! the median of the run's repeats, with their range when they differ.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::abuse::{self, Abuse};
use crate::nodes::{NodesRun, Topology};
use crate::peer::Peer;
use crate::scenario::{self, Hold, Ladder, Protocol, SATURATED_CORES, Settings, Step};

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// The machine it ran on.
    pub machine: Machine,
    /// The harness's settings.
    pub settings: Settings,
    /// One entry per repeat, server, protocol and client count, in the order they ran.
    pub runs: Vec<Run>,
    /// Causerie's durable ingest, once per repeat.
    #[serde(default)]
    pub ingest: Vec<Ingest>,
    /// The abuse scenario, once per repeat.
    #[serde(default)]
    pub abuse: Vec<Abuse>,
    /// Several nodes: each topology once per repeat.
    #[serde(default)]
    pub nodes: Vec<NodesRun>,
    /// The same fan-out with the load generator given more cores, when checked.
    #[serde(default)]
    pub load_check: Option<LoadCheck>,
}

/// The machine, so that figures are never quoted without it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: String,
    /// Cores the kernel reports.
    pub cores: usize,
    /// Memory, in GiB.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub memory_gib: f64,
    /// The operating system and kernel.
    pub os: String,
    /// Which cores the servers were pinned to, and which the load generator ran on.
    pub pinning: String,
    /// The version of each server library and runtime.
    pub software: Vec<(String, String)>,
}

/// One server, one protocol, one client count, in one repeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Which repeat of the whole set (from 0).
    #[serde(default)]
    pub repeat: usize,
    /// Which server.
    pub peer: Peer,
    /// What its clients speak.
    pub protocol: Protocol,
    /// Clients connected.
    pub clients: usize,
    /// Connecting them.
    pub hold: Hold,
    /// One sender at rising rates; absent when the server did not hold the clients.
    pub fan_out: Option<Ladder>,
    /// Every client sending in turn at rising total rates.
    pub storm: Option<Ladder>,
}

/// Causerie's durable ingest: many senders, each message committed before its ack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ingest {
    /// Senders, each writing to a room of its own.
    pub senders: usize,
    /// Rising offered rates; latency is from the intended send time to the ack.
    pub ladder: Ladder,
}

/// Causerie clients' fan-out at one size, measured again with the load generator on more cores:
/// if the figures move, the load generator limited them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadCheck {
    /// The load generator's cores in the main run.
    pub main_cores: usize,
    /// Its cores in the check (the server's core shared).
    pub check_cores: usize,
    /// The check's runs.
    pub runs: Vec<Run>,
}

/// A figure over the repeats: median and range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The median (the lower middle of an even count).
    pub median: f64,
    /// The smallest.
    pub min: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, ignoring NaN; `None` when nothing is left.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Self> {
        let mut values: Vec<f64> = values.into_iter().filter(|v| !v.is_nan()).collect();
        values.sort_by(f64::total_cmp);
        Some(Self {
            median: *values.get((values.len().checked_sub(1)?) / 2)?,
            min: *values.first()?,
            max: *values.last()?,
        })
    }

    /// `median (min–max)`, each written by `f`; just the median when the repeats agree.
    pub fn show(&self, f: impl Fn(f64) -> String) -> String {
        let (median, min, max) = (f(self.median), f(self.min), f(self.max));
        if min == max {
            median
        } else {
            format!("{median} ({min}–{max})")
        }
    }
}

fn whole(v: f64) -> String {
    format!("{v:.0}")
}

fn one(v: f64) -> String {
    format!("{v:.1}")
}

fn two(v: f64) -> String {
    format!("{v:.2}")
}

/// A server speaking a protocol: a row of the tables.
type Config = (Peer, Protocol);

fn label((peer, protocol): Config) -> String {
    match protocol {
        Protocol::Causerie => "Causerie (Causerie clients)".to_owned(),
        Protocol::Seed => peer.label().to_owned(),
    }
}

impl Report {
    fn runs_of(&self, config: Config, clients: usize) -> Vec<&Run> {
        self.runs
            .iter()
            .filter(|r| (r.peer, r.protocol) == config && r.clients == clients)
            .collect()
    }

    fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.runs.iter().map(|r| r.clients).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    /// Causerie's own protocol first, then every server's seed protocol, in the usual order.
    fn configs(&self) -> Vec<Config> {
        let mut configs = vec![(Peer::Causerie, Protocol::Causerie)];
        configs.extend(Peer::ALL.map(|p| (p, Protocol::Seed)));
        configs
            .into_iter()
            .filter(|c| self.runs.iter().any(|r| (r.peer, r.protocol) == *c))
            .collect()
    }

    fn repeats(&self) -> usize {
        self.runs
            .iter()
            .map(|r| r.repeat + 1)
            .max()
            .unwrap_or(0)
            .max(self.ingest.len())
            .max(self.abuse.len())
            .max(self.nodes.iter().map(|r| r.repeat + 1).max().unwrap_or(0))
    }

    fn hold(&self, config: Config, clients: usize, f: impl Fn(&Hold) -> f64) -> Option<Spread> {
        Spread::of(self.runs_of(config, clients).iter().map(|r| f(&r.hold)))
    }

    /// Whether every repeat welcomed every client.
    fn held_all(&self, config: Config, clients: usize) -> bool {
        let runs = self.runs_of(config, clients);
        !runs.is_empty() && runs.iter().all(|r| r.hold.connected == clients)
    }

    /// The claimed rate of each repeat (0 where nothing was held).
    fn claims(&self, config: Config, clients: usize, pick: Pick) -> Option<Spread> {
        Spread::of(
            self.runs_of(config, clients)
                .iter()
                .filter_map(|r| pick(r))
                .map(|l| l.highest_held.unwrap_or(0.0)),
        )
    }
}

/// Which ladder of a run.
type Pick = fn(&Run) -> Option<&Ladder>;

fn fan_out(run: &Run) -> Option<&Ladder> {
    run.fan_out.as_ref()
}

fn storm(run: &Run) -> Option<&Ladder> {
    run.storm.as_ref()
}

/// A target and how this run compares.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Standing {
    /// What is measured.
    pub figure: String,
    /// The target, in words.
    pub target: String,
    /// What this run measured, in words.
    pub measured: String,
    /// Met, missed, or not measured in this run.
    pub met: Option<bool>,
}

const NATIVE: Config = (Peer::Causerie, Protocol::Causerie);
const CAUSERIE_SEED: Config = (Peer::Causerie, Protocol::Seed);
const NODE: Config = (Peer::Node, Protocol::Seed);
const FLASK: Config = (Peer::Flask, Protocol::Seed);

/// Compares the run with the targets, as ratios of medians from this same run.
pub fn standing(report: &Report) -> Vec<Standing> {
    let mut out = Vec::new();
    let largest = report.sizes().into_iter().max().unwrap_or(0);
    let at_scale = largest >= 10_000;
    let mut push = |figure: String, target: &str, measured: String, met: Option<bool>| {
        out.push(Standing {
            figure,
            target: target.to_owned(),
            measured,
            met,
        });
    };
    let median = |config, f: fn(&Hold) -> f64| {
        report
            .held_all(config, largest)
            .then(|| report.hold(config, largest, f))
            .flatten()
            .map(|s| s.median)
    };
    let connects = |h: &Hold| h.connects_per_s;
    let memory = |h: &Hold| h.rss_per_connection_kb;

    for (theirs, factor, target) in [
        (NODE, 3.0, "at least 3x Node's (seed clients)"),
        (CAUSERIE_SEED, 0.8, "at least 80% of Causerie's seed path"),
    ] {
        let (measured, met) = match (median(NATIVE, connects), median(theirs, connects)) {
            (Some(ours), Some(other)) => (
                format!("{ours:.0}/s against {other:.0}/s ({:.2}x)", ours / other),
                at_scale.then_some(ours >= factor * other),
            ),
            _ => ("not measured".to_owned(), None),
        };
        push(
            format!("Causerie clients at {largest}: connections per second"),
            target,
            measured,
            met,
        );
    }
    let (measured, met) = match (median(NATIVE, memory), median(NODE, memory)) {
        (Some(ours), Some(node)) => (
            format!(
                "{ours:.1} KB against {node:.1} KB ({:.2} of Node's)",
                ours / node
            ),
            at_scale.then_some(ours <= node),
        ),
        _ => ("not measured".to_owned(), None),
    };
    push(
        format!("Causerie clients at {largest}: server memory per connection"),
        "at most Node's (seed clients)",
        measured,
        met,
    );
    let (measured, met) =
        match report.hold(NATIVE, largest, |h| h.presence_bytes_per_arrival_member) {
            Some(bytes) => (
                format!("{} bytes at {largest} clients", bytes.show(one)),
                Some(bytes.max < 200.0),
            ),
            None => ("not measured".to_owned(), None),
        };
    push(
        "Presence bytes per arrival per member".to_owned(),
        "under 200",
        measured,
        met,
    );
    let attacks: Vec<&abuse::AttackResult> = report.abuse.iter().flat_map(|a| &a.attacks).collect();
    let (measured, met) = if attacks.is_empty() {
        ("not measured".to_owned(), None)
    } else {
        let failed: Vec<String> = attacks
            .iter()
            .filter(|a| !a.held)
            .map(|a| a.name.clone())
            .collect();
        (
            if failed.is_empty() {
                format!(
                    "{} attacks in {} runs, all held",
                    attacks.len(),
                    report.abuse.len()
                )
            } else {
                format!("not held: {}", failed.join(", "))
            },
            Some(failed.is_empty()),
        )
    };
    push(
        "Abuse: the server stays up, RSS under 2x idle, normal clients lose nothing, p99 under 100 ms"
            .to_owned(),
        "every attack",
        measured,
        met,
    );

    // The seed protocol's figures against the peers, as published before.
    for (peer, factor) in [(NODE, 3.0), (FLASK, 30.0)] {
        let ours = report
            .claims(CAUSERIE_SEED, 1000, fan_out)
            .map(|s| s.median);
        let theirs = report.claims(peer, 1000, fan_out).map(|s| s.median);
        let (measured, met) = match (ours, theirs) {
            (Some(ours), Some(theirs)) if theirs > 0.0 => (
                format!("{ours} msg/s against {theirs} msg/s: {:.1}x", ours / theirs),
                Some(ours >= factor * theirs),
            ),
            (Some(ours), Some(_)) => (
                format!("{ours} msg/s; {} held no rate", label(peer)),
                Some(ours > 0.0),
            ),
            _ => ("not measured".to_owned(), None),
        };
        push(
            format!(
                "Seed clients: fan-out rate held at 1,000 clients, against {}",
                label(peer)
            ),
            &format!("at least {factor}x"),
            measured,
            met,
        );
    }
    let (measured, met) = match (median(CAUSERIE_SEED, connects), median(NODE, connects)) {
        (Some(ours), Some(node)) => (
            format!("{ours:.0}/s against {node:.0}/s ({:.2}x)", ours / node),
            at_scale.then_some(ours >= 3.0 * node),
        ),
        _ => ("not measured".to_owned(), None),
    };
    push(
        format!("Seed clients at {largest}: connections per second"),
        "at least 3x Node's",
        measured,
        met,
    );
    let (measured, met) = match (median(CAUSERIE_SEED, memory), median(NODE, memory)) {
        (Some(ours), Some(node)) => (
            format!(
                "{ours:.1} KB against {node:.1} KB ({:.2} of Node's)",
                ours / node
            ),
            at_scale.then_some(ours * 3.0 <= node),
        ),
        _ => ("not measured".to_owned(), None),
    };
    push(
        format!("Seed clients at {largest}: server memory per connection"),
        "at most 1/3 of Node's",
        measured,
        met,
    );
    let ingest = Spread::of(
        report
            .ingest
            .iter()
            .map(|i| i.ladder.best().map_or(0.0, |s| s.deliveries_per_s)),
    );
    let (measured, met) = match ingest {
        Some(rate) => (
            format!(
                "{} acked msg/s held (p99 ack under 20 ms)",
                rate.show(whole)
            ),
            Some(rate.median >= 20_000.0 * 0.99),
        ),
        None => ("not measured".to_owned(), None),
    };
    push(
        "Durable ingest from 1,000 senders (synchronous = FULL)".to_owned(),
        "at least 20,000 acked msg/s",
        measured,
        met,
    );
    out
}

/// The Markdown summary: the machine, one table per scenario, and the standing.
pub fn markdown(report: &Report) -> String {
    let mut md = String::new();
    let m = &report.machine;
    let _ = writeln!(
        md,
        "Run started {} on {}, {} cores, {:.0} GiB, {}; {}.\n",
        report.started, m.cpu, m.cores, m.memory_gib, m.os, m.pinning
    );
    let software: Vec<String> = m.software.iter().map(|(k, v)| format!("{k} {v}")).collect();
    let _ = writeln!(md, "Software: {}.\n", software.join(", "));
    let repeats = report.repeats();
    let _ = writeln!(
        md,
        "Every scenario ran {repeats} time{} on fresh servers; figures are the median, with the range in brackets when the runs differ. Load steps last {:.0} s; a rate is held when 2 of 3 tries hold it, and the highest is then confirmed for {:.0} s.\n",
        if repeats == 1 { "" } else { "s" },
        report.settings.step.as_secs_f64(),
        report.settings.confirm.as_secs_f64(),
    );

    let _ = writeln!(md, "### Where Causerie stands\n");
    let _ = writeln!(md, "| figure | target | this run | met |");
    let _ = writeln!(md, "|---|---|---|---|");
    for s in standing(report) {
        let met = match s.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {met} |",
            s.figure, s.target, s.measured
        );
    }

    hold_table(report, &mut md);
    for (title, pick) in [
        (
            "Fan-out: one sender, every client receives",
            fan_out as Pick,
        ),
        ("Chat storm: every client sends in turn", storm as Pick),
    ] {
        ladder_table(report, &mut md, title, pick);
    }
    shared_rate_table(report, &mut md);
    ingest_table(report, &mut md);
    nodes_table(report, &mut md);
    abuse_table(report, &mut md);
    load_generator_notes(report, &mut md);
    md
}

fn hold_table(report: &Report, md: &mut String) {
    let _ = writeln!(md, "\n### Hold: connecting N clients\n");
    let _ = writeln!(
        md,
        "Memory per connection is the slope of the server's resident memory between N/2 and N clients. Presence is what Causerie clients received about each other while connecting, per arrival and per member already there. After a history page: what each connection's memory grew by once every Causerie client had joined a room of 50 long messages and read its latest page (its size in brackets).\n"
    );
    let _ = writeln!(
        md,
        "| clients | server | welcomed | connections/s | welcome p50 | welcome p99 | memory per connection | welcome size | presence bytes per arrival per member | after a history page |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in report.sizes() {
        for config in report.configs() {
            let runs = report.runs_of(config, n);
            if runs.is_empty() {
                continue;
            }
            let show = |f: fn(&Hold) -> f64, fmt: fn(f64) -> String| {
                report
                    .hold(config, n, f)
                    .map_or_else(|| "–".to_owned(), |s| s.show(fmt))
            };
            let (presence, page) = if config.1 == Protocol::Causerie {
                (
                    show(|h| h.presence_bytes_per_arrival_member, one),
                    format!(
                        "+{} KB ({} KB)",
                        show(|h| h.rss_after_history_page_kb, one),
                        show(|h| h.history_page_bytes / 1e3, whole)
                    ),
                )
            } else {
                ("–".to_owned(), "–".to_owned())
            };
            let _ = writeln!(
                md,
                "| {n} | {} | {} | {} | {} ms | {} ms | {} KB | {} B | {presence} | {page} |",
                label(config),
                show(|h| h.connected as f64, whole),
                show(|h| h.connects_per_s, whole),
                show(|h| h.welcome_p50_ms, one),
                show(|h| h.welcome_p99_ms, one),
                show(|h| h.rss_per_connection_kb, one),
                show(|h| h.welcome_bytes, whole),
            );
        }
    }
}

fn ladder_table(report: &Report, md: &mut String, title: &str, pick: Pick) {
    let _ = writeln!(md, "\n### {title}\n");
    let _ = writeln!(
        md,
        "Highest rate held (nothing lost, p99 under 100 ms, in 2 of 3 tries and then for the confirming run), and that run's figures. Tries: how many tries the claimed rate and the next one took, and how many held.\n"
    );
    let _ = writeln!(
        md,
        "| clients | server | highest msg/s held | deliveries/s | p50 | p99 | max | server CPU per delivery | tries |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for n in report.sizes() {
        for config in report.configs() {
            let runs = report.runs_of(config, n);
            if runs.is_empty() {
                continue;
            }
            if !report.held_all(config, n) && runs.iter().all(|r| pick(r).is_none()) {
                let welcomed = runs.iter().map(|r| r.hold.connected).min().unwrap_or(0);
                let _ = writeln!(
                    md,
                    "| {n} | {} | did not hold {n} clients ({welcomed} welcomed) | | | | | | |",
                    label(config)
                );
                continue;
            }
            let ladders: Vec<&Ladder> = runs.iter().filter_map(|r| pick(r)).collect();
            if ladders.is_empty() {
                continue;
            }
            let Some(claims) = report.claims(config, n, pick) else {
                continue;
            };
            let best: Vec<&Step> = ladders.iter().filter_map(|l| l.best()).collect();
            if best.is_empty() {
                let lowest = ladders
                    .first()
                    .and_then(|l| l.steps.first())
                    .map(step_brief)
                    .unwrap_or_default();
                let _ = writeln!(
                    md,
                    "| {n} | {} | none (lowest rate: {lowest}) | | | | | | {} |",
                    label(config),
                    tries_brief(&ladders)
                );
                continue;
            }
            let top = |f: fn(&Step) -> f64, fmt: fn(f64) -> String| {
                Spread::of(best.iter().map(|s| f(s))).map_or_else(String::new, |s| s.show(fmt))
            };
            let at_top = ladders.iter().any(|l| {
                l.highest_tried
                    .is_some_and(|rate| scenario::ladder_rates(n).last() == Some(&rate))
            });
            let _ = writeln!(
                md,
                "| {n} | {} | {}{} | {} | {} ms | {} ms | {} ms | {} µs | {} |",
                label(config),
                if at_top { "≥ " } else { "" },
                claims.show(|v| format!("{v}")),
                top(|s| s.deliveries_per_s, whole),
                top(|s| s.p50_ms, two),
                top(|s| s.p99_ms, two),
                top(|s| s.max_ms, two),
                top(|s| s.server_cpu_us_per_delivery, two),
                tries_brief(&ladders),
            );
        }
    }
}

/// For each repeat: the tries of the claimed rate and of the first rate not held, as
/// `held/tried`.
fn tries_brief(ladders: &[&Ladder]) -> String {
    ladders
        .iter()
        .map(|l| {
            let of = |rate: f64| {
                let tries: Vec<&Step> = l.tries(rate).collect();
                format!(
                    "{}/{}",
                    tries.iter().filter(|s| s.held).count(),
                    tries.len()
                )
            };
            let claimed = l.highest_tried.map(|r| format!("{r}: {}", of(r)));
            let next = l.first_not_held().map(|r| format!("{r}: {}", of(r)));
            [claimed, next]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn step_brief(step: &Step) -> String {
    format!(
        "{} msg/s, p99 {:.0} ms, {} of {} lost",
        step.messages_per_s, step.p99_ms, step.lost, step.expected
    )
}

/// The fan-out rate, per client count, at which every server ran below saturation in every
/// repeat, and each one's CPU per delivery there.
fn shared_rate_table(report: &Report, md: &mut String) {
    let _ = writeln!(md, "\n### Server CPU per delivery at a shared rate\n");
    let _ = writeln!(
        md,
        "At the highest fan-out rate where every server, in every repeat, lost nothing and used under {:.0}% of its core (first tries only): what a delivery costs when no server is saturated. At a saturated server the figure is only 1/throughput.\n",
        SATURATED_CORES * 100.0
    );
    let _ = writeln!(
        md,
        "| clients | shared rate | server | server CPU per delivery | server cores |"
    );
    let _ = writeln!(md, "|---:|---:|---|---:|---:|");
    for n in report.sizes() {
        let configs: Vec<Config> = report
            .configs()
            .into_iter()
            .filter(|c| report.runs_of(*c, n).iter().any(|r| r.fan_out.is_some()))
            .collect();
        let first_tries = |config: Config, rate: f64| -> Vec<&Step> {
            report
                .runs_of(config, n)
                .iter()
                .filter_map(|r| r.fan_out.as_ref())
                .filter_map(|l| l.tries(rate).find(|s| s.attempt == 1))
                .collect()
        };
        let below = |config: Config, rate: f64| {
            let steps = first_tries(config, rate);
            let repeats = report
                .runs_of(config, n)
                .iter()
                .filter(|r| r.fan_out.is_some())
                .count();
            steps.len() == repeats
                && steps
                    .iter()
                    .all(|s| s.server_cpu_cores < SATURATED_CORES && s.lost == 0)
        };
        let shared = scenario::ladder_rates(n)
            .into_iter()
            .rev()
            .find(|&rate| !configs.is_empty() && configs.iter().all(|&c| below(c, rate)));
        let Some(rate) = shared else {
            continue;
        };
        for config in configs {
            let steps = first_tries(config, rate);
            let cpu = Spread::of(steps.iter().map(|s| s.server_cpu_us_per_delivery));
            let cores = Spread::of(steps.iter().map(|s| s.server_cpu_cores));
            let _ = writeln!(
                md,
                "| {n} | {rate} msg/s ({:.0} deliveries/s) | {} | {} µs | {} |",
                rate * n as f64,
                label(config),
                cpu.map_or_else(String::new, |s| s.show(two)),
                cores.map_or_else(String::new, |s| s.show(two)),
            );
        }
    }
}

fn ingest_table(report: &Report, md: &mut String) {
    let Some(first) = report.ingest.first() else {
        return;
    };
    let _ = writeln!(
        md,
        "\n### Durable ingest (Causerie, synchronous = FULL, {} senders)\n",
        first.senders
    );
    let claims = Spread::of(
        report
            .ingest
            .iter()
            .map(|i| i.ladder.highest_held.unwrap_or(0.0)),
    );
    let _ = writeln!(
        md,
        "Highest rate held (every message acked, p99 ack under 20 ms, 2 of 3 tries, then confirmed): {} msg/s. Every try of the first run:\n",
        claims.map_or_else(|| "none".to_owned(), |s| s.show(whole))
    );
    let _ = writeln!(
        md,
        "| offered msg/s | try | acked msg/s | lost | ack p50 | ack p99 | ack max | server CPU per message | held |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---|");
    for s in &first.ladder.steps {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} µs | {} |",
            s.messages_per_s,
            if s.confirm {
                format!("confirm ({:.0} s)", s.seconds)
            } else {
                s.attempt.to_string()
            },
            s.deliveries_per_s,
            s.lost,
            s.p50_ms,
            s.p99_ms,
            s.max_ms,
            s.server_cpu_us_per_delivery,
            if s.held { "yes" } else { "no" }
        );
    }
}

/// Several nodes, each figure also as a ratio to the single SQLite node of the same run.
fn nodes_table(report: &Report, md: &mut String) {
    let Some(first) = report.nodes.first() else {
        return;
    };
    let _ = writeln!(
        md,
        "\n### Several nodes (Causerie clients: fan-out to {}, durable ingest from {} senders)\n",
        first.clients, first.ingest_senders
    );
    let _ = writeln!(
        md,
        "Every server process (nodes, PostgreSQL with fsync on, Redis) shares the server's core: this measures what each hop costs, not what a cluster of machines holds. Two nodes: the clients alternate between them, the fan-out's sender on the first. Ratios are to one node on SQLite, in the same run.\n"
    );
    let _ = writeln!(
        md,
        "| deployment | fan-out held | ratio | fan-out p99 at that rate | durable ingest held | ratio | ack p99 at that rate |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    let of = |topology: Topology| -> Vec<&NodesRun> {
        report
            .nodes
            .iter()
            .filter(|r| r.topology == topology)
            .collect()
    };
    let held = |runs: &[&NodesRun], pick: fn(&NodesRun) -> Option<&Ladder>| {
        Spread::of(
            runs.iter()
                .filter_map(|r| pick(r))
                .map(|l| l.highest_held.unwrap_or(0.0)),
        )
    };
    let p99 = |runs: &[&NodesRun], pick: fn(&NodesRun) -> Option<&Ladder>| {
        Spread::of(
            runs.iter()
                .filter_map(|r| pick(r))
                .filter_map(|l| l.best())
                .map(|s| s.p99_ms),
        )
    };
    let fan_out: fn(&NodesRun) -> Option<&Ladder> = |r| r.fan_out.as_ref();
    let ingest: fn(&NodesRun) -> Option<&Ladder> = |r| r.ingest.as_ref();
    let base = of(Topology::Sqlite);
    let ratio = |ours: Option<Spread>, theirs: Option<Spread>| match (ours, theirs) {
        (Some(ours), Some(base)) if base.median > 0.0 => {
            format!("{:.2}", ours.median / base.median)
        }
        _ => "–".to_owned(),
    };
    let show = |spread: Option<Spread>, unit: &str, f: fn(f64) -> String| {
        spread.map_or_else(|| "–".to_owned(), |s| format!("{}{unit}", s.show(f)))
    };
    for topology in Topology::ALL {
        let runs = of(topology);
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} |",
            topology.label(),
            show(held(&runs, fan_out), " msg/s", whole),
            ratio(held(&runs, fan_out), held(&base, fan_out)),
            show(p99(&runs, fan_out), " ms", one),
            show(held(&runs, ingest), " msg/s", whole),
            ratio(held(&runs, ingest), held(&base, ingest)),
            show(p99(&runs, ingest), " ms", two),
        );
    }
}

fn abuse_table(report: &Report, md: &mut String) {
    let Some(first) = report.abuse.first() else {
        return;
    };
    let _ = writeln!(
        md,
        "\n### Abuse, while {} Causerie clients chat\n",
        first.normal_clients
    );
    let _ = writeln!(
        md,
        "Each attack on a fresh Causerie as people run it (default limits, a join code, one allowed origin, a metrics token, its log a pipe nobody reads), with {} normal clients in `general` sending {} messages a second between them; each attacker has an address of its own. Idle: the server's memory with the normal clients chatting, before the attack. Figures are the worst of the runs; what the attacker got is from the first run. Held: the server stayed up and answered `/healthz` from another address throughout, its peak RSS stayed under {}x idle, and the normal clients lost nothing, kept p99 under 100 ms and stayed connected.\n",
        first.normal_clients,
        first.chat_rate,
        abuse::RSS_LIMIT_RATIO,
    );
    let _ = writeln!(
        md,
        "| attack | what it does | what the attacker got | idle RSS | peak RSS | stayed up | normal p99 | normal lost | log lines dropped | held |"
    );
    let _ = writeln!(md, "|---|---|---|---:|---:|---|---:|---:|---:|---|");
    for attack in &first.attacks {
        let all: Vec<&abuse::AttackResult> = report
            .abuse
            .iter()
            .flat_map(|a| &a.attacks)
            .filter(|a| a.name == attack.name)
            .collect();
        let worst =
            |f: fn(&abuse::AttackResult) -> f64| all.iter().map(|a| f(a)).fold(f64::NAN, f64::max);
        let effect = match &attack.error {
            Some(error) => format!("harness error: {error}"),
            None => attack.effect.clone(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} MB | {:.1} MB ({:.2}x) | {} | {:.1} ms | {} of {} | {} | {} |",
            attack.name,
            attack.what,
            effect.replace('|', "\\|"),
            worst(|a| a.idle_rss_mb),
            worst(|a| a.peak_rss_mb),
            worst(|a| a.rss_ratio),
            if all.iter().all(|a| a.stayed_up) {
                "yes"
            } else {
                "**no**"
            },
            worst(|a| a.chat.p99_ms),
            all.iter().map(|a| a.chat.lost).sum::<u64>(),
            all.iter().map(|a| a.chat.expected).sum::<u64>(),
            all.iter()
                .filter_map(|a| a.log_lines_dropped)
                .max()
                .map_or_else(|| "unknown".to_owned(), |d| d.to_string()),
            if all.iter().all(|a| a.held) {
                "yes"
            } else {
                "**no**"
            },
        );
    }
}

fn load_generator_notes(report: &Report, md: &mut String) {
    let steps: Vec<&Step> = report
        .runs
        .iter()
        .flat_map(|r| r.fan_out.iter().chain(r.storm.iter()))
        .chain(report.ingest.iter().map(|i| &i.ladder))
        .flat_map(|l| &l.steps)
        .collect();
    let load_bound = steps.iter().filter(|s| s.load_bound).count();
    let third_tries = steps.iter().filter(|s| s.attempt == 3).count();
    let _ = writeln!(md, "\n### The load generator\n");
    let _ = writeln!(
        md,
        "Tries: {}; {third_tries} rates needed a third try. Tries where the load generator was busy enough to distort latency (over 90% of its cores while sending, or sending or reading more than 10 ms late at p99): {load_bound}.",
        steps.len()
    );
    let Some(check) = &report.load_check else {
        return;
    };
    let sizes: Vec<usize> = check.runs.iter().map(|r| r.clients).collect();
    for n in sizes {
        let main = report.claims(NATIVE, n, fan_out);
        let checked = Spread::of(
            check
                .runs
                .iter()
                .filter(|r| r.clients == n && (r.peer, r.protocol) == NATIVE)
                .filter_map(|r| r.fan_out.as_ref())
                .map(|l| l.highest_held.unwrap_or(0.0)),
        );
        let p99 = |runs: Vec<&Run>| {
            Spread::of(
                runs.iter()
                    .filter_map(|r| r.fan_out.as_ref()?.best())
                    .map(|s| s.p99_ms),
            )
        };
        let check_runs: Vec<&Run> = check.runs.iter().filter(|r| r.clients == n).collect();
        let _ = writeln!(
            md,
            "\nMore cores for the load generator: Causerie clients' fan-out to {n} clients, with the load generator on {} cores (the server's shared) instead of {}: highest rate held {} msg/s (p99 {} ms) against {} msg/s (p99 {} ms) in the main run.",
            check.check_cores,
            check.main_cores,
            checked.map_or_else(|| "–".to_owned(), |s| s.show(|v| format!("{v}"))),
            p99(check_runs).map_or_else(|| "–".to_owned(), |s| s.show(two)),
            main.map_or_else(|| "–".to_owned(), |s| s.show(|v| format!("{v}"))),
            p99(report.runs_of(NATIVE, n)).map_or_else(|| "–".to_owned(), |s| s.show(two)),
        );
    }
}

/// Writes the SVG chart: p99 fan-out latency against deliveries per second (first tries of the
/// first repeat), a panel per client count, a line per server and protocol.
pub fn chart(report: &Report, path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let sizes = report.sizes();
    let width = 480 * sizes.len().max(1) as u32;
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE).context("drawing the chart")?;
    let colors = [
        RGBColor(120, 20, 10),
        RGBColor(200, 60, 30),
        RGBColor(40, 110, 200),
        RGBColor(60, 150, 60),
        RGBColor(150, 80, 170),
    ];
    for (panel, n) in root
        .split_evenly((1, sizes.len().max(1)))
        .iter()
        .zip(&sizes)
    {
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("Fan-out to {n} clients"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d((500f64..6e6f64).log_scale(), (0.05f64..5000f64).log_scale())
            .context("drawing the chart")?;
        chart
            .configure_mesh()
            // Solid light greys rather than translucent black: not every SVG renderer honours
            // opacity.
            .bold_line_style(RGBColor(200, 200, 200))
            .light_line_style(RGBColor(240, 240, 240))
            .x_desc("deliveries per second")
            .y_desc("p99 latency (ms)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y}"))
            .draw()
            .context("drawing the chart")?;
        chart
            .draw_series(LineSeries::new(
                [(500.0, 100.0), (6e6, 100.0)],
                BLACK.mix(0.3),
            ))
            .context("drawing the chart")?;
        for (config, color) in report.configs().into_iter().zip(colors) {
            let Some(ladder) = report
                .runs_of(config, *n)
                .first()
                .and_then(|r| r.fan_out.as_ref())
            else {
                continue;
            };
            let points: Vec<(f64, f64)> = ladder
                .steps
                .iter()
                .filter(|s| s.attempt == 1 && !s.confirm)
                .map(|s| (s.deliveries_per_s.max(500.0), s.p99_ms.clamp(0.05, 5000.0)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .context("drawing the chart")?
                .label(label(config))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .context("drawing the chart")?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(RGBColor(150, 150, 150))
            .background_style(WHITE)
            .draw()
            .context("drawing the chart")?;
    }
    root.present().context("writing the chart")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spread_is_the_median_and_the_range() {
        let spread = Spread::of([3.0, 1.0, f64::NAN, 2.0]).expect("values");
        assert_eq!((spread.median, spread.min, spread.max), (2.0, 1.0, 3.0));
        assert_eq!(spread.show(whole), "2 (1–3)");
        let agreed = Spread::of([5.0, 5.0]).expect("values");
        assert_eq!(agreed.show(whole), "5");
        assert_eq!(Spread::of([4.0, 8.0]).map(|s| s.median), Some(4.0));
        assert!(Spread::of([f64::NAN]).is_none());
    }
}
