//! A terminal chat client, and the shortest demonstration of the crate's API.
//!
//! ```sh
//! cargo run -p causerie-client --example chat -- --server http://127.0.0.1:3000 --name Ada
//! ```
//!
//! Each line typed is sent to `general`; each message is printed as `<name>: <text>` (the latest
//! history first, then live). Connection changes go to stderr. At the end of input it waits until
//! the server has confirmed every line, then leaves.

use std::collections::HashSet;

use causerie_client::{ClientConfig, ClientEvent, ConnectionState, DisconnectReason};
use causerie_protocol::DEFAULT_ROOM;
use clap::Parser;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Parser)]
#[command(about = "Chat in `general` from a terminal")]
struct Args {
    /// The server, e.g. http://127.0.0.1:3000.
    #[arg(long)]
    server: String,
    /// Your display name.
    #[arg(long)]
    name: Option<String>,
    /// The server's join code, if it has one.
    #[arg(long)]
    code: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (client, mut events) = causerie_client::connect(ClientConfig {
        name: args.name,
        join_code: args.code,
        ..ClientConfig::new(args.server)
    })?;

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut input_open = true;
    let mut unconfirmed = HashSet::new();
    loop {
        tokio::select! {
            line = lines.next_line(), if input_open => match line? {
                Some(line) if !line.trim().is_empty() => {
                    unconfirmed.insert(client.send(DEFAULT_ROOM, &line));
                }
                Some(_) => {}
                None => input_open = false,
            },
            event = events.next() => match event {
                Some(ClientEvent::Message { message, confirms, .. }) => {
                    if let Some(local_id) = confirms {
                        unconfirmed.remove(&local_id);
                    }
                    if message.room == DEFAULT_ROOM {
                        println!("{}: {}", printable(&message.author.name), printable(&message.text));
                    }
                }
                Some(ClientEvent::Failed { local_id, error, .. }) => {
                    unconfirmed.remove(&local_id);
                    eprintln!("not sent ({}): {}", error.code, error.message);
                }
                Some(ClientEvent::State(state)) => {
                    eprintln!("{}", describe(&state));
                    if let ConnectionState::Disconnected { reason: DisconnectReason::Refused(error) } = state {
                        anyhow::bail!("the server refused the connection: {error}");
                    }
                }
                Some(ClientEvent::Error(error)) => eprintln!("error ({}): {error}", error.code()),
                Some(_) => {}
                None => return Ok(()),
            },
        }
        if !input_open && unconfirmed.is_empty() {
            client.disconnect();
        }
    }
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): a message must not move the
/// cursor, recolour the terminal or forge a line that looks like someone else's.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| -> Box<dyn Iterator<Item = char>> {
            if c.is_control() {
                Box::new(c.escape_debug())
            } else {
                Box::new(std::iter::once(c))
            }
        })
        .collect()
}

fn describe(state: &ConnectionState) -> String {
    match state {
        ConnectionState::Connecting => "connecting...".into(),
        ConnectionState::Connected => "connected".into(),
        ConnectionState::Reconnecting { attempt, delay } => {
            format!(
                "reconnecting in {:.1} s (attempt {attempt})",
                delay.as_secs_f64()
            )
        }
        ConnectionState::Disconnected { reason } => match reason {
            DisconnectReason::Lost(why) => format!("disconnected: {why}"),
            DisconnectReason::Refused(error) => format!("refused: {error}"),
            DisconnectReason::Closed => "disconnected".into(),
        },
    }
}
