//! The APNs client: the [`PushService`] that sends one app's pushes to one APNs environment
//! over the pool's HTTP/2 connections, with the shared provider token.
//!
//! Everything protocol-shaped is in the pure modules ([`super::payload`] builds the request,
//! [`super::response`] judges the answer); this file only joins them to the network: it adds
//! the `authorization` header of the connection the push leaves on ([`super::auth::connection`]).

use super::auth::ProviderTokenCache;
use super::config::ApnsConfig;
use super::last_body::LastBody;
use super::payload::{EventParts, build_fields};
use super::response::judge;
use crate::metrics::{self, RefreshOutcome};
use crate::providers::live::Live;
use crate::providers::pool::{
    Answer, BoundCredential, Origin, OriginError, Pool, PoolSettings, Request,
};
use crate::providers::service::{Prepared, PushService, Verdict, alert_on};
use crate::push::Push;
use crate::registry::PushAddress;
use crate::vocab::{Environment, Outcome, Platform, PushKind, UnixMillis};
use http::header::AUTHORIZATION;
use rustls::ClientConfig;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What authenticates one app's APNs pushes, replaced whole by a reload: the provider-token
/// cache (empty with certificate auth) and the TLS its connections dial with (carrying the
/// client certificate, with certificate auth).
#[derive(Clone)]
pub struct ApnsCredential {
    /// Signs the provider token (JWT) of every push.
    pub tokens: ProviderTokenCache,
    /// Whom to trust, and the client certificate if the app has one.
    pub tls: Arc<ClientConfig>,
    /// Bumped by every reload that replaces the credential: a client that sees a new one
    /// retires its connections first (module doc of `providers::pool`, "Retiring").
    pub generation: u64,
}

/// One app's APNs pushes in one environment.
pub struct ApnsClient {
    /// The environment whose pushes this client's dispatcher queues.
    environment: Environment,
    /// The K connections to each environment's host, production first: the own one carries
    /// every push, the other one only a push whose token the own host refused as
    /// `BadDeviceToken` ([`Verdict::OtherEnvironment`]). Shared with the other environment's
    /// client, so no connection is opened twice.
    pools: [Pool; 2],
    /// The credential, shared with every other client of the app; a reload that rotates the
    /// key or the certificate swaps the cell, and the next push retires the connections (a
    /// connection may not take a new token within 20 minutes, and a certificate is bound
    /// into it) and is signed with the new key.
    credential: Live<ApnsCredential>,
    /// The credential generation the pools' connections were dialled for; shared with the
    /// other environment's client, which shares the pools.
    dialled_for: Arc<AtomicU64>,
    /// The app's bundle id: the `apns-topic` (with `.voip` for VoIP pushes).
    bundle_id: String,
    /// How long an answer may take.
    request_timeout: Duration,
    /// The body and headers of the event last pushed: its other devices' pushes reuse them.
    last_body: LastBody<EventParts>,
}

impl ApnsClient {
    /// A client for `bundle_id` in `environment`, signing with `tokens`, trusting `tls`.
    /// Starts its connections (to both environments' hosts) on the current runtime.
    pub fn start(
        config: &ApnsConfig,
        environment: Environment,
        bundle_id: &str,
        tokens: ProviderTokenCache,
        tls: Arc<ClientConfig>,
    ) -> Result<ApnsClient, OriginError> {
        let [production, sandbox] = Self::start_both(config, bundle_id, tokens, tls)?;
        Ok(match environment {
            Environment::Production => production,
            Environment::Sandbox => sandbox,
        })
    }

    /// The production and the sandbox client of `bundle_id`, sharing one pool per host.
    pub fn start_both(
        config: &ApnsConfig,
        bundle_id: &str,
        tokens: ProviderTokenCache,
        tls: Arc<ClientConfig>,
    ) -> Result<[ApnsClient; 2], OriginError> {
        let credential = ApnsCredential {
            tokens,
            tls,
            generation: 0,
        };
        Self::start_both_live(config, bundle_id, Live::new(credential))
    }

