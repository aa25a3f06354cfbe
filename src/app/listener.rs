//! The public API's listener: plain HTTP/1.1 and h2c on one port, or TLS with ALPN `h2` and
//! `http/1.1` (`[server.tls]`).
//!
//! Built from actix-server and actix-http directly rather than actix-web's `HttpServer`, for
//! one reason: `HttpServer` cannot give actix-http an upgrade service, and without one a
//! WebSocket (`GET /v1/channel`) lives under the HTTP/1.1 dispatcher with its buffers for its
//! whole life ([`crate::api::channel::upgrade`]). Everything else is what `HttpServer` sets:
//! the same timeouts, connection limits, TCP_NODELAY, the TLS handshake limits, and actix's
//! graceful shutdown (keep-alive connections are told to close when the server stops).

use super::copied_writes;
use crate::api::channel::upgrade;
use crate::config::ServerConfig;
use actix_http::HttpServiceBuilder;
use actix_server::{GracefulShutdownSignal, Server, ServerBuilder};
use actix_service::{IntoServiceFactory, map_config};
use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Extensions, ServiceFactory, ServiceResponse};
use std::any::Any;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// How many connections may wait to be accepted (actix-web's default).
const BACKLOG: i32 = 1024;

/// What the listener does with a new connection before its first request (connection limits,
/// the TLS client certificate).
pub type OnConnect = std::sync::Arc<dyn Fn(&dyn Any, &mut Extensions) + Send + Sync>;

/// Binds the public listener for the API that `app` builds (once per worker) and starts
/// serving it; returns the server and the address it listens on.
pub fn serve<F, I, S, B>(
    settings: &ServerConfig,
    tls: Option<rustls::ServerConfig>,
    on_connect: OnConnect,
    app: F,
) -> anyhow::Result<(Server, SocketAddr)>
where
    F: Fn() -> I + Send + Clone + 'static,
    I: IntoServiceFactory<S, actix_http::Request>,
    S: ServiceFactory<
            actix_http::Request,
            Config = AppConfig,
            Response = ServiceResponse<B>,
            Error = Error,
            InitError = (),
        > + 'static,
    S::Future: 'static,
    B: MessageBody + 'static,
{
    let listener = bind(settings.listen)?;
    let address = listener.local_addr()?;
    actix_tls::accept::max_concurrent_tls_connect(settings.max_tls_handshakes_per_worker);
    let mut builder = ServerBuilder::default()
        .max_concurrent_connections(settings.max_connections_per_worker)
        .shutdown_timeout(settings.shutdown_timeout_seconds)
        // actix's own signal handling makes SIGINT a *forced* stop; the node makes SIGINT and
        // SIGTERM graceful itself (stop accepting, finish in-flight requests, then stop).
        .disable_signals();
    if settings.workers > 0 {
        builder = builder.workers(settings.workers);
    }
    let shutdown = builder.graceful_shutdown_signal();
    let timing = Timing::of(settings);
    let builder = match tls {
        // Both kinds of connection are served over `CopiedWrites`, so that an answer's frames
        // leave in one write.
        Some(tls) => builder.listen("ringcast-api", listener, move || {
            copied_writes::rustls(
                tls.clone(),
                timing.tls_handshake,
                timing
                    .http_service(&shutdown, &on_connect, address)
                    .upgrade(upgrade::factory(api_factory(app.clone())))
                    .finish(map_config(app().into_factory(), |()| AppConfig::default())),
            )
        }),
        // HTTP/1.1 and h2c (HTTP/2 with prior knowledge) on the same port: clients that ring
        // many calls (call control, the load generator) multiplex them over one connection.
        None => builder.listen("ringcast-api", listener, move || {
            copied_writes::tcp_auto_h2c(
                timing
                    .http_service(&shutdown, &on_connect, address)
                    .upgrade(upgrade::factory(api_factory(app.clone())))
                    .finish(map_config(app().into_factory(), |()| AppConfig::default())),
            )
        }),
    }?;
    Ok((builder.run(), address))
}

/// The API's factory as the upgrade service asks for it (a closure building the service).
fn api_factory<F, I, S>(app: F) -> impl Fn() -> S + Clone + 'static
where
    F: Fn() -> I + Clone + 'static,
    I: IntoServiceFactory<S, actix_http::Request>,
    S: ServiceFactory<actix_http::Request>,
{
    move || app().into_factory()
}

/// `[server]`'s timeouts, copied into every worker's HTTP service.
#[derive(Clone, Copy)]
struct Timing {
    keep_alive: actix_web::http::KeepAlive,
    client_request: Duration,
    client_disconnect: Duration,
    tls_handshake: Duration,
}

impl Timing {
    fn of(settings: &ServerConfig) -> Self {
        Self {
            keep_alive: super::keep_alive(settings),
            client_request: settings.client_request_timeout(),
            client_disconnect: Duration::from_millis(settings.client_disconnect_timeout_ms),
            tls_handshake: Duration::from_millis(settings.tls_handshake_timeout_ms),
        }
    }

    /// One worker's HTTP service settings over connections of type `T`.
    fn http_service<T, S>(
        self,
        shutdown: &GracefulShutdownSignal,
        on_connect: &OnConnect,
        address: SocketAddr,
    ) -> HttpServiceBuilder<T, S>
    where
        T: 'static,
        S: ServiceFactory<actix_http::Request, Config = ()>,
        S::Error: Into<actix_http::Response<actix_http::body::BoxBody>> + 'static,
        S::InitError: std::fmt::Debug,
        <S::Service as actix_service::Service<actix_http::Request>>::Future: 'static,
    {
        let shutdown = shutdown.clone();
        let on_connect = on_connect.clone();
        HttpServiceBuilder::default()
            .graceful_shutdown_signal(move || {
                let signal = shutdown.clone();
                async move { signal.notified().await }
            })
            .keep_alive(self.keep_alive)
            .client_request_timeout(self.client_request)
            .client_disconnect_timeout(self.client_disconnect)
            // TCP_NODELAY is set by `copied_writes`, which accepts the connections.
            .local_addr(address)
            .on_connect_ext(move |io: &T, extensions: &mut Extensions| {
                on_connect(io as &dyn Any, extensions);
            })
    }
}

/// A listening socket on `address`, with `SO_REUSEADDR` (a restarted node binds its port at
/// once) and actix-web's backlog.
fn bind(address: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(address),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
