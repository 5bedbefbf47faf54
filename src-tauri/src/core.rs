//! The app's behaviour, apart from Tauri: which chat to run (hosted here or joined), the embedded
//! server's lifecycle, settings and tokens. Commands delegate here, and tests drive it directly.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use causerie_client::{ChatClient, ClientConfig, ClientEvent};
use causerie_server::{CorsOrigins, ServerConfig};
use serde::Serialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use ts_rs::TS;

use crate::error::AppError;
use crate::settings::{
    AlertLevel, Mode, Notice, Overrides, Settings, StoredSettings, create_private_dir,
    write_private_json,
};

const SETTINGS_FILE: &str = "settings.json";
/// The key of the embedded server in [`Settings::tokens`], whatever port it gets.
const HOSTED_KEY: &str = "hosted";

/// What the UI shows about the running chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct ChatInfo {
    /// The server this app talks to.
    pub server_url: String,
    /// Set when this device hosts the chat.
    pub hosting: Option<Hosting>,
}

/// How others reach a chat hosted on this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub struct Hosting {
    /// Addresses others on the local network should enter; empty when hosting for this device
    /// only.
    pub lan_urls: Vec<String>,
    /// The join code others need, if one is set.
    pub join_code: Option<String>,
}

/// What saving settings did to the running chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[serde(rename_all = "camelCase")]
pub enum Applied {
    /// Nothing the chat uses changed: it goes on as it was.
    Unchanged,
    /// The same chat, connecting again at once under the new name or join code; what is shown
    /// goes on, and a chat hosted here keeps running with everyone connected to it.
    Reconnecting,
    /// Another chat (another server, hosted or joined): start it with [`AppCore::start`].
    Restart,
}

impl Applied {
    /// What changing the settings a chat was started with into `after` asks of it (both with
    /// the command line's overrides applied).
    fn of_change(before: &Settings, after: &Settings) -> Self {
        let same_server = after.mode == before.mode
            && match after.mode {
                Mode::Host => HostPlan::of(after) == HostPlan::of(before),
                Mode::Join => after.server_url == before.server_url,
            };
        // Hosted here, the client's code is the server's, part of the plan compared above.
        let same_code = after.mode == Mode::Host || after.join_code == before.join_code;
        if !same_server {
            Self::Restart
        } else if after.name == before.name && same_code {
            Self::Unchanged
        } else {
            Self::Reconnecting
        }
    }
}

/// A server inside the app: serving, or paused while a phone's app is in the background.
struct EmbeddedServer {
    /// What it was started with: a change of settings that leaves this as it is keeps the
    /// server running, and the people connected to it.
    plan: HostPlan,
    /// The port it listens on, kept across pauses so that the client's address stays right.
    port: u16,
    /// The code it requires: the user's, or a random one that only this app holds.
    join_code: Option<String>,
    /// Its database and key.
    data_dir: PathBuf,
    /// The listening socket, kept open while paused: the port stays this app's, so that no other
    /// program can take the address the client (and the guests) keep trying.
    socket: Option<std::net::TcpListener>,
    serving: Option<Serving>,
}

/// A server task and the way to stop it.
struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// The settings an embedded server is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPlan {
    host_on_lan: bool,
    port: u16,
    join_code: Option<String>,
}

impl HostPlan {
    fn of(settings: &Settings) -> Self {
        Self {
            host_on_lan: settings.host_on_lan,
            // The port and the code only matter on the network: for this device only, the port
            // is any free one and the code a random one.
            port: if settings.host_on_lan {
                settings.port
            } else {
                0
            },
            join_code: if settings.host_on_lan {
                settings.join_code.clone().filter(|code| !code.is_empty())
            } else {
                None
            },
        }
    }
}

