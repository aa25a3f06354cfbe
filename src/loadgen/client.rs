//! The load generator's HTTP client over plain TCP: HTTP/1.1 keep-alive (hyper 1) or h2c (the
//! `h2` crate directly, as the node's push pool: hyper's HTTP/2 client spawns a task per
//! request, and the generator's CPU is taken from the node it measures on a shared box), with
//! the connections kept here so their number is the scenario's, not a pool's guess.

use super::scenario::HttpVersion;
use crate::providers::pool::http2;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, Semaphore};

/// Why a request got no HTTP answer. The kinds are the report's error keys.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection or the HTTP handshake failed.
    #[error("connecting to {target}: {message}")]
    Connect {
        /// The node.
        target: String,
        /// What failed.
        message: String,
    },
    /// The connection failed while the request was on it.
    #[error("request failed: {0}")]
    Http(#[from] hyper::Error),
    /// The h2c connection failed while the request was on it.
    #[error("request failed: {0}")]
    Http2(#[from] h2::Error),
    /// The answer's body broke off or was larger than the generator reads.
    #[error("the answer's body broke off or exceeded {ANSWER_LIMIT} bytes")]
    Body,
    /// No answer within the request timeout.
    #[error("no answer within the request timeout")]
    Timeout,
    /// The request could not be built (a bad target URL or path).
    #[error("building the request: {0}")]
    Request(#[from] http::Error),
}

impl ClientError {
    /// A short, stable name for the report's error table.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientError::Connect { .. } => "connect",
            ClientError::Http(_) | ClientError::Http2(_) | ClientError::Body => "connection_lost",
            ClientError::Timeout => "timeout",
            ClientError::Request(_) => "bad_request_built",
        }
    }
}

/// The largest answer body read: the node's answers are a few KiB of JSON at most.
const ANSWER_LIMIT: usize = 1024 * 1024;

/// An HTTP answer: status and body.
#[derive(Clone, Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The whole body.
    pub body: Bytes,
}

/// Clients for every target, used round-robin.
pub struct ApiClient {
    targets: Vec<TargetClient>,
    next: AtomicUsize,
    bearer: Arc<str>,
    timeout: Duration,
}

impl ApiClient {
    /// Clients for `targets` (validated `http://host:port` URLs); no connection is opened
    /// until the first request.
    pub fn new(
        targets: &[String],
        version: HttpVersion,
        connections: usize,
        server_key: &str,
        timeout: Duration,
    ) -> Result<ApiClient, ClientError> {
        let targets = targets
            .iter()
            .map(|target| TargetClient::new(target, version, connections))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ApiClient {
            targets,
            next: AtomicUsize::new(0),
            bearer: Arc::from(format!("Bearer {server_key}")),
            timeout,
        })
    }

    /// Opens every connection to every target and has each answer `GET /healthz` once,
    /// within the timeout. Called before a run's clock starts: otherwise the first calls
    /// wait for TCP and HTTP handshakes (and, open loop, the calls due meanwhile go out in
    /// a burst), which the report would charge to the node.
    pub async fn connect(&self) -> Result<(), ClientError> {
        let opened = self
            .targets
            .iter()
            .map(|target| target.connect(&self.bearer));
        tokio::time::timeout(self.timeout, futures_util::future::try_join_all(opened))
            .await
            .map_err(|_| ClientError::Timeout)?
            .map(|_| ())
    }

    /// Sends `body` as JSON to the next target, within the timeout.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Answer, ClientError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.targets.len().max(1);
        let target = self.targets.get(index).ok_or(ClientError::Timeout)?;
        tokio::time::timeout(self.timeout, target.send(method, path, body, &self.bearer))
            .await
            .map_err(|_| ClientError::Timeout)?
    }
}

/// One node's connections.
struct TargetClient {
    /// `host:port`, to connect to and for the `Host` header.
    authority: String,
    /// `http://host:port`, the prefix of h2c URIs.
    base: String,
    version: HttpVersion,
    /// Connections to keep open to the node.
    connections: usize,
    /// HTTP/1.1: idle connections, and one permit per connection that may exist.
    h1_idle: std::sync::Mutex<Vec<http1::SendRequest<Full<Bytes>>>>,
    h1_slots: Semaphore,
    /// h2c: the connections, opened on first use and reopened when they close.
    h2: Vec<Mutex<Option<H2Connection>>>,
    h2_next: AtomicUsize,
}

