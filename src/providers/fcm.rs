//! Firebase Cloud Messaging, HTTP v1: high-priority data messages that ring Android phones.
//!
//! This step holds the pure parts (the protocol facts are in PROTOCOLS.md, "FCM"; the legacy
//! API is shut down and not spoken): [`config`] (base URL, connections, token refresh-ahead,
//! quota backoff), [`payload`] (a [`Push`](crate::push::Push) → path and body, the size
//! limit checked before sending), [`auth`] (the service account, its RS256 assertion, the
//! token endpoint's answer, and the one access-token cache every connection shares, with
//! single-flight refresh) and [`response`] (every documented FCM error code → an action → an
//! [`Outcome`](crate::push::Outcome)). The client that owns the HTTP/2 connections comes next.

pub mod auth;
pub mod config;
pub mod payload;
pub mod response;
