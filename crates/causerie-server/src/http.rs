//! The HTTP face of the server: Socket.IO at `/socket.io/`, `GET /healthz`, `GET /metrics`, CORS,
//! and [`serve`], which runs the router on tracked connections with timeouts.

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, OriginalUri, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::get;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use socketioxide::socket::Sid;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::ServerError;
use crate::chat::Chat;
use crate::cluster::{Adapter, Nodes, SocketIo};
use crate::config::{CorsOrigins, ServerConfig};
use crate::connections::{ConnectionInfo, TrackedListener};
use crate::handlers;
use crate::outgoing::{self, Outgoing};
use crate::store::WriteHealth;

/// Builds the router and the Socket.IO handle that can close every socket.
pub async fn router(
    config: &ServerConfig,
    chat: Arc<Chat>,
    nodes: Nodes,
) -> Result<(Router, SocketIo), ServerError> {
    let max_payload = config.max_payload_bytes as usize;
    // socketioxide's `max_payload` bounds polling bodies only; websocket messages and frames have
    // their own limits, 64 MiB and 16 MiB by default: bound all three alike.
    let adapter = socketioxide_redis::RedisAdapterCtr::new_with_driver(
        nodes,
        socketioxide_redis::RedisAdapterConfig::default(),
    );
    let (socket_layer, io) = socketioxide::SocketIo::builder()
        .with_adapter::<Adapter>(adapter)
        .with_state(chat.clone())
        // Causerie's protocol has no binary attachments: a packet announcing one closes its
        // connection, instead of letting it hold up to 10 MB (socketioxide's default) waiting
        // for attachments that never come.
        .with_parser(
            socketioxide::ParserConfig::common()
                .max_incoming_binaries(0)
                .max_incoming_binary_buf_size(0)
                .packet_completion_timeout(std::time::Duration::from_secs(1)),
        )
        .max_payload(max_payload as u64)
        .ws_max_message_size(max_payload)
        .ws_max_frame_size(max_payload)
        // Each socket keeps its read buffer for life; chat frames are small, and 1 KiB rather
        // than the default 4 KiB saved 3 KB per connection at 10,000 (causerie-bench, hold).
        .ws_read_buffer_size(1024)
        // Packets queued per socket; a socket whose queue is full is closed (`outgoing`).
        .max_buffer_size(outgoing::MAX_QUEUED_PACKETS)
        .build_layer();
    handlers::register(&io).await?;
    let router = Router::new()
        .route("/", get(about))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(chat.clone())
        .layer(socket_layer)
        .layer(axum::middleware::from_fn_with_state(
            (chat, io.clone()),
            track_transport,
        ))
        .layer(axum::middleware::map_request(detach_request_head))
        .layer(cors(&config.cors_origins));
    Ok((router, io))
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

/// Whether socketioxide serves `path`: `/socket.io/...`, and also `/socket.io` itself (as
/// engineioxide matches it), which a client without the trailing slash asks for. Every check on
/// Socket.IO requests (origin, ended sessions) must see both, or a page skips it by the slash.
fn is_socket_io(path: &str) -> bool {
    let bare = causerie_protocol::SOCKET_IO_PATH.trim_end_matches('/');
    path.strip_prefix(bare)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Counts what a session's transports deliver, for [`crate::outgoing`]: notes which connection
/// carries a session upgraded to a websocket, and the bytes of each polling response. Refuses
/// the requests of a polling session the server ended: its client then starts a new one.
async fn track_transport(
    State((chat, io)): State<(Arc<Chat>, SocketIo)>,
    request: Request,
    next: Next,
) -> Response {
    if !is_socket_io(request.uri().path()) {
        return next.run(request).await;
    }
    // CORS does not cover a websocket: a page of any origin could open one. Browsers always
    // send `Origin` with a websocket or a cross-origin request; native clients send none.
    if let CorsOrigins::List(allowed) = &chat.origins
        && let Some(origin) = request.headers().get(header::ORIGIN)
        && !allowed
            .iter()
            .any(|allowed| allowed.as_bytes() == origin.as_bytes())
    {
        tracing::debug!(?origin, "refused a Socket.IO request from another origin");
        return (
            StatusCode::FORBIDDEN,
            "this origin may not use this server\n",
        )
            .into_response();
    }
    let Some(query) = request.uri().query() else {
        return next.run(request).await;
    };
    let Some(sid) = query_value(query, "sid").and_then(|sid| sid.parse::<Sid>().ok()) else {
        return next.run(request).await;
    };
    if chat.transports.is_ended(sid) {
        // What an Engine.IO server answers for a session it does not know.
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"code":1,"message":"Session ID unknown"}"#,
        )
            .into_response();
    }
    let outgoing = || io.get_socket(sid)?.extensions.get::<Arc<Outgoing>>();
    let transport = query_value(query, "transport");
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if upgrade && transport == Some("websocket") {
        if let Some(ConnectInfo(ConnectionInfo(connection))) = request.extensions().get() {
            chat.transports.websocket_opened(sid, connection);
            if let Some(outgoing) = outgoing() {
                outgoing.attach_websocket(connection);
            }
        }
        return next.run(request).await;
    }
    let polling_read = request.method() == Method::GET && transport == Some("polling");
    let response = next.run(request).await;
    if polling_read
        && response.status() == StatusCode::OK
        && let Some(outgoing) = outgoing()
    {
        // A polling response is whole when it is sent: count it, and pass it on unchanged.
        let (parts, body) = response.into_parts();
        return match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => {
                outgoing.polled(bytes.len());
                Response::from_parts(parts, axum::body::Body::from(bytes))
            }
            Err(e) => {
                tracing::debug!(error = %e, "a polling response failed");
                StatusCode::INTERNAL_SERVER_ERROR.into_response()
            }
        };
    }
    response
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

