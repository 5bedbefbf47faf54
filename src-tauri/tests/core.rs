//! The app's behaviour on the host, without a window: hosting, joining, tokens, settings.

use std::time::Duration;

use causerie_app_lib::core::{AppCore, Applied, adopt_previous_data_dir};
use causerie_app_lib::settings::{Mode, NoticeCode, Overrides, Settings};
use causerie_client::{ClientConfig, ClientEvent, ConnectionState, DisconnectReason};
use causerie_protocol::ErrorCode;
use causerie_server::testing::TestServer;
use tokio::sync::mpsc;

const PATIENCE: Duration = Duration::from_secs(15);

struct Started {
    core: AppCore,
    events: mpsc::UnboundedReceiver<ClientEvent>,
    info: causerie_app_lib::core::ChatInfo,
}

async fn start(data_dir: &std::path::Path, overrides: Overrides) -> Started {
    let core = AppCore::new(data_dir.to_owned(), overrides).expect("loads settings");
    let (sink, events) = mpsc::unbounded_channel();
    let info = core
        .start(move |event| {
            let _ = sink.send(event);
        })
        .await
        .expect("starts");
    Started { core, events, info }
}

/// Starts the chat the settings now describe on `core`; its events on a new channel.
async fn start_again(core: &AppCore) -> mpsc::UnboundedReceiver<ClientEvent> {
    let (sink, events) = mpsc::unbounded_channel();
    core.start(move |event| {
        let _ = sink.send(event);
    })
    .await
    .expect("starts");
    events
}

async fn next_matching<T>(
    events: &mut mpsc::UnboundedReceiver<ClientEvent>,
    mut pick: impl FnMut(ClientEvent) -> Option<T>,
) -> T {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = events.recv().await.expect("events flow");
            if let Some(found) = pick(event) {
                return found;
            }
        }
    })
    .await
    .expect("the event comes in time")
}

/// The client's event stream as a channel, like the app's sink.
fn forward(mut events: causerie_client::ClientEvents) -> mpsc::UnboundedReceiver<ClientEvent> {
    let (sink, receiver) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            let _ = sink.send(event);
        }
    });
    receiver
}

fn welcome(event: ClientEvent) -> Option<causerie_client::Session> {
    match event {
        ClientEvent::Welcome(session) => Some(session),
        _ => None,
    }
}

fn refusal(event: ClientEvent) -> Option<causerie_protocol::ErrorBody> {
    match event {
        ClientEvent::State(ConnectionState::Disconnected {
            reason: DisconnectReason::Refused(error),
        }) => Some(error),
        _ => None,
    }
}

fn message_text(event: ClientEvent) -> Option<String> {
    match event {
        ClientEvent::Message { message, .. } => Some(message.text),
        _ => None,
    }
}

fn named(name: &str) -> Overrides {
    Overrides {
        name: Some(name.to_owned()),
        ..Overrides::default()
    }
}

#[tokio::test]
async fn hosting_for_this_device_only_takes_a_code_that_no_one_else_has() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ada = start(dir.path(), named("Ada")).await;
    let hosting = ada.info.hosting.clone().expect("hosting");
    assert!(hosting.lan_urls.is_empty());
    let session = next_matching(&mut ada.events, welcome).await;
    assert_eq!(session.user.name, "Ada");

    // Another program on this device (a web page's script could do the same) is refused.
    let (_stranger, stranger_events) =
        causerie_client::connect(ClientConfig::new(ada.info.server_url.clone())).expect("starts");
    let mut stranger_events = forward(stranger_events);
    let refused = next_matching(&mut stranger_events, refusal).await;
    assert_eq!(refused.code, ErrorCode::Unauthorized);

    // A browser's websocket says where it comes from: refused before any Socket.IO.
    let address = ada.info.server_url.trim_start_matches("http://").to_owned();
    let status = websocket_status(&address, Some("https://evil.example")).await;
    assert_eq!(status, 403);
    ada.core.stop().await;
}

