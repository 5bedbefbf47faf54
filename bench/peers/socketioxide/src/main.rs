//! The seed protocol on a bare socketioxide server, stock settings: a welcome on connect, every
//! `message` broadcast to all. Beside Causerie in the benchmark it shows what the library costs by
//! itself, before Causerie's handlers, store and configuration. Prints `listening on http://ADDRESS`
//! like the other peers; `PORT` picks the port (default: any free one).

use socketioxide::SocketIo;
use socketioxide::extract::{Data, SocketRef};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (layer, io) = SocketIo::new_layer();
    let broadcast = io.clone();
    io.ns("/", async move |socket: SocketRef| {
        let _ = socket.emit("welcome", &serde_json::json!({"message": "welcome"}));
        socket.on("message", async move |Data::<serde_json::Value>(text)| {
            let _ = broadcast.emit("message", &text).await;
        });
    });
    let app = axum::Router::new().layer(layer);
    let port = std::env::var("PORT").unwrap_or_else(|_| "0".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}
