//! Causerie's app: a Tauri 2 shell around the core client. It hosts the web UI, forwards the
//! client's events to it over one channel, and runs the chat server in-process when the user hosts.
//!
//! - [`core`]: the behaviour, apart from Tauri: host or join, the embedded server, tokens.
//! - [`commands`]: what the UI can invoke; each delegates.
//! - [`settings`]: the user's choices and the command-line overrides.
//! - [`notifications`]: the system's notifications, and what a click on one opens.
//! - [`error`]: `{code, message}` errors for the UI.
//! - [`bindings`]: the types above as TypeScript, for the UI.
#![warn(missing_docs)]

pub mod bindings;
pub mod commands;
pub mod core;
pub mod error;
pub mod notifications;
pub mod settings;

use tauri::Manager;

use crate::core::AppCore;
use crate::settings::Overrides;

/// Starts the app (the desktop `main` and the mobile entry point).
#[cfg_attr(mobile, tauri::mobile_entry_point)]
pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(causerie_server::LOG_FILTER)
            }),
        )
        .init();
    let overrides = command_line();
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_opener::init())
        .plugin(tauri_plugin_notification::init())
        .setup(move |app| {
            let data_dir = app.path().app_data_dir()?;
            #[cfg(desktop)]
            if overrides.data_dir.is_none() {
                crate::core::adopt_previous_data_dir(&data_dir);
            }
            let core = AppCore::new(data_dir, overrides)?;
            tracing::info!(data_dir = %core.data_dir().display(), "starting");
            app.manage(core);
            // Without it a click on a notification only dismisses it: no reason not to start.
            if let Err(e) = notifications::open_rooms_on_click(app.handle()) {
                tracing::warn!(error = %e, "clicks on notifications will not open their room");
            }
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::start_chat,
            commands::send_message,
            commands::reply_message,
            commands::load_around,
            commands::react_message,
            commands::search_messages,
            commands::open_direct,
            commands::notify,
            commands::withdraw_notification,
            commands::ask_notifications,
            commands::get_alerts,
            commands::set_alert,
            commands::edit_message,
            commands::delete_message,
            commands::load_history,
            commands::join_room,
            commands::leave_room,
            commands::set_typing,
            commands::mark_read,
            commands::get_settings,
            commands::apply_settings,
            commands::take_notices,
            commands::find_rooms,
            commands::load_more_online,
            commands::check_connection,
            commands::get_drafts,
            commands::save_drafts,
        ])
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(e) => {
            eprintln!("Causerie could not start: {e}");
            std::process::exit(1);
        }
    };
    app.run(|handle, event| match event {
        // Commit what the embedded server acked, and close its database, before leaving.
        tauri::RunEvent::Exit => {
            if let Some(core) = handle.try_state::<AppCore>() {
                tauri::async_runtime::block_on(core.stop());
            }
        }
        // A phone's app going to the background and back: Tauri 2.12 sends these as window
        // events (`RunEvent::Resumed` is about the event loop, and does not fire here). iOS
        // sends no `Resumed` after a mere interruption (Control Center, a call, a permission
        // prompt), only the focus back.
        #[cfg(mobile)]
        tauri::RunEvent::WindowEvent {
            event: tauri::WindowEvent::Suspended,
            ..
        } => lifecycle(handle, false),
        #[cfg(mobile)]
        tauri::RunEvent::WindowEvent {
            event: tauri::WindowEvent::Resumed | tauri::WindowEvent::Focused(true),
            ..
        } => lifecycle(handle, true),
        _ => {}
    });
}

/// The app went to the background, or came back (`foreground`): told to the core at once, in
/// the order the system says it, then acted on in a task, since the system wants the UI thread
/// back quickly. Whatever order such tasks run in, the latest word wins.
#[cfg_attr(desktop, allow(dead_code))]
fn lifecycle(handle: &tauri::AppHandle, foreground: bool) {
    let Some(core) = handle.try_state::<AppCore>() else {
        return;
    };
    core.set_foreground(foreground);
    let handle = handle.clone();
    tauri::async_runtime::spawn(async move {
        if let Some(core) = handle.try_state::<AppCore>()
            && let Err(e) = core.follow_lifecycle().await
        {
            tracing::error!(error = %e, "the hosted chat could not serve again");
        }
    });
}

/// `--server`, `--name`, `--code` and `--data-dir`, for scripts and tests. Phones have no command
/// line.
#[cfg(desktop)]
fn command_line() -> Overrides {
    use clap::Parser;

    /// Causerie, the chat app. Options override the saved settings for this run.
    #[derive(Parser)]
    #[command(version, about)]
    struct Cli {
        /// Join this server (http://host:port) instead of hosting the chat here.
        #[arg(long)]
        server: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Join code of the server.
        #[arg(long)]
        code: Option<String>,
        /// Where to keep settings, unsent messages and the hosted chat's database.
        #[arg(long)]
        data_dir: Option<std::path::PathBuf>,
    }
    let cli = Cli::parse();
    Overrides {
        server: cli.server,
        name: cli.name,
        code: cli.code,
        data_dir: cli.data_dir,
    }
}

#[cfg(mobile)]
fn command_line() -> Overrides {
    Overrides::default()
}