#[tokio::test]
async fn hosting_on_the_network_lets_others_join() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let core = AppCore::new(dir.path().to_owned(), Overrides::default()).expect("loads");
    core.save_settings(Settings {
        name: Some("Ada".into()),
        host_on_lan: true,
        port,
        ..Settings::default()
    })
    .await
    .expect("saves");
    drop(core);
    let mut ada = start(dir.path(), Overrides::default()).await;
    next_matching(&mut ada.events, welcome).await;

    let (bob, bob_events) = causerie_client::connect(ClientConfig {
        name: Some("Bob".into()),
        ..ClientConfig::new(ada.info.server_url.clone())
    })
    .expect("starts");
    let mut bob_events = forward(bob_events);
    next_matching(&mut bob_events, welcome).await;
    bob.send("general", "hello host");
    assert_eq!(
        next_matching(&mut ada.events, message_text).await,
        "hello host"
    );

    ada.core
        .client()
        .await
        .expect("running")
        .send("general", "hello guest");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(next_matching(&mut bob_events, message_text).await);
    }
    assert_eq!(seen, ["hello host", "hello guest"]);
    ada.core.stop().await;
}

#[tokio::test]
async fn settings_restart_only_what_changed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let hosted = Settings {
        name: Some("Ada".into()),
        host_on_lan: true,
        port,
        join_code: Some("first".into()),
        ..Settings::default()
    };
    let core = AppCore::new(dir.path().to_owned(), Overrides::default()).expect("loads");
    core.save_settings(hosted.clone()).await.expect("saves");
    drop(core);
    let mut ada = start(dir.path(), Overrides::default()).await;
    next_matching(&mut ada.events, welcome).await;
    let (_bob, bob_events) = causerie_client::connect(ClientConfig {
        name: Some("Bob".into()),
        join_code: Some("first".into()),
        ..ClientConfig::new(ada.info.server_url.clone())
    })
    .expect("starts");
    let mut bob_events = forward(bob_events);
    next_matching(&mut bob_events, welcome).await;

    // Saved as they are: nothing happens.
    let applied = ada.core.apply_settings(hosted.clone()).await;
    assert_eq!(applied.expect("applies"), Applied::Unchanged);

    // A new name: only Ada's own connection is made again, on the same event stream. Bob,
    // connected to the chat hosted here, sees her under it and never loses his connection.
    let renamed = Settings {
        name: Some("Ada Lovelace".into()),
        ..hosted.clone()
    };
    let applied = ada.core.apply_settings(renamed.clone()).await;
    assert_eq!(applied.expect("applies"), Applied::Reconnecting);
    assert_eq!(
        next_matching(&mut ada.events, welcome).await.user.name,
        "Ada Lovelace"
    );
    let mut bob_saw = Vec::new();
    next_matching(&mut bob_events, |event| {
        bob_saw.push(format!("{event:?}"));
        match event {
            ClientEvent::Online { users, .. } => users
                .iter()
                .any(|user| user.name == "Ada Lovelace")
                .then_some(()),
            _ => None,
        }
    })
    .await;
    assert!(
        !bob_saw.iter().any(|event| event.starts_with("State(")),
        "Bob's connection never changed: {bob_saw:?}"
    );

    // A new join code: the server starts again with it, and those who had only the old one
    // are out.
    let recoded = Settings {
        join_code: Some("second".into()),
        ..renamed
    };
    let applied = ada.core.apply_settings(recoded).await;
    assert_eq!(applied.expect("applies"), Applied::Restart);
    let mut restarted = start_again(&ada.core).await;
    next_matching(&mut restarted, welcome).await;
    let refused = next_matching(&mut bob_events, refusal).await;
    assert_eq!(refused.code, ErrorCode::Unauthorized);

    // Joining a server: a new name reconnects there; another server is another chat.
    let server = TestServer::start().await;
    let joining = Settings {
        mode: Mode::Join,
        server_url: Some(server.url()),
        name: Some("Ada".into()),
        ..Settings::default()
    };
    assert_eq!(
        ada.core
            .apply_settings(joining.clone())
            .await
            .expect("applies"),
        Applied::Restart
    );
    let mut joined = start_again(&ada.core).await;
    next_matching(&mut joined, welcome).await;
    let applied = ada
        .core
        .apply_settings(Settings {
            name: Some("Ada L".into()),
            ..joining
        })
        .await;
    assert_eq!(applied.expect("applies"), Applied::Reconnecting);
    assert_eq!(next_matching(&mut joined, welcome).await.user.name, "Ada L");
    ada.core.stop().await;
}

