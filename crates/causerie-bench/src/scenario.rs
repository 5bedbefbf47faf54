//! The scenarios: hold (connect N clients), a load ladder (fan-out from one sender, or a storm from
//! every client), and durable ingest (acked messages from many senders). Each charges the server
//! with the CPU time and memory it used, read from `/proc`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::client::{BenchClient, Counting, Sender};
use crate::probe::{self, Probe};
use crate::schedule::OpenLoop;
use crate::stats::{LatencyRecorder, Steps};
use crate::usage;

/// How long each part of a run lasts, and what counts as held.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// How long each load step sends.
    pub step: Duration,
    /// How long after a step's last send its deliveries may still arrive before they count as lost.
    pub drain: Duration,
    /// The pause after connecting before memory is read, so the server's allocator and garbage
    /// collector settle.
    pub settle: Duration,
    /// Connections opened at once while connecting.
    pub connect_concurrency: usize,
    /// How long a client may take to be welcomed.
    pub connect_timeout: Duration,
    /// Fewest messages in a step, so that slow rates still give a percentile worth reading.
    pub min_messages: u64,
    /// CPU cores the load generator runs on.
    pub load_cores: usize,
    /// Times the hold scenario runs, on fresh servers, for the median.
    pub hold_trials: usize,
}

/// A load step is held when nothing is lost and the p99 latency stays under this.
pub const FAN_OUT_P99_LIMIT: Duration = Duration::from_millis(100);
/// An ingest step is held when every message is acked and the p99 ack latency stays under this.
pub const INGEST_P99_LIMIT: Duration = Duration::from_millis(20);

/// The fan-out and storm ladders, in deliveries per second (messages per second times recipients),
/// so the same ladder fits 100 clients and 10,000.
pub const DELIVERY_LADDER: [f64; 18] = [
    1e3, 2e3, 5e3, 1e4, 2e4, 3e4, 5e4, 7.5e4, 1e5, 1.5e5, 2e5, 3e5, 4e5, 5e5, 7.5e5, 1e6, 1.5e6,
    2e6,
];

/// The fan-out and storm rates for `clients` clients, in messages per second: the delivery ladder
/// from 1 message per second up (a slower step would take minutes to send a handful).
pub fn ladder_rates(clients: usize) -> Vec<f64> {
    DELIVERY_LADDER
        .iter()
        .map(|deliveries| deliveries / clients.max(1) as f64)
        .filter(|&rate| rate >= 1.0)
        .collect()
}

/// The ingest ladder, in messages per second offered across all senders.
pub const INGEST_LADDER: [f64; 9] = [2e3, 5e3, 1e4, 1.5e4, 2e4, 2.5e4, 3e4, 4e4, 5e4];

/// What connecting N clients looked like.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hold {
    /// Clients asked for.
    pub clients: usize,
    /// Clients welcomed.
    pub connected: usize,
    /// The first failure, if any client was not welcomed.
    pub first_error: Option<String>,
    /// Clients welcomed per second, from the first attempt to the last welcome.
    pub connects_per_s: f64,
    /// Median time from opening the websocket to the `welcome` event, in ms.
    pub welcome_p50_ms: f64,
    /// 99th percentile of the same, in ms.
    pub welcome_p99_ms: f64,
    /// Server CPU time per second while connecting, in cores.
    pub server_cpu_cores: f64,
    /// The load generator's CPU time per second while connecting, in cores: near its cores, the
    /// connection rate measures the load generator, not the server.
    pub load_cpu_cores: f64,
    /// The server's resident memory before any client connected, in MB.
    pub idle_rss_mb: f64,
    /// The server's resident memory per connected client after the settle, in KB.
    pub rss_per_connection_kb: f64,
    /// The connection rate of each trial, when the scenario ran more than once.
    pub trials_connects_per_s: Vec<f64>,
}

impl Hold {
    /// The trial with the median connection rate, carrying the median memory per connection
    /// and every trial's rate. Trials that did not welcome every client win: a failure is not
    /// averaged away.
    pub fn median(mut trials: Vec<Hold>) -> Hold {
        let rates: Vec<f64> = trials.iter().map(|h| h.connects_per_s).collect();
        if let Some(failed) = trials.iter().position(|h| h.connected < h.clients) {
            let mut failed = trials.swap_remove(failed);
            failed.trials_connects_per_s = rates;
            return failed;
        }
        let mut memory: Vec<f64> = trials.iter().map(|h| h.rss_per_connection_kb).collect();
        memory.sort_by(f64::total_cmp);
        trials.sort_by(|a, b| a.connects_per_s.total_cmp(&b.connects_per_s));
        let middle = trials.len() / 2;
        let mut median = trials.swap_remove(middle);
        median.rss_per_connection_kb = memory.get(middle).copied().unwrap_or(f64::NAN);
        median.trials_connects_per_s = rates;
        median
    }
}

