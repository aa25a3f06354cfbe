//! Firebase Cloud Messaging, HTTP v1: high-priority data messages that ring Android phones.
//!
//! The protocol facts are in docs/protocols.md, "FCM HTTP v1"; the legacy API is shut down and not
//! spoken. The pure parts: [`config`] (base URL, connections, token refresh-ahead,
//! quota backoff), [`payload`] (a [`Push`](crate::push::Push) → path and body, the size
//! limit checked before sending), [`auth`] (the service account, its RS256 assertion, the
//! token endpoint's answer, and the one access-token cache every connection shares, with
//! single-flight refresh) and [`response`] (every documented FCM error code → an action → an
//! [`Outcome`](crate::push::Outcome)). [`client`] joins them to the network: the
//! [`PushService`](crate::providers::service::PushService) the shared dispatcher and delivery
//! loop drive, with its connections to FCM and to the token endpoint.

pub mod auth;
pub mod client;
pub mod config;
pub mod payload;
pub mod response;
