//! Firebase Cloud Messaging, HTTP v1: high-priority data messages that ring Android phones.
//!
//! The protocol facts are in docs/protocols.md, "FCM HTTP v1"; the legacy API is shut down and not
//! spoken. The pure parts: [`config`] (base URL, connections, token refresh-ahead, quota
//! backoff), [`payload`] (a [`Push`](crate::push::Push) → the `http::Request`, the size limit
//! checked before sending), [`auth`] (the service account and its RS256 assertion: FCM's
//! [`Grant`](crate::providers::oauth::Grant) for the access-token cache it shares with WNS,
//! [`crate::providers::oauth`]) and [`response`] (status, headers and body → the delivery
//! loop's [`Verdict`](crate::providers::service::Verdict), every documented FCM error code
//! mirrored). [`client`] joins them to the network: the
//! [`PushService`](crate::providers::service::PushService) the shared dispatcher and delivery
//! loop drive, with its connections to FCM and to the token endpoint.

pub mod auth;
pub mod client;
pub mod config;
pub mod payload;
pub mod response;
