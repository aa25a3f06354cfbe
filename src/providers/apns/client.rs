//! The APNs client: the [`PushService`] that sends one app's pushes to one APNs environment
//! over the pool's HTTP/2 connections, with the shared provider token.
//!
//! Everything protocol-shaped is in the pure modules ([`super::payload`] builds the request,
//! [`super::response`] reads the answer); this file only joins them to the network: it adds
//! the `authorization` header from the token cache and maps each [`Action`] onto the shared
//! delivery loop's [`Verdict`].

use super::auth::ProviderTokenCache;
use super::config::ApnsConfig;
use super::payload::{PayloadError, build_request};
use super::response::{Action, ApnsReason, parse};
use crate::metrics::{self, RefreshOutcome};
use crate::providers::live::Live;
use crate::providers::pool::{Answer, Origin, OriginError, Pool, PoolSettings};
use crate::providers::service::{Prepared, PushService, Verdict};
use crate::push::{Outcome, Push, PushKind};
use crate::registry::{Environment, Platform, PushAddress, UnixMillis};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http_body_util::Full;
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
            connections: self.connections_per_credential,
            keep_alive_interval: Duration::from_secs(self.ping_interval_seconds),
            provider: Some(Platform::Apns),
            ..PoolSettings::default()
        }
    }
}

/// The `retries_total{reason}` label of a retried APNs answer.
fn retry_label(status: u16, reason: Option<&ApnsReason>) -> &'static str {
    match reason {
        Some(ApnsReason::TooManyRequests) => "too_many_requests",
        Some(ApnsReason::TooManyProviderTokenUpdates) => "too_many_provider_token_updates",
        Some(ApnsReason::IdleTimeout) => "idle_timeout",
        Some(ApnsReason::Shutdown) => "shutdown",
        _ if status == 429 => "too_many_requests",
        _ => "status_5xx",
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
        let built = build_request(push, &self.bundle_id, now).map_err(|error| match error {
            PayloadError::Expired => Outcome::Expired,
            PayloadError::NoAlertToken => Outcome::NoAlertToken,
            other => Outcome::Rejected {
                reason: other.reason().to_owned(),
            },
        })?;
        let credential = self.credential.load();
        self.retire_if_replaced(&credential);
        let token = credential
            .tokens
            .token(now)
            .map_err(|error| Outcome::CredentialProblem {
                reason: error.to_string(),
            })?;
        let base = self.pool_of(push.environment).base();
        let mut request = http::Request::post(format!("{base}{}", built.path))
            .body(Full::new(Bytes::from(built.body)))
            .map_err(|error| Outcome::Rejected {
                reason: format!("request: {error}"),
            })?;
        let headers = request.headers_mut();
        *headers = built.headers;
        // None for an app authenticated by its client certificate: no JWT at all.
        if let Some(authorization) = token.authorization {
            headers.insert(AUTHORIZATION, authorization);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Prepared {
            request,
            credential: token.minted_at,
        })
    }

    fn judge(&self, answer: &Answer, now: UnixMillis) -> Verdict {
        let retry_after = answer
            .headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok());
        let parsed = parse(answer.status, &answer.body, retry_after, now);
        let after = match parsed.action {
            Action::Retry { after } => after,
            // APNs never asks for a pause; one would only be a longer retry.
            Action::Pause { for_ } => Some(for_),
            _ => None,
        };
        match parsed.action {
            Action::Retry { .. } | Action::Pause { .. } => Verdict::Retry {
                after,
                reason: retry_label(parsed.status, parsed.reason.as_ref()),
                otherwise: parsed.final_outcome(),
            },
            Action::RefreshCredentialOnce => Verdict::RefreshCredential {
                otherwise: parsed.final_outcome(),
            },
            Action::TryOtherEnvironment { .. } => Verdict::OtherEnvironment {
                otherwise: parsed.final_outcome(),
            },
            Action::ConfigAlert => {
                let reason = parsed.reason.as_ref().map_or("", |r| r.as_str());
                tracing::error!(provider = "apns", bundle_id = %self.bundle_id,
                    status = parsed.status, reason,
                    "APNs refused the topic: the app's bundle id or push type is misconfigured");
                Verdict::Final(parsed.final_outcome())
            }
            Action::CredentialAlert | Action::BugAlert => {
                let reason = parsed.reason.as_ref().map_or("", |r| r.as_str());
                tracing::error!(provider = "apns", bundle_id = %self.bundle_id,
                    status = parsed.status, reason, "APNs refused the credential or request");
                Verdict::Final(parsed.final_outcome())
            }
            Action::Delivered | Action::DeleteRegistration { .. } | Action::Reject => {
                Verdict::Final(parsed.final_outcome())
            }
        }
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
