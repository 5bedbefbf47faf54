//! The abuse scenario: each attack found in review of Causerie's protocol, bounded in count and
//! time, run against the server as people run it (default limits, a join code, allowed origins,
//! a metrics token, and a log nobody reads) while 100 normal Causerie clients chat. For each
//! attack: what the attacker got, the server's peak memory against its idle memory with the
//! normal clients, whether it stayed up and answered `/healthz`, and the normal clients' p99 and
//! losses meanwhile.
//!
//! Every client comes from its own loopback address (all of 127.0.0.0/8 reaches the server), as
//! people do from their homes; each attacker has one address of its own, as one machine would.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::client::{
    self, BenchClient, BenchError, Counting, Handshake, Listening, Traffic, TrafficCounts,
};
use crate::frame::{self, Frame};
use crate::peer::{Log, Paths, Peer, RunningPeer};
use crate::scenario::{self, FAN_OUT_P99_LIMIT, Group, Load, LoadKind, Settings, Step};
use crate::stats::{LatencyRecorder, Steps};

/// Normal clients chatting through every attack.
pub const NORMAL_CLIENTS: usize = 100;
/// Their messages per second, all together (each sends one every 10 s; each reaches all 100).
pub const CHAT_RATE: f64 = 10.0;
/// The server's join code, which normal clients know.
const JOIN_CODE: &str = "bench-join-code";
/// The token `/metrics` asks for.
const METRICS_TOKEN: &str = "bench-metrics-token";
/// The one origin the server allows.
const ALLOWED_ORIGIN: &str = "https://chat.example.org";
/// A memory peak under this many times the idle memory counts as bounded.
pub const RSS_LIMIT_RATIO: f64 = 2.0;

/// The abuse scenario's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Abuse {
    /// Normal clients chatting meanwhile.
    pub normal_clients: usize,
    /// Their messages per second.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub chat_rate: f64,
    /// One entry per attack, in the order they ran, each on a fresh server.
    pub attacks: Vec<AttackResult>,
}

/// One attack and what it did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttackResult {
    /// Its short name.
    pub name: String,
    /// What the attacker does, in words.
    pub what: String,
    /// What the attacker got, in words (counted by the attacker and from the server's answers).
    pub effect: String,
    /// The attack failed to run as planned (the harness's error), if it did.
    pub error: Option<String>,
    /// The server's resident memory with the normal clients connected and chatting, before the
    /// attack, in MB.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub idle_rss_mb: f64,
    /// Log lines the server dropped during the attack (its log is a pipe nobody reads).
    pub log_lines_dropped: Option<u64>,
    /// The server's peak resident memory during the attack, in MB.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub peak_rss_mb: f64,
    /// That peak over the idle memory.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub rss_ratio: f64,
    /// The server still ran, and answered every `/healthz` (from another address) in time,
    /// during the attack and after it.
    pub stayed_up: bool,
    /// The slowest `/healthz` answer during the attack, in ms.
    #[serde(deserialize_with = "crate::stats::f64_or_nan")]
    pub healthz_max_ms: f64,
    /// The normal clients' chat during the attack.
    pub chat: Step,
    /// Normal clients whose connection ended during the attack.
    pub normal_disconnected: u64,
    /// Stayed up, memory under [`RSS_LIMIT_RATIO`] times idle, no normal message lost, normal
    /// p99 under 100 ms, no normal client disconnected.
    pub held: bool,
}

/// What an attack may use.
struct Target {
    url: String,
    /// `127.0.0.1:PORT`.
    address: String,
    pid: u32,
    /// What the normal clients receive.
    normal: Arc<Traffic>,
}

impl Target {
    fn causerie(&self, name: &str, from: IpAddr) -> Handshake {
        Handshake::causerie(name, Some(JOIN_CODE)).from(from)
    }
}

/// Attacker number `n`'s address: 127.0.0.`n`.
fn attacker(n: u8) -> IpAddr {
    Ipv4Addr::new(127, 0, 0, n).into()
}

/// Normal client `n`'s address: 127.0.1.`n + 1`.
fn normal_address(n: usize) -> IpAddr {
    Ipv4Addr::new(127, 0, 1, (n % 250 + 1) as u8).into()
}

/// Where `/healthz` is asked from during the attacks: an address no attacker uses.
fn watcher() -> IpAddr {
    Ipv4Addr::new(127, 0, 1, 252).into()
}

