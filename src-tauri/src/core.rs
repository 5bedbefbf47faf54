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

use crate::error::AppError;
use crate::settings::{Mode, Notice, Overrides, Settings, create_private_dir, write_private_json};

const SETTINGS_FILE: &str = "settings.json";
/// The key of the embedded server in [`Settings::tokens`], whatever port it gets.
const HOSTED_KEY: &str = "hosted";

/// What the UI shows about the running chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatInfo {
    /// The server this app talks to.
    pub server_url: String,
    /// Set when this device hosts the chat.
    pub hosting: Option<Hosting>,
}

/// How others reach a chat hosted on this device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Hosting {
    /// Addresses others on the local network should enter; empty when hosting for this device
    /// only.
    pub lan_urls: Vec<String>,
    /// The join code others need, if one is set.
    pub join_code: Option<String>,
}

/// A server running inside the app.
struct EmbeddedServer {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A running chat: the client, and the server when hosted here.
struct Running {
    client: ChatClient,
    /// The server's key in the app's per-server files (tokens, rooms, drafts, outboxes).
    server_key: String,
    server: Option<EmbeddedServer>,
    forward: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.client.disconnect();
        // The forwarder ends with the client's event stream.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.forward).await;
        if let Some(server) = self.server {
            let _ = server.stop.send(());
            // The server bounds its own shutdown (5 s, then the store is closed): this bound is
            // only a last resort, so that quitting the app never hangs.
            let _ = tokio::time::timeout(Duration::from_secs(15), server.task).await;
        }
    }
}

/// The app's state.
pub struct AppCore {
    data_dir: PathBuf,
    overrides: Overrides,
    settings: Arc<Mutex<Settings>>,
    running: tokio::sync::Mutex<Option<Running>>,
    /// One write of the drafts file at a time.
    drafts_lock: tokio::sync::Mutex<()>,
    notices: Mutex<Vec<Notice>>,
}