impl EmbeddedServer {
    /// Starts a server for `plan`, its database in `data_dir`.
    async fn start(plan: HostPlan, data_dir: PathBuf) -> Result<Self, AppError> {
        // Hosted for this device only, the chat listens on loopback, where any web page in a
        // browser could reach it: it takes a random code that only this app holds.
        let join_code = if plan.host_on_lan {
            plan.join_code.clone()
        } else {
            Some(uuid::Uuid::new_v4().simple().to_string())
        };
        let mut server = Self {
            port: plan.port,
            plan,
            join_code,
            data_dir,
            socket: None,
            serving: None,
        };
        server.serve().await?;
        Ok(server)
    }

    /// Serves on its socket, made now (on the port it had, if it had one) unless it has one.
    async fn serve(&mut self) -> Result<(), AppError> {
        let hosting = |e: std::io::Error| AppError::Hosting(e.to_string());
        if self.socket.is_none() {
            let interface = if self.plan.host_on_lan {
                Ipv4Addr::UNSPECIFIED
            } else {
                Ipv4Addr::LOCALHOST
            };
            let bind = SocketAddr::new(IpAddr::V4(interface), self.port);
            let listener = tokio::net::TcpListener::bind(bind)
                .await
                .map_err(|e| AppError::Hosting(format!("cannot listen on {bind}: {e}")))?;
            self.port = listener.local_addr().map_err(hosting)?.port();
            self.socket = Some(listener.into_std().map_err(hosting)?);
        }
        let socket = match &self.socket {
            Some(socket) => socket.try_clone().map_err(hosting)?,
            None => return Err(AppError::Hosting("no socket to serve on".into())),
        };
        socket.set_nonblocking(true).map_err(hosting)?;
        let listener = tokio::net::TcpListener::from_std(socket).map_err(hosting)?;
        let config = ServerConfig {
            join_code: self.join_code.clone(),
            // Its clients are apps, which send no Origin: no web page may use it, on loopback
            // or on the network.
            cors_origins: CorsOrigins::List(Vec::new()),
            ..ServerConfig::new(self.data_dir.clone())
        };
        // Opened here, so that a failure reaches the user now rather than a log later.
        let app = causerie_server::App::new(&config)
            .await
            .map_err(|e| AppError::Hosting(e.to_string()))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            if let Err(e) = app.serve(listener, shutdown).await {
                tracing::error!(error = %e, "the embedded server failed");
            }
        });
        tracing::info!(
            port = self.port,
            lan = self.plan.host_on_lan,
            "hosting the chat"
        );
        self.serving = Some(Serving { stop, task });
        Ok(())
    }

    /// Serves again after a pause, or after the system closed its socket (which then gives way
    /// to a new one on the same port).
    async fn serve_again(&mut self) -> Result<(), AppError> {
        self.pause().await;
        self.serve().await?;
        if !self.is_serving().await {
            self.pause().await;
            self.socket = None;
            self.serve().await?;
        }
        Ok(())
    }

    /// Whether it serves: its task runs, and its port answers (a phone's system may have closed
    /// the socket while the app was in the background).
    async fn is_serving(&self) -> bool {
        if self.serving.as_ref().is_none_or(|s| s.task.is_finished()) {
            return false;
        }
        let probe = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
        matches!(
            tokio::time::timeout(Duration::from_secs(1), probe).await,
            Ok(Ok(_))
        )
    }

    /// Stops serving, keeping the socket (its port) and the code for [`EmbeddedServer::serve`].
    async fn pause(&mut self) {
        if let Some(serving) = self.serving.take() {
            let _ = serving.stop.send(());
            // The server bounds its own shutdown (5 s, then the store is closed): this bound is
            // only a last resort, so that quitting the app never hangs.
            let _ = tokio::time::timeout(Duration::from_secs(15), serving.task).await;
        }
    }

    async fn stop(mut self) {
        self.pause().await;
    }
}

/// A running chat: the client, and the server when hosted here.
struct Running {
    client: ChatClient,
    /// The server's key in the app's per-server files (tokens, rooms, drafts, outboxes).
    server_key: String,
    server: Option<EmbeddedServer>,
    forward: JoinHandle<()>,
    /// The settings it was started with (overrides applied), to tell what a change touches.
    settings: Settings,
}

