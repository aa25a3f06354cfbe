//! The provider layer: everything between a [`Push`](crate::push::Push) and a push service's
//! answer.
//!
//! A *provider* is one push service (APNs, FCM, WNS, Web Push) spoken with one credential.
//! Each lives in its own folder with the same five files, so a reader who knows one knows
//! them all:
//!
//! - `config.rs`: typed settings with defaults (hosts, connections, timeouts, retries);
//! - `payload.rs`: pure request building (path, headers, body), tested offline;
//! - `auth.rs`: the credential (JWT, OAuth2 token) and its refresh, on a passed-in clock;
//! - `client.rs`: the HTTP/2 connections and sending (the only part doing I/O);
//! - `response.rs`: every documented reason of the service mirrored as an enum with an
//!   `Unknown(String)` catch-all, each mapped to an action.
//!
//! A push flows: `payload` builds the request (a payload error is already a final
//! [`Outcome`](crate::push::Outcome)) → `client` sends it with the cached credential →
//! `response` turns the status and body into an action (delivered, retry, delete the
//! registration, refresh the credential once, alert) → a retryable action goes through the
//! shared [`retry`] policy (backoff, deadline, budget) and either comes back as a later send
//! or becomes final → the final action becomes the push's one `Outcome`, which flows back to
//! the router, the metrics and (for a dead token) registry cleanup.

pub mod action;
pub mod apns;
pub mod delivery;
pub mod dispatcher;
pub mod fcm;
pub mod live;
pub mod pool;
pub mod queue;
pub mod retry;
pub mod service;
pub mod webpush;
pub mod wns;
