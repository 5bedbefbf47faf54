//! The HTTP face of the server: Socket.IO at `/socket.io/`, `GET /healthz`, `GET /metrics`, CORS.

use std::sync::Arc;

use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, Uri, header};
use axum::response::IntoResponse;
use axum::routing::get;
use socketioxide::SocketIo;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::chat::Chat;
use crate::config::{CorsOrigins, ServerConfig};
use crate::handlers;

/// Packets a socket may have waiting to be written; see [`router`].
const SOCKET_QUEUE_PACKETS: usize = 4096;

/// Builds the router and the Socket.IO handle that can close every socket.
pub fn router(config: &ServerConfig, chat: Arc<Chat>) -> (Router, SocketIo) {
    let max_payload = config.max_payload_bytes as usize;
    // socketioxide's `max_payload` bounds polling bodies only; websocket messages and frames have
    // their own limits, 64 MiB and 16 MiB by default: bound all three alike.
    let (socket_layer, io) = SocketIo::builder()
        .with_state(chat.clone())
        .max_payload(max_payload as u64)
        .ws_max_message_size(max_payload)
        .ws_max_frame_size(max_payload)
        // Each socket keeps its read buffer for life; chat frames are small, and 1 KiB rather
        // than the default 4 KiB saved 3 KB per connection at 10,000 (causerie-bench, hold).
        .ws_read_buffer_size(1024)
        // Packets queued per socket before socketioxide drops the next one. The default, 128,
        // dropped deliveries to clients that were merely busy for a moment (causerie-bench's
        // fan-out at 750,000 deliveries/s); the queue grows only while it is used.
        .max_buffer_size(SOCKET_QUEUE_PACKETS)
        .build_layer();
    handlers::register(&io);
    let router = Router::new()
        .route("/", get(about))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(chat)
        .layer(socket_layer)
        .layer(axum::middleware::map_request(detach_request_head))
        .layer(cors(&config.cors_origins));
    (router, io)
}

/// Copies the request's URI and header values out of hyper's read buffer. hyper parses them as
/// slices of the connection's 8 to 16 KiB buffer, and socketioxide keeps each socket's request
/// head for the socket's whole life (`SocketRef::req_parts`): left shared, every open socket pins
/// a whole buffer. heaptrack showed 16 KB per idle connection held this way.
async fn detach_request_head(mut request: Request) -> Request {
    for value in request.headers_mut().values_mut() {
        if let Ok(mut owned) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.set_sensitive(value.is_sensitive());
            *value = owned;
        }
    }
    if let Ok(owned) = Uri::try_from(request.uri().to_string()) {
        // axum's copy of the URI, from before routing, shares the buffer too.
        if let Some(original) = request.extensions_mut().get_mut::<OriginalUri>() {
            original.0 = owned.clone();
        }
        *request.uri_mut() = owned;
    }
    request
}

fn cors(origins: &CorsOrigins) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(list.iter().filter_map(|origin| {
            HeaderValue::from_str(origin)
                .inspect_err(|_| tracing::warn!(%origin, "ignored an unusable CORS origin"))
                .ok()
        })),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
        .allow_headers(Any)
}

async fn about(State(chat): State<Arc<Chat>>) -> String {
    format!(
        "{} {}: a Causerie chat server. Connect a Socket.IO client to this address.\n",
        chat.server.name, chat.server.version
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(chat): State<Arc<Chat>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        chat.metrics.render(),
    )
}
