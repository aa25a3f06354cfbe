//! A push-service simulator, so tests and load tests can push without Apple, Google, Microsoft
//! or a browser vendor: APNs, FCM HTTP v1 with Google's OAuth token endpoint, WNS with its
//! token endpoints (legacy and Entra ID), and Web Push.
//!
//! It speaks what the real service speaks — TLS, ALPN `h2`, HTTP/2 with an advertised
//! `SETTINGS_MAX_CONCURRENT_STREAMS` — on its push listener, and TLS with ALPN `http/1.1`
//! only, HTTP/1.1 keep-alive, on a second listener that plays the hosts that speak nothing
//! else: the OAuth token endpoints (Google's `/token`, WNS's `/wns/token` and Entra ID's
//! `/<tenant>/oauth2/v2.0/token`) always, and WNS and Web Push when the profile's
//! `http1_only` is set. A request on the listener that does not serve it is answered `421`
//! (docs/protocols.md, "Transport, for every service"). It enforces the rules in
//! docs/protocols.md with Apple's status codes and reasons, Google's error JSON for FCM and
//! the WNS and Web Push statuses. A [`Profile`] scripts latency, injected errors, unregistered
//! tokens, GOAWAY, connection resets and stalls; a [`Recorder`] counts every answer and can
//! keep every accepted push (in memory and as JSON lines) to prove delivery.
//!
//! Web Push ([`webpush`], `/wp/<subscription>`) plays the browsers too: it makes
//! subscriptions (in-process, or for another process over `POST /wp/subscribe`), checks VAPID
//! and decrypts every body as the browser would.
//!
//! Layout: [`apns`], [`fcm`], [`wns`] and [`webpush`] are the pure rule books (request in,
//! verdict out), [`oauth`] Google's token endpoint's (assertion in, account or refusal out)
//! and the access tokens handed out; [`profile`] the scripted behaviour; [`hold`] the answers
//! a test holds back; [`recorder`] the counters and records (`record_file` writes the
//! records off the serving thread); [`tls`] the certificate; `server` the network, which
//! tells the services apart by path (`/3/device/...` APNs, `/v1/projects/...` FCM, `/token`
//! OAuth, `/w/...` WNS, `/wp/...` Web Push); [`stats`] the `/stats` endpoint. A new service
//! adds its own pure rule module and a branch in the server's request handler.

pub mod apns;
pub mod fcm;
pub mod hold;
pub mod oauth;
pub mod profile;
mod record_file;
pub mod recorder;
mod server;
pub mod stats;
pub mod tls;
pub mod webpush;
pub mod wns;

pub use hold::HeldAnswers;
pub use profile::{Profile, Service};
pub use recorder::{RecordedPush, Stats};
pub use server::TransportStats;

use apns::ApnsKey;
use recorder::Recorder;
use server::Shared;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tls::{Identity, TlsError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// An APNs signing key the simulator accepts, as a developer registers it with Apple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApnsCredential {
    /// Team id: the JWT's `iss`.
    pub team_id: String,
    /// Key id: the JWT header's `kid`.
    pub key_id: String,
    /// The public half of the `.p8` key (PEM `PUBLIC KEY`), to check ES256 signatures.
    pub public_key_pem: String,
}

/// A Google service account the simulator accepts, as Google knows it: the e-mail that signs
/// assertions, the Firebase project it may send to, and the public half of its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FcmServiceAccount {
    /// `client_email`: the assertion's `iss`.
    pub client_email: String,
    /// The project whose `messages:send` its access tokens may call.
    pub project_id: String,
    /// The public half of the account's RSA key (PEM `PUBLIC KEY`), to check RS256
    /// assertions.
    pub public_key_pem: String,
}

impl FcmServiceAccount {
    /// The account a service-account JSON file describes (`client_email`, `project_id`,
    /// `private_key`), its public key derived from the private one: so the simulator can be
    /// given the very file the node uses. The error never contains the key.
    pub fn from_service_account_json(json: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct File {
            client_email: String,
            project_id: String,
            private_key: String,
        }
        let file: File = serde_json::from_slice(json)
            .map_err(|error| format!("not a service-account JSON: {error}"))?;
        Ok(Self {
            public_key_pem: oauth::public_key_pem_of(&file.private_key)?,
            client_email: file.client_email,
            project_id: file.project_id,
        })
    }
}