/// Connects `clients` clients to `url` (with `auth`, when given) and measures the server `pid`.
pub async fn hold(
    url: &str,
    pid: u32,
    clients: usize,
    auth: Option<serde_json::Value>,
    settings: &Settings,
) -> (Hold, Vec<BenchClient>) {
    let before = usage::of(pid).ok();
    let load_before = usage::of_self().ok();
    let welcomes = LatencyRecorder::new(1);
    let started = Instant::now();
    let timeout = settings.connect_timeout;
    // A server that refuses one client in a hundred does not hold N: stop asking rather than
    // wait out a timeout for each of the rest.
    let failures = AtomicUsize::new(0);
    let give_up_after = (clients / 100).max(10);
    let results: Vec<_> = futures_util::stream::iter(0..clients)
        .map(|_| {
            let (auth, failures) = (auth.clone(), &failures);
            async move {
                if failures.load(Ordering::Relaxed) > give_up_after {
                    return Err("not attempted: too many failures before".to_owned());
                }
                let result =
                    tokio::time::timeout(timeout, BenchClient::connect(url, auth.as_ref()))
                        .await
                        .map_err(|_| format!("no welcome within {timeout:?}"))
                        .and_then(|r| r.map_err(|e| e.to_string()));
                if result.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                result
            }
        })
        .buffer_unordered(settings.connect_concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let server_cpu_cores = cpu_between(before, usage::of(pid).ok()) / elapsed.as_secs_f64();
    let load_cpu_cores = cpu_between(load_before, usage::of_self().ok()) / elapsed.as_secs_f64();
    let mut connected = Vec::with_capacity(clients);
    let mut first_error = None;
    for result in results {
        match result {
            Ok(client) => {
                welcomes.record(0, client.welcome_after);
                connected.push(client);
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    tokio::time::sleep(settings.settle).await;
    let after = usage::of(pid).ok();
    let summary = welcomes.summary();
    let (idle_rss_mb, rss_per_connection_kb) = match (before, after) {
        (Some(before), Some(after)) if !connected.is_empty() => (
            before.rss_bytes as f64 / 1e6,
            after.rss_bytes.saturating_sub(before.rss_bytes) as f64 / 1e3 / connected.len() as f64,
        ),
        _ => (f64::NAN, f64::NAN),
    };
    let hold = Hold {
        clients,
        connected: connected.len(),
        first_error,
        connects_per_s: connected.len() as f64 / elapsed.as_secs_f64(),
        welcome_p50_ms: millis(summary.p50),
        welcome_p99_ms: millis(summary.p99),
        server_cpu_cores,
        load_cpu_cores,
        idle_rss_mb,
        rss_per_connection_kb,
        trials_connects_per_s: Vec::new(),
    };
    (hold, connected)
}

/// One step of a ladder.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Messages offered per second, across all senders.
    pub messages_per_s: f64,
    /// Messages sent.
    pub sent: u64,
    /// Deliveries (or acks) expected: each message times its recipients.
    pub expected: u64,
    /// Deliveries (or acks) received in time.
    pub received: u64,
    /// Expected but not received within the drain time.
    pub lost: u64,
    /// Median latency from the intended send time, in ms.
    pub p50_ms: f64,
    /// 99th percentile latency, in ms.
    pub p99_ms: f64,
    /// Slowest, in ms.
    pub max_ms: f64,
    /// Deliveries received per second of sending.
    pub deliveries_per_s: f64,
    /// Server CPU time per delivery, in µs (user plus system, over the step and its drain).
    pub server_cpu_us_per_delivery: f64,
    /// Server CPU time per second of the step, in cores.
    pub server_cpu_cores: f64,
    /// The load generator's CPU time per second of the step, in cores.
    pub load_cpu_cores: f64,
    /// 99th percentile of how late the load generator sent, in ms.
    pub send_lag_p99_ms: f64,
    /// Sends that failed (a broken socket).
    pub send_errors: u64,
    /// Nothing lost, no send failed, p99 under the scenario's limit.
    pub held: bool,
    /// Not held, and run again: the next step is its second attempt.
    pub retried: bool,
    /// The load generator was busy enough to distort the step (its CPU near its cores, or it sent
    /// more than 10 ms late at p99): read this step's latency with care.
    pub load_bound: bool,
}

/// A ladder of steps, up to the first one not held.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ladder {
    /// Each step run, lowest load first.
    pub steps: Vec<Step>,
    /// The highest messages per second held, if any step was.
    pub highest_held: Option<f64>,
}

impl Ladder {
    /// The highest step held.
    pub fn best(&self) -> Option<&Step> {
        self.steps.iter().rev().find(|s| s.held)
    }
}

/// What a ladder sends, and to how many.
pub struct Load<'a> {
    /// The server's process id.
    pub pid: u32,
    /// Senders, used in turn: one for fan-out, every client for a storm.
    pub senders: &'a [Sender],
    /// Clients that receive each message (1 for ingest: the sender's ack).
    pub recipients: usize,
    /// Where the listeners count, by step.
    pub steps: Arc<Steps>,
    /// The first step number of this ladder in `steps`.
    pub first_step: usize,
    /// What the senders send.
    pub kind: LoadKind,
}

/// Seed-protocol broadcasts or Causerie's acked messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    /// `message` with a plain string, broadcast to every client; latency to each recipient.
    Broadcast,
    /// Causerie's `message` object to the sender's own room, with an ack; latency to the ack.
    Acked,
}