/// Runs every attack in turn, each on a fresh server with its normal clients, so that what one
/// attack left in the server's memory is not charged to the next.
/// `only` names the attacks to run; empty runs them all.
pub async fn run(
    paths: &Paths,
    cpus: Option<&str>,
    settings: &Settings,
    only: &[String],
) -> anyhow::Result<Abuse> {
    if let Some(unknown) = only
        .iter()
        .find(|name| ATTACKS.iter().all(|a| a.name != name.as_str()))
    {
        let names: Vec<&str> = ATTACKS.iter().map(|a| a.name).collect();
        anyhow::bail!(
            "no attack named {unknown:?}; the attacks: {}",
            names.join(", ")
        );
    }
    let mut attacks = Vec::new();
    for attack in ATTACKS
        .iter()
        .filter(|a| only.is_empty() || only.iter().any(|n| n == a.name))
    {
        let result = attack_fresh_server(paths, cpus, settings, attack).await?;
        eprintln!(
            "  {}: {} | idle {:.1} MB, peak {:.1} MB ({:.2}x) | up {} | normal p99 {:.1} ms, lost {}, disconnected {} | log lines dropped {}{}",
            result.name,
            result.effect,
            result.idle_rss_mb,
            result.peak_rss_mb,
            result.rss_ratio,
            result.stayed_up,
            result.chat.p99_ms,
            result.chat.lost,
            result.normal_disconnected,
            result
                .log_lines_dropped
                .map_or_else(|| "unknown".to_owned(), |d| d.to_string()),
            result
                .error
                .as_deref()
                .map(|e| format!(" | error: {e}"))
                .unwrap_or_default(),
        );
        attacks.push(result);
    }
    Ok(Abuse {
        normal_clients: NORMAL_CLIENTS,
        chat_rate: CHAT_RATE,
        attacks,
    })
}

/// Starts Causerie as people run it, connects the normal clients, lets them chat, and runs
/// `attack` while they go on.
async fn attack_fresh_server(
    paths: &Paths,
    cpus: Option<&str>,
    settings: &Settings,
    attack: &Attack,
) -> anyhow::Result<AttackResult> {
    let flags = [
        "--join-code",
        JOIN_CODE,
        "--cors-origin",
        ALLOWED_ORIGIN,
        "--metrics-token",
        METRICS_TOKEN,
    ];
    let mut server = RunningPeer::start_with(Peer::Causerie, paths, cpus, &flags, Log::Unread)
        .await
        .context("starting Causerie for the abuse scenario")?;
    let target = Target {
        url: server.url.clone(),
        address: server.url.trim_start_matches("http://").to_owned(),
        pid: server.pid,
        normal: Arc::new(Traffic::default()),
    };
    let steps = Arc::new(Steps::new(8, 4));
    let normal = connect_normal_clients(&target, &steps).await?;
    write_long_history(&target).await?;
    let load = Load {
        pid: server.pid,
        senders: &normal.senders,
        recipients: NORMAL_CLIENTS,
        steps: steps.clone(),
        kind: LoadKind::Causerie,
    };
    // Chat a while before reading the idle memory: the first messages fill caches.
    scenario::run_step(
        &load,
        CHAT_RATE,
        Duration::from_secs(3),
        FAN_OUT_P99_LIMIT,
        settings,
    )
    .await
    .context("warming up")?;
    tokio::time::sleep(settings.settle).await;
    let idle_rss_mb = rss_mb(server.pid);
    let dropped_before = log_lines_dropped(&target).await;
    let mut result =
        attack_while_chatting(&target, &load, attack, idle_rss_mb, &mut server, settings).await;
    result.log_lines_dropped = match (dropped_before, log_lines_dropped(&target).await) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    drop(normal);
    server.stop().await;
    Ok(result)
}

/// One attack: its name, what it does, and how long the normal clients chat meanwhile.
struct Attack {
    name: &'static str,
    what: &'static str,
    window: Duration,
    run: for<'a> fn(&'a Target) -> futures_util::future::BoxFuture<'a, anyhow::Result<String>>,
}

