//! The provider layer: everything between a [`Push`](crate::push::Push) and a push service's
//! answer.
//!
//! A *provider* is one push service (APNs, FCM, WNS, Web Push) spoken with one credential.
//! Each lives in its own folder with the same five files, so a reader who knows one knows
//! them all:
//!
//! - `config.rs`: typed settings with defaults (hosts, connections, timeouts, retries);
//! - `payload.rs`: pure request building (path, headers, body; no credential), tested
//!   offline;
//! - `auth.rs`: the credential (JWT, OAuth2 grant) and its refresh, on a passed-in clock;
//! - `client.rs`: the connections and sending (the only part doing I/O): adds the credential
//!   to the built request;
//! - `response.rs`: the pure judge, `(status, headers, body) → Verdict`, with every documented
//!   reason of the service mirrored as an enum with an `Unknown(String)` catch-all.
//!
//! A push flows: `payload` builds the request (a payload error is already a final
//! [`Outcome`](crate::vocab::Outcome), the same in every provider: [`payload_fault`]) →
//! `client` adds the cached credential (APNs' JWT, the shared [`oauth`] token of FCM and WNS,
//! Web Push's VAPID) and sends it → `response` judges the status, headers and body into the
//! delivery loop's [`Verdict`](service::Verdict) (delivered, retry, delete the registration,
//! refresh the credential once, try the other environment, alert), reading `Retry-After` with
//! the one [`retry_after`] parser → a retryable verdict goes through the shared [`retry`]
//! policy (backoff, deadline, budget) and either comes back as a later send or becomes final
//! → the push's one `Outcome` flows back to the router, the metrics and (for a dead token)
//! registry cleanup.

pub mod apns;
pub mod config_keys;
pub mod delivery;
pub mod dispatcher;
pub mod fcm;
pub mod live;
pub mod oauth;
pub mod origins;
pub mod pause;
pub mod payload_fault;
pub mod pool;
pub mod queue;
pub mod retry;
pub mod retry_after;
pub mod service;
pub mod webpush;
pub mod wiring;
pub mod wns;
