//! The provider interface: what the shared delivery loop and dispatcher need from one push
//! service spoken with one credential. APNs, FCM, WNS and Web Push each implement it in their
//! `client.rs`, so retries, deadlines, budgets, backpressure and dead-token cleanup are
//! written once.

use crate::providers::pool::{Answer, BoundCredential, Pool, Request};
use crate::push::Push;
use crate::vocab::{Outcome, UnixMillis};
use std::future::Future;
use std::time::Duration;

/// A request ready to go, and which credential it carries.
pub struct Prepared {
    /// The request, credential header set: an `http::Request` with its URI complete, or
    /// one whose fields the provider laid out ([`crate::providers::pool::Fields`]).
    pub request: Request,
    /// Which credential the request carries (e.g. the APNs token's mint time), so a refusal
    /// of that credential refreshes it once, and not again when another push already did.
    pub credential: u64,
}

/// What the push service's answer means for the push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The push has its outcome (delivered, dead token, rejected, credential problem).
    Final(Outcome),
    /// Transient: try again through the retry policy, not before `after` if the service
    /// said so; `otherwise` is the outcome if no retry is left.
    Retry {
        /// The service's `Retry-After`, a floor on the delay.
        after: Option<Duration>,
        /// The metric label (`retries_total{reason}`).
        reason: &'static str,
        /// The outcome when the retry is not allowed.
        otherwise: Outcome,
    },
    /// The credential expired: refresh it once and send again; `otherwise` is the outcome if
    /// this push already had its one refresh.
    RefreshCredential {
        /// The outcome when the refresh was already spent.
        otherwise: Outcome,
    },
    /// The token may belong to the service's other environment (APNs `BadDeviceToken`): send
    /// the push once to the other environment ([`PushService::pool_for`] a push whose
    /// `environment` is flipped). `otherwise` is the outcome when the other environment
    /// refused it too (the token is dead), or when this push already went there.
    OtherEnvironment {
        /// The outcome when the other environment is no way out.
        otherwise: Outcome,
    },
    /// The service refuses *every* push of this credential for a while (FCM
    /// `QUOTA_EXCEEDED`: the whole project is over its quota). The delivery loop pauses the
    /// service for `for_` ([`PushService::pause`]), so no push of it is sent before then, and
    /// re-sends this one after the pause through the retry policy (deadline, attempts,
    /// budget), so a quota storm cannot turn into a retry storm.
    Pause {
        /// How long nothing may be sent: at least the service's `Retry-After`.
        for_: Duration,
        /// The metric label (`retries_total{reason}`).
        reason: &'static str,
        /// The outcome when the re-send is not allowed.
        otherwise: Outcome,
    },
}

/// Logs the answers an operator must act on, the same way for every provider: a refused
/// credential, a configuration the service blames (wrong topic, bundle or project), and a
/// request path or method it does not know (a ringcast bug or a wrong base URL). `context`
/// names what was sent for (an app's bundle id, a project, an origin); never a token.
pub fn alert_on(provider: &'static str, context: &str, status: u16, verdict: &Verdict) {
    match verdict {
        Verdict::Final(Outcome::CredentialProblem { reason }) => {
            tracing::error!(
                provider,
                context,
                status,
                reason,
                "the push service refused the credential"
            );
        }
        Verdict::Final(Outcome::Misconfigured { reason }) => {
            tracing::error!(
                provider,
                context,
                status,
                reason,
                "the push service blames the app's configuration (topic, bundle or project id)"
            );
        }
        Verdict::Final(Outcome::Rejected { reason }) if matches!(status, 404 | 405) => {
            tracing::error!(
                provider,
                context,
                status,
                reason,
                "the push service does not know the request's path or method: a bug or a wrong \
                 base URL"
            );
        }
        _ => {}
    }
}

/// One push service spoken with one credential (and one environment). Implementations are
/// shared by every delivery of a provider (`Arc`), so methods take `&self`.
pub trait PushService: Send + Sync + 'static {
    /// The metric label: `apns`, `fcm`, `wns`, `webpush`.
    fn name(&self) -> &'static str;

    /// The connections pushes of this provider travel on: one origin's. The dispatcher takes
    /// a stream from it before a push leaves its queue, so pushes wait in priority order
    /// rather than inside the pool. A service whose pushes go to many origins (Web Push,
    /// WNS) has one client per origin behind an origins actor
    /// ([`crate::providers::origins`]), so this holds for every client.
    fn pool(&self) -> &Pool;

    /// The connections `push` travels on: [`pool`](Self::pool)'s, except for APNs, whose
    /// client reaches both environments' hosts and answers those of `push.environment`;
    /// that is how [`Verdict::OtherEnvironment`] reaches the other host.
    fn pool_for(&self, push: &Push) -> Pool {
        let _ = push;
        self.pool().clone()
    }

    /// The outcome of a push this service can tell at once it will not send, before it takes
    /// a queue slot or a stream (APNs: a notice to a registration without a regular token,
    /// [`Outcome::NoAlertToken`]). `None` for every push worth queueing, the default.
    fn unsendable(&self, push: &Push) -> Option<Outcome> {
        let _ = push;
        None
    }

    /// How long one request may take before its answer counts as lost.
    fn request_timeout(&self) -> Duration;

    /// Builds the request for `push` at `now` with the current credential, or the push's
    /// final outcome when it cannot be sent at all (payload too large, credential unusable,
    /// deadline passed).
    fn prepare(
        &self,
        push: &Push,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Prepared, Outcome>> + Send;

    /// Stamps on `request`, just before it is sent at `now`, the credential of the
    /// connection it leaves on, and says which credential that is (it replaces
    /// [`Prepared::credential`] for a refresh). For a service whose credential is bound to
    /// the connection: APNs, where a connection may change its provider token only every 20
    /// minutes ([`crate::providers::pool::bound`]). The others stamp theirs in
    /// [`prepare`](Self::prepare) and keep this default, which binds nothing.
    fn bind(
        &self,
        request: &mut Request,
        connection: &BoundCredential,
        now: UnixMillis,
    ) -> Option<u64> {
        let _ = (request, connection, now);
        None
    }

    /// What `answer` means, received at `now`.
    fn judge(&self, answer: &Answer, now: UnixMillis) -> Verdict;

    /// Holds back every push of this service until `until` (UNIX milliseconds), after a
    /// [`Verdict::Pause`]. A later pause may extend it, never shorten it. Services that never
    /// pause keep the default (nothing to hold).
    fn pause(&self, until: UnixMillis) {
        let _ = until;
    }

    /// Until when no push of this service may be sent, if a pause is on; the delivery loop
    /// waits for it before preparing a request (or expires the push when the pause outlasts
    /// its deadline).
    fn paused_until(&self) -> Option<UnixMillis> {
        None
    }

    /// Refreshes the credential after the service refused the one stamped `credential`
    /// (a no-op when another push refreshed it already). `Err` carries why it failed.
    fn refresh_credential(
        &self,
        credential: u64,
        now: UnixMillis,
    ) -> impl Future<Output = Result<(), String>> + Send;
}
