//! The run's results: the JSON kept for later, the Markdown tables people read, the SVG chart of
//! latency against load, and where Causerie stands against the targets of issue 5.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::peer::Peer;
use crate::scenario::{Hold, Ladder, Settings, Step};

/// Everything one invocation measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// When the run started (UTC, RFC 3339).
    pub started: String,
    /// The machine it ran on.
    pub machine: Machine,
    /// The harness's settings.
    pub settings: Settings,
    /// One entry per server and client count, in the order they ran.
    pub runs: Vec<Run>,
    /// Causerie's durable ingest, when Causerie ran.
    pub ingest: Option<Ingest>,
}

/// The machine, so that figures are never quoted without it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's model name.
    pub cpu: String,
    /// Cores the kernel reports.
    pub cores: usize,
    /// Memory, in GiB.
    pub memory_gib: f64,
    /// The operating system and kernel.
    pub os: String,
    /// Which cores the servers were pinned to, and which the load generator ran on.
    pub pinning: String,
    /// The version of each server library and runtime.
    pub software: Vec<(String, String)>,
}

/// One server at one client count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    /// Which server.
    pub peer: Peer,
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

impl Report {
    fn run(&self, peer: Peer, clients: usize) -> Option<&Run> {
        self.runs
            .iter()
            .find(|r| r.peer == peer && r.clients == clients)
    }

    fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.runs.iter().map(|r| r.clients).collect();
        sizes.sort_unstable();
        sizes.dedup();
        sizes
    }

    fn peers(&self) -> Vec<Peer> {
        Peer::ALL
            .into_iter()
            .filter(|p| self.runs.iter().any(|r| r.peer == *p))
            .collect()
    }
}

/// A target of issue 5 and how this run compares.
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