#[tokio::test]
async fn a_hosted_chat_paused_in_the_background_serves_again_on_return_and_catches_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ada = start(dir.path(), named("Ada")).await;
    next_matching(&mut ada.events, welcome).await;
    let client = ada.core.client().await.expect("running");
    client.send("general", "before");
    assert_eq!(next_matching(&mut ada.events, message_text).await, "before");

    // To the background: the hosted chat stops, and the client sees it go. Told twice, and
    // back in between, in the wrong order: the latest word wins.
    ada.core.set_foreground(false);
    ada.core.follow_lifecycle().await.expect("follows");
    ada.core.follow_lifecycle().await.expect("follows");
    next_matching(&mut ada.events, |event| {
        matches!(
            event,
            ClientEvent::State(ConnectionState::Disconnected {
                reason: DisconnectReason::Lost(_)
            })
        )
        .then_some(())
    })
    .await;
    client.send("general", "while away");

    // Back: the same address serves again, and what was written meanwhile goes out.
    ada.core.set_foreground(true);
    ada.core.follow_lifecycle().await.expect("serves again");
    assert_eq!(
        next_matching(&mut ada.events, message_text).await,
        "while away"
    );
    let (_bob, bob_events) = causerie_client::connect(ClientConfig {
        join_code: None,
        ..ClientConfig::new(ada.info.server_url.clone())
    })
    .expect("starts");
    let refused = next_matching(&mut forward(bob_events), refusal).await;
    assert_eq!(
        refused.code,
        ErrorCode::Unauthorized,
        "still closed to other programs"
    );
    ada.core.stop().await;
}

#[tokio::test]
async fn the_ui_never_sees_the_session_tokens_and_saving_keeps_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut ada = start(dir.path(), named("Ada")).await;
    next_matching(&mut ada.events, welcome).await;
    // The token is kept once the welcome is handled: wait for it to be on disk.
    let file = dir.path().join("settings.json");
    tokio::time::timeout(PATIENCE, async {
        while !std::fs::read_to_string(&file).is_ok_and(|text| text.contains("v1.")) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the token is kept");
    let shown = ada.core.settings_for_ui();
    assert!(shown.tokens.is_empty() && shown.rooms.is_empty());
    assert_eq!(shown.name.as_deref(), Some("Ada"));
    // The UI sends back what it was shown: the app keeps its tokens.
    ada.core.apply_settings(shown).await.expect("applies");
    assert!(!ada.core.settings().tokens.is_empty());
    assert!(
        std::fs::read_to_string(&file)
            .expect("reads")
            .contains("v1.")
    );
    ada.core.stop().await;
}

#[tokio::test]
async fn the_data_of_the_former_identifier_comes_along() {
    let root = tempfile::tempdir().expect("temp dir");
    let former = root.path().join("org.causerie.app");
    std::fs::create_dir(&former).expect("creates");
    std::fs::write(
        former.join("settings.json"),
        r#"{"mode":"host","name":"Ada","tokens":{"hosted":"v1.kept"}}"#,
    )
    .expect("writes");
    std::fs::write(former.join("outbox-hosted.json"), "[]").expect("writes");
    std::fs::create_dir(former.join("WebKitCache")).expect("creates");
    // The window made the new folder (WebKit's files) before the app's setup runs.
    let current = root.path().join("org.causerie.chat");
    std::fs::create_dir_all(current.join("WebKitCache")).expect("creates");
    assert_eq!(adopt_previous_data_dir(&current), Some(former.clone()));
    assert!(
        former.join("WebKitCache").exists(),
        "a name the new folder has stays where it was"
    );
    let core = AppCore::new(current.clone(), Overrides::default()).expect("loads");
    assert_eq!(core.settings().name.as_deref(), Some("Ada"));
    assert_eq!(
        std::fs::read_to_string(current.join("outbox-hosted.json")).expect("moved"),
        "[]"
    );
    assert_eq!(
        core.settings().tokens.get("hosted").map(String::as_str),
        Some("v1.kept")
    );
    // Once there, the current folder is the user's: nothing is moved over it again.
    std::fs::write(former.join("settings.json"), "{}").expect("writes");
    assert_eq!(adopt_previous_data_dir(&current), None);
    assert!(former.join("settings.json").exists());
}

/// A port free now, for a test that needs a fixed one.
fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .expect("binds")
        .local_addr()
        .expect("an address")
        .port()
}

/// The HTTP status of a websocket upgrade to Socket.IO at `address`, with `origin` if given.
async fn websocket_status(address: &str, origin: Option<&str>) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let origin = origin.map_or_else(String::new, |origin| format!("Origin: {origin}\r\n"));
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {address}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut head = [0u8; 12];
    tokio::time::timeout(PATIENCE, stream.read_exact(&mut head))
        .await
        .expect("answers in time")
        .expect("reads");
    String::from_utf8_lossy(&head[9..12])
        .parse()
        .expect("a status code")
}

