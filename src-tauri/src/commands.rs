//! The commands the UI invokes: each delegates to [`AppCore`] or the core client.

use causerie_client::{ClientEvent, LocalId};
use tauri::State;
use tauri::ipc::Channel;

use crate::core::{AppCore, Applied, ChatInfo};
use crate::error::AppError;
use crate::settings::{AlertLevel, Notice, Settings};

/// Starts (or restarts) the chat the settings describe; its events arrive on `events`, in order.
#[tauri::command]
pub async fn start_chat(
    core: State<'_, AppCore>,
    events: Channel<ClientEvent>,
) -> Result<ChatInfo, AppError> {
    core.start(move |event| {
        let _ = events.send(event);
    })
    .await
}

/// Queues a message mentioning the people whose ids are `mentions`; returns its local id at once.
#[tauri::command]
pub async fn send_message(
    core: State<'_, AppCore>,
    room: String,
    text: String,
    mentions: Option<Vec<String>>,
) -> Result<LocalId, AppError> {
    let mentions = mentions.unwrap_or_default();
    Ok(core.client().await?.send_with(&room, &text, None, mentions))
}

/// Queues a message answering the one at seq `target` in `room`; returns its local id at once.
#[tauri::command]
pub async fn reply_message(
    core: State<'_, AppCore>,
    room: String,
    target: u64,
    text: String,
    mentions: Option<Vec<String>>,
) -> Result<LocalId, AppError> {
    let mentions = mentions.unwrap_or_default();
    Ok(core
        .client()
        .await?
        .send_with(&room, &text, Some(target), mentions))
}

/// Toggles the user's reaction `emoji` to the message at seq `target` of `room`; confirmed by
/// a `change` event.
#[tauri::command]
pub async fn react_message(
    core: State<'_, AppCore>,
    room: String,
    target: u64,
    emoji: String,
) -> Result<LocalId, AppError> {
    Ok(core.client().await?.react(&room, target, &emoji))
}

/// Searches the messages of the user's rooms; the results arrive as a `search` event.
#[tauri::command]
pub async fn search_messages(
    core: State<'_, AppCore>,
    query: String,
    after: Option<String>,
) -> Result<(), AppError> {
    core.client().await?.search(&query, after.as_deref());
    Ok(())
}

/// Shows a system notification of `room` (the UI decides when: the window in the background, a
/// message that calls for one); a click on it opens the room. `false`: too many were shown just
/// now. Async, as the others: not on the main thread.
#[tauri::command]
pub async fn notify(
    app: tauri::AppHandle,
    room: String,
    title: String,
    body: String,
) -> Result<bool, AppError> {
    crate::notifications::show(&app, &room, &title, &body)
}

/// Takes back the notification of `room` (it was read).
#[tauri::command]
pub async fn withdraw_notification(app: tauri::AppHandle, room: String) -> Result<(), AppError> {
    crate::notifications::withdraw(&app, &room)
}

/// Asks the system for the permission to notify, where it asks the user; `true` when granted.
#[tauri::command]
pub async fn ask_notifications(app: tauri::AppHandle) -> Result<bool, AppError> {
    crate::notifications::ask(&app)
}

/// The running chat's notification levels of rooms not at the default.
#[tauri::command]
pub async fn get_alerts(
    core: State<'_, AppCore>,
) -> Result<std::collections::BTreeMap<String, AlertLevel>, AppError> {
    core.alerts().await
}

/// Keeps the notification level of `room` in the running chat.
#[tauri::command]
pub async fn set_alert(
    core: State<'_, AppCore>,
    room: String,
    level: AlertLevel,
) -> Result<(), AppError> {
    core.set_alert(room, level).await
}

/// Opens the direct conversation with user `user`; it arrives as a `direct` event, then its
/// room is joined.
#[tauri::command]
pub async fn open_direct(core: State<'_, AppCore>, user: String) -> Result<(), AppError> {
    core.client().await?.open_direct(&user);
    Ok(())
}

/// Asks for the messages around seq `seq` of `room`; they arrive as an `around` event.
#[tauri::command]
pub async fn load_around(core: State<'_, AppCore>, room: String, seq: u64) -> Result<(), AppError> {
    core.client().await?.history_around(&room, seq);
    Ok(())
}

