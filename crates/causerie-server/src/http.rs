//! The HTTP face of the server: Socket.IO at `/socket.io/`, `GET /healthz`, `GET /metrics`, CORS.

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use socketioxide::SocketIo;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::chat::Chat;
use crate::config::{CorsOrigins, ServerConfig};
use crate::connections::ConnectionInfo;
use crate::store::WriteHealth;
use crate::{handlers, outgoing};

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
        // Packets queued per socket; a socket whose queue is full is closed (`outgoing`).
        .max_buffer_size(outgoing::MAX_QUEUED_PACKETS)
        .build_layer();
    handlers::register(&io);
    let router = Router::new()
        .route("/", get(about))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(chat.clone())
        .layer(socket_layer)
        .layer(axum::middleware::from_fn_with_state(chat, track_transport))
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

/// Notes which connection carries a session upgraded to a websocket, and refuses the requests of
/// a session the server ended (see [`crate::outgoing`]): its client then starts a new one.
async fn track_transport(State(chat): State<Arc<Chat>>, request: Request, next: Next) -> Response {
    if let Some(query) = request.uri().query()
        && let Some(sid) = query_value(query, "sid")
    {
        if chat.transports.is_ended(sid) {
            // What an Engine.IO server answers for a session it does not know.
            return (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"code":1,"message":"Session ID unknown"}"#,
            )
                .into_response();
        }
        if query_value(query, "transport") == Some("websocket")
            && let Some(ConnectInfo(ConnectionInfo(connection))) = request.extensions().get()
        {
            chat.transports.websocket_opened(sid, connection);
        }
    }
    next.run(request).await
}

/// The value of `key` in a URL query; Engine.IO's keys and values need no decoding.
fn query_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find_map(|(k, v)| (k == key).then_some(v))
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

/// `ok` while the server can store messages; `503 degraded: <why>` while writes fail (the server
/// still serves connections and history), so that a load balancer or a person can tell.
async fn healthz(State(chat): State<Arc<Chat>>) -> (StatusCode, String) {
    match chat.store.health() {
        WriteHealth::Writable => (StatusCode::OK, "ok\n".to_owned()),
        WriteHealth::Failing(failure) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("degraded: {failure}\n"),
        ),
    }
}

async fn metrics(State(chat): State<Arc<Chat>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        chat.metrics.render(chat.store.health()),
    )
}