#[tokio::test]
async fn the_command_line_server_wins_over_the_settings() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let overrides = Overrides {
        server: Some(server.url()),
        ..named("Ada")
    };
    let mut ada = start(dir.path(), overrides).await;
    assert_eq!(ada.info.hosting, None);
    assert_eq!(ada.info.server_url, server.url());
    next_matching(&mut ada.events, welcome).await;
    assert_eq!(ada.core.settings().mode, Mode::Join);
    ada.core.stop().await;
}

#[tokio::test]
async fn the_next_run_is_the_same_user_with_the_same_history() {
    let dir = tempfile::tempdir().expect("temp dir");
    let first_user = {
        let mut first = start(dir.path(), named("Ada")).await;
        let session = next_matching(&mut first.events, welcome).await;
        first
            .core
            .client()
            .await
            .expect("running")
            .send("general", "remember me");
        assert_eq!(
            next_matching(&mut first.events, message_text).await,
            "remember me"
        );
        first.core.stop().await;
        session.user
    };
    let mut second = start(dir.path(), Overrides::default()).await;
    let session = next_matching(&mut second.events, welcome).await;
    assert_eq!(
        session.user, first_user,
        "the kept token names the same user"
    );
    assert_eq!(
        next_matching(&mut second.events, message_text).await,
        "remember me"
    );
    second.core.stop().await;
}

#[tokio::test]
async fn settings_are_kept_and_checked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let core = AppCore::new(dir.path().to_owned(), Overrides::default()).expect("loads");
    assert_eq!(core.settings(), Settings::default());
    let error = core
        .save_settings(Settings {
            mode: Mode::Join,
            server_url: None,
            ..Settings::default()
        })
        .await
        .expect_err("joining needs an address");
    assert_eq!(error.code().as_str(), "invalid_settings");
    core.save_settings(Settings {
        name: Some("Ada".into()),
        host_on_lan: true,
        ..Settings::default()
    })
    .await
    .expect("saves");
    let reopened = AppCore::new(dir.path().to_owned(), Overrides::default()).expect("loads");
    assert_eq!(reopened.settings().name.as_deref(), Some("Ada"));
    assert!(reopened.settings().host_on_lan);
}

#[tokio::test]
async fn a_busy_port_for_lan_hosting_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").expect("binds");
    let port = taken.local_addr().expect("an address").port();
    let dir = tempfile::tempdir().expect("temp dir");
    let core = AppCore::new(dir.path().to_owned(), Overrides::default()).expect("loads");
    core.save_settings(Settings {
        name: Some("Ada".into()),
        host_on_lan: true,
        port,
        ..Settings::default()
    })
    .await
    .expect("saves");
    let error = core.start(|_| {}).await.expect_err("the port is taken");
    assert_eq!(error.code().as_str(), "hosting");
    assert!(error.to_string().contains(&port.to_string()), "{error}");
}

#[test]
fn settings_left_half_written_are_set_aside_and_the_app_starts_with_the_defaults() {
    for unreadable in [
        &b""[..],
        b"{\"mode\":\"join\",\"serverUrl\":\"http://chat.exa",
        b"\0\0\0",
    ] {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = dir.path().join("settings.json");
        std::fs::write(&settings, unreadable).expect("writes");
        let core = AppCore::new(dir.path().to_owned(), Overrides::default())
            .expect("starts despite unreadable settings");
        assert_eq!(core.settings(), Settings::default());
        let notices = core.take_notices();
        assert_eq!(notices.len(), 1);
        assert_eq!(notices[0].code, NoticeCode::SettingsUnreadable);
        assert!(
            notices[0].message.contains("settings-unreadable-"),
            "{notices:?}"
        );
        assert!(core.take_notices().is_empty(), "said once");
        assert!(!settings.exists());
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .expect("lists")
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("settings-unreadable-")
            })
            .collect();
        assert_eq!(aside.len(), 1);
        assert_eq!(std::fs::read(aside[0].path()).expect("reads"), unreadable);
    }
}

#[cfg(unix)]
#[tokio::test]
async fn settings_and_the_data_folder_are_readable_by_the_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().expect("temp dir");
    let dir = parent.path().join("data");
    std::fs::create_dir(&dir).expect("creates");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmods");
    let core = AppCore::new(dir.clone(), Overrides::default()).expect("loads");
    core.save_settings(Settings {
        name: Some("Ada".into()),
        join_code: Some("sesame".into()),
        ..Settings::default()
    })
    .await
    .expect("saves");
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("settings.json")), 0o600);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("lists")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["settings.json"], "no temporary file left behind");
}

