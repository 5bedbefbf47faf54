//! System notifications, through Tauri's notification plugin: shown for what the UI decides
//! calls for one (it knows what the user sees), each carrying its room, so that a click on it
//! opens that room in the window.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use tauri::{AppHandle, Emitter, Manager, Runtime};
use tauri_plugin_notification::{ActionPerformed, NotificationExt, PermissionState};

use crate::error::AppError;

/// The event the window hears when a notification of a room was clicked: the room's name.
pub const OPENED: &str = "notification-opened";
/// The longest title and body shown, in characters: a notification is a glance.
const MAX_TITLE_CHARS: usize = 80;
const MAX_BODY_CHARS: usize = 240;
/// Where a notification's room goes in the data it carries back when clicked.
const ROOM: &str = "room";
/// The most notifications shown in [`BURST_WINDOW`], all rooms together: whatever the page
/// asks (many rooms, many conversations opened by a spammer), the desktop is not flooded.
const MAX_BURST: usize = 5;
const BURST_WINDOW: Duration = Duration::from_secs(10);

/// When the latest notifications were shown, for [`MAX_BURST`].
static SHOWN: Mutex<VecDeque<Instant>> = Mutex::new(VecDeque::new());

/// Shows a notification of `room`, unless [`MAX_BURST`] were shown in the last
/// [`BURST_WINDOW`] (then `Ok(false)`). A room's notification replaces its previous one where
/// the system does (phones): one per room, with its latest message.
pub fn show<R: Runtime>(
    app: &AppHandle<R>,
    room: &str,
    title: &str,
    body: &str,
) -> Result<bool, AppError> {
    if !causerie_protocol::limits::is_room_or_direct(room) {
        return Err(AppError::Notification(format!("{room:?} is no room")));
    }
    if !within_burst(Instant::now()) {
        return Ok(false);
    }
    let id = id_of(room);
    app.notification()
        .builder()
        .id(id)
        .title(plain(title, MAX_TITLE_CHARS))
        .body(escaped(&plain(body, MAX_BODY_CHARS)))
        .extra(ROOM, room)
        .show()
        .map_err(|e| AppError::Notification(e.to_string()))?;
    tracing::debug!(id, %room, "notification shown");
    Ok(true)
}

/// Counts a notification at `now` if fewer than [`MAX_BURST`] were shown in the window before.
fn within_burst(now: Instant) -> bool {
    let mut shown = SHOWN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    while shown
        .front()
        .is_some_and(|&at| now.duration_since(at) >= BURST_WINDOW)
    {
        shown.pop_front();
    }
    if shown.len() >= MAX_BURST {
        return false;
    }
    shown.push_back(now);
    true
}

/// A room's notification id: the same for each of its notifications.
fn id_of(room: &str) -> i32 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    room.hash(&mut hasher);
    // Positive: Android refuses none, and some servers treat 0 as "new".
    i32::try_from(hasher.finish() % 0x7fff_fffe).unwrap_or(0) + 1
}

/// Takes back the notification of `room`, if it is still shown: the room was read (here or on
/// another device), so it has nothing left to say.
pub fn withdraw<R: Runtime>(app: &AppHandle<R>, room: &str) -> Result<(), AppError> {
    app.notification()
        .remove_active(vec![id_of(room)])
        .map_err(|e| AppError::Notification(e.to_string()))
}

/// Asks the system for the permission to notify, where it asks the user (Android 13 and
/// later, iOS; desktops grant it): `true` when granted.
pub fn ask<R: Runtime>(app: &AppHandle<R>) -> Result<bool, AppError> {
    let notifications = app.notification();
    let state = notifications
        .permission_state()
        .map_err(|e| AppError::Notification(e.to_string()))?;
    let state = match state {
        PermissionState::Granted | PermissionState::Denied => state,
        _ => notifications
            .request_permission()
            .map_err(|e| AppError::Notification(e.to_string()))?,
    };
    Ok(state == PermissionState::Granted)
}

/// From now on, a click on a notification brings the window forward and opens its room.
pub fn open_rooms_on_click<R: Runtime>(app: &AppHandle<R>) -> Result<(), AppError> {
    let handle = app.clone();
    app.notification()
        .on_action(move |performed| {
            if let Some(room) = clicked_room(performed) {
                if let Some(window) = handle.get_webview_window("main") {
                    let _ = window.unminimize();
                    let _ = window.show();
                    let _ = window.set_focus();
                }
                if let Err(e) = handle.emit_to("main", OPENED, room) {
                    tracing::warn!(error = %e, "a clicked notification could not open its room");
                }
            }
        })
        .map_err(|e| AppError::Notification(e.to_string()))
}

/// The room of a notification clicked (not one of its buttons, nor a dismissal).
fn clicked_room(performed: &ActionPerformed) -> Option<String> {
    if performed.action_id() != "tap" {
        return None;
    }
    let room = performed
        .notification()?
        .extra()
        .get(ROOM)
        .and_then(Value::as_str)?;
    causerie_protocol::limits::is_room_or_direct(room).then(|| room.to_owned())
}

/// `text` as one line of plain characters (no control or format characters, which a message
/// may hold and a notification server may choke on), cut to `max` characters with an ellipsis.
fn plain(text: &str, max: usize) -> String {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let words = text
        .split(|c: char| {
            c.is_whitespace() || c.is_control() || c.general_category() == GeneralCategory::Format
        })
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if words.chars().count() <= max {
        return words;
    }
    let mut short: String = words.chars().take(max - 1).collect();
    short.push('…');
    short
}

/// `text` with the characters of the markup some notification servers read in a body (KDE's,
/// dunst) escaped: a message shows as written, never as a link or an image.
fn escaped(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn performed(action: &str, extra: Value) -> ActionPerformed {
        serde_json::from_value(serde_json::json!({
            "actionId": action,
            "notification": {"id": 3, "extra": extra},
        }))
        .expect("an action")
    }

    #[test]
    fn a_click_on_a_notification_names_its_room_and_nothing_else_does() {
        let room = serde_json::json!({"room": "general"});
        assert_eq!(
            clicked_room(&performed("tap", room.clone())),
            Some("general".into())
        );
        assert_eq!(clicked_room(&performed("dismiss", room)), None);
        assert_eq!(clicked_room(&performed("tap", serde_json::json!({}))), None);
        let bad = serde_json::json!({"room": "../etc"});
        assert_eq!(clicked_room(&performed("tap", bad)), None);
    }

    #[test]
    fn texts_are_one_plain_line_cut_with_an_ellipsis() {
        assert_eq!(plain("short", 10), "short");
        assert_eq!(plain("éééééééééé", 5), "éééé…");
        assert_eq!(
            plain("two\nlines\0and\u{202e}more\t", 40),
            "two lines and more"
        );
        assert_eq!(plain("😀😀😀", 2), "😀…");
        assert_eq!(
            escaped("<a href=x>&</a>"),
            "&lt;a href=x&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_room_keeps_its_notification_id_and_a_burst_is_bounded() {
        assert_eq!(id_of("general"), id_of("general"));
        assert_ne!(id_of("general"), id_of("side"));
        assert!(id_of("general") > 0);
        let start = Instant::now() + Duration::from_secs(3600);
        let shown = (0..MAX_BURST + 2).filter(|_| within_burst(start)).count();
        assert_eq!(shown, MAX_BURST);
        assert!(within_burst(start + BURST_WINDOW), "a window later, again");
    }
}