const ATTACKS: [Attack; 13] = [
    Attack {
        name: "arrivals",
        what: "300 Causerie clients from 300 addresses arrive in general at once, stay 3 s, and leave at once (a reconnect wave)",
        window: Duration::from_secs(10),
        run: |t| Box::pin(arrivals(t)),
    },
    Attack {
        name: "churn",
        what: "one connection leaves and rejoins general as fast as its acks come, for 10 s",
        window: Duration::from_secs(10),
        run: |t| Box::pin(churn(t)),
    },
    Attack {
        name: "rooms",
        what: "new guests from one address each create rooms until refused, for 10 s",
        window: Duration::from_secs(10),
        run: |t| Box::pin(rooms(t)),
    },
    Attack {
        name: "history",
        what: "a connection asks 150 pages of 200 messages of 4,000 emoji, and stops reading for 10 s",
        window: Duration::from_secs(10),
        run: |t| Box::pin(history(t)),
    },
    Attack {
        name: "attachments",
        what: "60 connections each announce a binary attachment and never send it, held 10 s",
        window: Duration::from_secs(10),
        run: |t| Box::pin(attachments(t)),
    },
    Attack {
        name: "typing",
        what: "150,000 typing notices into general (100 members), as fast as one connection sends",
        window: Duration::from_secs(10),
        run: |t| Box::pin(typing(t)),
    },
    Attack {
        name: "guest flood",
        what: "500 new guest connections from one address, each sending 10 messages to general",
        window: Duration::from_secs(10),
        run: |t| Box::pin(guest_flood(t)),
    },
    Attack {
        name: "idle connections",
        what: "2,000 TCP connections from one address, half idle, half sending half a request header, held 12 s",
        window: Duration::from_secs(12),
        run: |t| Box::pin(idle_connections(t)),
    },
    Attack {
        name: "log flood",
        what: "one connection sends malformed messages for 10 s (each a refusal, and a log line) while nobody reads the server's log",
        window: Duration::from_secs(10),
        run: |t| Box::pin(log_flood(t)),
    },
    Attack {
        name: "join code",
        what: "wrong join codes from one address for 10 s, each session trying again until it is closed",
        window: Duration::from_secs(10),
        run: |t| Box::pin(join_code(t)),
    },
    Attack {
        name: "origin",
        what: "a web page on another origin opens a websocket and a polling session",
        window: Duration::from_secs(3),
        run: |t| Box::pin(origin(t)),
    },
    Attack {
        name: "names and text",
        what: "names with a zero-width space and a direction override, invisible text, a line break forging a seed line",
        window: Duration::from_secs(3),
        run: |t| Box::pin(names_and_text(t)),
    },
    Attack {
        name: "metrics",
        what: "GET /metrics without the token",
        window: Duration::from_secs(3),
        run: |t| Box::pin(metrics(t)),
    },
];

async fn attack_while_chatting(
    target: &Target,
    load: &Load<'_>,
    attack: &Attack,
    idle_rss_mb: f64,
    server: &mut RunningPeer,
    settings: &Settings,
) -> AttackResult {
    reset_peak_rss(target.pid);
    let before: TrafficCounts = target.normal.counts();
    let healthz = Arc::new(LatencyRecorder::new(1));
    let healthz_failures = Arc::new(AtomicU64::new(0));
    let watching = tokio::spawn(watch_health(
        target.address.clone(),
        healthz.clone(),
        healthz_failures.clone(),
    ));
    let bound = attack.window + Duration::from_secs(30);
    let (outcome, chat) = tokio::join!(
        tokio::time::timeout(bound, (attack.run)(target)),
        scenario::run_step(load, CHAT_RATE, attack.window, FAN_OUT_P99_LIMIT, settings),
    );
    watching.abort();
    let (effect, error) = match outcome {
        Ok(Ok(effect)) => (effect, None),
        Ok(Err(error)) => (String::new(), Some(format!("{error:#}"))),
        Err(_) => (String::new(), Some(format!("did not end within {bound:?}"))),
    };
    let peak_rss_mb = peak_rss_mb(target.pid).max(rss_mb(target.pid));
    let healthy_now = matches!(
        http_get(&target.address, Some(watcher()), "/healthz", &[]).await,
        Ok((200, _))
    );
    let stayed_up =
        server.running() && healthy_now && healthz_failures.load(Ordering::Relaxed) == 0;
    let normal_disconnected = (target.normal.counts() - before).closed;
    let chat = chat.unwrap_or_else(|| unreachable!("the abuse scenario sizes its steps"));
    let rss_ratio = peak_rss_mb / idle_rss_mb;
    AttackResult {
        name: attack.name.to_owned(),
        what: attack.what.to_owned(),
        effect,
        held: stayed_up
            && error.is_none()
            && rss_ratio < RSS_LIMIT_RATIO
            && chat.lost == 0
            && chat.p99_ms < scenario::millis(FAN_OUT_P99_LIMIT)
            && normal_disconnected == 0,
        error,
        idle_rss_mb,
        log_lines_dropped: None,
        peak_rss_mb,
        rss_ratio,
        stayed_up,
        healthz_max_ms: scenario::millis(healthz.summary().max),
        chat,
        normal_disconnected,
    }
}