/// The Prometheus metrics; with a metrics token set, only for `Authorization: Bearer <token>`.
async fn metrics(State(chat): State<Arc<Chat>>, headers: axum::http::HeaderMap) -> Response {
    if let Some(token) = &chat.metrics_token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !crate::identity::constant_time_eq(given.as_bytes(), token.as_bytes()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "metrics need the metrics token\n",
            )
                .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        chat.metrics
            .render(chat.store.health(), chat.nodes.reachable()),
    )
        .into_response()
}

/// How long connections get to send a request and to finish at shutdown.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// For a request's headers, or idleness between requests (see
    /// [`crate::ServerConfig::header_timeout`]).
    pub header: std::time::Duration,
    /// For the connections to finish once a shutdown began.
    pub shutdown: std::time::Duration,
}

/// Serves `router` on `listener` until `shutdown` completes. Each connection goes through
/// hyper's HTTP/1.1 with a timer, so that a client that sends a request's headers too slowly, or
/// stays idle between requests, is closed after `timeouts.header` (a websocket, once upgraded,
/// is kept alive by its heartbeat instead). Then stops: `closing` runs (it closes the sockets),
/// connections get `timeouts.shutdown` to finish, and those left are aborted, so that no
/// half-sent request can hold a shutdown up.
pub async fn serve(
    mut listener: TrackedListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()>,
    closing: impl std::future::Future<Output = ()>,
    timeouts: Timeouts,
) {
    let live = listener.live_connections();
    let (closing_sender, closing_receiver) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            (stream, _) = Listener::accept(&mut listener) => {
                let info = ConnectionInfo(stream.handle().clone());
                let router = router.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let mut request = request.map(axum::body::Body::new);
                    request.extensions_mut().insert(ConnectInfo(info.clone()));
                    router.clone().oneshot(request)
                });
                let mut closing = closing_receiver.clone();
                connections.spawn(async move {
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(timeouts.header)
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    let mut connection = std::pin::pin!(connection);
                    let result = tokio::select! {
                        result = connection.as_mut() => result,
                        _ = closing.changed() => {
                            connection.as_mut().graceful_shutdown();
                            connection.await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "a connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let finished = async {
        closing.await;
        closing_sender.send_replace(true);
        while connections.join_next().await.is_some() {}
    };
    if tokio::time::timeout(timeouts.shutdown, finished)
        .await
        .is_err()
    {
        let live: Vec<_> = live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        tracing::info!(left = live.len(), "closing the connections still open");
        for connection in live {
            connection.abort();
        }
        connections.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::is_socket_io;

    #[test]
    fn socket_io_requests_are_recognised_with_or_without_the_trailing_slash() {
        assert!(is_socket_io("/socket.io/"));
        assert!(is_socket_io("/socket.io"));
        assert!(is_socket_io("/socket.io/anything"));
        assert!(!is_socket_io("/socket.iox"));
        assert!(!is_socket_io("/healthz"));
        assert!(!is_socket_io("/"));
    }
}