/// How long FCM access tokens live unless configured: Google's hour.
pub const DEFAULT_FCM_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct SimulatorConfig {
    /// Where to listen; `127.0.0.1:0` (a free port) by default, so tests never collide.
    pub listen: SocketAddr,
    /// Where the HTTP/1.1-only hosts listen (token endpoints; WNS and Web Push with the
    /// profile's `http1_only`); `127.0.0.1:0` by default.
    pub http1_listen: SocketAddr,
    /// The APNs keys whose JWTs are accepted; with none, every push is 403.
    pub apns_keys: Vec<ApnsCredential>,
    /// The Google service accounts whose assertions the token endpoint accepts; with none,
    /// every token request is `invalid_grant`, so every FCM message is 401.
    pub fcm_accounts: Vec<FcmServiceAccount>,
    /// How long an issued FCM access token works (Google: an hour). Tests set it to seconds
    /// to watch a sender refresh.
    pub fcm_token_lifetime: Duration,
    /// The Windows apps (package SID + secret) whose WNS token requests are granted.
    pub wns_apps: Vec<wns::WnsApp>,
    /// How long an issued WNS access token works (Microsoft: 24 h); short in tests that
    /// watch a refresh.
    pub wns_token_lifetime: Duration,
    /// Scripted behaviour.
    pub profile: Profile,
    /// The CA (PEM) whose client certificates authenticate APNs pushes without a JWT
    /// (certificate auth); a certificate from elsewhere gets 403 `BadCertificate`. `None`:
    /// no client certificate is asked for.
    pub apns_client_ca: Option<String>,
    /// Certificate and key PEM files to serve; `None` makes a self-signed certificate.
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// Where to write the certificate PEM for clients to trust.
    pub cert_out: Option<PathBuf>,
    /// Keep every accepted push in memory for [`RunningSimulator::records`].
    pub record_in_memory: bool,
    /// Append every accepted push to this file as JSON lines.
    pub record_path: Option<PathBuf>,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http1_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            apns_keys: Vec::new(),
            fcm_accounts: Vec::new(),
            fcm_token_lifetime: DEFAULT_FCM_TOKEN_LIFETIME,
            wns_apps: Vec::new(),
            wns_token_lifetime: Duration::from_secs(24 * 3600),
            profile: Profile::default(),
            apns_client_ca: None,
            cert_and_key: None,
            cert_out: None,
            record_in_memory: false,
            record_path: None,
        }
    }
}

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    /// The certificate could not be made, loaded or written.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The profile is invalid.
    #[error(transparent)]
    Profile(#[from] profile::ProfileError),
    /// An APNs public key is not a P-256 PEM public key.
    #[error("APNs key {key_id}: {message}")]
    ApnsKey {
        /// The key id.
        key_id: String,
        /// What is wrong with it.
        message: String,
    },
    /// An FCM service account's public key is not an RSA PEM public key.
    #[error("FCM service account {client_email}: {message}")]
    FcmAccount {
        /// The account's e-mail.
        client_email: String,
        /// What is wrong with it.
        message: String,
    },
    /// The FCM token lifetime is zero: every token would be born expired.
    #[error("the FCM access token lifetime must be at least one second")]
    FcmTokenLifetime,
    /// The listen address could not be bound.
    #[error("binding {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The record file could not be created.
    #[error("creating the record file: {0}")]
    Record(std::io::Error),
}

/// The simulator's entry point.
pub struct Simulator;

