//! Apple Push Notification service: VoIP pushes that ring iPhones, and alerts for the rest.
//!
//! The protocol facts are in docs/protocols.md, "APNs". The pure parts:
//! [`config`] (hosts, connections, JWT age), [`payload`] (a [`Push`](crate::push::Push) →
//! the `http::Request`: URI, headers and body, with the size limit checked before sending),
//! [`auth`] (the ES256 provider token, one per team and key, shared by every connection) and
//! [`response`] (status, headers and body → the delivery loop's
//! [`Verdict`](crate::providers::service::Verdict), every documented reason mirrored).
//! [`last_body`] keeps an event's body and headers for its other devices.
//! [`client`] joins them to the shared connection pool as a
//! [`PushService`](crate::providers::service::PushService).

pub mod auth;
pub mod client;
pub mod config;
pub mod last_body;
pub mod payload;
pub mod response;
