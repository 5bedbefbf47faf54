//! The scenarios: hold (connect N clients), a load ladder (fan-out from one sender, or a storm from
//! every client), and durable ingest (acked messages from many senders), each with seed clients
//! or Causerie's own. Each charges the server with the CPU time and memory it used, read from
//! `/proc`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::client::{BenchClient, BenchError, Counting, Handshake, Listening, Sender, Traffic};
use crate::probe::{self, Probe};
use crate::schedule::OpenLoop;
use crate::stats::{LatencyRecorder, Steps};
use crate::usage;

/// How long each part of a run lasts, and what counts as held.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// How long each load step sends.
    pub step: Duration,
    /// How long the highest rate held is sent again, to confirm it.
    pub confirm: Duration,
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
    /// Times the whole set of scenarios runs, for the median and the spread.
    pub repeats: usize,
}

/// A load step is held when nothing is lost and the p99 latency stays under this.
pub const FAN_OUT_P99_LIMIT: Duration = Duration::from_millis(100);
/// An ingest step is held when every message is acked and the p99 ack latency stays under this.
pub const INGEST_P99_LIMIT: Duration = Duration::from_millis(20);

/// Above this share of its core, a server is saturated: its CPU per delivery then only says
/// how many deliveries fit in a second.
pub const SATURATED_CORES: f64 = 0.8;

/// The fan-out and storm ladders, in deliveries per second (messages per second times recipients),
/// so the same ladder fits 100 clients and 10,000.
pub const DELIVERY_LADDER: [f64; 21] = [
    1e3, 2e3, 5e3, 1e4, 2e4, 3e4, 5e4, 7.5e4, 1e5, 1.5e5, 2e5, 3e5, 4e5, 5e5, 7.5e5, 1e6, 1.5e6,
    2e6, 3e6, 4e6, 5e6,
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

/// Which protocol the load's clients speak.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
    PartialOrd,
    Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Causerie's own (`auth.protocol: 3`, a name): what the app and the core client speak. Each
    /// client is in `general`, hears `presence`, and sends acked message objects.
    Causerie,
    /// The old app's: no `auth`, `message` as a plain string, every message to everyone. Every
    /// peer speaks it.
    Seed,
}

impl Protocol {
    /// The name in tables.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Causerie => "Causerie clients",
            Protocol::Seed => "seed clients",
        }
    }

    /// How client number `n` of a scenario introduces itself.
    pub fn handshake(self, n: usize) -> Handshake {
        match self {
            Protocol::Causerie => Handshake::causerie(&format!("bench-{n}"), None),
            Protocol::Seed => Handshake::seed(),
        }
    }
}

/// What connecting N clients looked like.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hold {
    /// Clients asked for.
    pub clients: usize,
    /// Clients welcomed.
    pub connected: usize,
    /// The first failure, if any client was not welcomed.
    pub first_error: Option<String>,
    /// Clients welcomed per second of connecting (the settle pause between the two halves
    /// excluded), from each half's first attempt to its last welcome.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub connects_per_s: f64,
    /// Median time from opening the TCP connection to the `welcome` event, in ms.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub welcome_p50_ms: f64,
    /// 99th percentile of the same, in ms.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub welcome_p99_ms: f64,
    /// Server CPU time per second while connecting, in cores.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub server_cpu_cores: f64,
    /// The load generator's CPU time per second while connecting, in cores: near its cores, the
    /// connection rate measures the load generator, not the server.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub load_cpu_cores: f64,
    /// The server's resident memory before any client connected, in MB.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub idle_rss_mb: f64,
    /// Its resident memory with half the clients connected, after the settle, in MB.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub half_rss_mb: f64,
    /// With every client connected, after the settle, in MB.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub full_rss_mb: f64,
    /// Memory per connection: the slope of resident memory between half and all the clients,
    /// in KB, so that what the server allocates once (its runtime, its first pages) is not
    /// charged to the connections.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub rss_per_connection_kb: f64,
    /// The `welcome` event's average size, in bytes.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub welcome_bytes: f64,
    /// `presence` events the clients received while connecting and settling.
    pub presence_events: u64,
    /// Their bytes.
    pub presence_bytes: u64,
    /// Presence bytes per arrival per member already there: the presence bytes over
    /// N(N-1)/2 (each arrival, with the members it finds). Constant in N when presence costs
    /// O(1) per change; growing with N when every arrival sends the list.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub presence_bytes_per_arrival_member: f64,
    /// Causerie clients: the average `join` ack of a room of long messages (a full history
    /// page), in bytes.
    #[serde(default)]
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub history_page_bytes: f64,
    /// Causerie clients: what each connection's memory grew by once every client had read that
    /// page, in KB. A websocket that keeps its largest frame's buffer keeps the page.
    #[serde(default)]
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub rss_after_history_page_kb: f64,
}