/// Runs `load` at each rate of `rates` (messages per second) until a step is not held. A step not
/// held is run once more before the ladder stops, so that one stall of the machine (a disk
/// flush, another process) does not end it; both attempts are kept. Uses at most
/// `2 * rates.len()` step numbers from `load.first_step`.
pub async fn ladder(
    load: &Load<'_>,
    rates: &[f64],
    limit: Duration,
    settings: &Settings,
) -> Ladder {
    let mut ladder = Ladder::default();
    let mut number = load.first_step;
    for &rate in rates {
        let mut step = run_step(load, number, rate, limit, settings).await;
        number += 1;
        report_step(&step);
        quiesce(&load.steps).await;
        if !step.held {
            step.retried = true;
            ladder.steps.push(step);
            step = run_step(load, number, rate, limit, settings).await;
            number += 1;
            report_step(&step);
            quiesce(&load.steps).await;
        }
        let held = step.held;
        if held {
            ladder.highest_held = Some(rate);
        }
        ladder.steps.push(step);
        if !held {
            break;
        }
    }
    ladder
}

fn report_step(step: &Step) {
    eprintln!(
        "    {:>9.1} msg/s: p50 {:>8.2} ms  p99 {:>8.2} ms  lost {:>7}  {:>6.2} µs/delivery{}{}",
        step.messages_per_s,
        step.p50_ms,
        step.p99_ms,
        step.lost,
        step.server_cpu_us_per_delivery,
        if step.held { "" } else { "  (not held)" },
        if step.load_bound {
            "  (load-bound)"
        } else {
            ""
        },
    );
}

async fn run_step(
    load: &Load<'_>,
    step_number: usize,
    rate: f64,
    limit: Duration,
    settings: &Settings,
) -> Step {
    let Some(tally) = load.steps.get(step_number) else {
        unreachable!("the caller sizes the steps for its ladders")
    };
    let count = ((rate * settings.step.as_secs_f64()).ceil() as u64).max(settings.min_messages);
    let server_before = usage::of(load.pid).ok();
    let load_before = usage::of_self().ok();
    let started = Instant::now();
    let schedule = OpenLoop::new(started + Duration::from_millis(5), rate);
    let lags = LatencyRecorder::new(1);
    let mut send_errors = 0;
    for n in 0..count {
        let due = schedule.due(n);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        lags.record(0, Instant::now().saturating_duration_since(due));
        let who = (n as usize) % load.senders.len();
        let probe = Probe {
            step: step_number,
            id: n,
            intended_nanos: probe::nanos_at(due),
        };
        tally.expect(load.recipients as u64);
        let sent = match load.kind {
            LoadKind::Broadcast => load.senders[who].message(&probe.text()).await,
            LoadKind::Acked => {
                let message = serde_json::json!({
                    "id": format!("s{step_number}-{n}"),
                    "room": ingest_room(who),
                    "text": probe.text(),
                });
                load.senders[who]
                    .event_with_ack(n, "message", &message)
                    .await
            }
        };
        if sent.is_err() {
            send_errors += 1;
        }
    }
    let sending = schedule.due(count).saturating_duration_since(started);
    let drain_until = Instant::now() + settings.drain;
    while tally.counts().lost > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let counts = tally.counts();
    let latencies = tally.latencies();
    let server_cpu = cpu_between(server_before, usage::of(load.pid).ok());
    let load_cpu = cpu_between(load_before, usage::of_self().ok());
    let send_lag_p99 = lags.summary().p99;
    let load_cpu_cores = load_cpu / wall;
    Step {
        messages_per_s: rate,
        sent: count,
        expected: counts.expected,
        received: counts.received,
        lost: counts.lost,
        p50_ms: millis(latencies.p50),
        p99_ms: millis(latencies.p99),
        max_ms: millis(latencies.max),
        deliveries_per_s: counts.received as f64 / sending.as_secs_f64(),
        server_cpu_us_per_delivery: server_cpu * 1e6 / counts.received.max(1) as f64,
        server_cpu_cores: server_cpu / wall,
        load_cpu_cores,
        send_lag_p99_ms: millis(send_lag_p99),
        send_errors,
        held: counts.lost == 0 && send_errors == 0 && latencies.p99 < limit,
        retried: false,
        load_bound: load_cpu_cores > 0.9 * settings.load_cores as f64
            || send_lag_p99 > Duration::from_millis(10),
    }
}