/// Edits the user's message at seq `target` in `room`; confirmed by a `change` event.
#[tauri::command]
pub async fn edit_message(
    core: State<'_, AppCore>,
    room: String,
    target: u64,
    text: String,
) -> Result<LocalId, AppError> {
    Ok(core.client().await?.edit(&room, target, &text))
}

/// Deletes the user's message at seq `target` in `room`; confirmed by a `change` event.
#[tauri::command]
pub async fn delete_message(
    core: State<'_, AppCore>,
    room: String,
    target: u64,
) -> Result<LocalId, AppError> {
    Ok(core.client().await?.delete(&room, target))
}

/// Asks for older messages of `room`; the page arrives as a `history` event.
#[tauri::command]
pub async fn load_history(
    core: State<'_, AppCore>,
    room: String,
    before: Option<u64>,
) -> Result<(), AppError> {
    core.client().await?.history(&room, before);
    Ok(())
}

/// Joins (and creates) a room.
#[tauri::command]
pub async fn join_room(core: State<'_, AppCore>, room: String) -> Result<(), AppError> {
    core.client().await?.join(&room);
    Ok(())
}

/// Leaves a room.
#[tauri::command]
pub async fn leave_room(core: State<'_, AppCore>, room: String) -> Result<(), AppError> {
    core.client().await?.leave(&room);
    Ok(())
}

/// Asks for the rooms whose name starts with `prefix`; they arrive as a `rooms` event.
#[tauri::command]
pub async fn find_rooms(
    core: State<'_, AppCore>,
    prefix: String,
    after: Option<String>,
) -> Result<(), AppError> {
    core.client().await?.find_rooms(&prefix, after.as_deref());
    Ok(())
}

/// Lists more of the people online in `room`; they arrive in the next `online` event.
#[tauri::command]
pub async fn load_more_online(core: State<'_, AppCore>, room: String) -> Result<(), AppError> {
    core.client().await?.load_more_online(&room);
    Ok(())
}

/// The user has read `room` up to `seq`; its count arrives as an `unread` event.
#[tauri::command]
pub async fn mark_read(core: State<'_, AppCore>, room: String, seq: u64) -> Result<(), AppError> {
    core.client().await?.mark_read(&room, seq);
    Ok(())
}

/// Tells the room the user is typing, or stopped.
#[tauri::command]
pub async fn set_typing(
    core: State<'_, AppCore>,
    room: String,
    typing: bool,
) -> Result<(), AppError> {
    core.client().await?.typing(&room, typing);
    Ok(())
}

/// The settings, with command-line overrides applied, without what the app keeps to itself.
#[tauri::command]
pub fn get_settings(core: State<'_, AppCore>) -> Settings {
    core.settings_for_ui()
}

/// What the app did by itself that the user should know, such as setting aside unreadable
/// settings; each notice is given once.
#[tauri::command]
pub fn take_notices(core: State<'_, AppCore>) -> Vec<Notice> {
    core.take_notices()
}

/// Keeps new settings and applies what it can to the running chat; when the answer is
/// `restart`, `start_chat` starts the chat they describe.
#[tauri::command]
pub async fn apply_settings(
    core: State<'_, AppCore>,
    settings: Settings,
) -> Result<Applied, AppError> {
    core.apply_settings(settings).await
}

/// Checks the connection now (the app came back to the foreground, the network changed).
#[tauri::command]
pub async fn check_connection(core: State<'_, AppCore>) -> Result<(), AppError> {
    core.client().await?.check_connection();
    Ok(())
}

/// The running chat's drafts, by room.
#[tauri::command]
pub async fn get_drafts(
    core: State<'_, AppCore>,
) -> Result<std::collections::BTreeMap<String, String>, AppError> {
    core.drafts().await
}

/// Keeps the running chat's drafts (all of them), so that they outlive a restart.
#[tauri::command]
pub async fn save_drafts(
    core: State<'_, AppCore>,
    drafts: std::collections::BTreeMap<String, String>,
) -> Result<(), AppError> {
    core.save_drafts(drafts).await
}
