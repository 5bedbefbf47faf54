//! Generates the Tauri context (config, capabilities, icons) at build time, and a permission for
//! each of the app's commands, so that `capabilities/default.json` grants the window each one by
//! name rather than all of them implicitly.

const COMMANDS: &[&str] = &[
    "start_chat",
    "send_message",
    "reply_message",
    "load_around",
    "react_message",
    "search_messages",
    "open_direct",
    "notify",
    "withdraw_notification",
    "ask_notifications",
    "get_alerts",
    "set_alert",
    "edit_message",
    "delete_message",
    "load_history",
    "join_room",
    "leave_room",
    "set_typing",
    "mark_read",
    "get_settings",
    "apply_settings",
    "check_connection",
    "take_notices",
    "find_rooms",
    "load_more_online",
    "get_drafts",
    "save_drafts",
];

fn main() {
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(error) = tauri_build::try_build(attributes) {
        panic!("tauri-build failed: {error:#}");
    }
}