impl AppCore {
    /// Loads the settings kept in `data_dir` (or in `overrides.data_dir`, which wins).
    pub fn new(data_dir: PathBuf, overrides: Overrides) -> Result<Self, AppError> {
        let data_dir = overrides.data_dir.clone().unwrap_or(data_dir);
        create_private_dir(&data_dir).map_err(|e| AppError::storage(&data_dir, &e))?;
        let (settings, notice) = Settings::load(&data_dir.join(SETTINGS_FILE))?;
        Ok(Self {
            data_dir,
            overrides,
            settings: Arc::new(Mutex::new(settings)),
            running: tokio::sync::Mutex::new(None),
            drafts_lock: tokio::sync::Mutex::new(()),
            notices: Mutex::new(notice.into_iter().collect()),
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

    /// The settings, with this run's command-line overrides applied.
    pub fn settings(&self) -> Settings {
        let mut settings = lock(&self.settings).clone();
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

    /// Keeps new settings (the tokens and joined rooms are the app's, not the UI's, and are kept
    /// as they are).
    /// Call [`AppCore::start`] to apply them.
    pub fn save_settings(&self, new: Settings) -> Result<(), AppError> {
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
        let mut settings = lock(&self.settings);
        let tokens = std::mem::take(&mut settings.tokens);
        let rooms = std::mem::take(&mut settings.rooms);
        *settings = Settings {
            tokens,
            rooms,
            ..new
        };
        settings.save(&self.data_dir.join(SETTINGS_FILE))
    }

    /// Starts the chat the settings describe (stopping any running one) and streams its events to
    /// `sink`, in order.
    pub async fn start(
        &self,
        sink: impl Fn(ClientEvent) + Send + Sync + 'static,
    ) -> Result<ChatInfo, AppError> {
        let mut running = self.running.lock().await;
        if let Some(previous) = running.take() {
            previous.stop().await;
        }
        let settings = self.settings();
        let (server, server_url, token_key, hosting, join_code) = match settings.mode {
            Mode::Host => {
                // Hosted for this device only, the chat listens on loopback, where any web page
                // in a browser could reach it: it takes a random code that only this app holds.
                let join_code = if settings.host_on_lan {
                    settings.join_code.clone().filter(|code| !code.is_empty())
                } else {
                    Some(uuid::Uuid::new_v4().simple().to_string())
                };
                let (server, port) = self.host(&settings, join_code.clone()).await?;
                let hosting = Hosting {
                    lan_urls: if settings.host_on_lan {
                        lan_urls(port)
                    } else {
                        Vec::new()
                    },
                    join_code: settings.join_code.clone(),
                };
                let url = format!("http://127.0.0.1:{port}");
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
        let (client, mut events) = causerie_client::connect(config)?;
        let shared = self.settings.clone();
        let settings_path = self.data_dir.join(SETTINGS_FILE);
        let forward = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match &event {
                    ClientEvent::Welcome(session) => {
                        keep_token(&shared, &settings_path, &token_key, &session.token);
                    }
                    ClientEvent::Joined { room } => {
                        keep_rooms(&shared, &settings_path, &token_key, |rooms| {
                            if !rooms.contains(room) && room != causerie_protocol::DEFAULT_ROOM {
                                rooms.push(room.clone());
                            }
                        });
                    }
                    ClientEvent::Left { room } => {
                        keep_rooms(&shared, &settings_path, &token_key, |rooms| {
                            rooms.retain(|r| r != room);
                        });
                    }
                    _ => {}
                }
                sink(event);
            }
        });
        *running = Some(Running {
            client,
            server_key: drafts_key,
            server,
            forward,
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
        let mut all = read_drafts(&path);
        if drafts.is_empty() {
            all.remove(&key);
        } else {
            all.insert(key, drafts);
        }
        write_private_json(&path, &all)
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

    async fn host(
        &self,
        settings: &Settings,
        join_code: Option<String>,
    ) -> Result<(EmbeddedServer, u16), AppError> {
        let bind = if settings.host_on_lan {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), settings.port)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
        };
        let listener = tokio::net::TcpListener::bind(bind)
            .await
            .map_err(|e| AppError::Hosting(format!("cannot listen on {bind}: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| AppError::Hosting(e.to_string()))?
            .port();
        let config = ServerConfig {
            join_code,
            // Its clients are apps, which send no Origin: no web page may use it, on loopback
            // or on the network.
            cors_origins: CorsOrigins::List(Vec::new()),
            ..ServerConfig::new(self.data_dir.join("server"))
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
        tracing::info!(port, lan = settings.host_on_lan, "hosting the chat");
        Ok((EmbeddedServer { stop, task }, port))
    }
}

fn lock(settings: &Mutex<Settings>) -> std::sync::MutexGuard<'_, Settings> {
    settings
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Remembers the token a server gave, so that it knows the user again next time.
fn keep_token(settings: &Mutex<Settings>, path: &Path, key: &str, token: &str) {
    let mut settings = lock(settings);
    if settings.tokens.get(key).map(String::as_str) != Some(token) {
        settings.tokens.insert(key.to_owned(), token.to_owned());
        if let Err(e) = settings.save(path) {
            tracing::warn!(error = %e, "could not keep the session token");
        }
    }
}

/// Remembers the rooms joined on a server, when they change.
fn keep_rooms(
    settings: &Mutex<Settings>,
    path: &Path,
    key: &str,
    change: impl FnOnce(&mut Vec<String>),
) {
    let mut settings = lock(settings);
    let rooms = settings.rooms.entry(key.to_owned()).or_default();
    let before = rooms.clone();
    change(rooms);
    if *rooms != before
        && let Err(e) = settings.save(path)
    {
        tracing::warn!(error = %e, "could not keep the joined rooms");
    }
}

/// The drafts file: drafts by server key, then by room.
const DRAFTS_FILE: &str = "drafts.json";
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