    /// [`ApnsClient::start_both`] with the app's reloadable credential cell.
    pub fn start_both_live(
        config: &ApnsConfig,
        bundle_id: &str,
        credential: Live<ApnsCredential>,
    ) -> Result<[ApnsClient; 2], OriginError> {
        let (tls, generation) = {
            let current = credential.load();
            (Arc::clone(&current.tls), current.generation)
        };
        let dialled_for = Arc::new(AtomicU64::new(generation));
        let pool = |environment| -> Result<Pool, OriginError> {
            let origin = Origin::parse(config.base_url(environment), Arc::clone(&tls))?;
            Ok(Pool::start(origin, config.pool_settings()))
        };
        let pools = [pool(Environment::Production)?, pool(Environment::Sandbox)?];
        let client = |environment| ApnsClient {
            environment,
            pools: pools.clone(),
            credential: credential.clone(),
            dialled_for: Arc::clone(&dialled_for),
            bundle_id: bundle_id.to_owned(),
            request_timeout: config.request_timeout(),
            last_body: LastBody::default(),
        };
        Ok([
            client(Environment::Production),
            client(Environment::Sandbox),
        ])
    }

    /// Retires both pools' connections once per replaced credential (the first push that
    /// sees it does), so that pushes signed with the new key go out on new connections.
    fn retire_if_replaced(&self, credential: &ApnsCredential) {
        let seen = self.dialled_for.load(Ordering::Acquire);
        if seen == credential.generation
            || self
                .dialled_for
                .compare_exchange(
                    seen,
                    credential.generation,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_err()
        {
            return;
        }
        tracing::info!(bundle_id = %self.bundle_id, "APNs credential replaced: renewing connections");
        for pool in &self.pools {
            pool.retire(Some(&credential.tls));
        }
    }

    /// The environment whose pushes this client's dispatcher queues.
    pub fn environment(&self) -> Environment {
        self.environment
    }

    /// The pool of `environment`'s host.
    fn pool_of(&self, environment: Environment) -> &Pool {
        match environment {
            Environment::Production => &self.pools[0],
            Environment::Sandbox => &self.pools[1],
        }
    }
}

impl ApnsConfig {
    /// The connection pool's settings.
    pub fn pool_settings(&self) -> PoolSettings {
        PoolSettings {
            connections: self.connections(),
            keep_alive_interval: Duration::from_secs(self.ping_interval_seconds),
            http2_client: self.http2_client,
            provider: Some(Platform::Apns),
            answer_fields: super::response::ANSWER_FIELDS,
            ..PoolSettings::default()
        }
    }
}

impl PushService for ApnsClient {
    fn name(&self) -> &'static str {
        "apns"
    }

    fn pool(&self) -> &Pool {
        self.pool_of(self.environment)
    }

    fn pool_for(&self, push: &Push) -> Pool {
        self.pool_of(push.environment).clone()
    }

    fn unsendable(&self, push: &Push) -> Option<Outcome> {
        // A notice goes only to the regular token (super::payload): without one there is
        // nothing to send, so it need not wait for a queue slot to be told so.
        let notice = push.kind != PushKind::IncomingCall;
        let voip_only = matches!(
            &push.address,
            PushAddress::Apns {
                alert_token: None,
                ..
            }
        );
        (notice && voip_only).then_some(Outcome::NoAlertToken)
    }

    fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    async fn prepare(&self, push: &Push, now: UnixMillis) -> Result<Prepared, Outcome> {
        let request = build_fields(push, &self.bundle_id, now, &self.last_body)
            .map_err(|error| error.fault().outcome())?;
        self.retire_if_replaced(&self.credential.load());
        // The token is chosen by the connection the push leaves on (`bind`).
        Ok(Prepared {
            request: request.into(),
            credential: 0,
        })
    }

    fn bind(
        &self,
        request: &mut Request,
        connection: &BoundCredential,
        now: UnixMillis,
    ) -> Option<u64> {
        let credential = self.credential.load();
        let bound = credential
            .tokens
            .for_connection(connection, credential.generation, now);
        // None for an app authenticated by its client certificate: no JWT at all.
        if let Some(authorization) = bound.authorization {
            request.add_field(AUTHORIZATION, authorization);
        }
        Some(bound.credential)
    }

    fn judge(&self, answer: &Answer, now: UnixMillis) -> Verdict {
        let verdict = judge(answer.status, &answer.headers, &answer.body, now);
        alert_on("apns", &self.bundle_id, answer.status, &verdict);
        verdict
    }

    async fn refresh_credential(&self, credential: u64, now: UnixMillis) -> Result<(), String> {
        let refreshed = self
            .credential
            .load()
            .tokens
            .refresh_expired(credential, now);
        let outcome = match refreshed {
            Ok(_) => RefreshOutcome::Ok,
            Err(_) => RefreshOutcome::Error,
        };
        metrics::credential_refresh(Platform::Apns, outcome);
        refreshed.map(drop).map_err(|error| error.to_string())
    }
}