#[tokio::test]
async fn joined_rooms_are_joined_again_when_the_app_starts_again() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let overrides = Overrides {
        server: Some(server.url()),
        ..named("Ada")
    };
    let mut ada = start(dir.path(), overrides.clone()).await;
    next_matching(&mut ada.events, welcome).await;
    let client = ada.core.client().await.expect("running");
    client.join("books");
    client.join("films");
    for _ in 0..2 {
        next_matching(&mut ada.events, |e| match e {
            ClientEvent::Joined { room } => Some(room),
            _ => None,
        })
        .await;
    }
    client.leave("films");
    next_matching(&mut ada.events, |e| match e {
        ClientEvent::Left { room } => Some(room),
        _ => None,
    })
    .await;
    ada.core.stop().await;
    drop(ada);

    let mut again = start(dir.path(), overrides).await;
    let rejoined = next_matching(&mut again.events, |e| match e {
        ClientEvent::Joined { room } if room != "general" => Some(room),
        _ => None,
    })
    .await;
    assert_eq!(rejoined, "books");
    again.core.stop().await;
}

#[tokio::test]
async fn drafts_are_kept_per_server_across_restarts_and_bounded() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let overrides = Overrides {
        server: Some(server.url()),
        ..named("Ada")
    };
    let ada = start(dir.path(), overrides.clone()).await;
    let drafts = std::collections::BTreeMap::from([("general".to_owned(), "half a".to_owned())]);
    ada.core.save_drafts(drafts.clone()).await.expect("keeps");
    let too_long =
        std::collections::BTreeMap::from([("general".to_owned(), "x".repeat(100 * 1024))]);
    assert!(ada.core.save_drafts(too_long).await.is_err());
    ada.core.stop().await;
    drop(ada);

    let again = start(dir.path(), overrides).await;
    assert_eq!(again.core.drafts().await.expect("read"), drafts);
    again.core.stop().await;
    // Another server has drafts of its own.
    let other = TestServer::start().await;
    let elsewhere = start(
        dir.path(),
        Overrides {
            server: Some(other.url()),
            ..named("Ada")
        },
    )
    .await;
    assert!(elsewhere.core.drafts().await.expect("read").is_empty());
    elsewhere.core.stop().await;
}

#[tokio::test]
async fn notification_levels_are_kept_per_server_out_of_the_uis_reach_and_bounded() {
    use causerie_app_lib::settings::AlertLevel;
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let overrides = Overrides {
        server: Some(server.url()),
        ..named("Ada")
    };
    let ada = start(dir.path(), overrides.clone()).await;
    ada.core
        .set_alert("general".into(), AlertLevel::None)
        .await
        .expect("keeps");
    ada.core
        .set_alert("side".into(), AlertLevel::All)
        .await
        .expect("keeps");
    assert!(
        ada.core
            .set_alert("not a room".into(), AlertLevel::All)
            .await
            .is_err()
    );
    // The default is no entry.
    ada.core
        .set_alert("side".into(), AlertLevel::Mentions)
        .await
        .expect("keeps");
    // Bounded: a page cannot grow the settings without end.
    let max = causerie_app_lib::core::MAX_ALERTS;
    for i in 1..max {
        ada.core
            .set_alert(format!("room-{i}"), AlertLevel::All)
            .await
            .expect("within the bound");
    }
    assert!(
        ada.core
            .set_alert("one-more".into(), AlertLevel::All)
            .await
            .is_err()
    );
    // The UI neither sees them nor drops them by saving what it was shown.
    let shown = ada.core.settings_for_ui();
    assert!(shown.alerts.is_empty());
    ada.core.apply_settings(shown).await.expect("applies");
    ada.core.stop().await;
    drop(ada);

    let again = start(dir.path(), overrides).await;
    let levels = again.core.alerts().await.expect("read");
    assert_eq!(levels.len(), max);
    assert_eq!(levels.get("general"), Some(&AlertLevel::None));
    assert_eq!(levels.get("side"), None);
    again.core.stop().await;
    // Another server has levels of its own.
    let other = TestServer::start().await;
    let elsewhere = start(
        dir.path(),
        Overrides {
            server: Some(other.url()),
            ..named("Ada")
        },
    )
    .await;
    assert!(elsewhere.core.alerts().await.expect("read").is_empty());
    elsewhere.core.stop().await;
}