/// Compares the run with the targets, as ratios of figures from this same run.
pub fn standing(report: &Report) -> Vec<Standing> {
    let mut out = Vec::new();
    let highest = |peer, n| {
        report
            .run(peer, n)
            .and_then(|r| r.fan_out.as_ref())
            .and_then(|l| l.highest_held)
    };
    for (peer, factor) in [(Peer::Node, 3.0), (Peer::Flask, 30.0)] {
        let figure = format!(
            "Highest fan-out rate held at 1,000 clients, against {}",
            peer.label()
        );
        let target = format!("at least {factor}x");
        let (measured, met) = match (highest(Peer::Causerie, 1000), highest(peer, 1000)) {
            (Some(ours), Some(theirs)) => (
                format!("{ours} msg/s against {theirs} msg/s: {:.1}x", ours / theirs),
                Some(ours / theirs >= factor),
            ),
            (Some(ours), None) => (
                format!("{ours} msg/s; {} held no step", peer.label()),
                report.run(peer, 1000).map(|_| true),
            ),
            _ => ("not measured".to_owned(), None),
        };
        out.push(Standing {
            figure,
            target,
            measured,
            met,
        });
    }

    // p99 at the highest fan-out rate Node held at 1,000 clients.
    let at = |peer, rate: f64| -> Option<&Step> {
        report
            .run(peer, 1000)?
            .fan_out
            .as_ref()?
            .steps
            .iter()
            .rfind(|s| s.messages_per_s == rate)
    };
    let (measured, met) = match highest(Peer::Node, 1000)
        .and_then(|rate| Some((rate, at(Peer::Causerie, rate)?, at(Peer::Node, rate)?)))
    {
        Some((rate, ours, node)) => (
            format!(
                "at {rate} msg/s to 1,000 clients: {:.2} ms against {:.2} ms ({:.2} of Node's)",
                ours.p99_ms,
                node.p99_ms,
                ours.p99_ms / node.p99_ms
            ),
            Some(ours.p99_ms <= node.p99_ms / 5.0),
        ),
        None => ("not measured".to_owned(), None),
    };
    out.push(Standing {
        figure: "p99 fan-out latency at the highest rate Node socket.io holds".to_owned(),
        target: "at most 1/5 of Node's".to_owned(),
        measured,
        met,
    });

    let largest = report.sizes().into_iter().max().unwrap_or(0);
    let hold = |peer| report.run(peer, largest).map(|r| &r.hold);
    let (measured, met) = match (hold(Peer::Causerie), hold(Peer::Node)) {
        (Some(ours), Some(node)) if ours.connected == largest && node.connected == largest => (
            format!(
                "at {largest} clients: {:.1} KB against {:.1} KB ({:.2} of Node's)",
                ours.rss_per_connection_kb,
                node.rss_per_connection_kb,
                ours.rss_per_connection_kb / node.rss_per_connection_kb
            ),
            (largest >= 10_000)
                .then_some(ours.rss_per_connection_kb * 3.0 <= node.rss_per_connection_kb),
        ),
        _ => ("not measured".to_owned(), None),
    };
    out.push(Standing {
        figure: "Server memory per idle connection at 10,000 clients".to_owned(),
        target: "at most 1/3 of Node's".to_owned(),
        measured,
        met,
    });
    let (measured, met) = match (hold(Peer::Causerie), hold(Peer::Node)) {
        (Some(ours), Some(node)) if ours.connected == largest && node.connected == largest => (
            format!(
                "at {largest} clients: {:.0}/s against {:.0}/s ({:.2}x)",
                ours.connects_per_s,
                node.connects_per_s,
                ours.connects_per_s / node.connects_per_s
            ),
            (largest >= 10_000).then_some(ours.connects_per_s >= 3.0 * node.connects_per_s),
        ),
        _ => ("not measured".to_owned(), None),
    };
    out.push(Standing {
        figure: "Connections per second at 10,000 clients".to_owned(),
        target: "at least 3x Node's".to_owned(),
        measured,
        met,
    });

    let (measured, met) = match &report.ingest {
        Some(ingest) => {
            let best = ingest.ladder.best();
            match best {
                Some(step) => (
                    format!(
                        "{:.0} acked msg/s from {} senders, p99 ack {:.2} ms",
                        step.deliveries_per_s, ingest.senders, step.p99_ms
                    ),
                    Some(step.deliveries_per_s >= 20_000.0 * 0.99 && ingest.senders >= 1000),
                ),
                None => ("no step held".to_owned(), Some(false)),
            }
        }
        None => ("not measured".to_owned(), None),
    };
    out.push(Standing {
        figure: "Durable ingest (synchronous = FULL), p99 ack under 20 ms".to_owned(),
        target: "at least 20,000 acked msg/s from 1,000 senders".to_owned(),
        measured,
        met,
    });
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

    let _ = writeln!(md, "### Hold: connecting N clients\n");
    let _ = writeln!(
        md,
        "| clients | server | welcomed | connections/s | welcome p50 | welcome p99 | server memory per connection |"
    );
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|");
    for n in report.sizes() {
        for peer in report.peers() {
            if let Some(run) = report.run(peer, n) {
                let h = &run.hold;
                let _ = writeln!(
                    md,
                    "| {n} | {} | {} | {:.0} | {:.1} ms | {:.1} ms | {:.1} KB |",
                    peer.label(),
                    h.connected,
                    h.connects_per_s,
                    h.welcome_p50_ms,
                    h.welcome_p99_ms,
                    h.rss_per_connection_kb
                );
            }
        }
    }

    for (title, pick) in [
        (
            "Fan-out: one sender, every client receives",
            (|r: &Run| r.fan_out.as_ref()) as fn(&Run) -> Option<&Ladder>,
        ),
        ("Chat storm: every client sends in turn", |r: &Run| {
            r.storm.as_ref()
        }),
    ] {
        let _ = writeln!(md, "\n### {title}\n");
        let _ = writeln!(
            md,
            "Highest rate held (nothing lost, p99 under 100 ms), with the figures of that step.\n"
        );
        let _ = writeln!(
            md,
            "| clients | server | highest msg/s held | deliveries/s | p50 | p99 | max | server CPU per delivery |"
        );
        let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|");
        for n in report.sizes() {
            for peer in report.peers() {
                let Some(run) = report.run(peer, n) else {
                    continue;
                };
                let row = match pick(run) {
                    None if run.hold.connected < n => format!(
                        "| {n} | {} | did not hold {n} clients ({} welcomed) | | | | | |",
                        peer.label(),
                        run.hold.connected
                    ),
                    None => continue,
                    Some(ladder) => match ladder.best() {
                        None => format!(
                            "| {n} | {} | none (lowest step: {}) | | | | | |",
                            peer.label(),
                            ladder.steps.first().map(step_brief).unwrap_or_default()
                        ),
                        Some(s) => format!(
                            "| {n} | {} | {}{} | {:.0} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} µs |",
                            peer.label(),
                            // Held at the ladder's top: the server may hold more.
                            if ladder.steps.last().is_some_and(|last| last.held) {
                                "≥ "
                            } else {
                                ""
                            },
                            s.messages_per_s,
                            s.deliveries_per_s,
                            s.p50_ms,
                            s.p99_ms,
                            s.max_ms,
                            s.server_cpu_us_per_delivery
                        ),
                    },
                };
                let _ = writeln!(md, "{row}");
            }
        }
    }

    if let Some(ingest) = &report.ingest {
        let _ = writeln!(
            md,
            "\n### Durable ingest (Causerie, synchronous = FULL, {} senders)\n",
            ingest.senders
        );
        let _ = writeln!(
            md,
            "| offered msg/s | acked msg/s | lost | ack p50 | ack p99 | ack max | server CPU per message | held (p99 < 20 ms) |"
        );
        let _ = writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---|");
        for s in &ingest.ladder.steps {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} µs | {} |",
                s.messages_per_s,
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

    let _ = writeln!(md, "\n### Where Causerie stands\n");
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
    let load_bound = report
        .runs
        .iter()
        .flat_map(|r| r.fan_out.iter().chain(r.storm.iter()))
        .chain(report.ingest.iter().map(|i| &i.ladder))
        .flat_map(|l| &l.steps)
        .filter(|s| s.load_bound)
        .count();
    let _ = writeln!(
        md,
        "\nSteps where the load generator itself was busy enough to distort latency: {load_bound}."
    );
    md
}

fn step_brief(step: &Step) -> String {
    format!(
        "{} msg/s, p99 {:.0} ms, {} of {} lost",
        step.messages_per_s, step.p99_ms, step.lost, step.expected
    )
}

/// Writes the SVG chart: p99 fan-out latency against deliveries per second, a panel per client
/// count, a line per server.
pub fn chart(report: &Report, path: &Path) -> anyhow::Result<()> {
    use plotters::prelude::*;

    let sizes = report.sizes();
    let width = 480 * sizes.len().max(1) as u32;
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE).context("drawing the chart")?;
    let colors = [
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
            .build_cartesian_2d((500f64..3e6f64).log_scale(), (0.05f64..5000f64).log_scale())
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
                [(500.0, 100.0), (3e6, 100.0)],
                BLACK.mix(0.3),
            ))
            .context("drawing the chart")?;
        for (peer, color) in Peer::ALL.iter().zip(colors) {
            let Some(ladder) = report.run(*peer, *n).and_then(|r| r.fan_out.as_ref()) else {
                continue;
            };
            let points: Vec<(f64, f64)> = ladder
                .steps
                .iter()
                .filter(|s| !s.retried)
                .map(|s| (s.deliveries_per_s.max(500.0), s.p99_ms.clamp(0.05, 5000.0)))
                .collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                .context("drawing the chart")?
                .label(peer.label())
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