/// Waits until deliveries stop arriving (a server that fell behind may still be sending), so the
/// next step starts from a quiet server.
async fn quiesce(steps: &Steps) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = steps.received();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = steps.received();
        if now == last || Instant::now() > deadline {
            return;
        }
        last = now;
    }
}

/// The room ingest sender `who` writes to alone, so each acked message is delivered once.
pub fn ingest_room(who: usize) -> String {
    format!("ingest-{who}")
}

/// Makes a Causerie client an ingest sender: it joins its own room and leaves `general`, so its
/// messages reach only itself and the run measures the store, not the broadcast.
pub async fn prepare_ingest_sender(client: &mut BenchClient, who: usize) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(30);
    client
        .request(
            "join",
            &serde_json::json!({"room": ingest_room(who)}),
            timeout,
        )
        .await?;
    client
        .request("leave", &serde_json::json!({"room": "general"}), timeout)
        .await?;
    Ok(())
}

/// Spawns a listener per client, counting into `steps`.
pub fn listen_all(
    clients: Vec<BenchClient>,
    steps: &Arc<Steps>,
    counting: Counting,
) -> (Vec<Sender>, Vec<tokio::task::JoinHandle<()>>) {
    let senders = clients.iter().map(BenchClient::sender).collect();
    let listeners = clients
        .into_iter()
        .enumerate()
        .map(|(who, client)| client.listen(who, steps.clone(), counting))
        .collect();
    (senders, listeners)
}

/// CPU seconds spent between two readings (NaN when either is missing).
fn cpu_between(before: Option<usage::Usage>, after: Option<usage::Usage>) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) => a.cpu.saturating_sub(b.cpu).as_secs_f64(),
        _ => f64::NAN,
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(connected: usize, rate: f64, memory: f64) -> Hold {
        Hold {
            clients: 10,
            connected,
            first_error: None,
            connects_per_s: rate,
            welcome_p50_ms: 1.0,
            welcome_p99_ms: 2.0,
            server_cpu_cores: 1.0,
            load_cpu_cores: 0.5,
            idle_rss_mb: 10.0,
            rss_per_connection_kb: memory,
            trials_connects_per_s: Vec::new(),
        }
    }

    #[test]
    fn the_median_trial_is_reported_with_every_rate() {
        let median = Hold::median(vec![
            hold(10, 300.0, 9.0),
            hold(10, 100.0, 7.0),
            hold(10, 200.0, 8.0),
        ]);
        assert_eq!(median.connects_per_s, 200.0);
        assert_eq!(median.rss_per_connection_kb, 8.0);
        assert_eq!(median.trials_connects_per_s, [300.0, 100.0, 200.0]);
    }

    #[test]
    fn a_trial_that_failed_is_reported_not_averaged_away() {
        let median = Hold::median(vec![hold(10, 300.0, 9.0), hold(4, 50.0, 7.0)]);
        assert_eq!(median.connected, 4);
    }

    #[test]
    fn ladders_start_at_one_message_a_second_and_keep_their_deliveries() {
        let rates = ladder_rates(10_000);
        assert_eq!(rates.first(), Some(&1.0));
        assert_eq!(rates.last(), Some(&200.0));
        assert_eq!(ladder_rates(100).first(), Some(&10.0));
        assert_eq!(ladder_rates(100).len(), DELIVERY_LADDER.len());
    }
}