/// The room of long messages each Causerie client joins once connected.
const LONG_ROOM: &str = "long-reads";

/// Fills [`LONG_ROOM`] with 50 messages of 4,000 characters (16 KB each), from a client that
/// leaves at once.
async fn write_long_room(url: &str) -> Result<(), BenchError> {
    let timeout = Duration::from_secs(30);
    let mut writer = BenchClient::connect(url, &Protocol::Causerie.handshake(usize::MAX)).await?;
    writer
        .request("join", &serde_json::json!({"room": LONG_ROOM}), timeout)
        .await?;
    let text: String = std::iter::repeat_n('😀', 4000).collect();
    for n in 0..50 {
        let message =
            serde_json::json!({"id": format!("long-{n}"), "room": LONG_ROOM, "text": text});
        writer.request("message", &message, timeout).await?;
    }
    Ok(())
}

/// Every client joins [`LONG_ROOM`] and reads its latest page; returns the page's average size
/// and the server's memory growth per client, in KB.
async fn read_long_room(
    pid: u32,
    group: &Group,
    settings: &Settings,
) -> Result<(f64, f64), BenchError> {
    let before = usage::of(pid).ok();
    let traffic = group.traffic.counts();
    let join = serde_json::json!({"room": LONG_ROOM});
    for sender in &group.senders {
        sender.event_with_ack(u64::MAX >> 12, "join", &join).await?;
    }
    let clients = group.senders.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while (group.traffic.counts() - traffic).acks < clients {
        if Instant::now() > deadline {
            return Err(BenchError::Timeout(Duration::from_secs(120)));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(settings.settle).await;
    let read = group.traffic.counts() - traffic;
    let grown = match (before, usage::of(pid).ok()) {
        (Some(before), Some(after)) => {
            (after.rss_bytes as f64 - before.rss_bytes as f64) / 1e3 / clients as f64
        }
        _ => f64::NAN,
    };
    Ok((read.ack_bytes as f64 / clients as f64, grown))
}

/// Connected clients that listen: their senders, and the listeners, stopped when this is
/// dropped.
pub struct Group {
    /// One per client, in the clients' order (client `n` records as recipient `n`).
    pub senders: Vec<Sender>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
    /// What they received besides probes.
    pub traffic: Arc<Traffic>,
}

impl Group {
    /// Senders and their listeners, counting into `traffic`.
    pub fn new(
        senders: Vec<Sender>,
        listeners: Vec<tokio::task::JoinHandle<()>>,
        traffic: Arc<Traffic>,
    ) -> Self {
        Self {
            senders,
            listeners,
            traffic,
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        for listener in &self.listeners {
            listener.abort();
        }
    }
}

/// Connects `clients` clients speaking `protocol` to `urls` (client `n` to the `n`th, round
/// robin: the nodes of a cluster), in two halves, and measures the server `pid` (the first
/// node's): connection rate, welcome latency, the memory slope between the halves, and the
/// presence traffic. The clients listen from their welcome on, counting probes into `steps`.
pub async fn hold(
    urls: &[String],
    pid: u32,
    clients: usize,
    protocol: Protocol,
    steps: &Arc<Steps>,
    settings: &Settings,
) -> (Hold, Group) {
    let traffic = Arc::new(Traffic::default());
    let long_room = match protocol {
        Protocol::Causerie => write_long_room(&urls[0]).await.map_err(|e| e.to_string()),
        Protocol::Seed => Err("seed clients read no history".to_owned()),
    };
    let idle = usage::of(pid).ok();
    let welcomes = LatencyRecorder::new(1);
    let mut connected = Vec::with_capacity(clients);
    let mut first_error = None;
    let mut welcome_bytes = 0usize;
    let mut connecting = Duration::ZERO;
    let (mut server_cpu, mut load_cpu) = (0.0, 0.0);
    let half = clients / 2;
    let mut half_rss = None;
    for range in [0..half, half..clients] {
        let (server_before, load_before) = (usage::of(pid).ok(), usage::of_self().ok());
        let started = Instant::now();
        let results = connect_many(urls, range.clone(), protocol, settings).await;
        connecting += started.elapsed();
        server_cpu += cpu_between(server_before, usage::of(pid).ok());
        load_cpu += cpu_between(load_before, usage::of_self().ok());
        for result in results {
            match result {
                Ok(client) => {
                    welcomes.record(0, client.welcome_after);
                    welcome_bytes += client.welcome_bytes;
                    let listening = Listening {
                        who: connected.len(),
                        steps: steps.clone(),
                        counting: Counting::Messages,
                        traffic: traffic.clone(),
                    };
                    connected.push((client.sender(), client.listen(listening)));
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        tokio::time::sleep(settings.settle).await;
        if range.start == 0 {
            half_rss = usage::of(pid).ok().map(|u| u.rss_bytes);
        }
        if first_error.is_some() {
            break;
        }
    }
    let full_rss = usage::of(pid).ok().map(|u| u.rss_bytes);
    let summary = welcomes.summary();
    let mb = |bytes: Option<u64>| bytes.map_or(f64::NAN, |b| b as f64 / 1e6);
    let rss_per_connection_kb = match (half_rss, full_rss) {
        (Some(half_rss), Some(full_rss)) if connected.len() == clients && clients > half => {
            (full_rss as f64 - half_rss as f64) / 1e3 / (clients - half) as f64
        }
        _ => f64::NAN,
    };
    let presence = traffic.counts();
    let n = connected.len() as f64;
    let hold = Hold {
        clients,
        connected: connected.len(),
        first_error,
        connects_per_s: n / connecting.as_secs_f64(),
        welcome_p50_ms: millis(summary.p50),
        welcome_p99_ms: millis(summary.p99),
        server_cpu_cores: server_cpu / connecting.as_secs_f64(),
        load_cpu_cores: load_cpu / connecting.as_secs_f64(),
        idle_rss_mb: mb(idle.map(|u| u.rss_bytes)),
        half_rss_mb: mb(half_rss),
        full_rss_mb: mb(full_rss),
        rss_per_connection_kb,
        welcome_bytes: welcome_bytes as f64 / n.max(1.0),
        presence_events: presence.presence_events,
        presence_bytes: presence.presence_bytes,
        presence_bytes_per_arrival_member: presence.presence_bytes as f64
            / (n * (n - 1.0) / 2.0).max(1.0),
        history_page_bytes: f64::NAN,
        rss_after_history_page_kb: f64::NAN,
    };
    let (senders, listeners) = connected.into_iter().unzip();
    let group = Group {
        senders,
        listeners,
        traffic,
    };
    let mut hold = hold;
    if long_room.is_ok() && hold.connected == clients {
        match read_long_room(pid, &group, settings).await {
            Ok((page, grown)) => {
                hold.history_page_bytes = page;
                hold.rss_after_history_page_kb = grown;
            }
            Err(error) => {
                hold.first_error
                    .get_or_insert(format!("reading a history page: {error}"));
            }
        }
    }
    (hold, group)
}

/// Connects clients numbered `range`, `connect_concurrency` at a time. A server that refuses
/// one client in a hundred does not hold N: the rest are not attempted, rather than each
/// waiting out a timeout.
async fn connect_many(
    urls: &[String],
    range: std::ops::Range<usize>,
    protocol: Protocol,
    settings: &Settings,
) -> Vec<Result<BenchClient, String>> {
    let timeout = settings.connect_timeout;
    let failures = AtomicUsize::new(0);
    let give_up_after = (range.len() / 100).max(10);
    futures_util::stream::iter(range)
        .map(|n| {
            let failures = &failures;
            async move {
                if failures.load(Ordering::Relaxed) > give_up_after {
                    return Err("not attempted: too many failures before".to_owned());
                }
                let handshake = protocol.handshake(n);
                let url = &urls[n % urls.len()];
                let result = tokio::time::timeout(timeout, BenchClient::connect(url, &handshake))
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
        .await
}

/// One try of a rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    /// Messages offered per second, across all senders.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub messages_per_s: f64,
    /// Which try of this rate (1 to 3); the confirming run counts on its own.
    pub attempt: u8,
    /// The long run that confirms the ladder's highest rate held.
    pub confirm: bool,
    /// How long it sent, in seconds.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub seconds: f64,
    /// Messages sent.
    pub sent: u64,
    /// Deliveries (or acks) expected: each message times its recipients.
    pub expected: u64,
    /// Distinct deliveries (or acks) received in time: each message counted once per recipient.
    pub received: u64,
    /// Expected but not received within the drain time.
    pub lost: u64,
    /// Deliveries of a message its recipient already had.
    pub duplicates: u64,
    /// Median latency from the intended send time, in ms.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub p50_ms: f64,
    /// 99th percentile latency, in ms.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub p99_ms: f64,
    /// Slowest, in ms.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub max_ms: f64,
    /// Deliveries received per second of sending.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub deliveries_per_s: f64,
    /// Server CPU time per delivery, in µs (user plus system, over the step and its drain).
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub server_cpu_us_per_delivery: f64,
    /// Server CPU time per second of the step, in cores.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub server_cpu_cores: f64,
    /// The load generator's CPU time per second while it sent, in cores.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub load_cpu_cores: f64,
    /// 99th percentile of how late the load generator sent, in ms.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub send_lag_p99_ms: f64,
    /// 99th percentile of how late a task woken every millisecond ran on the load generator
    /// during the step: the wait a received frame has before its reader runs.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub receive_lag_p99_ms: f64,
    /// Sends that failed (a broken socket).
    pub send_errors: u64,
    /// Nothing lost, no send failed, p99 under the scenario's limit.
    pub held: bool,
    /// The load generator was busy enough to distort the step (its CPU near its cores, or it sent
    /// or read more than 10 ms late at p99): read this step's latency with care.
    pub load_bound: bool,
}

/// A ladder of rates, up to the first one not held, and the long run confirming the highest.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ladder {
    /// Each try, lowest rate first, then the confirming runs.
    pub steps: Vec<Step>,
    /// The highest rate held in 2 of 3 tries.
    pub highest_tried: Option<f64>,
    /// The highest rate held in 2 of 3 tries and then for the confirming run: the claim.
    pub highest_held: Option<f64>,
}

impl Ladder {
    /// The confirming run of the rate claimed.
    pub fn best(&self) -> Option<&Step> {
        let rate = self.highest_held?;
        self.steps
            .iter()
            .rfind(|s| s.confirm && s.held && s.messages_per_s == rate)
    }

    /// The tries of `rate` in the ladder (not its confirming run).
    pub fn tries(&self, rate: f64) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(move |s| !s.confirm && s.messages_per_s == rate)
    }

    /// The first rate not held in 2 of 3 tries, if the ladder ended on one.
    pub fn first_not_held(&self) -> Option<f64> {
        let last = self.steps.iter().rfind(|s| !s.confirm)?;
        (self.tries(last.messages_per_s).filter(|s| s.held).count() < 2)
            .then_some(last.messages_per_s)
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
    /// Where the listeners count.
    pub steps: Arc<Steps>,
    /// What the senders send.
    pub kind: LoadKind,
}

/// What a sender sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadKind {
    /// The seed protocol's `message`: a plain string, broadcast to every client; latency to each
    /// recipient.
    Seed,
    /// Causerie's `message` object to `general` with an ack, as the app sends it; latency to each
    /// member's `message` event.
    Causerie,
    /// Causerie's `message` object to the sender's own room, with an ack; latency to the ack.
    Acked,
}

impl From<Protocol> for LoadKind {
    fn from(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Causerie => LoadKind::Causerie,
            Protocol::Seed => LoadKind::Seed,
        }
    }
}

/// Runs `load` at each rate of `rates` (messages per second) until one is not held. A rate
/// counts as held when 2 of 3 tries hold it (the third runs only after a split), so that one
/// stall of the machine neither ends the ladder nor lifts it. The highest rate held is then
/// sent again for `settings.confirm`; if that does not hold, the rate below it is, and so on
/// (three at most). Every try is kept.
pub async fn ladder(
    load: &Load<'_>,
    rates: &[f64],
    limit: Duration,
    settings: &Settings,
) -> Ladder {
    let mut ladder = Ladder::default();
    let mut held_rates = Vec::new();
    'rates: for &rate in rates {
        let (mut held, mut failed) = (0, 0);
        while held < 2 && failed < 2 {
            let Some(step) = run_step(load, rate, settings.step, limit, settings).await else {
                break 'rates;
            };
            let step = Step {
                attempt: held + failed + 1,
                ..step
            };
            report_step(&step);
            quiesce(&load.steps).await;
            if step.held {
                held += 1;
            } else {
                failed += 1;
            }
            ladder.steps.push(step);
        }
        if held < 2 {
            break;
        }
        held_rates.push(rate);
        ladder.highest_tried = Some(rate);
    }
    for &rate in held_rates.iter().rev().take(3) {
        let Some(step) = run_step(load, rate, settings.confirm, limit, settings).await else {
            break;
        };
        let step = Step {
            confirm: true,
            ..step
        };
        report_step(&step);
        quiesce(&load.steps).await;
        let held = step.held;
        ladder.steps.push(step);
        if held {
            ladder.highest_held = Some(rate);
            break;
        }
    }
    ladder
}

fn report_step(step: &Step) {
    eprintln!(
        "    {:>9.1} msg/s {}: p50 {:>8.2} ms  p99 {:>8.2} ms  lost {:>7}  {:>6.2} µs/delivery  server {:.2}  load {:.2}{}{}",
        step.messages_per_s,
        if step.confirm {
            format!("({:.0} s)", step.seconds)
        } else {
            format!("(try {})", step.attempt)
        },
        step.p50_ms,
        step.p99_ms,
        step.lost,
        step.server_cpu_us_per_delivery,
        step.server_cpu_cores,
        step.load_cpu_cores,
        if step.held { "" } else { "  (not held)" },
        if step.load_bound {
            "  (load-bound)"
        } else {
            ""
        },
    );
}

/// Sends `rate` messages a second for `duration`, and counts what arrives. `None` once the
/// run's steps are used up.
pub async fn run_step(
    load: &Load<'_>,
    rate: f64,
    duration: Duration,
    limit: Duration,
    settings: &Settings,
) -> Option<Step> {
    let count = ((rate * duration.as_secs_f64()).ceil() as u64).max(settings.min_messages);
    let slots = if load.kind == LoadKind::Acked {
        1
    } else {
        load.recipients
    };
    let (step_number, tally) = load.steps.start(count, slots)?;
    let server_before = usage::of(load.pid).ok();
    let load_before = usage::of_self().ok();
    let receive_lags = Arc::new(LatencyRecorder::new(1));
    let lag_probe = tokio::spawn(measure_lag(receive_lags.clone()));
    let started = Instant::now();
    let schedule = OpenLoop::new(started + Duration::from_millis(5), rate);
    let send_lags = LatencyRecorder::new(1);
    let mut send_errors = 0;
    for n in 0..count {
        let due = schedule.due(n);
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        }
        send_lags.record(0, Instant::now().saturating_duration_since(due));
        let who = (n as usize) % load.senders.len();
        let probe = Probe {
            step: step_number,
            id: n,
            intended_nanos: probe::nanos_at(due),
        };
        tally.expect(load.recipients as u64);
        let sender = &load.senders[who];
        let sent = match load.kind {
            LoadKind::Seed => sender.message(&probe.text()).await,
            LoadKind::Causerie | LoadKind::Acked => {
                let room = match load.kind {
                    LoadKind::Acked => ingest_room(who),
                    _ => "general".to_owned(),
                };
                let message = serde_json::json!({
                    "id": format!("s{step_number}-{n}"),
                    "room": room,
                    "text": probe.text(),
                });
                sender.event_with_ack(n, "message", &message).await
            }
        };
        if sent.is_err() {
            send_errors += 1;
        }
    }
    let sending = started.elapsed();
    let load_cpu = cpu_between(load_before, usage::of_self().ok());
    let drain_until = Instant::now() + settings.drain;
    while tally.counts().lost > 0 && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    lag_probe.abort();
    let wall = started.elapsed().as_secs_f64();
    let counts = tally.counts();
    let latencies = tally.latencies();
    let server_cpu = cpu_between(server_before, usage::of(load.pid).ok());
    let send_lag_p99 = send_lags.summary().p99;
    let receive_lag_p99 = receive_lags.summary().p99;
    let load_cpu_cores = load_cpu / sending.as_secs_f64();
    let late = Duration::from_millis(10);
    Some(Step {
        messages_per_s: rate,
        attempt: 1,
        confirm: false,
        seconds: duration.as_secs_f64(),
        sent: count,
        expected: counts.expected,
        received: counts.received,
        lost: counts.lost,
        duplicates: counts.duplicates,
        p50_ms: millis(latencies.p50),
        p99_ms: millis(latencies.p99),
        max_ms: millis(latencies.max),
        deliveries_per_s: counts.received as f64 / schedule_span(&schedule, count, started),
        server_cpu_us_per_delivery: server_cpu * 1e6 / counts.received.max(1) as f64,
        server_cpu_cores: server_cpu / wall,
        load_cpu_cores,
        send_lag_p99_ms: millis(send_lag_p99),
        receive_lag_p99_ms: millis(receive_lag_p99),
        send_errors,
        held: counts.lost == 0
            && counts.duplicates == 0
            && send_errors == 0
            && latencies.p99 < limit,
        load_bound: load_cpu_cores > 0.9 * settings.load_cores as f64
            || send_lag_p99 > late
            || receive_lag_p99 > late,
    })
}

/// Seconds from the step's start to its last message's due time.
fn schedule_span(schedule: &OpenLoop, count: u64, started: Instant) -> f64 {
    schedule
        .due(count)
        .saturating_duration_since(started)
        .as_secs_f64()
}

/// Records, until aborted, how late a task that sleeps a millisecond at a time wakes: when the
/// load generator's threads are busy, its readers wait as long.
async fn measure_lag(lags: Arc<LatencyRecorder>) {
    loop {
        let due = tokio::time::Instant::now() + Duration::from_millis(1);
        tokio::time::sleep_until(due).await;
        lags.record(
            0,
            tokio::time::Instant::now().saturating_duration_since(due),
        );
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

/// Causerie's durable ingest on `urls` (sender `n` on the `n`th, round robin), measuring the
/// server `pid`: `senders` each in a room of their own, acked messages at rising rates. Returns
/// how many senders connected, and the ladder.
pub async fn ingest(
    urls: &[String],
    pid: u32,
    senders: usize,
    settings: &Settings,
) -> anyhow::Result<(usize, Ladder)> {
    use anyhow::Context;
    // Each sender leaves `general` as soon as it is welcomed, so the senders do not spend the
    // run announcing themselves to each other.
    let connected: Vec<_> = futures_util::stream::iter(0..senders)
        .map(|who| {
            let url = &urls[who % urls.len()];
            async move {
                let handshake = Protocol::Causerie.handshake(who);
                let mut client = BenchClient::connect(url, &handshake).await?;
                prepare_ingest_sender(&mut client, who).await?;
                anyhow::Ok(client)
            }
        })
        .buffered(settings.connect_concurrency)
        .collect()
        .await;
    let prepared = connected
        .into_iter()
        .collect::<anyhow::Result<Vec<_>>>()
        .context("connecting the ingest senders")?;
    let steps = Arc::new(Steps::new(2 * 3 * INGEST_LADDER.len(), 4));
    let group = listen_for_acks(prepared, &steps);
    let load = Load {
        pid,
        senders: &group.senders,
        recipients: 1,
        steps,
        kind: LoadKind::Acked,
    };
    let ladder = ladder(&load, &INGEST_LADDER, INGEST_P99_LIMIT, settings).await;
    Ok((group.senders.len(), ladder))
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

/// Makes listening ingest senders of prepared clients: each counts its own acks.
pub fn listen_for_acks(clients: Vec<BenchClient>, steps: &Arc<Steps>) -> Group {
    let traffic = Arc::new(Traffic::default());
    let senders = clients.iter().map(BenchClient::sender).collect();
    let listeners = clients
        .into_iter()
        .enumerate()
        .map(|(who, client)| {
            client.listen(Listening {
                who,
                steps: steps.clone(),
                counting: Counting::Acks,
                traffic: traffic.clone(),
            })
        })
        .collect();
    Group {
        senders,
        listeners,
        traffic,
    }
}

/// CPU seconds spent between two readings (NaN when either is missing).
pub fn cpu_between(before: Option<usage::Usage>, after: Option<usage::Usage>) -> f64 {
    match (before, after) {
        (Some(b), Some(a)) => a.cpu.saturating_sub(b.cpu).as_secs_f64(),
        _ => f64::NAN,
    }
}

/// A duration in milliseconds.
pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(rate: f64, attempt: u8, confirm: bool, held: bool) -> Step {
        Step {
            messages_per_s: rate,
            attempt,
            confirm,
            seconds: 2.0,
            sent: 10,
            expected: 10,
            received: 10,
            lost: 0,
            duplicates: 0,
            p50_ms: 1.0,
            p99_ms: 2.0,
            max_ms: 3.0,
            deliveries_per_s: 5.0,
            server_cpu_us_per_delivery: 1.0,
            server_cpu_cores: 0.1,
            load_cpu_cores: 0.1,
            send_lag_p99_ms: 0.1,
            receive_lag_p99_ms: 0.1,
            send_errors: 0,
            held,
            load_bound: false,
        }
    }

    #[test]
    fn the_claim_is_the_confirmed_rate_and_the_ladder_ends_on_the_first_rate_not_held() {
        let ladder = Ladder {
            steps: vec![
                step(10.0, 1, false, true),
                step(10.0, 2, false, true),
                step(20.0, 1, false, false),
                step(20.0, 2, false, true),
                step(20.0, 3, false, true),
                step(50.0, 1, false, false),
                step(50.0, 2, false, false),
                step(20.0, 1, true, false),
                step(10.0, 1, true, true),
            ],
            highest_tried: Some(20.0),
            highest_held: Some(10.0),
        };
        assert_eq!(ladder.best().map(|s| s.messages_per_s), Some(10.0));
        assert!(ladder.best().is_some_and(|s| s.confirm));
        assert_eq!(ladder.tries(20.0).count(), 3);
        assert_eq!(ladder.first_not_held(), Some(50.0));
    }

    #[test]
    fn ladders_start_at_one_message_a_second_and_go_past_two_million_deliveries() {
        let rates = ladder_rates(10_000);
        assert_eq!(rates.first(), Some(&1.0));
        assert_eq!(rates.last(), Some(&500.0));
        assert_eq!(ladder_rates(100).first(), Some(&10.0));
        assert_eq!(ladder_rates(100).len(), DELIVERY_LADDER.len());
        assert!(DELIVERY_LADDER.iter().any(|&d| d > 2e6));
    }
}
