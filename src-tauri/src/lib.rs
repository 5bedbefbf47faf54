//! Causerie's app: a Tauri 2 shell around the core client. It hosts the web UI, forwards the
//! client's events to it over one channel, and runs the chat server in-process when the user hosts.
//!
//! - [`core`]: the behaviour, apart from Tauri: host or join, the embedded server, tokens.
//! - [`commands`]: what the UI can invoke; each delegates.
//! - [`settings`]: the user's choices and the command-line overrides.
//! - [`error`]: `{code, message}` errors for the UI.
#![warn(missing_docs)]

pub mod commands;
pub mod core;
pub mod error;
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
        .setup(move |app| {
            let core = AppCore::new(app.path().app_data_dir()?, overrides)?;
            tracing::info!(data_dir = %core.data_dir().display(), "starting");
            app.manage(core);
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![
            commands::start_chat,
            commands::send_message,
            commands::load_history,
            commands::join_room,
            commands::leave_room,
            commands::set_typing,
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
        // A phone kills sockets in the background: check at once on return.
        #[cfg(mobile)]
        tauri::RunEvent::Resumed => {
            if let Some(core) = handle.try_state::<AppCore>() {
                let core = core.inner();
                tauri::async_runtime::block_on(async {
                    if let Ok(client) = core.client().await {
                        client.check_connection();
                    }
                });
            }
        }
        _ => {}
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