/// Asks `/healthz` every 200 ms from an address no attacker uses; an answer that is not 200
/// within 2 s is a failure.
async fn watch_health(address: String, latencies: Arc<LatencyRecorder>, failures: Arc<AtomicU64>) {
    loop {
        let started = Instant::now();
        let answered = tokio::time::timeout(
            Duration::from_secs(2),
            http_get(&address, Some(watcher()), "/healthz", &[]),
        )
        .await;
        latencies.record(0, started.elapsed());
        if !matches!(answered, Ok(Ok((200, _)))) {
            failures.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn connect_normal_clients(target: &Target, steps: &Arc<Steps>) -> anyhow::Result<Group> {
    let mut senders = Vec::new();
    let mut listeners = Vec::new();
    for n in 0..NORMAL_CLIENTS {
        let handshake = target.causerie(&format!("person-{n}"), normal_address(n));
        let client = BenchClient::connect(&target.url, &handshake)
            .await
            .with_context(|| format!("connecting normal client {n}"))?;
        senders.push(client.sender());
        listeners.push(client.listen(Listening {
            who: n,
            steps: steps.clone(),
            counting: Counting::Messages,
            traffic: target.normal.clone(),
        }));
    }
    Ok(Group::new(senders, listeners, target.normal.clone()))
}

/// The room the history attack reads: 200 messages of 4,000 emoji (16 KB each), from 20 writers
/// (each within its burst).
const LONG_ROOM: &str = "attic";

async fn write_long_history(target: &Target) -> anyhow::Result<()> {
    let text: String = std::iter::repeat_n('😀', 4000).collect();
    for writer in 0..20u8 {
        let from = Ipv4Addr::new(127, 0, 4, writer + 1).into();
        let mut client =
            BenchClient::connect(&target.url, &target.causerie("writer", from)).await?;
        client
            .request("join", &serde_json::json!({"room": LONG_ROOM}), TIMEOUT)
            .await?;
        for n in 0..10 {
            let message = serde_json::json!({"id": format!("w{writer}-{n}"), "room": LONG_ROOM, "text": text});
            client.request("message", &message, TIMEOUT).await?;
        }
    }
    Ok(())
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Counts refusals by their error code.
#[derive(Default)]
struct Refusals(BTreeMap<String, u64>);

impl Refusals {
    fn add(&mut self, error: &BenchError) {
        let code = match error {
            BenchError::Rejected(body) | BenchError::Refused(body) => error_code(body),
            other => other.to_string(),
        };
        *self.0.entry(code).or_default() += 1;
    }

    fn total(&self) -> u64 {
        self.0.values().sum()
    }

    fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none refused".to_owned();
        }
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{v} {k}")).collect();
        format!("refused: {}", parts.join(", "))
    }
}

/// The stable code in an error body (`{"code":"rate_limited",...}`) or a connect error's message
/// (`"rate_limited: ..."`).
fn error_code(body: &str) -> String {
    if let Some(at) = body.find("\"code\":\"") {
        let rest = &body[at + 8..];
        return rest[..rest.find('"').unwrap_or(rest.len())].to_owned();
    }
    let message = body
        .find("\"message\":\"")
        .map_or(body, |at| &body[at + 11..]);
    message
        .split(':')
        .next()
        .unwrap_or(message)
        .trim_matches('"')
        .to_owned()
}

/// Clients in the arrival wave: as many as the wave that cost 604 MB of presence before.
const ARRIVALS: usize = 300;

async fn arrivals(target: &Target) -> anyhow::Result<String> {
    let before = target.normal.counts();
    let started = Instant::now();
    let nobody = Arc::new(Steps::new(0, 1));
    let traffic = Arc::new(Traffic::default());
    let results: Vec<_> = futures_util::stream::iter(0..ARRIVALS)
        .map(|n| {
            let from: IpAddr =
                Ipv4Addr::new(127, 2 + (n / 250) as u8, 0, (n % 250 + 1) as u8).into();
            let handshake = target.causerie(&format!("arrival-{n}"), from);
            async move { BenchClient::connect(&target.url, &handshake).await }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let took = started.elapsed();
    let mut refusals = Refusals::default();
    let mut clients = Vec::new();
    for (n, result) in results.into_iter().enumerate() {
        match result {
            Ok(client) => clients.push(client.listen(Listening {
                who: n,
                steps: nobody.clone(),
                counting: Counting::Messages,
                traffic: traffic.clone(),
            })),
            Err(error) => refusals.add(&error),
        }
    }
    let arrived = clients.len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    for client in clients {
        client.abort();
    }
    // Departures reach the members within the presence window.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let heard = target.normal.counts() - before;
    Ok(format!(
        "{arrived} of {ARRIVALS} arrived in {:.1} s ({}); each member received {:.0} presence events, {:.1} KB",
        took.as_secs_f64(),
        refusals.describe(),
        heard.presence_events as f64 / NORMAL_CLIENTS as f64,
        heard.presence_bytes as f64 / 1e3 / NORMAL_CLIENTS as f64,
    ))
}

async fn churn(target: &Target) -> anyhow::Result<String> {
    let mut client =
        BenchClient::connect(&target.url, &target.causerie("churner", attacker(11))).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let room = serde_json::json!({"room": "general"});
    let (mut accepted, mut refusals) = (0u64, Refusals::default());
    while Instant::now() < deadline {
        for event in ["leave", "join"] {
            match client.request(event, &room, TIMEOUT).await {
                Ok(_) => accepted += 1,
                Err(error @ BenchError::Rejected(_)) => refusals.add(&error),
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(format!(
        "{accepted} leaves and joins accepted, {}",
        refusals.describe()
    ))
}

async fn rooms(target: &Target) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut guests, mut created) = (0u64, 0u64);
    let (mut connects_refused, mut joins_refused) = (Refusals::default(), Refusals::default());
    while Instant::now() < deadline {
        let handshake = target.causerie(&format!("roomer-{guests}"), attacker(12));
        let mut client = match BenchClient::connect(&target.url, &handshake).await {
            Ok(client) => client,
            Err(error) => {
                connects_refused.add(&error);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        guests += 1;
        for k in 0.. {
            let room = serde_json::json!({"room": format!("flood-{guests}-{k}")});
            match client.request("join", &room, TIMEOUT).await {
                Ok(_) => created += 1,
                Err(error @ BenchError::Rejected(_)) => {
                    joins_refused.add(&error);
                    break;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    let newcomer =
        BenchClient::connect(&target.url, &target.causerie("newcomer", attacker(13))).await?;
    Ok(format!(
        "{guests} guests admitted ({} connections {}), {created} rooms created ({} joins {}); a newcomer's welcome: {:.1} KB",
        connects_refused.total(),
        connects_refused.describe(),
        joins_refused.total(),
        joins_refused.describe(),
        newcomer.welcome_bytes as f64 / 1e3,
    ))
}

async fn history(target: &Target) -> anyhow::Result<String> {
    let mut client =
        BenchClient::connect(&target.url, &target.causerie("hoarder", attacker(14))).await?;
    client
        .request("join", &serde_json::json!({"room": LONG_ROOM}), TIMEOUT)
        .await?;
    let sender = client.sender();
    let page = serde_json::json!({"room": LONG_ROOM, "limit": 200});
    for n in 0..150 {
        sender.event_with_ack(1000 + n, "history", &page).await?;
    }
    // Stop reading: what the server answers waits in its queue and the kernel's buffers.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (mut pages, mut refused) = (0u64, 0u64);
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(2), client.next_frame()).await {
            Err(_) => break false,
            Ok(None) => break true,
            Ok(Some(text)) => match frame::parse(&text) {
                Frame::Ack { data, .. } if data.contains("\"ok\":true") => pages += 1,
                Frame::Ack { .. } => refused += 1,
                Frame::Disconnect => break true,
                _ => {}
            },
        }
    };
    Ok(format!(
        "{pages} pages and {refused} refusals read back; the server {} the connection",
        if closed { "closed" } else { "kept" }
    ))
}

async fn attachments(target: &Target) -> anyhow::Result<String> {
    let traffic = Arc::new(Traffic::default());
    let nobody = Arc::new(Steps::new(0, 1));
    let mut listeners = Vec::new();
    let mut refusals = Refusals::default();
    for n in 0..60 {
        let handshake = target.causerie(&format!("attacher-{n}"), attacker(15));
        match BenchClient::connect(&target.url, &handshake).await {
            Ok(client) => {
                let sender = client.sender();
                listeners.push(client.listen(Listening {
                    who: n,
                    steps: nobody.clone(),
                    counting: Counting::Messages,
                    traffic: traffic.clone(),
                }));
                // A binary event with one attachment to follow, which never does.
                sender
                    .raw(r#"451-["message",{"_placeholder":true,"num":0}]"#.to_owned())
                    .await?;
            }
            Err(error) => refusals.add(&error),
        }
    }
    let opened = listeners.len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let closed = traffic.counts().closed;
    for listener in listeners {
        listener.abort();
    }
    Ok(format!(
        "{opened} connections ({}); {closed} closed by the server within 10 s",
        refusals.describe()
    ))
}

async fn typing(target: &Target) -> anyhow::Result<String> {
    let before = target.normal.counts();
    let client =
        BenchClient::connect(&target.url, &target.causerie("typist", attacker(16))).await?;
    let sender = client.sender();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0u64;
    while sent < 150_000 && Instant::now() < deadline {
        let notice = serde_json::json!({"room": "general", "typing": sent.is_multiple_of(2)});
        sender.event("typing", &notice).await?;
        sent += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let heard = target.normal.counts() - before;
    drop(client);
    Ok(format!(
        "{sent} notices sent; each member received {:.0}",
        heard.typing_events as f64 / NORMAL_CLIENTS as f64
    ))
}

async fn guest_flood(target: &Target) -> anyhow::Result<String> {
    let results: Vec<_> = futures_util::stream::iter(0..500usize)
        .map(|n| async move {
            let handshake = target.causerie(&format!("flooder-{n}"), attacker(17));
            let mut client = BenchClient::connect(&target.url, &handshake).await?;
            let mut outcomes = Vec::new();
            for k in 0..10 {
                let message =
                    serde_json::json!({"id": format!("f{n}-{k}"), "room": "general", "text": "flood"});
                outcomes.push(client.request("message", &message, TIMEOUT).await);
            }
            Ok::<_, BenchError>(outcomes)
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let (mut admitted, mut accepted) = (0u64, 0u64);
    let (mut connects_refused, mut messages_refused) = (Refusals::default(), Refusals::default());
    for result in results {
        match result {
            Ok(outcomes) => {
                admitted += 1;
                for outcome in outcomes {
                    match outcome {
                        Ok(_) => accepted += 1,
                        Err(error) => messages_refused.add(&error),
                    }
                }
            }
            Err(error) => connects_refused.add(&error),
        }
    }
    Ok(format!(
        "{admitted} of 500 guests admitted ({}); {accepted} of {} messages accepted ({})",
        connects_refused.describe(),
        admitted * 10,
        messages_refused.describe()
    ))
}

async fn idle_connections(target: &Target) -> anyhow::Result<String> {
    let started = Instant::now();
    let hold = Duration::from_secs(12);
    let mut held = Vec::new();
    for n in 0..2000 {
        let address = target.address.clone();
        held.push(tokio::spawn(async move {
            let mut stream = client::connect_tcp(&address, Some(attacker(18)))
                .await
                .ok()?;
            if n % 2 == 1 {
                let half = format!(
                    "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: {address}\r\n"
                );
                stream.write_all(half.as_bytes()).await.ok()?;
            }
            let mut buffer = [0u8; 256];
            // Until the server closes it, or the attack ends.
            loop {
                match tokio::time::timeout_at((started + hold).into(), stream.read(&mut buffer))
                    .await
                {
                    Ok(Ok(0) | Err(_)) => return Some(started.elapsed()),
                    Ok(Ok(_)) => {}
                    Err(_) => return None,
                }
            }
        }));
    }
    let (mut opened_and_closed, mut closed_at_once) = (0u64, 0u64);
    let mut still_open = 0u64;
    for task in held {
        match task.await {
            Ok(Some(after)) => {
                opened_and_closed += 1;
                if after < Duration::from_secs(1) {
                    closed_at_once += 1;
                }
            }
            Ok(None) => still_open += 1,
            Err(_) => {}
        }
    }
    Ok(format!(
        "{opened_and_closed} of 2,000 closed by the server within 12 s ({closed_at_once} within 1 s); {still_open} still open"
    ))
}

async fn log_flood(target: &Target) -> anyhow::Result<String> {
    let before = log_lines_dropped(target).await;
    let client =
        BenchClient::connect(&target.url, &target.causerie("shouter", attacker(19))).await?;
    let sender = client.sender();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0u64;
    while sent < 1_000_000 && Instant::now() < deadline {
        sender.raw(r#"42["message",{"id":""}]"#.to_owned()).await?;
        sent += 1;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dropped = match (before, log_lines_dropped(target).await) {
        (Some(before), Some(after)) => format!("{}", after.saturating_sub(before)),
        _ => "unknown".to_owned(),
    };
    drop(client);
    Ok(format!(
        "{sent} malformed messages sent; log lines the server dropped meanwhile: {dropped}"
    ))
}

async fn join_code(target: &Target) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let wrong = frame::connect(Some(
        &serde_json::json!({"protocol": 3, "code": "wrong-guess"}),
    ));
    let (mut sessions, mut refusals) = (0u64, Refusals::default());
    let handshake = Handshake::default().from(attacker(20));
    while Instant::now() < deadline {
        let Ok(socket) = client::open_websocket(&target.url, &handshake).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        sessions += 1;
        let (mut write, mut read) = socket.split();
        // Guess again on the same session at each refusal, until the server ends it.
        while Instant::now() < deadline {
            let Ok(Some(Ok(message))) = tokio::time::timeout(TIMEOUT, read.next()).await else {
                break;
            };
            let WsMessage::Text(text) = message else {
                if message.is_close() {
                    break;
                }
                continue;
            };
            match frame::parse(&text) {
                Frame::Open(_) => {}
                Frame::ConnectError(why) => {
                    refusals.add(&BenchError::Refused(why.to_owned()));
                }
                Frame::Ping => {
                    let _ = write.send(WsMessage::text(frame::PONG)).await;
                    continue;
                }
                Frame::Disconnect => break,
                _ => continue,
            }
            if write.send(WsMessage::text(wrong.clone())).await.is_err() {
                break;
            }
        }
    }
    Ok(format!(
        "{} guesses answered in {sessions} sessions: {}",
        refusals.total(),
        refusals.describe().trim_start_matches("refused: ")
    ))
}

async fn origin(target: &Target) -> anyhow::Result<String> {
    let evil = Handshake {
        origin: Some("https://evil.example".to_owned()),
        ..target.causerie("page", attacker(21))
    };
    let websocket = match BenchClient::connect(&target.url, &evil).await {
        Ok(_) => "welcomed".to_owned(),
        Err(error) => error.to_string(),
    };
    let polling = http_get(
        &target.address,
        Some(attacker(21)),
        "/socket.io/?EIO=4&transport=polling",
        &[("Origin", "https://evil.example")],
    )
    .await
    .map(|(status, _)| format!("HTTP {status}"))
    .unwrap_or_else(|e| e.to_string());
    let allowed = Handshake {
        origin: Some(ALLOWED_ORIGIN.to_owned()),
        ..target.causerie("page", attacker(22))
    };
    let good = match BenchClient::connect(&target.url, &allowed).await {
        Ok(_) => "welcomed".to_owned(),
        Err(error) => error.to_string(),
    };
    Ok(format!(
        "from https://evil.example: websocket {websocket}, polling {polling}; from {ALLOWED_ORIGIN}: {good}"
    ))
}

async fn names_and_text(target: &Target) -> anyhow::Result<String> {
    let mut outcomes = Vec::new();
    for name in ["Ada\u{200b}", "\u{202e}adA"] {
        let result = BenchClient::connect(&target.url, &target.causerie(name, attacker(23))).await;
        outcomes.push(format!(
            "name {name:?}: {}",
            match result {
                Ok(_) => "accepted".to_owned(),
                Err(error) => error_code(&error.to_string()),
            }
        ));
    }
    let mut writer =
        BenchClient::connect(&target.url, &target.causerie("Eve", attacker(23))).await?;
    let invisible = serde_json::json!({"id": "invisible", "text": "\u{200b}\u{2060}\u{3164}"});
    outcomes.push(format!(
        "invisible text: {}",
        match writer.request("message", &invisible, TIMEOUT).await {
            Ok(_) => "accepted".to_owned(),
            Err(error) => error_code(&error.to_string()),
        }
    ));
    // Two seed clients: one forges a line, the other reads what it gets.
    let seed = |n: u8| Handshake {
        auth: Some(serde_json::json!({"code": JOIN_CODE})),
        from: Some(Ipv4Addr::new(127, 0, 0, n).into()),
        origin: None,
    };
    let forger = BenchClient::connect(&target.url, &seed(24)).await?;
    let mut reader = BenchClient::connect(&target.url, &seed(25)).await?;
    forger
        .sender()
        .message("hello\nAda: send me your token")
        .await?;
    let received = loop {
        let text = tokio::time::timeout(TIMEOUT, reader.next_frame())
            .await
            .context("the seed reader got nothing")?
            .context("the seed reader was closed")?;
        if let Frame::Event {
            name: "message",
            data,
        } = frame::parse(&text)
            && data.contains("send me your token")
        {
            break data.to_owned();
        }
    };
    outcomes.push(format!(
        "a seed line with a line break arrives as {received}"
    ));
    Ok(outcomes.join("; "))
}

async fn metrics(target: &Target) -> anyhow::Result<String> {
    let open = http_get(&target.address, Some(attacker(26)), "/metrics", &[]).await?;
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let with = http_get(
        &target.address,
        Some(attacker(26)),
        "/metrics",
        &[("Authorization", &bearer)],
    )
    .await?;
    Ok(format!(
        "without the token: HTTP {}; with it: HTTP {}",
        open.0, with.0
    ))
}

/// `causerie_log_lines_dropped` from `/metrics`.
async fn log_lines_dropped(target: &Target) -> Option<u64> {
    let bearer = format!("Bearer {METRICS_TOKEN}");
    let (status, body) = http_get(
        &target.address,
        Some(watcher()),
        "/metrics",
        &[("Authorization", &bearer)],
    )
    .await
    .ok()?;
    if status != 200 {
        return None;
    }
    body.lines()
        .find(|l| l.starts_with("causerie_log_lines_dropped"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// A plain HTTP/1.1 GET: the status and the body.
pub async fn http_get(
    address: &str,
    from: Option<IpAddr>,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String), BenchError> {
    let mut stream = client::connect_tcp(address, from).await?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    let io = |e: std::io::Error| BenchError::Socket(e.to_string());
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut response = Vec::new();
    tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut response))
        .await
        .map_err(|_| BenchError::Timeout(TIMEOUT))?
        .map_err(io)?;
    let response = String::from_utf8_lossy(&response);
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BenchError::Socket(format!("not an HTTP response: {response:.80}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Ok((status, body))
}

/// Resets the kernel's record of the process's peak resident memory (`VmHWM`).
fn reset_peak_rss(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// The process's peak resident memory since the last reset, in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb * 1024.0 / 1e6)
}

fn rss_mb(pid: u32) -> f64 {
    crate::usage::of(pid).map_or(f64::NAN, |u| u.rss_bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_acks_and_connect_errors() {
        assert_eq!(
            error_code(
                r#"{"ok":false,"error":{"code":"rate_limited","message":"x","retryAfterMs":3}}"#
            ),
            "rate_limited"
        );
        assert_eq!(
            error_code(r#"{"message":"unauthorized: this server needs the right join code"}"#),
            "unauthorized"
        );
        assert_eq!(
            error_code("closed during the handshake"),
            "closed during the handshake"
        );
    }

    #[test]
    fn every_attacker_and_normal_client_has_an_address_of_its_own() {
        let normal: std::collections::HashSet<IpAddr> =
            (0..NORMAL_CLIENTS).map(normal_address).collect();
        assert_eq!(normal.len(), NORMAL_CLIENTS);
        assert!(!normal.contains(&watcher()));
        assert!(!normal.contains(&attacker(11)));
    }
}