impl TargetClient {
    fn new(target: &str, version: HttpVersion, connections: usize) -> Result<Self, ClientError> {
        let uri: Uri = target.parse().map_err(http::Error::from)?;
        let authority = uri
            .authority()
            .map(std::string::ToString::to_string)
            .ok_or_else(|| ClientError::Connect {
                target: target.to_owned(),
                message: "no host in the URL".into(),
            })?;
        Ok(TargetClient {
            base: format!("http://{authority}"),
            authority,
            version,
            connections,
            h1_idle: std::sync::Mutex::new(Vec::new()),
            h1_slots: Semaphore::new(connections),
            h2: (0..connections).map(|_| Mutex::new(None)).collect(),
            h2_next: AtomicUsize::new(0),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        bearer: &str,
    ) -> Result<Answer, ClientError> {
        let builder = Request::builder()
            .method(method)
            .header(header::AUTHORIZATION, bearer)
            .header(header::CONTENT_TYPE, "application/json");
        match self.version {
            HttpVersion::Http1 => {
                let request = builder
                    .uri(path)
                    .header(header::HOST, &self.authority)
                    .body(Full::new(body))?;
                self.send_h1(request).await
            }
            HttpVersion::H2c => {
                let request = builder.uri(format!("{}{path}", self.base)).body(body)?;
                self.send_h2(request).await
            }
        }
    }

    async fn send_h1(&self, request: Request<Full<Bytes>>) -> Result<Answer, ClientError> {
        // Waiting here is client-side queueing; it counts in the latency (from the intended
        // send time), as it would for a real caller.
        let _slot = self
            .h1_slots
            .acquire()
            .await
            .map_err(|_| ClientError::Timeout)?;
        let idle = self.lock_idle().pop();
        let mut connection = match idle {
            Some(connection) if !connection.is_closed() => connection,
            _ => self.connect_h1().await?,
        };
        connection.ready().await?;
        let response = connection.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !connection.is_closed() {
            self.lock_idle().push(connection);
        }
        Ok(Answer { status, body })
    }

    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<http1::SendRequest<Full<Bytes>>>> {
        // A poisoned list only means a panic elsewhere mid-push/pop; the Vec is still whole.
        self.h1_idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens each of this target's connections and sends `GET /healthz` on it.
    async fn connect(&self, bearer: &str) -> Result<(), ClientError> {
        let healthz = || {
            Request::builder()
                .method(Method::GET)
                .header(header::AUTHORIZATION, bearer)
        };
        match self.version {
            HttpVersion::Http1 => {
                // Dials those missing (registration may have left some idle), then puts
                // them back idle with the others.
                let missing = self.connections.saturating_sub(self.lock_idle().len());
                let mut opened = Vec::with_capacity(missing);
                for _ in 0..missing {
                    let mut connection = self.connect_h1().await?;
                    connection.ready().await?;
                    let request = healthz()
                        .uri("/healthz")
                        .header(header::HOST, &self.authority)
                        .body(Full::new(Bytes::new()))?;
                    connection
                        .send_request(request)
                        .await?
                        .into_body()
                        .collect()
                        .await?;
                    opened.push(connection);
                }
                self.lock_idle().extend(opened);
            }
            HttpVersion::H2c => {
                for index in 0..self.connections {
                    let request = healthz()
                        .uri(format!("{}/healthz", self.base))
                        .body(Bytes::new())?;
                    self.send_h2_on(index, request).await?;
                }
            }
        }
        Ok(())
    }

    async fn send_h2(&self, request: Request<Bytes>) -> Result<Answer, ClientError> {
        let index = self.h2_next.fetch_add(1, Ordering::Relaxed) % self.h2.len().max(1);
        self.send_h2_on(index, request).await
    }

    /// Sends `request` on connection `index`, dialling it first if it is not open.
    async fn send_h2_on(
        &self,
        index: usize,
        request: Request<Bytes>,
    ) -> Result<Answer, ClientError> {
        let sender = {
            let Some(slot) = self.h2.get(index) else {
                return Err(ClientError::Timeout);
            };
            let mut slot = slot.lock().await;
            match slot.as_ref() {
                Some(connection) if !connection.closed.load(Ordering::Relaxed) => {
                    connection.sender.clone()
                }
                _ => {
                    let connection = self.connect_h2().await?;
                    let sender = connection.sender.clone();
                    *slot = Some(connection);
                    sender
                }
            }
        };
        let (head, mut body) = http2::request(sender, request)
            .await
            .map_err(http2::Failed::into_error)?
            .into_parts();
        let body = http2::read_body(&mut body, ANSWER_LIMIT)
            .await
            .ok_or(ClientError::Body)?;
        Ok(Answer {
            status: head.status,
            body,
        })
    }

    async fn tcp(&self) -> Result<TokioIo<TcpStream>, ClientError> {
        let stream =
            TcpStream::connect(&self.authority)
                .await
                .map_err(|error| ClientError::Connect {
                    target: self.authority.clone(),
                    message: error.to_string(),
                })?;
        // Small requests and answers: Nagle would add tens of milliseconds to each.
        let _ = stream.set_nodelay(true);
        Ok(TokioIo::new(stream))
    }

    async fn connect_h1(&self) -> Result<http1::SendRequest<Full<Bytes>>, ClientError> {
        let (sender, connection) = http1::handshake(self.tcp().await?).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "loadgen: HTTP/1.1 connection ended");
            }
        });
        Ok(sender)
    }

    async fn connect_h2(&self) -> Result<H2Connection, ClientError> {
        let (sender, connection) = h2::client::handshake(self.tcp().await?.into_inner()).await?;
        let closed = Arc::new(AtomicBool::new(false));
        let ended = Arc::clone(&closed);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(?error, "loadgen: h2c connection ended");
            }
            ended.store(true, Ordering::Relaxed);
        });
        Ok(H2Connection { sender, closed })
    }
}

/// One h2c connection: its request handle, and whether the task driving it has ended (then
/// the next request on its slot dials a new one).
struct H2Connection {
    sender: h2::client::SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}