impl Simulator {
    /// Binds, makes or loads the certificate, and starts serving on the current tokio
    /// runtime.
    pub async fn start(config: SimulatorConfig) -> Result<RunningSimulator, SimulatorError> {
        config.profile.validate()?;
        let keys = config
            .apns_keys
            .iter()
            .map(|key| {
                ApnsKey::from_pem(&key.team_id, &key.key_id, &key.public_key_pem).map_err(|error| {
                    SimulatorError::ApnsKey {
                        key_id: key.key_id.clone(),
                        message: error.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let fcm_accounts = config
            .fcm_accounts
            .iter()
            .map(|account| {
                oauth::FcmAccount::from_pem(
                    &account.client_email,
                    &account.project_id,
                    &account.public_key_pem,
                )
                .map_err(|error| SimulatorError::FcmAccount {
                    client_email: account.client_email.clone(),
                    message: error.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if config.fcm_token_lifetime < Duration::from_secs(1) {
            return Err(SimulatorError::FcmTokenLifetime);
        }
        let identity = match &config.cert_and_key {
            Some((cert, key)) => Identity::load(cert, key)?,
            None => Identity::self_signed()?,
        };
        if let Some(path) = &config.cert_out {
            identity.write_pem(path)?;
        }
        let cert_path = config
            .cert_out
            .clone()
            .or_else(|| config.cert_and_key.as_ref().map(|(cert, _)| cert.clone()));
        let ca_pem = identity.ca_pem.clone();
        let client_certificates = config
            .apns_client_ca
            .as_deref()
            .map(tls::ClientCertificates::new)
            .transpose()?;
        let acceptor = tokio_rustls::TlsAcceptor::from(
            identity.server_config(b"h2", client_certificates.clone())?,
        );
        let http1_acceptor =
            tokio_rustls::TlsAcceptor::from(identity.server_config(b"http/1.1", None)?);
        let recorder = Recorder::new(config.record_in_memory, config.record_path.as_deref())
            .map_err(SimulatorError::Record)?;
        let (listener, address) = bind(config.listen).await?;
        let (http1_listener, http1_address) = bind(config.http1_listen).await?;
        let device_limits = config.profile.fcm_device_limits();
        let shared = Arc::new(Shared {
            keys,
            fcm_accounts,
            access_tokens: oauth::AccessTokens::default(),
            fcm_token_lifetime: config.fcm_token_lifetime,
            wns_apps: config.wns_apps,
            wns_tokens: wns::WnsTokens::default(),
            wns_token_lifetime: config.wns_token_lifetime,
            token_url: format!("https://{http1_address}{}", oauth::PATH),
            http1_port: http1_address.port(),
            transport: server::TransportCounters::default(),
            client_certificates,
            rng: Mutex::new(fastrand::Rng::with_seed(config.profile.seed)),
            profile: config.profile,
            recorder,
            push_requests: std::sync::atomic::AtomicU64::new(0),
            webpush: webpush::Subscriptions::default(),
            vapid_verified: webpush::vapid::VerifiedTokens::default(),
            fcm_device_rates: fcm::device_rate::DeviceRates::new(device_limits),
            answers: hold::AnswerGate::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let http1_task = tokio::spawn(server::accept_loop(
            http1_listener,
            http1_acceptor,
            server::Transport::Http1,
            shared.clone(),
            stopped.clone(),
        ));
        let task = tokio::spawn(server::accept_loop(
            listener,
            acceptor,
            server::Transport::Http2,
            shared.clone(),
            stopped,
        ));
        Ok(RunningSimulator {
            address,
            http1_address,
            http1_task: Some(http1_task),
            ca_pem,
            cert_path,
            shared,
            stop,
            task: Some(task),
        })
    }
}

/// Binds `address`, returning the listener and the address it got (the real port for 0).
async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), SimulatorError> {
    let bind_error = |source| SimulatorError::Bind { address, source };
    let listener = TcpListener::bind(address).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

/// A simulator serving in the background; dropping it stops accepting at the next poll.
pub struct RunningSimulator {
    address: SocketAddr,
    /// The HTTP/1.1-only listener's address.
    http1_address: SocketAddr,
    /// Its accept loop, awaited by `shutdown` as `task` is.
    http1_task: Option<JoinHandle<()>>,
    ca_pem: String,
    cert_path: Option<PathBuf>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    /// Taken by `shutdown` to wait for the drain; `Drop` only signals.
    task: Option<JoinHandle<()>>,
}

impl RunningSimulator {
    /// The bound address (the real port when 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `https://127.0.0.1:PORT`: the base URL to point an APNs or FCM client at (HTTP/2).
    pub fn base_url(&self) -> String {
        format!("https://{}", self.address)
    }

    /// `https://localhost:PORT`: the APNs sandbox host. Same listener as [`base_url`]
    /// (Self::base_url), which is the production host: the simulator tells the two apart by
    /// the request's `:authority`, as Apple does by host name (see [`apns`]).
    pub fn apns_sandbox_url(&self) -> String {
        format!("https://localhost:{}", self.address.port())
    }

    /// The HTTP/1.1-only listener's address.
    pub fn http1_address(&self) -> SocketAddr {
        self.http1_address
    }

    /// `https://127.0.0.1:PORT` of the HTTP/1.1-only listener.
    pub fn http1_base_url(&self) -> String {
        format!("https://{}", self.http1_address)
    }

    /// `https://127.0.0.1:PORT/token` (HTTP/1.1 only): the `token_uri` to give an FCM sender.
    pub fn token_url(&self) -> String {
        format!("{}{}", self.http1_base_url(), oauth::PATH)
    }

    /// `https://127.0.0.1:PORT/wns/token` (HTTP/1.1 only): WNS's legacy token endpoint.
    pub fn wns_token_url(&self) -> String {
        format!("{}{}", self.http1_base_url(), wns::TOKEN_PATH)
    }

    /// `https://127.0.0.1:PORT/<tenant>/oauth2/v2.0/token` (HTTP/1.1 only): Microsoft Entra
    /// ID's token endpoint for `tenant`, which grants WNS tokens for the `.default` scope.
    pub fn entra_token_url(&self, tenant: &str) -> String {
        format!(
            "{}/{tenant}{}",
            self.http1_base_url(),
            wns::ENTRA_TOKEN_SUFFIX
        )
    }

    /// Where WNS channels and Web Push endpoints are served: the HTTP/1.1 listener when the
    /// profile's `http1_only` is set, else the HTTP/2 one.
    pub fn push_base_url(&self) -> String {
        if self.shared.profile.http1_only {
            self.http1_base_url()
        } else {
            self.base_url()
        }
    }

    /// The certificate PEM a client must trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Where the certificate PEM was written (`cert_out`) or read from (`cert_and_key`).
    pub fn cert_path(&self) -> Option<&PathBuf> {
        self.cert_path.as_ref()
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        self.shared.recorder.stats()
    }

    /// Which protocol senders spoke, and how many requests reached the wrong listener.
    pub fn transport_stats(&self) -> TransportStats {
        self.shared.transport.stats()
    }

    /// Makes a Web Push subscription as a browser would (a P-256 key pair and an auth
    /// secret, kept by the simulator to decrypt what is pushed to it), bound to the VAPID
    /// `application_server_key` (base64url) when given. Returns what the browser would hand
    /// its server: `{endpoint, p256dh, auth}` (+ the id).
    pub fn webpush_subscribe(
        &self,
        application_server_key: Option<&str>,
    ) -> Result<webpush::NewSubscription, String> {
        self.shared
            .webpush
            .subscribe(&self.push_base_url(), application_server_key, None)
    }

    /// [`RunningSimulator::webpush_subscribe`] with a chosen id (`A-Z a-z 0-9 -`), so a
    /// profile's `unregistered_tokens` can script that subscription as gone (410).
    pub fn webpush_subscribe_as(
        &self,
        id: &str,
        application_server_key: Option<&str>,
    ) -> Result<webpush::NewSubscription, String> {
        self.shared
            .webpush
            .subscribe(&self.push_base_url(), application_server_key, Some(id))
    }

    /// Holds every answer to a push until the returned guard (and any other hold) is dropped:
    /// the push arrives (counted as received) and waits, unjudged and unrecorded, for the
    /// release. For a test that needs a push unanswered while something happens to its sender
    /// ([`hold`]).
    pub fn hold_answers(&self) -> HeldAnswers {
        self.shared.answers.hold();
        HeldAnswers {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Accepted pushes so far (empty unless `record_in_memory`).
    pub fn records(&self) -> Vec<RecordedPush> {
        self.shared.recorder.records()
    }

    /// Stops accepting, lets open connections finish their streams (GOAWAY), then returns.
    pub async fn shutdown(mut self) {
        // An error means the accept loop already ended; nothing left to stop.
        let _ = self.stop.send(true);
        for task in [self.task.take(), self.http1_task.take()]
            .into_iter()
            .flatten()
        {
            if let Err(error) = task.await {
                tracing::warn!(%error, "simulator: accept loop ended abnormally");
            }
        }
    }
}

impl Drop for RunningSimulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