impl Running {
    /// Stops the client, and hands back the embedded server, still running.
    async fn stop_client(self) -> Option<EmbeddedServer> {
        self.client.disconnect();
        // The forwarder ends with the client's event stream.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.forward).await;
        self.server
    }

    async fn stop(self) {
        if let Some(server) = self.stop_client().await {
            server.stop().await;
        }
    }
}

/// The app's state.
pub struct AppCore {
    data_dir: PathBuf,
    overrides: Overrides,
    settings: Arc<StoredSettings>,
    running: tokio::sync::Mutex<Option<Running>>,
    /// One write of the drafts file at a time.
    drafts_lock: tokio::sync::Mutex<()>,
    notices: Mutex<Vec<Notice>>,
    /// Whether the app is in the foreground, as last told: what [`AppCore::follow_lifecycle`]
    /// acts on, whatever order the work it starts runs in.
    foreground: std::sync::atomic::AtomicBool,
}

impl AppCore {
    /// Loads the settings kept in `data_dir` (or in `overrides.data_dir`, which wins).
    pub fn new(data_dir: PathBuf, overrides: Overrides) -> Result<Self, AppError> {
        let data_dir = overrides.data_dir.clone().unwrap_or(data_dir);
        create_private_dir(&data_dir).map_err(|e| AppError::storage(&data_dir, &e))?;
        let settings_file = data_dir.join(SETTINGS_FILE);
        let (settings, notice) = Settings::load(&settings_file)?;
        Ok(Self {
            data_dir,
            overrides,
            settings: Arc::new(StoredSettings::new(settings, settings_file)),
            running: tokio::sync::Mutex::new(None),
            drafts_lock: tokio::sync::Mutex::new(()),
            notices: Mutex::new(notice.into_iter().collect()),
            foreground: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// What the app did by itself that the user should know (each is given once).
    pub fn take_notices(&self) -> Vec<Notice> {
        std::mem::take(
            &mut self
                .notices
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Where settings, outboxes and the embedded database live.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The settings as the UI sees them: without the session tokens (which would let any script
    /// in the page be the user on every server) and the rooms, which are the app's to keep.
    pub fn settings_for_ui(&self) -> Settings {
        Settings {
            tokens: BTreeMap::new(),
            rooms: BTreeMap::new(),
            alerts: BTreeMap::new(),
            ..self.settings()
        }
    }

    /// The settings, with this run's command-line overrides applied.
    pub fn settings(&self) -> Settings {
        let mut settings = self.settings.get();
        if let Some(server) = &self.overrides.server {
            settings.mode = Mode::Join;
            settings.server_url = Some(server.clone());
        }
        if let Some(name) = &self.overrides.name {
            settings.name = Some(name.clone());
        }
        if let Some(code) = &self.overrides.code {
            settings.join_code = Some(code.clone());
        }
        settings
    }

    /// Keeps new settings, and applies to the running chat what can be applied without starting
    /// it again: see [`Applied`].
    pub async fn apply_settings(&self, new: Settings) -> Result<Applied, AppError> {
        self.save_settings(new).await?;
        let settings = self.settings();
        let mut running = self.running.lock().await;
        let Some(running) = running.as_mut().filter(|r| r.client.is_running()) else {
            return Ok(Applied::Restart);
        };
        let applied = Applied::of_change(&running.settings, &settings);
        if applied != Applied::Reconnecting {
            return Ok(applied);
        }
        let join_code = match settings.mode {
            Mode::Host => running.server.as_ref().and_then(|s| s.join_code.clone()),
            Mode::Join => settings.join_code.clone(),
        };
        running
            .client
            .reconnect_as(settings.name.as_deref(), join_code.as_deref());
        running.settings = settings;
        Ok(Applied::Reconnecting)
    }

    /// Keeps new settings (the tokens and joined rooms are the app's, not the UI's, and are kept
    /// as they are), without applying them: see [`AppCore::apply_settings`].
    pub async fn save_settings(&self, new: Settings) -> Result<(), AppError> {
        if new.mode == Mode::Join
            && new
                .server_url
                .as_deref()
                .is_none_or(|u| u.trim().is_empty())
        {
            return Err(AppError::InvalidSettings(
                "joining needs the server's address".into(),
            ));
        }
        self.settings.change(|settings| {
            let tokens = std::mem::take(&mut settings.tokens);
            let rooms = std::mem::take(&mut settings.rooms);
            let alerts = std::mem::take(&mut settings.alerts);
            *settings = Settings {
                tokens,
                rooms,
                alerts,
                ..new
            };
        });
        self.settings.persist().await
    }

    /// Starts the chat the settings describe and streams its events to `sink`, in order. A
    /// running chat is stopped first, except for an embedded server whose settings did not
    /// change: a new name restarts only this app's connection, and the people connected to the
    /// chat hosted here stay connected.
    pub async fn start(
        &self,
        sink: impl Fn(ClientEvent) + Send + Sync + 'static,
    ) -> Result<ChatInfo, AppError> {
        let mut running = self.running.lock().await;
        let settings = self.settings();
        let mut kept_server = match running.take() {
            Some(previous) => previous.stop_client().await,
            None => None,
        };
        if let Some(server) = kept_server.take_if(|server| {
            settings.mode != Mode::Host
                || server.plan != HostPlan::of(&settings)
                || server.serving.as_ref().is_none_or(|s| s.task.is_finished())
        }) {
            server.stop().await;
        }
        let (server, server_url, token_key, hosting, join_code) = match settings.mode {
            Mode::Host => {
                let server = match kept_server {
                    Some(server) => server,
                    None => self.host(&settings).await?,
                };
                let hosting = Hosting {
                    lan_urls: if settings.host_on_lan {
                        lan_urls(server.port)
                    } else {
                        Vec::new()
                    },
                    join_code: settings.join_code.clone(),
                };
                let url = format!("http://127.0.0.1:{}", server.port);
                let join_code = server.join_code.clone();
                (
                    Some(server),
                    url,
                    HOSTED_KEY.to_owned(),
                    Some(hosting),
                    join_code,
                )
            }
            Mode::Join => {
                let url = settings
                    .server_url
                    .clone()
                    .ok_or_else(|| AppError::InvalidSettings("no server to join".into()))?;
                (None, url.clone(), url, None, settings.join_code.clone())
            }
        };
        let config = ClientConfig {
            name: settings.name.clone(),
            token: settings.tokens.get(&token_key).cloned(),
            join_code,
            outbox_file: Some(self.data_dir.join(outbox_file_name(&token_key))),
            rooms: settings.rooms.get(&token_key).cloned().unwrap_or_default(),
            ..ClientConfig::new(server_url.clone())
        };
        let drafts_key = token_key.clone();
        let (client, mut events) = match causerie_client::connect(config) {
            Ok(started) => started,
            Err(e) => {
                // Not left to stop unawaited: its port and database are free when this returns.
                if let Some(server) = server {
                    server.stop().await;
                }
                return Err(e.into());
            }
        };
        let stored = self.settings.clone();
        let forward = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                // The token a server gave (so that it knows the user again), the rooms joined.
                let changed = match &event {
                    ClientEvent::Welcome(session) => stored.change(|settings| {
                        settings
                            .tokens
                            .insert(token_key.clone(), session.token.clone());
                    }),
                    ClientEvent::Joined { room } => stored.change(|settings| {
                        let rooms = settings.rooms.entry(token_key.clone()).or_default();
                        if !rooms.contains(room) && room != causerie_protocol::DEFAULT_ROOM {
                            rooms.push(room.clone());
                        }
                    }),
                    // A room left takes its notification level with it.
                    ClientEvent::Left { room } => stored.change(|settings| {
                        if let Some(rooms) = settings.rooms.get_mut(&token_key) {
                            rooms.retain(|r| r != room);
                        }
                        if let Some(levels) = settings.alerts.get_mut(&token_key) {
                            levels.remove(room);
                        }
                        settings.alerts.retain(|_, levels| !levels.is_empty());
                    }),
                    _ => false,
                };
                sink(event);
                if changed && let Err(e) = stored.persist().await {
                    tracing::warn!(error = %e, "could not keep the session token or the rooms");
                }
            }
        });
        *running = Some(Running {
            client,
            server_key: drafts_key,
            server,
            forward,
            settings,
        });
        Ok(ChatInfo {
            server_url,
            hosting,
        })
    }

    /// The running chat's drafts, by room (what was typed and not sent).
    pub async fn drafts(&self) -> Result<BTreeMap<String, String>, AppError> {
        let key = self.server_key().await?;
        Ok(read_drafts(&self.data_dir.join(DRAFTS_FILE))
            .remove(&key)
            .unwrap_or_default())
    }

    /// Keeps the running chat's drafts, replacing those it had: the UI sends them all, a little
    /// after the typing stops. Bounded, since they come from the page.
    pub async fn save_drafts(&self, drafts: BTreeMap<String, String>) -> Result<(), AppError> {
        if drafts.len() > MAX_DRAFTS || drafts.values().any(|d| d.len() > MAX_DRAFT_BYTES) {
            return Err(AppError::InvalidSettings(format!(
                "drafts are kept for {MAX_DRAFTS} rooms of {MAX_DRAFT_BYTES} bytes at most"
            )));
        }
        let key = self.server_key().await?;
        let path = self.data_dir.join(DRAFTS_FILE);
        let _writing = self.drafts_lock.lock().await;
        // Read, changed and written whole off the async threads (the write syncs to disk).
        let file = path.clone();
        tokio::task::spawn_blocking(move || {
            let mut all = read_drafts(&file);
            if drafts.is_empty() {
                all.remove(&key);
            } else {
                all.insert(key, drafts);
            }
            write_private_json(&file, &all)
        })
        .await
        .map_err(|e| AppError::storage(&path, &e))?
    }

    /// The running chat's notification levels of rooms not at the default.
    pub async fn alerts(&self) -> Result<BTreeMap<String, AlertLevel>, AppError> {
        let key = self.server_key().await?;
        Ok(self.settings().alerts.remove(&key).unwrap_or_default())
    }

    /// Keeps the notification level of `room` in the running chat. Bounded, since it comes from
    /// the page: a room name, and levels for at most [`MAX_ALERTS`] rooms. Not kept (a full
    /// disk), the level is as it was, here too.
    pub async fn set_alert(&self, room: String, level: AlertLevel) -> Result<(), AppError> {
        if !causerie_protocol::limits::is_room_or_direct(&room) {
            return Err(AppError::InvalidSettings(format!("{room:?} is no room")));
        }
        let key = self.server_key().await?;
        let set = |settings: &mut Settings, level: AlertLevel| {
            let levels = settings.alerts.entry(key.clone()).or_default();
            if level == AlertLevel::default() {
                levels.remove(&room);
            } else {
                levels.insert(room.clone(), level);
            }
            settings.alerts.retain(|_, levels| !levels.is_empty());
        };
        let mut before = None;
        let mut full = false;
        self.settings.change(|settings| {
            let levels = settings.alerts.get(&key);
            before = Some(
                levels
                    .and_then(|l| l.get(&room))
                    .copied()
                    .unwrap_or_default(),
            );
            full = level != AlertLevel::default()
                && levels.is_some_and(|l| l.len() >= MAX_ALERTS && !l.contains_key(&room));
            if !full {
                set(settings, level);
            }
        });
        if full {
            return Err(AppError::InvalidSettings(format!(
                "notification levels are kept for {MAX_ALERTS} rooms at most"
            )));
        }
        let kept = self.settings.persist().await;
        if kept.is_err()
            && let Some(before) = before
        {
            self.settings.change(|settings| set(settings, before));
        }
        kept
    }

    async fn server_key(&self) -> Result<String, AppError> {
        self.running
            .lock()
            .await
            .as_ref()
            .map(|r| r.server_key.clone())
            .ok_or(AppError::NotStarted)
    }

    /// The running chat's client.
    pub async fn client(&self) -> Result<ChatClient, AppError> {
        self.running
            .lock()
            .await
            .as_ref()
            .map(|r| r.client.clone())
            .ok_or(AppError::NotStarted)
    }

    /// Stops the chat: the client, then the embedded server (which commits what it acked).
    pub async fn stop(&self) {
        if let Some(running) = self.running.lock().await.take() {
            running.stop().await;
        }
    }

    async fn host(&self, settings: &Settings) -> Result<EmbeddedServer, AppError> {
        EmbeddedServer::start(HostPlan::of(settings), self.data_dir.join("server")).await
    }

    /// The app went to the background, or came back (a phone): to be called at once, in the
    /// order the system says it; then [`AppCore::follow_lifecycle`].
    pub fn set_foreground(&self, foreground: bool) {
        self.foreground
            .store(foreground, std::sync::atomic::Ordering::SeqCst);
    }

    /// Brings the hosted chat in line with the latest [`AppCore::set_foreground`]:
    /// - in the background, a chat hosted here pauses, its database committed and closed, since
    ///   the system would soon cut its sockets or suspend the app (which may then be ended
    ///   without a word); its port stays reserved, so no other program can take its address;
    /// - in the foreground, a chat hosted here that does not serve (paused, or its socket closed
    ///   by the system) serves again on the same port, and the client checks its connection at
    ///   once rather than at the end of a backoff.
    ///
    /// Idempotent: calls started in any order leave it as the latest state says.
    pub async fn follow_lifecycle(&self) -> Result<(), AppError> {
        let mut running = self.running.lock().await;
        let Some(running) = running.as_mut() else {
            return Ok(());
        };
        if !self.foreground.load(std::sync::atomic::Ordering::SeqCst) {
            if let Some(server) = running.server.as_mut() {
                server.pause().await;
            }
            return Ok(());
        }
        let mut result = Ok(());
        if let Some(server) = running.server.as_mut()
            && !server.is_serving().await
        {
            result = server.serve_again().await;
        }
        running.client.check_connection();
        result
    }
}

/// The app's identifiers before the current one: their data folders are the same user's.
const PREVIOUS_IDENTIFIERS: &[&str] = &["org.causerie.app"];

/// Moves what the data folder of an earlier identifier (`org.causerie.app`, which clashed with
/// macOS bundle names) holds into `data_dir`, while `data_dir` holds no chat of its own yet (no
/// settings, no hosted history): settings, tokens, outboxes and the hosted chat's history come
/// along. The window may have made `data_dir` already (WebKit keeps its files there), so it is
/// moved entry by entry, and a name `data_dir` has already stays where it was. Returns the folder
/// the entries came from. Desktop only: on a phone a new identifier is a new app.
pub fn adopt_previous_data_dir(data_dir: &Path) -> Option<PathBuf> {
    if data_dir.join(SETTINGS_FILE).exists() || data_dir.join("server").exists() {
        return None;
    }
    let previous = PREVIOUS_IDENTIFIERS
        .iter()
        .map(|identifier| data_dir.with_file_name(identifier))
        .find(|candidate| candidate.join(SETTINGS_FILE).is_file())?;
    if let Err(e) = create_private_dir(data_dir) {
        tracing::warn!(error = %e, "could not make the data folder");
        return None;
    }
    let entries = match std::fs::read_dir(&previous) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(error = %e, from = %previous.display(), "could not read the former data folder");
            return None;
        }
    };
    for entry in entries.flatten() {
        let target = data_dir.join(entry.file_name());
        if target.exists() {
            continue;
        }
        if let Err(e) = std::fs::rename(entry.path(), &target) {
            tracing::warn!(error = %e, entry = %entry.path().display(), "could not move from the former data folder");
        }
    }
    // Gone if all moved; otherwise kept, with what stayed, for the user.
    let _ = std::fs::remove_dir(&previous);
    tracing::info!(from = %previous.display(), to = %data_dir.display(), "moved the data folder");
    Some(previous)
}

/// The drafts file: drafts by server key, then by room.
const DRAFTS_FILE: &str = "drafts.json";
/// Rooms with a notification level other than the default, at most, per server.
pub const MAX_ALERTS: usize = 200;

/// Rooms with a draft, at most (the rooms a user may be in).
const MAX_DRAFTS: usize = 200;
/// The longest draft kept, in bytes (a message's most, in the widest characters, with room).
const MAX_DRAFT_BYTES: usize = 64 * 1024;

/// Every server's drafts; none when the file is missing or unreadable (a draft is not worth
/// refusing to start over).
fn read_drafts(path: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// One outbox per server, so that messages never reach a server they were not written for.
fn outbox_file_name(server_key: &str) -> String {
    let safe: String = server_key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("outbox-{safe}.json")
}

/// `http://<address>:<port>` for each IPv4 address of this device on a local network.
fn lan_urls(port: u16) -> Vec<String> {
    if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|interface| !interface.is_loopback())
        .filter_map(|interface| match interface.ip() {
            IpAddr::V4(ip) => Some(format!("http://{ip}:{port}")),
            IpAddr::V6(_) => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(base: &Settings, change: impl FnOnce(&mut Settings)) -> Settings {
        let mut changed = base.clone();
        change(&mut changed);
        changed
    }

    #[test]
    fn a_change_restarts_only_what_it_touches() {
        let host = Settings {
            name: Some("Ada".into()),
            ..Settings::default()
        };
        let on_lan = changed(&host, |s| {
            s.host_on_lan = true;
            s.join_code = Some("first".into());
        });
        let joined = changed(&host, |s| {
            s.mode = Mode::Join;
            s.server_url = Some("http://chat.example:3000".into());
            s.join_code = Some("code".into());
        });
        let cases = [
            (&host, host.clone(), Applied::Unchanged),
            (
                &host,
                changed(&host, |s| s.name = Some("Ada L".into())),
                Applied::Reconnecting,
            ),
            // Hosted for this device only, the port and the code are the app's own.
            (&host, changed(&host, |s| s.port = 4000), Applied::Unchanged),
            (
                &host,
                changed(&host, |s| s.join_code = Some("x".into())),
                Applied::Unchanged,
            ),
            (&host, on_lan.clone(), Applied::Restart),
            (
                &on_lan,
                changed(&on_lan, |s| s.join_code = Some("second".into())),
                Applied::Restart,
            ),
            (
                &on_lan,
                changed(&on_lan, |s| s.port = 4000),
                Applied::Restart,
            ),
            (
                &on_lan,
                changed(&on_lan, |s| s.name = Some("Ada L".into())),
                Applied::Reconnecting,
            ),
            (&host, joined.clone(), Applied::Restart),
            (
                &joined,
                changed(&joined, |s| s.join_code = Some("new".into())),
                Applied::Reconnecting,
            ),
            (
                &joined,
                changed(&joined, |s| s.name = Some("Ada L".into())),
                Applied::Reconnecting,
            ),
            (
                &joined,
                changed(&joined, |s| s.server_url = Some("http://other:3000".into())),
                Applied::Restart,
            ),
            (
                &joined,
                changed(&joined, |s| {
                    s.tokens.insert("k".into(), "t".into());
                }),
                Applied::Unchanged,
            ),
        ];
        for (i, (before, after, expected)) in cases.into_iter().enumerate() {
            assert_eq!(
                Applied::of_change(before, &after),
                expected,
                "case {i}: {after:?}"
            );
        }
    }
}
